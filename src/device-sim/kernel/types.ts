// Vocabulary of the simulated kernel: the closed sets the API schemas are checked against,
// and the read-only views the kernel hands out (never its internal records).

/** How a driver imports a dma-buf (docs/design.md section 1). */
export const IMPORTER_KINDS = ['dynamic', 'mmap', 'rdma-mr', 'pinned'] as const;
export type ImporterKind = (typeof IMPORTER_KINDS)[number];

/** What an exporter can take back when its owner goes (docs/design.md section 1). */
export const EXPORTER_PROFILES = ['static', 'dynamic', 'revocable'] as const;
export type ExporterProfile = (typeof EXPORTER_PROFILES)[number];

/**
 * Life of one importer, in the words DmaBufExport.status.attachments[].state uses.
 * The kernel stores `attached | revoked | pinned`; `detach` and `exit` hand back `detached`;
 * `failed` is never stored: it names an importer the kernel refused (mmap on a static device).
 */
export const ATTACHMENT_STATES = ['attached', 'revoked', 'pinned', 'detached', 'failed'] as const;
export type AttachmentState = (typeof ATTACHMENT_STATES)[number];

/**
 * State of a live buffer: `active` while its owner context is current; after the owner drops,
 * `pinned` if something still holds the old owner through it, else `revoked`.
 * A released buffer is simply gone.
 */
export const BUFFER_STATES = ['active', 'pinned', 'revoked'] as const;
export type BufferState = (typeof BUFFER_STATES)[number];

/** What holds a pin: an importer kind, or a bare dma-buf fd (static exporters only). */
export const PIN_KINDS = ['fd', ...IMPORTER_KINDS] as const;
export type PinKind = (typeof PIN_KINDS)[number];

/** Opaque label the node agent puts on a process (the pod it belongs to); null = hidden holder. */
export interface ProcessLabel {
  readonly namespace: string;
  readonly name: string;
}

export interface KernelOptions {
  /** Clock in milliseconds; recorded as `since` on fds, attachments, buffers and owners. */
  readonly now?: () => number;
  /** Pid allocator; by default the kernel counts up from 100 and persists the counter. */
  readonly allocatePid?: () => number;
}

export interface DeviceSpec {
  readonly name: string;
  readonly memoryBytes: number;
  /** Defaults to `static`, the seed device (habanalabs). */
  readonly profile?: ExporterProfile;
}

export interface DeviceInfo {
  readonly name: string;
  readonly memoryBytes: number;
  readonly profile: ExporterProfile;
  readonly owner: string | null;
  readonly epoch: number;
  /** When the current owner acquired the device, or when it was last dropped. */
  readonly since: number;
}

export interface SpawnSpec {
  readonly comm: string;
  readonly label?: ProcessLabel | null;
  /** Explicit pid (fault injection, replay); otherwise the allocator picks one. */
  readonly pid?: number;
}

export type FdInfo =
  | {
      readonly fd: number;
      readonly kind: 'device';
      readonly device: string;
      readonly owner: string;
      readonly epoch: number;
      /** The owner context it was opened under is gone: the fd no longer reaches the device. */
      readonly revoked: boolean;
      readonly since: number;
    }
  | {
      readonly fd: number;
      readonly kind: 'dmabuf';
      readonly ino: number;
      readonly since: number;
    };

export interface ProcessInfo {
  readonly pid: number;
  readonly comm: string;
  readonly label: ProcessLabel | null;
  readonly fds: readonly FdInfo[];
  readonly attachments: readonly number[];
}

export interface AttachmentInfo {
  readonly id: number;
  readonly ino: number;
  readonly buffer: string | null;
  readonly device: string;
  readonly name: string;
  readonly kind: ImporterKind;
  readonly pid: number;
  readonly state: AttachmentState;
  readonly since: number;
}

export interface FdHolder {
  readonly pid: number;
  readonly fd: number;
  readonly since: number;
}

export interface BufferInfo {
  readonly ino: number;
  readonly name: string | null;
  readonly device: string;
  readonly offset: number;
  readonly size: number;
  /** Owner context the buffer was exported under. */
  readonly owner: string;
  readonly epoch: number;
  readonly exporterPid: number;
  readonly state: BufferState;
  readonly since: number;
  readonly fds: readonly FdHolder[];
  readonly attachments: readonly AttachmentInfo[];
}

/** One reference that keeps a dropped owner's context alive and so blocks the next acquire. */
export interface Pin {
  readonly device: string;
  /** Owner context the pinned buffer belongs to. */
  readonly owner: string;
  readonly epoch: number;
  readonly ino: number;
  readonly buffer: string | null;
  readonly kind: PinKind;
  /** Importer name for attachment pins, null for fd pins. */
  readonly attachment: string | null;
  readonly attachmentId: number | null;
  /** Fd number for fd pins, null for attachment pins. */
  readonly fd: number | null;
  readonly pid: number;
  readonly comm: string;
  readonly holder: ProcessLabel | null;
  readonly since: number;
}

export interface RevokedAttachment {
  readonly id: number;
  readonly ino: number;
  readonly buffer: string | null;
  readonly name: string;
  readonly kind: ImporterKind;
  readonly pid: number;
}

export interface DropReport {
  readonly device: string;
  /** The owner that was dropped, or null when the device was already free. */
  readonly previousOwner: string | null;
  readonly previousEpoch: number;
  readonly epoch: number;
  /** Device fds whose owner context was torn down by this drop (they lost device access). */
  readonly revokedFds: readonly { readonly pid: number; readonly fd: number }[];
  /** Importers the exporter took back (move_notify / unmap_mapping_range / revocable umem). */
  readonly revoked: readonly RevokedAttachment[];
  /** What still holds an old owner's context: the blocking set. */
  readonly pins: readonly Pin[];
}

export interface AcquireResult {
  readonly device: string;
  readonly owner: string;
  readonly epoch: number;
  /** False when the owner already held the device at this epoch (idempotent repeat). */
  readonly changed: boolean;
}

export interface ExportSpec {
  readonly offset: number;
  readonly size: number;
  readonly name?: string | null;
}

export interface ExportResult {
  readonly fd: number;
  readonly ino: number;
}

export interface CloseResult {
  /** Inode of the buffer this close released (last reference), else null. */
  readonly released: number | null;
}

export interface ExitReport {
  readonly pid: number;
  readonly closedFds: readonly number[];
  readonly detached: readonly AttachmentInfo[];
  /** Buffers whose last reference went with this process. */
  readonly released: readonly number[];
}

export interface DetachResult {
  readonly attachment: AttachmentInfo;
  readonly released: number | null;
}
