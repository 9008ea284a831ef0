// The kernel's persisted form: plain, versioned JSON a node agent writes to disk and reads back
// after a restart. Parsing checks every reference, so a corrupt file fails loudly, not later.

import { SnapshotError } from './errors.ts';
import { pinsOnDrop } from './profiles.ts';
import {
  EXPORTER_PROFILES,
  IMPORTER_KINDS,
  type ExporterProfile,
  type ImporterKind,
  type ProcessLabel,
} from './types.ts';

export const SNAPSHOT_VERSION = 1;

/** Attachment states the kernel stores (the others only appear in results). */
export const STORED_ATTACHMENT_STATES = ['attached', 'revoked', 'pinned'] as const;
export type StoredAttachmentState = (typeof STORED_ATTACHMENT_STATES)[number];

export interface DeviceSnapshot {
  name: string;
  memoryBytes: number;
  profile: ExporterProfile;
  owner: string | null;
  epoch: number;
  /** Highest epoch an owner ever held: an epoch names at most one owner. */
  heldEpoch: number;
  since: number;
}

/** Device fds are stored by value: fds that shared one open file compare equal after restore. */
export type FdSnapshot =
  | { fd: number; since: number; kind: 'device'; device: string; owner: string; epoch: number }
  | { fd: number; since: number; kind: 'dmabuf'; ino: number };

export interface ProcessSnapshot {
  pid: number;
  comm: string;
  label: ProcessLabel | null;
  fds: FdSnapshot[];
  /** Fd numbers closed and not reused since, so a second close is told apart from a bad fd. */
  closedFds: number[];
}

export interface BufferSnapshot {
  ino: number;
  name: string | null;
  device: string;
  offset: number;
  size: number;
  owner: string;
  epoch: number;
  exporterPid: number;
  since: number;
}

export interface AttachmentSnapshot {
  id: number;
  ino: number;
  name: string;
  kind: ImporterKind;
  pid: number;
  state: StoredAttachmentState;
  since: number;
}

/** Canonical order: devices by name, processes by pid, fds by number, buffers by ino, attachments by id. */
export interface KernelSnapshot {
  version: typeof SNAPSHOT_VERSION;
  nextPid: number;
  nextIno: number;
  nextAttachmentId: number;
  devices: DeviceSnapshot[];
  processes: ProcessSnapshot[];
  buffers: BufferSnapshot[];
  attachments: AttachmentSnapshot[];
}

type Obj = Record<string, unknown>;

function fail(path: string, what: string): never {
  throw new SnapshotError(`kernel snapshot is invalid at ${path}: ${what}`);
}

function obj(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'expected an object');
  return v as Obj;
}

function arr(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) fail(path, 'expected an array');
  return v;
}

function int(v: unknown, path: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    fail(path, `expected an integer >= ${min}`);
  }
  return v;
}

function num(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(path, 'expected a finite number');
  return v;
}

function str(v: unknown, path: string): string {
  if (typeof v !== 'string' || v === '') fail(path, 'expected a non-empty string');
  return v;
}

function strOrNull(v: unknown, path: string): string | null {
  return v === null ? null : str(v, path);
}

function oneOf<T extends string>(v: unknown, set: readonly T[], path: string): T {
  if (!set.includes(v as T)) fail(path, `expected one of ${set.join(', ')}`);
  return v as T;
}

function label(v: unknown, path: string): ProcessLabel | null {
  if (v === null) return null;
  const o = obj(v, path);
  return { namespace: str(o.namespace, `${path}.namespace`), name: str(o.name, `${path}.name`) };
}

/**
 * Check an untrusted value (a parsed file) against the snapshot shape and its references.
 * Returns a fresh, typed copy; throws SnapshotError naming the first bad path.
 */
