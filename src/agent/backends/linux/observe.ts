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
  const fs = options.fs ?? nodeFs;
  const readFileSync = (path: string, enc: 'utf8') => fs.readFileSync(path, enc);
  const readdirSync = (path: string) => fs.readdirSync(path);
  const readlinkSync = (path: string) => fs.readlinkSync(path);
  const statSync = (path: string) => fs.statSync(path);
  const proc = join(options.root, 'proc');
  const exporters = new Set(options.exporters);
  const problems: ObserveProblem[] = [];
  const deniedPids: number[] = [];
  let vanished = 0;

  const devices = new Map<string, string>(); // "major:minor" -> path
  for (const path of options.devices ?? []) {
    try {
      const st = statSync(join(options.root, path));
      if (!st.isCharacterDevice() && !st.isBlockDevice())
        problems.push({ kind: 'device-missing', message: `${path} is not a device node` });
      else devices.set(String(st.rdev), path);
    } catch (err) {
      problems.push({
        kind: 'device-missing',
        message: `cannot stat ${path}: ${(err as Error).message} (mount the host's device nodes into the agent)`,
      });
    }
  }

  const meta = new Map<number, DmabufFdinfo>();
  const perBuffer = new Map<number, Map<number, Found>>(); // ino -> pid -> found
  const processes = new Map<number, ProcessRef>();
  const deviceFds = new Map<number, Map<string, number[]>>(); // pid -> device -> fds

  let pids: number[];
  try {
    pids = readdirSync(proc)
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .sort((a, b) => a - b);
  } catch (err) {
    throw new ObserveError(`cannot list ${proc}: ${(err as Error).message}`);
  }

  const describe = (pid: number): ProcessRef | undefined => {
    const known = processes.get(pid);
    if (known) return known;
    const stat = parseStat(readFileSync(join(proc, String(pid), 'stat'), 'utf8'));
    if (!stat) return undefined;
    let pod: PodCgroup | null = null;
    try {
      pod = podOfCgroup(readFileSync(join(proc, String(pid), 'cgroup'), 'utf8'));
    } catch (err) {
      if (!gone(err)) throw err;
    }
    const ref = { pid, comm: stat.comm, startTime: stat.startTime, pod };
    processes.set(pid, ref);
    return ref;
  };
  const found = (ino: number, pid: number): Found => {
    let byPid = perBuffer.get(ino);
    if (!byPid) perBuffer.set(ino, (byPid = new Map<number, Found>()));
    let f = byPid.get(pid);
    if (!f) byPid.set(pid, (f = { fds: [], mappings: 0 }));
    return f;
  };

  for (const pid of pids) {
    const dir = join(proc, String(pid));
    try {
      let fds: string[];
      try {
        fds = readdirSync(join(dir, 'fd'));
      } catch (err) {
        if (denied(err)) {
          deniedPids.push(pid);
          continue;
        }
        throw err;
      }
      let holds = false;
      for (const name of fds) {
        let target: string;
        try {
          target = readlinkSync(join(dir, 'fd', name));
        } catch (err) {
          if (gone(err)) continue; // that fd was closed meanwhile
          throw err;
        }
        const fd = Number(name);
        if (isDmabufLink(target)) {
          let info;
          try {
            info = parseFdinfo(readFileSync(join(dir, 'fdinfo', name), 'utf8'));
          } catch (err) {
            if (gone(err)) continue;
            throw err;
          }
          if (!info || !exporters.has(info.exporter)) continue;
          meta.set(info.ino, info);
          found(info.ino, pid).fds.push(fd);
          holds = true;
        } else if (devices.size > 0 && target.startsWith('/')) {
          let rdev: string;
          try {
            const st = statSync(join(dir, 'fd', name));
            if (!st.isCharacterDevice() && !st.isBlockDevice()) continue;
            rdev = String(st.rdev);
          } catch {
            continue; // closed meanwhile, or a path the link no longer reaches
          }
          const device = devices.get(rdev);
          if (!device) continue;
          let byDevice = deviceFds.get(pid);
          if (!byDevice) deviceFds.set(pid, (byDevice = new Map<string, number[]>()));
          byDevice.set(device, [...(byDevice.get(device) ?? []), fd]);
          holds = true;
        }
      }
      // Mappings outlive the fd: read maps of every process, not only of fd holders.
      const maps = readFileSync(join(dir, 'maps'), 'utf8');
      if (maps.includes('/dmabuf:')) {
        for (const m of parseMaps(maps)) {
          found(m.ino, pid).mappings++;
          holds = true;
        }
      }
      if (holds && !describe(pid)) vanished++;
    } catch (err) {
      if (gone(err)) {
        vanished++;
        for (const byPid of perBuffer.values()) byPid.delete(pid);
        deviceFds.delete(pid);
        continue;
      }
      if (denied(err)) {
        deniedPids.push(pid);
        continue;
      }
      throw err;
    }
  }
  if (deniedPids.length > 0) {
    problems.push({
      kind: 'permission-denied',
      message: `cannot read the fds or maps of ${deniedPids.length} process(es) (pid ${deniedPids.slice(0, 5).join(', ')}${deniedPids.length > 5 ? ', ...' : ''}): run as root with CAP_SYS_PTRACE in the host PID namespace`,
    });
  }

  let bufinfo: BufinfoEntry[] | undefined;
  try {
    bufinfo = parseBufinfo(readFileSync(join(options.root, BUFINFO), 'utf8'));
  } catch (err) {
    problems.push({
      kind: 'debugfs-unreadable',
      message: `cannot read /${BUFINFO}: ${(err as Error).message}; ${
        code(err) === 'ENOENT'
          ? 'mount debugfs (mount -t debugfs none /sys/kernel/debug) and share it with the agent'
          : 'debugfs is readable by root only'
      }: without it attachments and references held outside any fd are invisible`,
    });
  }

  const byIno = new Map(
    (bufinfo ?? []).filter((b) => exporters.has(b.exporter)).map((b) => [b.ino, b]),
  );
  // Mappings of other exporters' buffers were counted above too: only ours are reported. A
  // buffer only mapped (no fd anywhere) is known to be ours through bufinfo alone.
  const inodes = new Set([...byIno.keys(), ...meta.keys()]);

  const buffers: ObservedBuffer[] = [];
  for (const ino of [...inodes].sort((a, b) => a - b)) {
    const info = byIno.get(ino);
    const fdinfo = meta.get(ino);
    const holders: BufferHolder[] = [];
    for (const [pid, f] of [...(perBuffer.get(ino) ?? new Map<number, Found>())].sort(
      (a, b) => a[0] - b[0],
    )) {
      const ref = processes.get(pid);
      if (!ref) continue;
      holders.push({ ...ref, fds: f.fds.sort((a, b) => a - b), mappings: f.mappings });
    }
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

  const deviceHolders: DeviceHolder[] = [];
  for (const [pid, byDevice] of deviceFds) {
    const ref = processes.get(pid);
    if (!ref) continue;
    for (const [device, fds] of byDevice)
      deviceHolders.push({ ...ref, device, fds: fds.sort((a, b) => a - b) });
  }
  deviceHolders.sort((a, b) => a.pid - b.pid || a.device.localeCompare(b.device));

  const mrHolders: MrHolder[] = [];
  if (options.rdmaMrs) {
    try {
      const counts = new Map<number, number>();
      for (const mr of parseRdmaMrs(options.rdmaMrs())) {
        if (mr.pid !== null) counts.set(mr.pid, (counts.get(mr.pid) ?? 0) + 1);
      }
      for (const [pid, mrs] of [...counts].sort((a, b) => a[0] - b[0])) {
        try {
          const ref = describe(pid);
          if (ref) mrHolders.push({ ...ref, mrs });
        } catch (err) {
          if (!gone(err)) throw err;
          vanished++;
        }
      }
    } catch (err) {
      if (!(err instanceof RdmaOutputError || err instanceof RdmaToolError)) throw err;
      problems.push({ kind: 'rdma-unreadable', message: err.message });
    }
  }
  return { buffers, deviceHolders, mrHolders, problems, vanished };
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
