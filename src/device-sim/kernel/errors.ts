// Typed failures of the simulated kernel. Each names what was refused and why, in words an
// operator can act on; a failing call never changes the model, so callers may simply retry.

import type { Pin, ProcessLabel } from './types.ts';

export const KERNEL_ERROR_CODES = [
  'invalid-argument',
  'unknown-device',
  'device-exists',
  'unknown-pid',
  'pid-in-use',
  'unknown-fd',
  'double-close',
  'wrong-fd-kind',
  'export-out-of-range',
  'not-owner',
  'buffer-revoked',
  'mmap-unsupported',
  'attachment-exists',
  'unknown-attachment',
  'not-holder',
  'stale-epoch',
  'owner-still-current',
  'pinned',
  'bad-snapshot',
] as const;
export type KernelErrorCode = (typeof KERNEL_ERROR_CODES)[number];

/** Base of every refusal; `code` is stable for programs, `message` is for people. */
export abstract class KernelError extends Error {
  abstract readonly code: KernelErrorCode;
}

export function describeLabel(label: ProcessLabel | null, comm: string): string {
  return label ? `${label.namespace}/${label.name}` : `comm ${comm}, no pod`;
}

export function describeBuffer(ino: number, name: string | null): string {
  return name === null ? `buffer ino ${ino}` : `buffer ${name} (ino ${ino})`;
}

/** One pin as a clause: "buffer weights (ino 12) is pinned by rdma-mr attachment nic0 held by pid 4711 (team-io/loader-0)". */
export function describePin(pin: Pin): string {
  const by =
    pin.kind === 'fd' ? `fd ${pin.fd ?? '?'}` : `${pin.kind} attachment ${pin.attachment ?? '?'}`;
  return `${describeBuffer(pin.ino, pin.buffer)} is pinned by ${by} held by pid ${pin.pid} (${describeLabel(pin.holder, pin.comm)})`;
}

export class InvalidArgumentError extends KernelError {
  readonly code = 'invalid-argument';
}

export class UnknownDeviceError extends KernelError {
  readonly code = 'unknown-device';
  readonly device: string;
  constructor(device: string) {
    super(`no device named ${device}`);
    this.device = device;
  }
}

export class DeviceExistsError extends KernelError {
  readonly code = 'device-exists';
  readonly device: string;
  constructor(device: string) {
    super(`device ${device} already exists`);
    this.device = device;
  }
}

export class UnknownProcessError extends KernelError {
  readonly code = 'unknown-pid';
  readonly pid: number;
  constructor(pid: number) {
    super(`no process with pid ${pid} (never spawned, or already exited)`);
    this.pid = pid;
  }
}

export class PidInUseError extends KernelError {
  readonly code = 'pid-in-use';
  readonly pid: number;
  constructor(pid: number) {
    super(`pid ${pid} is already in use by a live process`);
    this.pid = pid;
  }
}

export class UnknownFdError extends KernelError {
  readonly code = 'unknown-fd';
  readonly pid: number;
  readonly fd: number;
  constructor(pid: number, fd: number) {
    super(`pid ${pid} has no open fd ${fd}`);
    this.pid = pid;
    this.fd = fd;
  }
}

export class DoubleCloseError extends KernelError {
  readonly code = 'double-close';
  readonly pid: number;
  readonly fd: number;
  constructor(pid: number, fd: number) {
    super(`pid ${pid} closed fd ${fd} twice: it was already closed and has not been reused`);
    this.pid = pid;
    this.fd = fd;
  }
}

export class WrongFdKindError extends KernelError {
  readonly code = 'wrong-fd-kind';
  readonly pid: number;
  readonly fd: number;
  readonly expected: 'device' | 'dmabuf';
  constructor(pid: number, fd: number, expected: 'device' | 'dmabuf') {
    super(`fd ${fd} of pid ${pid} is not a ${expected === 'device' ? 'device' : 'dma-buf'} fd`);
    this.pid = pid;
    this.fd = fd;
    this.expected = expected;
  }
}

export class ExportRangeError extends KernelError {
  readonly code = 'export-out-of-range';
  readonly device: string;
  readonly offset: number;
  readonly size: number;
  readonly memoryBytes: number;
  constructor(device: string, offset: number, size: number, memoryBytes: number) {
    super(
      `cannot export ${size} bytes at offset ${offset} from device ${device}: ` +
        `the range ends at ${offset + size}, beyond its ${memoryBytes} bytes of memory`,
    );
    this.device = device;
    this.offset = offset;
    this.size = size;
    this.memoryBytes = memoryBytes;
  }
}