export function parseSnapshot(input: unknown): KernelSnapshot {
  const root = obj(input, '$');
  if (root.version !== SNAPSHOT_VERSION) {
    fail('$.version', `expected ${SNAPSHOT_VERSION}, got ${JSON.stringify(root.version)}`);
  }
  const devices = arr(root.devices, '$.devices').map((v, i): DeviceSnapshot => {
    const p = `$.devices[${i}]`;
    const d = obj(v, p);
    return {
      name: str(d.name, `${p}.name`),
      memoryBytes: int(d.memoryBytes, `${p}.memoryBytes`, 1),
      profile: oneOf(d.profile, EXPORTER_PROFILES, `${p}.profile`),
      owner: strOrNull(d.owner, `${p}.owner`),
      epoch: int(d.epoch, `${p}.epoch`),
      heldEpoch: int(d.heldEpoch, `${p}.heldEpoch`),
      since: num(d.since, `${p}.since`),
    };
  });
  const processes = arr(root.processes, '$.processes').map((v, i): ProcessSnapshot => {
    const p = `$.processes[${i}]`;
    const o = obj(v, p);
    return {
      pid: int(o.pid, `${p}.pid`, 1),
      comm: str(o.comm, `${p}.comm`),
      label: label(o.label, `${p}.label`),
      fds: arr(o.fds, `${p}.fds`).map((fv, j): FdSnapshot => {
        const fp = `${p}.fds[${j}]`;
        const f = obj(fv, fp);
        const base = { fd: int(f.fd, `${fp}.fd`), since: num(f.since, `${fp}.since`) };
        const kind = oneOf(f.kind, ['device', 'dmabuf'] as const, `${fp}.kind`);
        return kind === 'device'
          ? {
              ...base,
              kind,
              device: str(f.device, `${fp}.device`),
              owner: str(f.owner, `${fp}.owner`),
              epoch: int(f.epoch, `${fp}.epoch`),
            }
          : { ...base, kind, ino: int(f.ino, `${fp}.ino`, 1) };
      }),
      closedFds: arr(o.closedFds, `${p}.closedFds`).map((c, j) => int(c, `${p}.closedFds[${j}]`)),
    };
  });
  const buffers = arr(root.buffers, '$.buffers').map((v, i): BufferSnapshot => {
    const p = `$.buffers[${i}]`;
    const b = obj(v, p);
    return {
      ino: int(b.ino, `${p}.ino`, 1),
      name: strOrNull(b.name, `${p}.name`),
      device: str(b.device, `${p}.device`),
      offset: int(b.offset, `${p}.offset`),
      size: int(b.size, `${p}.size`, 1),
      owner: str(b.owner, `${p}.owner`),
      epoch: int(b.epoch, `${p}.epoch`),
      exporterPid: int(b.exporterPid, `${p}.exporterPid`, 1),
      since: num(b.since, `${p}.since`),
    };
  });
  const attachments = arr(root.attachments, '$.attachments').map((v, i): AttachmentSnapshot => {
    const p = `$.attachments[${i}]`;
    const a = obj(v, p);
    return {
      id: int(a.id, `${p}.id`, 1),
      ino: int(a.ino, `${p}.ino`, 1),
      name: str(a.name, `${p}.name`),
      kind: oneOf(a.kind, IMPORTER_KINDS, `${p}.kind`),
      pid: int(a.pid, `${p}.pid`, 1),
      state: oneOf(a.state, STORED_ATTACHMENT_STATES, `${p}.state`),
      since: num(a.since, `${p}.since`),
    };
  });
  const snap: KernelSnapshot = {
    version: SNAPSHOT_VERSION,
    nextPid: int(root.nextPid, '$.nextPid', 1),
    nextIno: int(root.nextIno, '$.nextIno', 1),
    nextAttachmentId: int(root.nextAttachmentId, '$.nextAttachmentId', 1),
    devices,
    processes,
    buffers,
    attachments,
  };
  checkReferences(snap);
  return snap;
}

function unique<T>(items: readonly T[], key: (t: T) => string | number, path: string): void {
  const seen = new Set<string | number>();
  for (const item of items) {
    const k = key(item);
    if (seen.has(k)) fail(path, `duplicate ${String(k)}`);
    seen.add(k);
  }
}

