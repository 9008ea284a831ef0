// One read-only pass over a Linux node: every dma-buf of the given exporters and every process
// that holds one (fd, CPU mapping), every process holding a given device node, every process
// with an RDMA MR, each with the pod its cgroup names. Processes come and go while we read:
// one that exits mid-read is skipped, and what could not be read is reported, never guessed.
import { spawnSync } from 'node:child_process';
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { podOfCgroup, type PodCgroup } from './cgroup.ts';
import {
  isDmabufLink,
  parseBufinfo,
  parseFdinfo,
  parseMaps,
  parseRdmaMrs,
  parseStat,
  RdmaOutputError,
  type BufinfoEntry,
  type DmabufFdinfo,
} from './parse.ts';

export const BUFINFO = 'sys/kernel/debug/dma_buf/bufinfo';

export interface ObserveOptions {
  /** Where `proc` and `sys` are found; `/` on a node (hostPID), a fixture tree in tests. */
  readonly root: string;
  /** exp_name of the buffers to report (`habanalabs`, `amdgpu`, `drm` for vgem). */
  readonly exporters: readonly string[];
  /** Device nodes (paths under root) whose holders to report, matched by device number. */
  readonly devices?: readonly string[];
  /** The text of `rdma resource show mr -j`; undefined skips the MR table. */
  readonly rdmaMrs?: () => string;
  /** The file system calls the pass makes; tests inject races and permission errors here. */
  readonly fs?: ObserveFs;
}

export type ObserveFs = Pick<
  typeof nodeFs,
  'readFileSync' | 'readdirSync' | 'readlinkSync' | 'statSync'
>;

/** A process and the pod its cgroup places it in (null: no pod, e.g. a host daemon). */
export interface ProcessRef {
  readonly pid: number;
  readonly comm: string;
  /** Clock ticks since boot: with the pid, names the process even after the pid is reused. */
  readonly startTime: number;
  readonly pod: PodCgroup | null;
}

export interface BufferHolder extends ProcessRef {
  readonly fds: readonly number[];
  /** VMAs of the buffer in the process (each keeps the buffer alive after its fd is closed). */
  readonly mappings: number;
}

export interface ObservedBuffer {
  readonly inode: number;
  readonly exporter: string;
  readonly name: string | null;
  readonly sizeBytes: number;
  /** References to the buffer's file, from bufinfo (or fdinfo when bufinfo is unreadable). */
  readonly count: number;
  /** null when bufinfo could not be read. */
  readonly attachedDevices: readonly string[] | null;
  readonly holders: readonly BufferHolder[];
  /**
   * References no fd or mapping accounts for: the exporter's own handle (a GEM handle, a
   * habanalabs memory handle), an importer's attachment, an RDMA MR, an fd in flight in a
   * unix socket. Not a process: a holder of one shows up only as a device or MR holder.
   */
  readonly unaccountedReferences: number;
}

export interface DeviceHolder extends ProcessRef {
  readonly device: string;
  readonly fds: readonly number[];
}

export interface MrHolder extends ProcessRef {
  readonly mrs: number;
}

export type ProblemKind =
  | 'debugfs-unreadable'
  | 'proc-unreadable'
  | 'permission-denied'
  | 'device-missing'
  | 'rdma-unreadable';

/** Something the pass could not see; the backend turns these into a condition, never a Free. */
export interface ObserveProblem {
  readonly kind: ProblemKind;
  readonly message: string;
}

export interface NodeObservation {
  readonly buffers: readonly ObservedBuffer[];
  readonly deviceHolders: readonly DeviceHolder[];
  readonly mrHolders: readonly MrHolder[];
  readonly problems: readonly ObserveProblem[];
  /** Processes that exited while being read: expected, counted for the metrics. */
  readonly vanished: number;
}

type Errno = NodeJS.ErrnoException;
const code = (err: unknown) => (err as Errno).code;
/** The process exited between readdir and read: not a problem, it holds nothing any more. */
const gone = (err: unknown) => code(err) === 'ENOENT' || code(err) === 'ESRCH';
const denied = (err: unknown) => code(err) === 'EACCES' || code(err) === 'EPERM';

