// The simulated kernel: devices with an exclusive owner and a fencing epoch, processes with fd
// tables, dma-bufs and their importers. Pure and synchronous; clock and pids are injected.

import {
  AttachmentExistsError,
  BufferRevokedError,
  DeviceExistsError,
  DevicePinnedError,
  DoubleCloseError,
  ExportRangeError,
  InvalidArgumentError,
  MmapUnsupportedError,
  NotHolderError,
  NotOwnerError,
  OwnerStillCurrentError,
  PidInUseError,
  StaleEpochError,
  UnknownAttachmentError,
  UnknownDeviceError,
  UnknownFdError,
  UnknownProcessError,
  WrongFdKindError,
  describeLabel,
} from './errors.ts';
import { PROFILES, pinsOnDrop } from './profiles.ts';
import {
  SNAPSHOT_VERSION,
  parseSnapshot,
  type FdSnapshot,
  type KernelSnapshot,
  type StoredAttachmentState,
} from './snapshot.ts';
import {
  EXPORTER_PROFILES,
  IMPORTER_KINDS,
  type AcquireResult,
  type AttachmentInfo,
  type BufferInfo,
  type CloseResult,
  type DetachResult,
  type DeviceInfo,
  type DeviceSpec,
  type DropReport,
  type ExitReport,
  type ExportResult,
  type ExportSpec,
  type ExporterProfile,
  type FdInfo,
  type ImporterKind,
  type KernelOptions,
  type Pin,
  type ProcessInfo,
  type ProcessLabel,
  type RevokedAttachment,
  type SpawnSpec,
} from './types.ts';

// Internal records are mutable and cross-linked so every transition is a few Map operations;
// callers only ever see the *Info views built from them.

interface DeviceRec {
  readonly name: string;
  readonly memoryBytes: number;
  readonly profile: ExporterProfile;
  owner: string | null;
  epoch: number;
  heldEpoch: number;
  since: number;
  readonly buffers: Set<BufferRec>;
  /** Every fd open on this device, whatever its context: drop reports the ones it revokes. */
  readonly fds: Set<FdEntry>;
}

/** An open device file: bound to the owner context current when it was opened. */
interface DeviceFile {
  readonly kind: 'device';
  readonly device: DeviceRec;
  readonly owner: string;
  readonly epoch: number;
}

interface FdEntry {
  readonly pid: number;
  readonly fd: number;
  readonly since: number;
  readonly file: DeviceFile | BufferRec;
}

interface ProcessRec {
  readonly pid: number;
  readonly comm: string;
  readonly label: ProcessLabel | null;
  readonly fds: Map<number, FdEntry>;
  readonly closed: Set<number>;
  readonly attachments: Map<number, AttachmentRec>;
}

/** A dma-buf is its own open file (dma_buf->file): every fd to it shares this one record. */
interface BufferRec {
  readonly kind: 'dmabuf';
  readonly ino: number;
  readonly name: string | null;
  readonly device: DeviceRec;
  readonly offset: number;
  readonly size: number;
  readonly owner: string;
  readonly epoch: number;
  readonly exporterPid: number;
  readonly since: number;
  readonly fds: Set<FdEntry>;
  readonly attachments: Map<number, AttachmentRec>;
}

interface AttachmentRec {
  readonly id: number;
  readonly buffer: BufferRec;
  readonly name: string;
  readonly kind: ImporterKind;
  readonly pid: number;
  state: StoredAttachmentState;
  readonly since: number;
}

/** Fd numbers 0-2 are stdio in every process; the kernel hands out the lowest free from 3. */
const FIRST_FD = 3;
const FIRST_PID = 100;

function invalid(what: string): never {
  throw new InvalidArgumentError(what);
}

function checkName(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') invalid(`${what} must be a non-empty string`);
  return v;
}

function checkInt(v: unknown, what: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    invalid(`${what} must be an integer >= ${min}, got ${String(v)}`);
  }
  return v;
}

function checkLabel(v: unknown): ProcessLabel | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object') invalid('process label must be {namespace, name} or null');
  const { namespace, name } = v as Record<string, unknown>;
  return {
    namespace: checkName(namespace, 'label namespace'),
    name: checkName(name, 'label name'),
  };
}