// Every reference must resolve, and every buffer must still be referenced: the kernel
// releases a buffer with its last fd or attachment, so an orphan means a corrupt file.
function checkReferences(s: KernelSnapshot): void {
  unique(s.devices, (d) => d.name, '$.devices');
  unique(s.processes, (p) => p.pid, '$.processes');
  unique(s.buffers, (b) => b.ino, '$.buffers');
  unique(s.attachments, (a) => a.id, '$.attachments');
  const devices = new Map(s.devices.map((d) => [d.name, d]));
  const buffers = new Map(s.buffers.map((b) => [b.ino, b]));
  const pids = new Set(s.processes.map((p) => p.pid));
  const referenced = new Set<number>();
  for (const d of s.devices) {
    if (d.heldEpoch > d.epoch) fail(`$.devices[${d.name}]`, 'heldEpoch is above epoch');
    if (d.owner !== null && d.heldEpoch !== d.epoch) {
      fail(`$.devices[${d.name}]`, 'an owned device must hold its own epoch');
    }
  }
  for (const p of s.processes) {
    unique(p.fds, (f) => f.fd, `$.processes[pid ${p.pid}].fds`);
    const open = new Set(p.fds.map((f) => f.fd));
    for (const c of p.closedFds) {
      if (open.has(c)) fail(`$.processes[pid ${p.pid}].closedFds`, `fd ${c} is also open`);
    }
    for (const f of p.fds) {
      if (f.kind === 'device') {
        const d = devices.get(f.device);
        if (!d) fail(`$.processes[pid ${p.pid}].fds[${f.fd}]`, `unknown device ${f.device}`);
        if (f.epoch > d.heldEpoch) {
          fail(`$.processes[pid ${p.pid}].fds[${f.fd}]`, 'epoch never held on its device');
        }
      } else {
        if (!buffers.has(f.ino)) {
          fail(`$.processes[pid ${p.pid}].fds[${f.fd}]`, `unknown buffer ino ${f.ino}`);
        }
        referenced.add(f.ino);
      }
    }
  }
  for (const b of s.buffers) {
    const d = devices.get(b.device);
    if (!d) fail(`$.buffers[ino ${b.ino}]`, `unknown device ${b.device}`);
    if (b.offset + b.size > d.memoryBytes) fail(`$.buffers[ino ${b.ino}]`, 'beyond device memory');
    if (b.epoch > d.heldEpoch) fail(`$.buffers[ino ${b.ino}]`, 'epoch never held on its device');
    if (b.ino >= s.nextIno) fail('$.nextIno', `not above ino ${b.ino}`);
  }
  const names = new Set<string>();
  for (const a of s.attachments) {
    const b = buffers.get(a.ino);
    if (!b) fail(`$.attachments[id ${a.id}]`, `unknown buffer ino ${a.ino}`);
    if (!pids.has(a.pid)) fail(`$.attachments[id ${a.id}]`, `unknown pid ${a.pid}`);
    if (a.id >= s.nextAttachmentId) fail('$.nextAttachmentId', `not above id ${a.id}`);
    const d = devices.get(b.device);
    if (!d) fail(`$.attachments[id ${a.id}]`, `unknown device ${b.device}`);
    const current = d.owner === b.owner && d.epoch === b.epoch;
    const expected = current ? 'attached' : pinsOnDrop(d.profile, a.kind) ? 'pinned' : 'revoked';
    if (a.state !== expected) {
      fail(`$.attachments[id ${a.id}]`, `state ${a.state} should be ${expected} on its device`);
    }
    const key = `${a.ino}/${a.name}`;
    if (names.has(key)) fail(`$.attachments[id ${a.id}]`, `duplicate name ${a.name} on its buffer`);
    names.add(key);
    referenced.add(a.ino);
  }
  for (const b of s.buffers) {
    if (!referenced.has(b.ino)) fail(`$.buffers[ino ${b.ino}]`, 'no fd or attachment holds it');
  }
}
