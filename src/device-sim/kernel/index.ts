// Public face of the simulated kernel: the model of accelerator devices, owners, dma-bufs and
// their importers that the node agent drives and the tests use as an oracle.

export { Kernel } from './kernel.ts';
export { PROFILES, pinsOnDrop, type ProfileSemantics } from './profiles.ts';
export {
  SNAPSHOT_VERSION,
  STORED_ATTACHMENT_STATES,
  parseSnapshot,
  type AttachmentSnapshot,
  type BufferSnapshot,
  type DeviceSnapshot,
  type FdSnapshot,
  type KernelSnapshot,
  type ProcessSnapshot,
  type StoredAttachmentState,
} from './snapshot.ts';
export * from './errors.ts';
export * from './types.ts';