export class NotOwnerError extends KernelError {
  readonly code = 'not-owner';
  readonly device: string;
  readonly owner: string | null;
  readonly epoch: number;
  constructor(device: string, owner: string | null, epoch: number, detail: string) {
    const current =
      owner === null ? `has no owner (epoch ${epoch})` : `is owned by ${owner} at epoch ${epoch}`;
    super(`device ${device} ${current}: ${detail}`);
    this.device = device;
    this.owner = owner;
    this.epoch = epoch;
  }
}

export class BufferRevokedError extends KernelError {
  readonly code = 'buffer-revoked';
  readonly ino: number;
  readonly device: string;
  constructor(ino: number, name: string | null, device: string, owner: string, epoch: number) {
    super(
      `${describeBuffer(ino, name)} cannot take new importers: its owner ${owner} ` +
        `(epoch ${epoch}) no longer owns device ${device}`,
    );
    this.ino = ino;
    this.device = device;
  }
}

export class MmapUnsupportedError extends KernelError {
  readonly code = 'mmap-unsupported';
  readonly device: string;
  readonly ino: number;
  constructor(device: string, ino: number, name: string | null) {
    super(
      `cannot mmap ${describeBuffer(ino, name)}: device ${device} has a static exporter ` +
        `with no CPU mapping`,
    );
    this.device = device;
    this.ino = ino;
  }
}

export class AttachmentExistsError extends KernelError {
  readonly code = 'attachment-exists';
  readonly ino: number;
  readonly attachment: string;
  constructor(ino: number, bufferName: string | null, attachment: string) {
    super(`${describeBuffer(ino, bufferName)} already has an attachment named ${attachment}`);
    this.ino = ino;
    this.attachment = attachment;
  }
}

export class UnknownAttachmentError extends KernelError {
  readonly code = 'unknown-attachment';
  readonly id: number;
  constructor(id: number) {
    super(`no attachment with id ${id} (never made, or already detached)`);
    this.id = id;
  }
}

export class NotHolderError extends KernelError {
  readonly code = 'not-holder';
  readonly id: number;
  readonly pid: number;
  readonly holderPid: number;
  constructor(id: number, name: string, pid: number, holderPid: number) {
    super(`attachment ${name} (id ${id}) belongs to pid ${holderPid}, not pid ${pid}`);
    this.id = id;
    this.pid = pid;
    this.holderPid = holderPid;
  }
}

export class StaleEpochError extends KernelError {
  readonly code = 'stale-epoch';
  readonly device: string;
  readonly epoch: number;
  readonly currentEpoch: number;
  constructor(device: string, epoch: number, currentEpoch: number, action: string) {
    super(
      `device ${device} cannot ${action} at epoch ${epoch}: it is at epoch ${currentEpoch} ` +
        `and never accepts a lower or already used epoch`,
    );
    this.device = device;
    this.epoch = epoch;
    this.currentEpoch = currentEpoch;
  }
}

export class OwnerStillCurrentError extends KernelError {
  readonly code = 'owner-still-current';
  readonly device: string;
  readonly owner: string;
  readonly epoch: number;
  readonly currentOwner: string;
  readonly currentEpoch: number;
  constructor(
    device: string,
    owner: string,
    epoch: number,
    currentOwner: string,
    currentEpoch: number,
  ) {
    super(
      `device ${device} cannot be acquired by ${owner} at epoch ${epoch}: it is still owned by ` +
        `${currentOwner} at epoch ${currentEpoch}; drop that owner first`,
    );
    this.device = device;
    this.owner = owner;
    this.epoch = epoch;
    this.currentOwner = currentOwner;
    this.currentEpoch = currentEpoch;
  }
}

export class DevicePinnedError extends KernelError {
  readonly code = 'pinned';
  readonly device: string;
  readonly epoch: number;
  /** The blocking set: every pin, with holder pid, label and since. */
  readonly pins: readonly Pin[];
  constructor(device: string, epoch: number, pins: readonly Pin[]) {
    super(
      `device ${device} cannot be acquired at epoch ${epoch}: ${pins.map(describePin).join('; ')}`,
    );
    this.device = device;
    this.epoch = epoch;
    this.pins = pins;
  }
}

export class SnapshotError extends KernelError {
  readonly code = 'bad-snapshot';
}

for (const ctor of [
  InvalidArgumentError,
  UnknownDeviceError,
  DeviceExistsError,
  UnknownProcessError,
  PidInUseError,
  UnknownFdError,
  DoubleCloseError,
  WrongFdKindError,
  ExportRangeError,
  NotOwnerError,
  BufferRevokedError,
  MmapUnsupportedError,
  AttachmentExistsError,
  UnknownAttachmentError,
  NotHolderError,
  StaleEpochError,
  OwnerStillCurrentError,
  DevicePinnedError,
  SnapshotError,
]) {
  // Stack traces and util.inspect print the class name instead of a bare "Error".
  Object.defineProperty(ctor.prototype, 'name', { value: ctor.name, configurable: true });
}
