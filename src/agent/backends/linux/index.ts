// Public face of the Linux backend: a read-only observer of a node's dma-bufs and their holders
// (DESIGN.md section 9), its parsers, and the pin rules that turn observations into pins.
export { podOfCgroup, podOfCgroupPath, type PodCgroup } from './cgroup.ts';
export {
  isDmabufLink,
  parseBufinfo,
  parseFdinfo,
  parseMaps,
  parseRdmaMrs,
  parseStat,
  RdmaOutputError,
  type BufinfoEntry,
  type DmabufFdinfo,
  type DmabufMapping,
  type RdmaMr,
} from './parse.ts';
export {
  BUFINFO,
  ObserveError,
  RdmaToolError,
  observeNode,
  rdmaTool,
  type BufferHolder,
  type DeviceHolder,
  type MrHolder,
  type NodeObservation,
  type ObserveOptions,
  type ObserveProblem,
  type ObservedBuffer,
  type ProblemKind,
  type ProcessRef,
} from './observe.ts';
export { LedgerFileError, linuxBackend, type LinuxBackendOptions } from './backend.ts';
export {
  Ledger,
  devicePins,
  emptyLedger,
  recordObservation,
  type Blocked,
  type DevicePins,
  type LinuxDevice,
  type PinInputs,
} from './pins.ts';
