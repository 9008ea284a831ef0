// Public face of the node agent: one process per node binding the simulated kernel to the
// cluster (docs/design.md section 6). `main.ts` is the command; `startAgent` runs it in-process.
export { startAgent, type AgentHandle, type AgentOptions } from './start.ts';
export { AgentStartError } from './errors.ts';
export { FIELD_MANAGER, MODEL_LABEL, NODE_LABEL } from './accelerator-specs.ts';
export { EVENT_CONTROLLER } from './notes.ts';
export { handleAdmin, type AdminTarget } from './admin.ts';
export { AGENT_FLAGS, parseAgentFlags, type AgentFlags, type HostPort } from './flags.ts';
export { decideOwner, ownerKey, leaseOfOwner, type OwnerDecision } from './ownership.ts';
export { publish, statusPin, type Published } from './publish.ts';
export {
  deviceName,
  newState,
  parseStateFile,
  toStateFile,
  STATE_VERSION,
  type AgentState,
  type StateFile,
} from './state.ts';
export { syncNode, type Note, type Observed, type SyncResult } from './sync.ts';