interface Found {
  fds: number[];
  mappings: number;
}

/** Read the node once. Throws only when /proc itself cannot be listed. */
export function observeNode(options: ObserveOptions): NodeObservation {
  const pass = new ObservePass(options);
  for (const pid of pass.listPids()) pass.readProcess(pid);
  pass.reportDenied();
  const buffers = pass.buffers(pass.readBufinfo());
  const deviceHolders = pass.deviceHolders();
  const mrHolders = pass.mrHolders();
  return { buffers, deviceHolders, mrHolders, problems: pass.problems, vanished: pass.vanished };
}

/** What one pass has read so far; each method reads one part of the node into it. */
class ObservePass {
  readonly problems: ObserveProblem[] = [];
  /** Processes that exited while being read. */
  vanished = 0;
  private readonly options: ObserveOptions;
  private readonly fs: ObserveFs;
  private readonly proc: string;
  private readonly exporters: ReadonlySet<string>;
  private readonly deniedPids: number[] = [];
  /** "major:minor" -> path of the device nodes to report holders of. */
  private readonly devices = new Map<string, string>();
  private readonly meta = new Map<number, DmabufFdinfo>();
  /** ino -> pid -> what the process holds of the buffer. */
  private readonly perBuffer = new Map<number, Map<number, Found>>();
  private readonly processes = new Map<number, ProcessRef>();
  /** pid -> device -> fds. */
  private readonly deviceFds = new Map<number, Map<string, number[]>>();

  constructor(options: ObserveOptions) {
    this.options = options;
    this.fs = options.fs ?? nodeFs;
    this.proc = join(options.root, 'proc');
    this.exporters = new Set(options.exporters);
    this.statDevices();
  }

  private statDevices(): void {
    for (const path of this.options.devices ?? []) {
      try {
        const st = this.fs.statSync(join(this.options.root, path));
        if (!st.isCharacterDevice() && !st.isBlockDevice())
          this.problems.push({ kind: 'device-missing', message: `${path} is not a device node` });
        else this.devices.set(String(st.rdev), path);
      } catch (err) {
        this.problems.push({
          kind: 'device-missing',
          message: `cannot stat ${path}: ${(err as Error).message} (mount the host's device nodes into the agent)`,
        });
      }
    }
  }

  listPids(): number[] {
    try {
      return this.fs
        .readdirSync(this.proc)
        .filter((n) => /^\d+$/.test(n))
        .map(Number)
        .sort((a, b) => a - b);
    } catch (err) {
      throw new ObserveError(`cannot list ${this.proc}: ${(err as Error).message}`);
    }
  }

  /** The process's dma-buf and device fds and its mappings; one that exits meanwhile is dropped. */
  readProcess(pid: number): void {
    const dir = join(this.proc, String(pid));
    try {
      let fds: string[];
      try {
        fds = this.fs.readdirSync(join(dir, 'fd'));
      } catch (err) {
        if (denied(err)) {
          this.deniedPids.push(pid);
          return;
        }
        throw err;
      }
      let holds = false;
      for (const name of fds) {
        if (this.readFd(pid, dir, name)) holds = true;
      }
      // Mappings outlive the fd: read maps of every process, not only of fd holders.
      const maps = this.fs.readFileSync(join(dir, 'maps'), 'utf8');
      if (maps.includes('/dmabuf:')) {
        for (const m of parseMaps(maps)) {
          this.found(m.ino, pid).mappings++;
          holds = true;
        }
      }
      if (holds && !this.describe(pid)) this.vanished++;
    } catch (err) {
      if (gone(err)) {
        this.vanished++;
        for (const byPid of this.perBuffer.values()) byPid.delete(pid);
        this.deviceFds.delete(pid);
        return;
      }
      if (denied(err)) {
        this.deniedPids.push(pid);
        return;
      }
      throw err;
    }
  }