function isCurrent(buf: BufferRec): boolean {
  return buf.device.owner === buf.owner && buf.device.epoch === buf.epoch;
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function byPidFd(a: { pid: number; fd: number }, b: { pid: number; fd: number }): number {
  return a.pid - b.pid || a.fd - b.fd;
}

export class Kernel {
  private readonly now: () => number;
  private readonly allocatePid: (() => number) | undefined;
  private readonly devicesByName = new Map<string, DeviceRec>();
  private readonly procs = new Map<number, ProcessRec>();
  private readonly buffersByIno = new Map<number, BufferRec>();
  private readonly attachmentsById = new Map<number, AttachmentRec>();
  private nextPid = FIRST_PID;
  private nextIno = 1;
  private nextAttachmentId = 1;

  /** An empty kernel: no devices, no processes. Without an injected clock it reads Date.now,
   *  which is fine for an agent but not for a test or a demo that must replay exactly. */
  constructor(options: KernelOptions = {}) {
    this.now = options.now ?? Date.now;
    this.allocatePid = options.allocatePid;
  }

  // ---- devices and ownership ----------------------------------------------------------------

  /** Register a device, free at epoch 0. Names are unique for the kernel's lifetime;
   *  the profile is fixed at creation (it is a property of the driver). */
  addDevice(spec: DeviceSpec): DeviceInfo {
    const name = checkName(spec.name, 'device name');
    const memoryBytes = checkInt(spec.memoryBytes, 'memoryBytes', 1);
    const profile = spec.profile ?? 'static';
    if (!EXPORTER_PROFILES.includes(profile)) {
      invalid(`exporter profile must be one of ${EXPORTER_PROFILES.join(', ')}`);
    }
    if (this.devicesByName.has(name)) throw new DeviceExistsError(name);
    const dev: DeviceRec = {
      name,
      memoryBytes,
      profile,
      owner: null,
      epoch: 0,
      heldEpoch: 0,
      since: this.now(),
      buffers: new Set(),
      fds: new Set(),
    };
    this.devicesByName.set(name, dev);
    return deviceInfo(dev);
  }

  /** Make `owner` the device's owner at `epoch`. The device must be free (drop first), the epoch
   *  new (>= the device's, above any epoch an owner held) and no pin may survive; repeats are no-ops. */
  acquire(device: string, owner: string, epoch: number): AcquireResult {
    const dev = this.deviceRec(device);
    checkName(owner, 'owner');
    checkInt(epoch, 'epoch', 0);
    if (dev.owner === owner && dev.epoch === epoch) {
      return { device: dev.name, owner, epoch, changed: false };
    }
    if (epoch < dev.epoch || epoch <= dev.heldEpoch) {
      throw new StaleEpochError(dev.name, epoch, dev.epoch, 'be acquired');
    }
    if (dev.owner !== null) {
      throw new OwnerStillCurrentError(dev.name, owner, epoch, dev.owner, dev.epoch);
    }
    // Every surviving context is older than `epoch`, so any pin at all blocks the grant.
    const pins = this.pinsOf(dev);
    if (pins.length > 0) throw new DevicePinnedError(dev.name, epoch, pins);
    dev.owner = owner;
    dev.epoch = epoch;
    dev.heldEpoch = epoch;
    dev.since = this.now();
    return { device: dev.name, owner, epoch, changed: true };
  }

  /** Tear down the current owner's context and revoke what the profile can; report the rest as pins.
   *  Idempotent on a free device; `epoch` (never lower than the device's) records a "no owner" assignment. */
  drop(device: string, options: { readonly epoch?: number } = {}): DropReport {
    const dev = this.deviceRec(device);
    const target = options.epoch === undefined ? dev.epoch : checkInt(options.epoch, 'epoch', 0);
    if (target < dev.epoch) throw new StaleEpochError(dev.name, target, dev.epoch, 'be dropped');
    const previousOwner = dev.owner;
    const previousEpoch = dev.epoch;
    const revoked: RevokedAttachment[] = [];
    const revokedFds: { pid: number; fd: number }[] = [];
    if (previousOwner !== null) {
      for (const entry of dev.fds) {
        const file = entry.file as DeviceFile;
        if (file.owner === previousOwner && file.epoch === previousEpoch) {
          revokedFds.push({ pid: entry.pid, fd: entry.fd });
        }
      }
      for (const buf of dev.buffers) {
        if (!isCurrent(buf)) continue;
        for (const att of buf.attachments.values()) {
          if (pinsOnDrop(dev.profile, att.kind)) {
            att.state = 'pinned';
          } else {
            att.state = 'revoked';
            revoked.push({
              id: att.id,
              ino: buf.ino,
              buffer: buf.name,
              name: att.name,
              kind: att.kind,
              pid: att.pid,
            });
          }
        }
      }
      dev.owner = null;
      dev.since = this.now();
    }
    dev.epoch = target;
    revokedFds.sort(byPidFd);
    revoked.sort((a, b) => a.id - b.id);
    return {
      device: dev.name,
      previousOwner,
      previousEpoch,
      epoch: dev.epoch,
      revokedFds,
      revoked,
      pins: this.pinsOf(dev),
    };
  }

  /** What keeps an old owner's context alive on the device right now (the blocking set).
   *  Empty while the device is owned and nothing older survives; sorted by ino, then holder. */
  pins(device: string): Pin[] {
    return this.pinsOf(this.deviceRec(device));
  }

  // ---- processes and fds --------------------------------------------------------------------

  /** Create a process with an empty fd table. The pid is explicit, from the injected allocator, or
   *  the kernel's own counter; it must not belong to a live process. */
  spawn(spec: SpawnSpec): ProcessInfo {
    const comm = checkName(spec.comm, 'comm');
    const label = checkLabel(spec.label);
    let pid: number;
    let nextPid = this.nextPid;
    if (spec.pid !== undefined) {
      pid = checkInt(spec.pid, 'pid', 1);
    } else if (this.allocatePid) {
      pid = checkInt(this.allocatePid(), 'allocated pid', 1);
    } else {
      while (this.procs.has(nextPid)) nextPid++;
      pid = nextPid++;
    }
    if (this.procs.has(pid)) throw new PidInUseError(pid);
    this.nextPid = nextPid;
    const proc: ProcessRec = {
      pid,
      comm,
      label,
      fds: new Map(),
      closed: new Set(),
      attachments: new Map(),
    };
    this.procs.set(pid, proc);
    return processInfo(proc);
  }

  /** Open the device on behalf of `owner`, which must be its current owner; returns the new fd.
   *  The fd stays bound to that owner context: once the owner drops it no longer reaches the device. */
  openDevice(pid: number, device: string, owner: string): number {
    const proc = this.procRec(pid);
    const dev = this.deviceRec(device);
    checkName(owner, 'owner');
    if (dev.owner !== owner) {
      throw new NotOwnerError(
        dev.name,
        dev.owner,
        dev.epoch,
        `pid ${pid} (${describeLabel(proc.label, proc.comm)}) cannot open it for ${owner}`,
      );
    }
    const file: DeviceFile = { kind: 'device', device: dev, owner, epoch: dev.epoch };
    return this.install(proc, file).fd;
  }

  /** Give `toPid` a new fd to the same open file as `fromPid`'s `fd` (SCM_RIGHTS; `toPid` may equal
   *  `fromPid`, like dup). A passed dma-buf fd is a reference like any other, pins included. */
  passFd(fromPid: number, fd: number, toPid: number): number {
    const from = this.procRec(fromPid);
    const to = this.procRec(toPid);
    const entry = this.fdEntry(from, fd);
    return this.install(to, entry.file).fd;
  }

  /** Close one fd of a live process. Closing it again before the number is reused is a
   *  DoubleCloseError; the buffer goes when its last fd and attachment do. */
  close(pid: number, fd: number): CloseResult {
    const proc = this.procRec(pid);
    const entry = proc.fds.get(fd);
    if (!entry) {
      throw proc.closed.has(fd) ? new DoubleCloseError(pid, fd) : new UnknownFdError(pid, fd);
    }
    this.uninstall(proc, entry);
    proc.closed.add(fd);
    return { released: entry.file.kind === 'dmabuf' ? this.releaseIfUnused(entry.file) : null };
  }

  /** End a process: close exactly its fds and detach exactly its attachments (as the kernel does
   *  for MRs on exit). Buffers left with no reference are released. */
  exit(pid: number): ExitReport {
    const proc = this.procRec(pid);
    const closedFds: number[] = [];
    const detached: AttachmentInfo[] = [];
    const touched = new Set<BufferRec>();
    for (const entry of proc.fds.values()) {
      closedFds.push(entry.fd);
      this.uninstall(proc, entry);
      if (entry.file.kind === 'dmabuf') touched.add(entry.file);
    }
    for (const att of proc.attachments.values()) {
      att.buffer.attachments.delete(att.id);
      this.attachmentsById.delete(att.id);
      detached.push({ ...attachmentInfo(att), state: 'detached' });
      touched.add(att.buffer);
    }
    this.procs.delete(pid);
    const released: number[] = [];
    for (const buf of touched) {
      const ino = this.releaseIfUnused(buf);
      if (ino !== null) released.push(ino);
    }
    closedFds.sort((a, b) => a - b);
    detached.sort((a, b) => a.id - b.id);
    released.sort((a, b) => a - b);
    return { pid, closedFds, detached, released };
  }

  // ---- dma-bufs -----------------------------------------------------------------------------

  /** Export [offset, offset+size) of device memory through a device fd of the current owner's
   *  context; the exporting process gets the buffer's first fd, and the buffer a fresh inode. */
  exportBuffer(pid: number, fd: number, spec: ExportSpec): ExportResult {
    const proc = this.procRec(pid);
    const entry = this.fdEntry(proc, fd);
    if (entry.file.kind !== 'device') throw new WrongFdKindError(pid, fd, 'device');
    const { device: dev, owner, epoch } = entry.file;
    if (dev.owner !== owner || dev.epoch !== epoch) {
      throw new NotOwnerError(
        dev.name,
        dev.owner,
        dev.epoch,
        `fd ${fd} of pid ${pid} was opened under ${owner} at epoch ${epoch} and no longer reaches it`,
      );
    }
    const offset = checkInt(spec.offset, 'offset', 0);
    const size = checkInt(spec.size, 'size', 1);
    const name =
      spec.name === undefined || spec.name === null ? null : checkName(spec.name, 'name');
    if (offset + size > dev.memoryBytes) {
      throw new ExportRangeError(dev.name, offset, size, dev.memoryBytes);
    }
    const ino = this.nextIno++;
    const buf: BufferRec = {
      kind: 'dmabuf',
      ino,
      name,
      device: dev,
      offset,
      size,
      owner,
      epoch,
      exporterPid: pid,
      since: this.now(),
      fds: new Set(),
      attachments: new Map(),
    };
    this.buffersByIno.set(ino, buf);
    dev.buffers.add(buf);
    return { fd: this.install(proc, buf).fd, ino };
  }

  /** Import the buffer behind `fd` as `kind`, named `name` (unique among the buffer's importers).
   *  The attachment belongs to `pid` and keeps the buffer alive until detached or `pid` exits. */
  attach(pid: number, fd: number, kind: ImporterKind, name: string): AttachmentInfo {
    const proc = this.procRec(pid);
    const entry = this.fdEntry(proc, fd);
    if (entry.file.kind !== 'dmabuf') throw new WrongFdKindError(pid, fd, 'dmabuf');
    if (!IMPORTER_KINDS.includes(kind)) {
      invalid(`importer kind must be one of ${IMPORTER_KINDS.join(', ')}`);
    }
    checkName(name, 'attachment name');
    const buf = entry.file;
    if (kind === 'mmap' && !PROFILES[buf.device.profile].mmap) {
      throw new MmapUnsupportedError(buf.device.name, buf.ino, buf.name);
    }
    if (!isCurrent(buf)) {
      throw new BufferRevokedError(buf.ino, buf.name, buf.device.name, buf.owner, buf.epoch);
    }
    for (const other of buf.attachments.values()) {
      if (other.name === name) throw new AttachmentExistsError(buf.ino, buf.name, name);
    }
    const att: AttachmentRec = {
      id: this.nextAttachmentId++,
      buffer: buf,
      name,
      kind,
      pid,
      state: 'attached',
      since: this.now(),
    };
    buf.attachments.set(att.id, att);
    proc.attachments.set(att.id, att);
    this.attachmentsById.set(att.id, att);
    return attachmentInfo(att);
  }

  /** Remove an attachment held by `pid`, in any state: deregistering an MR is how a pin ends
   *  without killing its holder. The buffer goes with its last fd and attachment. */
  detach(pid: number, id: number): DetachResult {
    const proc = this.procRec(pid);
    const att = this.attachmentsById.get(id);
    if (!att) throw new UnknownAttachmentError(id);
    if (att.pid !== pid) throw new NotHolderError(id, att.name, pid, att.pid);
    att.buffer.attachments.delete(id);
    proc.attachments.delete(id);
    this.attachmentsById.delete(id);
    return {
      attachment: { ...attachmentInfo(att), state: 'detached' },
      released: this.releaseIfUnused(att.buffer),
    };
  }

  // ---- queries ------------------------------------------------------------------------------

  // Queries never change the model and build fresh objects, so callers may keep or mutate them.

  /** The device's owner, epoch and profile, or undefined for a name never added.
   *  `owner` is what the device enforces: the agent publishes it as status.owner. */
  device(name: string): DeviceInfo | undefined {
    const dev = this.devicesByName.get(name);
    return dev && deviceInfo(dev);
  }

  /** Every device, by name (the same order before and after a restore).
   *  Devices are never removed, so the list only grows. */
  devices(): DeviceInfo[] {
    return [...this.devicesByName.values()].sort(byName).map(deviceInfo);
  }

  /** One live process with its fd table and attachment ids, or undefined once it exited.
   *  Device fds carry `revoked` when the owner context they were opened under is gone. */
  process(pid: number): ProcessInfo | undefined {
    const proc = this.procs.get(pid);
    return proc && processInfo(proc);
  }

  /** Every live process by pid, as /proc would list them.
   *  Exited processes are gone at once: the kernel keeps no zombies. */
  processes(): ProcessInfo[] {
    return [...this.procs.values()].sort((a, b) => a.pid - b.pid).map(processInfo);
  }

  /** One live buffer with its fd holders, attachments and state, or undefined once released.
   *  Undefined is how the agent learns a DmaBufExport is Released. */
  buffer(ino: number): BufferInfo | undefined {
    const buf = this.buffersByIno.get(ino);
    return buf && this.bufferInfo(buf);
  }

  /** Live buffers by inode, of one device or all (bufinfo in debugfs, in effect).
   *  Throws UnknownDeviceError for a device never added. */
  buffers(device?: string): BufferInfo[] {
    const source =
      device === undefined ? this.buffersByIno.values() : this.deviceRec(device).buffers.values();
    return [...source].sort((a, b) => a.ino - b.ino).map((b) => this.bufferInfo(b));
  }

  /** One attachment in its current state, or undefined once detached or its holder exited.
   *  The `detached` state only appears in what detach and exit return. */
  attachment(id: number): AttachmentInfo | undefined {
    const att = this.attachmentsById.get(id);
    return att && attachmentInfo(att);
  }

  // ---- persistence --------------------------------------------------------------------------

  /** Plain, versioned, canonical JSON of the whole model (JSON.stringify(kernel) uses it).
   *  Two kernels in the same state produce deep-equal snapshots. */
  toJSON(): KernelSnapshot {
    const processes = [...this.procs.values()].sort((a, b) => a.pid - b.pid);
    return {
      version: SNAPSHOT_VERSION,
      nextPid: this.nextPid,
      nextIno: this.nextIno,
      nextAttachmentId: this.nextAttachmentId,
      devices: [...this.devicesByName.values()].sort(byName).map((d) => ({
        name: d.name,
        memoryBytes: d.memoryBytes,
        profile: d.profile,
        owner: d.owner,
        epoch: d.epoch,
        heldEpoch: d.heldEpoch,
        since: d.since,
      })),
      processes: processes.map((p) => ({
        pid: p.pid,
        comm: p.comm,
        label: p.label && { namespace: p.label.namespace, name: p.label.name },
        fds: [...p.fds.values()].sort((a, b) => a.fd - b.fd).map(fdSnapshot),
        closedFds: [...p.closed].sort((a, b) => a - b),
      })),
      buffers: [...this.buffersByIno.values()]
        .sort((a, b) => a.ino - b.ino)
        .map((b) => ({
          ino: b.ino,
          name: b.name,
          device: b.device.name,
          offset: b.offset,
          size: b.size,
          owner: b.owner,
          epoch: b.epoch,
          exporterPid: b.exporterPid,
          since: b.since,
        })),
      attachments: [...this.attachmentsById.values()]
        .sort((a, b) => a.id - b.id)
        .map((a) => ({
          id: a.id,
          ino: a.buffer.ino,
          name: a.name,
          kind: a.kind,
          pid: a.pid,
          state: a.state,
          since: a.since,
        })),
    };
  }

  /** Rebuild a kernel from `toJSON()` output (object or JSON text), after checking every field
   *  and reference; throws SnapshotError on a corrupt or foreign-version snapshot. */
  static fromJSON(input: unknown, options: KernelOptions = {}): Kernel {
    const snap = parseSnapshot(typeof input === 'string' ? (JSON.parse(input) as unknown) : input);
    const k = new Kernel(options);
    k.nextPid = snap.nextPid;
    k.nextIno = snap.nextIno;
    k.nextAttachmentId = snap.nextAttachmentId;
    for (const d of snap.devices) {
      k.devicesByName.set(d.name, { ...d, buffers: new Set(), fds: new Set() });
    }
    for (const b of snap.buffers) {
      const dev = k.devicesByName.get(b.device) as DeviceRec;
      const buf: BufferRec = {
        ...b,
        kind: 'dmabuf',
        device: dev,
        fds: new Set(),
        attachments: new Map(),
      };
      k.buffersByIno.set(buf.ino, buf);
      dev.buffers.add(buf);
    }
    for (const p of snap.processes) {
      const proc: ProcessRec = {
        pid: p.pid,
        comm: p.comm,
        label: p.label,
        fds: new Map(),
        closed: new Set(p.closedFds),
        attachments: new Map(),
      };
      k.procs.set(p.pid, proc);
      for (const f of p.fds) {
        const file: DeviceFile | BufferRec =
          f.kind === 'device'
            ? {
                kind: 'device',
                device: k.devicesByName.get(f.device) as DeviceRec,
                owner: f.owner,
                epoch: f.epoch,
              }
            : (k.buffersByIno.get(f.ino) as BufferRec);
        k.link(proc, { pid: p.pid, fd: f.fd, since: f.since, file });
      }
    }
    for (const a of snap.attachments) {
      const buf = k.buffersByIno.get(a.ino) as BufferRec;
      const att: AttachmentRec = { ...a, buffer: buf };
      buf.attachments.set(att.id, att);
      (k.procs.get(a.pid) as ProcessRec).attachments.set(att.id, att);
      k.attachmentsById.set(att.id, att);
    }
    return k;
  }

  // ---- internals ----------------------------------------------------------------------------

  private deviceRec(name: string): DeviceRec {
    const dev = this.devicesByName.get(name);
    if (!dev) throw new UnknownDeviceError(name);
    return dev;
  }

  private procRec(pid: number): ProcessRec {
    const proc = this.procs.get(pid);
    if (!proc) throw new UnknownProcessError(pid);
    return proc;
  }

  private fdEntry(proc: ProcessRec, fd: number): FdEntry {
    const entry = proc.fds.get(fd);
    if (!entry) throw new UnknownFdError(proc.pid, fd);
    return entry;
  }

  /** Put `file` at the lowest free fd number of `proc` (POSIX open/dup semantics). */
  private install(proc: ProcessRec, file: DeviceFile | BufferRec): FdEntry {
    let fd = FIRST_FD;
    while (proc.fds.has(fd)) fd++;
    const entry: FdEntry = { pid: proc.pid, fd, since: this.now(), file };
    proc.closed.delete(fd);
    this.link(proc, entry);
    return entry;
  }

  private link(proc: ProcessRec, entry: FdEntry): void {
    proc.fds.set(entry.fd, entry);
    if (entry.file.kind === 'dmabuf') entry.file.fds.add(entry);
    else entry.file.device.fds.add(entry);
  }

  private uninstall(proc: ProcessRec, entry: FdEntry): void {
    proc.fds.delete(entry.fd);
    if (entry.file.kind === 'dmabuf') entry.file.fds.delete(entry);
    else entry.file.device.fds.delete(entry);
  }

  private releaseIfUnused(buf: BufferRec): number | null {
    if (buf.fds.size > 0 || buf.attachments.size > 0) return null;
    this.buffersByIno.delete(buf.ino);
    buf.device.buffers.delete(buf);
    return buf.ino;
  }

  private pinsOf(dev: DeviceRec): Pin[] {
    const pins: Pin[] = [];
    const fdsPin = PROFILES[dev.profile].fdsPin;
    for (const buf of dev.buffers) {
      if (isCurrent(buf)) continue;
      if (fdsPin) {
        for (const entry of buf.fds) {
          const proc = this.procs.get(entry.pid) as ProcessRec;
          pins.push({
            device: dev.name,
            owner: buf.owner,
            epoch: buf.epoch,
            ino: buf.ino,
            buffer: buf.name,
            kind: 'fd',
            attachment: null,
            attachmentId: null,
            fd: entry.fd,
            pid: entry.pid,
            comm: proc.comm,
            holder: proc.label,
            since: entry.since,
          });
        }
      }
      for (const att of buf.attachments.values()) {
        if (att.state !== 'pinned') continue;
        const proc = this.procs.get(att.pid) as ProcessRec;
        pins.push({
          device: dev.name,
          owner: buf.owner,
          epoch: buf.epoch,
          ino: buf.ino,
          buffer: buf.name,
          kind: att.kind,
          attachment: att.name,
          attachmentId: att.id,
          fd: null,
          pid: att.pid,
          comm: proc.comm,
          holder: proc.label,
          since: att.since,
        });
      }
    }
    // Fd pins first within a buffer: the exporter's own fd reads best at the head of the list.
    return pins.sort(
      (a, b) =>
        a.ino - b.ino ||
        (a.fd === null ? 1 : 0) - (b.fd === null ? 1 : 0) ||
        a.pid - b.pid ||
        (a.fd ?? 0) - (b.fd ?? 0) ||
        (a.attachmentId ?? 0) - (b.attachmentId ?? 0),
    );
  }

  private bufferInfo(buf: BufferRec): BufferInfo {
    const current = isCurrent(buf);
    const pinned =
      !current &&
      ((PROFILES[buf.device.profile].fdsPin && buf.fds.size > 0) ||
        [...buf.attachments.values()].some((a) => a.state === 'pinned'));
    return {
      ino: buf.ino,
      name: buf.name,
      device: buf.device.name,
      offset: buf.offset,
      size: buf.size,
      owner: buf.owner,
      epoch: buf.epoch,
      exporterPid: buf.exporterPid,
      state: current ? 'active' : pinned ? 'pinned' : 'revoked',
      since: buf.since,
      fds: [...buf.fds].sort(byPidFd).map((e) => ({ pid: e.pid, fd: e.fd, since: e.since })),
      attachments: [...buf.attachments.values()].sort((a, b) => a.id - b.id).map(attachmentInfo),
    };
  }
}

function deviceInfo(dev: DeviceRec): DeviceInfo {
  return {
    name: dev.name,
    memoryBytes: dev.memoryBytes,
    profile: dev.profile,
    owner: dev.owner,
    epoch: dev.epoch,
    since: dev.since,
  };
}

function fdInfo(entry: FdEntry): FdInfo {
  const f = entry.file;
  return f.kind === 'device'
    ? {
        fd: entry.fd,
        kind: 'device',
        device: f.device.name,
        owner: f.owner,
        epoch: f.epoch,
        revoked: f.device.owner !== f.owner || f.device.epoch !== f.epoch,
        since: entry.since,
      }
    : { fd: entry.fd, kind: 'dmabuf', ino: f.ino, since: entry.since };
}

function fdSnapshot(entry: FdEntry): FdSnapshot {
  const f = entry.file;
  return f.kind === 'device'
    ? {
        fd: entry.fd,
        since: entry.since,
        kind: 'device',
        device: f.device.name,
        owner: f.owner,
        epoch: f.epoch,
      }
    : { fd: entry.fd, since: entry.since, kind: 'dmabuf', ino: f.ino };
}

function processInfo(proc: ProcessRec): ProcessInfo {
  return {
    pid: proc.pid,
    comm: proc.comm,
    label: proc.label,
    fds: [...proc.fds.values()].sort((a, b) => a.fd - b.fd).map(fdInfo),
    attachments: [...proc.attachments.keys()].sort((a, b) => a - b),
  };
}

function attachmentInfo(att: AttachmentRec): AttachmentInfo {
  return {
    id: att.id,
    ino: att.buffer.ino,
    buffer: att.buffer.name,
    device: att.buffer.device.name,
    name: att.name,
    kind: att.kind,
    pid: att.pid,
    state: att.state,
    since: att.since,
  };
}