  /** Records fd `name` if it is one of our dma-bufs or one of the device nodes; true if so. */
  private readFd(pid: number, dir: string, name: string): boolean {
    let target: string;
    try {
      target = this.fs.readlinkSync(join(dir, 'fd', name));
    } catch (err) {
      if (gone(err)) return false; // that fd was closed meanwhile
      throw err;
    }
    const fd = Number(name);
    if (isDmabufLink(target)) {
      let info;
      try {
        info = parseFdinfo(this.fs.readFileSync(join(dir, 'fdinfo', name), 'utf8'));
      } catch (err) {
        if (gone(err)) return false;
        throw err;
      }
      if (!info || !this.exporters.has(info.exporter)) return false;
      this.meta.set(info.ino, info);
      this.found(info.ino, pid).fds.push(fd);
      return true;
    }
    if (this.devices.size === 0 || !target.startsWith('/')) return false;
    let rdev: string;
    try {
      const st = this.fs.statSync(join(dir, 'fd', name));
      if (!st.isCharacterDevice() && !st.isBlockDevice()) return false;
      rdev = String(st.rdev);
    } catch {
      return false; // closed meanwhile, or a path the link no longer reaches
    }
    const device = this.devices.get(rdev);
    if (!device) return false;
    let byDevice = this.deviceFds.get(pid);
    if (!byDevice) this.deviceFds.set(pid, (byDevice = new Map<string, number[]>()));
    byDevice.set(device, [...(byDevice.get(device) ?? []), fd]);
    return true;
  }

  /** The process, read once; undefined if its stat no longer parses. */
  private describe(pid: number): ProcessRef | undefined {
    const known = this.processes.get(pid);
    if (known) return known;
    const dir = join(this.proc, String(pid));
    const stat = parseStat(this.fs.readFileSync(join(dir, 'stat'), 'utf8'));
    if (!stat) return undefined;
    let pod: PodCgroup | null = null;
    try {
      pod = podOfCgroup(this.fs.readFileSync(join(dir, 'cgroup'), 'utf8'));
    } catch (err) {
      if (!gone(err)) throw err;
    }
    const ref = { pid, comm: stat.comm, startTime: stat.startTime, pod };
    this.processes.set(pid, ref);
    return ref;
  }

  private found(ino: number, pid: number): Found {
    let byPid = this.perBuffer.get(ino);
    if (!byPid) this.perBuffer.set(ino, (byPid = new Map<number, Found>()));
    let f = byPid.get(pid);
    if (!f) byPid.set(pid, (f = { fds: [], mappings: 0 }));
    return f;
  }

  reportDenied(): void {
    const pids = this.deniedPids;
    if (pids.length === 0) return;
    this.problems.push({
      kind: 'permission-denied',
      message: `cannot read the fds or maps of ${pids.length} process(es) (pid ${pids.slice(0, 5).join(', ')}${pids.length > 5 ? ', ...' : ''}): run as root with CAP_SYS_PTRACE in the host PID namespace`,
    });
  }

  /** debugfs's buffer table; undefined (and a problem) when it cannot be read. */
  readBufinfo(): BufinfoEntry[] | undefined {
    try {
      return parseBufinfo(this.fs.readFileSync(join(this.options.root, BUFINFO), 'utf8'));
    } catch (err) {
      this.problems.push({
        kind: 'debugfs-unreadable',
        message: `cannot read /${BUFINFO}: ${(err as Error).message}; ${
          code(err) === 'ENOENT'
            ? 'mount debugfs (mount -t debugfs none /sys/kernel/debug) and share it with the agent'
            : 'debugfs is readable by root only'
        }: without it attachments and references held outside any fd are invisible`,
      });
      return undefined;
    }
  }

  buffers(bufinfo: readonly BufinfoEntry[] | undefined): ObservedBuffer[] {
    const byIno = new Map(
      (bufinfo ?? []).filter((b) => this.exporters.has(b.exporter)).map((b) => [b.ino, b]),
    );
    // Mappings of other exporters' buffers were counted above too: only ours are reported. A
    // buffer only mapped (no fd anywhere) is known to be ours through bufinfo alone.
    const inodes = new Set([...byIno.keys(), ...this.meta.keys()]);
    const buffers: ObservedBuffer[] = [];
    for (const ino of [...inodes].sort((a, b) => a - b)) {
      const info = byIno.get(ino);
      const fdinfo = this.meta.get(ino);
      const holders = this.holders(ino);
      const count = info?.count ?? fdinfo?.count ?? 0;
      const accounted = holders.reduce((n, h) => n + h.fds.length + h.mappings, 0);
      buffers.push({
        inode: ino,
        exporter: info?.exporter ?? fdinfo?.exporter ?? '',
        // fdinfo has the name verbatim; bufinfo cannot tell a buffer named "<none>" from none.
        name: fdinfo ? fdinfo.name : (info?.name ?? null),
        sizeBytes: info?.sizeBytes ?? fdinfo?.sizeBytes ?? 0,
        count,
        attachedDevices: info ? info.attachedDevices : null,
        holders,
        unaccountedReferences: Math.max(0, count - accounted),
      });
    }
    return buffers;
  }

  private holders(ino: number): BufferHolder[] {
    const holders: BufferHolder[] = [];
    for (const [pid, f] of [...(this.perBuffer.get(ino) ?? new Map<number, Found>())].sort(
      (a, b) => a[0] - b[0],
    )) {
      const ref = this.processes.get(pid);
      if (!ref) continue;
      holders.push({ ...ref, fds: f.fds.sort((a, b) => a - b), mappings: f.mappings });
    }
    return holders;
  }

  deviceHolders(): DeviceHolder[] {
    const deviceHolders: DeviceHolder[] = [];
    for (const [pid, byDevice] of this.deviceFds) {
      const ref = this.processes.get(pid);
      if (!ref) continue;
      for (const [device, fds] of byDevice)
        deviceHolders.push({ ...ref, device, fds: fds.sort((a, b) => a - b) });
    }
    deviceHolders.sort((a, b) => a.pid - b.pid || a.device.localeCompare(b.device));
    return deviceHolders;
  }

  /** Processes holding RDMA MRs, from the MR table; none (and a problem) if it cannot be read. */
  mrHolders(): MrHolder[] {
    const mrHolders: MrHolder[] = [];
    if (!this.options.rdmaMrs) return mrHolders;
    try {
      const counts = new Map<number, number>();
      for (const mr of parseRdmaMrs(this.options.rdmaMrs())) {
        if (mr.pid !== null) counts.set(mr.pid, (counts.get(mr.pid) ?? 0) + 1);
      }
      for (const [pid, mrs] of [...counts].sort((a, b) => a[0] - b[0])) {
        try {
          const ref = this.describe(pid);
          if (ref) mrHolders.push({ ...ref, mrs });
        } catch (err) {
          if (!gone(err)) throw err;
          this.vanished++;
        }
      }
    } catch (err) {
      if (!(err instanceof RdmaOutputError || err instanceof RdmaToolError)) throw err;
      this.problems.push({ kind: 'rdma-unreadable', message: err.message });
    }
    return mrHolders;
  }
}

/** /proc itself cannot be listed: nothing can be observed at all. */
export class ObserveError extends Error {
  override name = 'ObserveError';
}

export class RdmaToolError extends Error {
  override name = 'RdmaToolError';
}

/** Runs iproute2's `rdma resource show mr -j`, the MR table with pid and comm per MR. */
export function rdmaTool(binary = 'rdma'): () => string {
  return () => {
    const r = spawnSync(binary, ['-j', 'resource', 'show', 'mr'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    if (r.error)
      throw new RdmaToolError(
        `cannot run ${binary}: ${r.error.message} (install iproute2 in the agent's image, or leave the MR table off)`,
      );
    if (r.status !== 0)
      throw new RdmaToolError(`${binary} resource show mr exited ${r.status}: ${r.stderr.trim()}`);
    return r.stdout;
  };
}
