import * as fs from 'node:fs';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BUFINFO, observeNode, type ObserveFs } from './observe.ts';

// A /proc and debugfs laid out as Linux shows them, in a temporary directory: each process a
// directory with stat, cgroup, maps, fd/ (symlinks, as readlink sees the magic links) and fdinfo/.
const UID_A = '0c6c3f5c-1a2b-4c3d-8e9f-0123456789ab';
const UID_B = '1d7d4a6d-2b3c-4d4e-9fa0-123456789abc';
const ID = 'c'.repeat(64);
let root: string;

interface FakeProcess {
  pid: number;
  comm: string;
  cgroup: string;
  fds?: Record<number, { link: string; fdinfo?: string }>;
  maps?: string[];
}

function dmabufFdinfo(ino: number, count: number, exporter = 'habanalabs', name?: string): string {
  return `pos:\t0\nflags:\t02000002\nmnt_id:\t11\nino:\t${ino}\nsize:\t1048576\ncount:\t${count}\nexp_name:\t${exporter}\n${name ? `name:\t${name}\n` : ''}`;
}
const mapLine = (ino: number, name: string) =>
  `7f03be9df000-7f03beadf000 rw-s 100000000 00:0a ${ino}                         /dmabuf:${name}`;

function addProcess(p: FakeProcess): void {
  const dir = join(root, 'proc', String(p.pid));
  mkdirSync(join(dir, 'fd'), { recursive: true });
  mkdirSync(join(dir, 'fdinfo'));
  writeFileSync(
    join(dir, 'stat'),
    `${p.pid} (${p.comm}) S 1 0 0 0 -1 4194560 50 0 0 0 1 4 0 0 20 0 1 0 ${1000 + p.pid} 2072576 1\n`,
  );
  writeFileSync(join(dir, 'cgroup'), `${p.cgroup}\n`);
  writeFileSync(
    join(dir, 'maps'),
    `00400000-00401000 r--p 00000000 00:02 17   /bin/${p.comm}\n${(p.maps ?? []).join('\n')}\n`,
  );
  for (const [fd, f] of Object.entries(p.fds ?? {})) {
    symlinkSync(f.link, join(dir, 'fd', fd));
    writeFileSync(
      join(dir, 'fdinfo', fd),
      f.fdinfo ?? 'pos:\t0\nflags:\t02\nmnt_id:\t9\nino:\t77\n',
    );
  }
}

function bufinfo(entries: string[]): void {
  mkdirSync(join(root, 'sys/kernel/debug/dma_buf'), { recursive: true });
  writeFileSync(
    join(root, BUFINFO),
    `\nDma-buf Objects:\nsize    \tflags   \tmode    \tcount   \texp_name\tino     \tname\n${entries.join('\n')}\n\nTotal ${entries.length} objects, 0 bytes\n`,
  );
}
const entry = (
  ino: number,
  count: number,
  exporter: string,
  name: string,
  devices: string[] = [],
) =>
  `01048576\t00000002\t00080007\t${String(count).padStart(8, '0')}\t${exporter}\t${String(ino).padStart(8, '0')}\t${name}\n\tAttached Devices:\n${devices.map((d) => `\t${d}\n`).join('')}Total ${devices.length} devices attached\n`;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'accel-observe-'));
  mkdirSync(join(root, 'proc'));
  mkdirSync(join(root, 'dev/accel'), { recursive: true });
  // A real character device stands in for the accelerator node: holders are matched by number.
  symlinkSync('/dev/null', join(root, 'dev/accel/accel0'));
  writeFileSync(join(root, 'proc', 'meminfo'), 'MemTotal: 1 kB\n');
  // trainer (pod A, systemd driver): the exporter, fd 5 and a mapping, and the device node.
  addProcess({
    pid: 4711,
    comm: 'trainer',
    cgroup: `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_A.replace(/-/g, '_')}.slice/cri-containerd-${ID}.scope`,
    fds: {
      3: { link: '/dev/null' },
      5: { link: '/dmabuf:weights', fdinfo: dmabufFdinfo(31, 5, 'habanalabs', 'weights') },
    },
    maps: [mapLine(31, 'weights')],
  });
  // loader (pod B, cgroupfs driver on cgroup v1): only a mapping, its fd long closed.
  addProcess({
    pid: 4800,
    comm: 'loader',
    cgroup: `12:pids:/kubepods/besteffort/pod${UID_B}/${ID}\n0::/`,
    maps: [mapLine(31, 'weights')],
  });
  // A host process (no pod) holding an fd of the same buffer; and an fd of another exporter's.
  addProcess({
    pid: 900,
    comm: 'debugger',
    cgroup: '0::/system.slice/debug.service',
    fds: {
      7: { link: '/dmabuf:weights', fdinfo: dmabufFdinfo(31, 5, 'habanalabs', 'weights') },
      8: { link: '/dmabuf:', fdinfo: dmabufFdinfo(40, 1, 'amdgpu') },
    },
  });
  addProcess({
    pid: 1,
    comm: 'init',
    cgroup: '0::/init.scope',
    fds: { 0: { link: '/dev/console' } },
  });
  bufinfo([
    entry(31, 5, 'habanalabs', 'weights', ['0000:3b:00.0']),
    entry(40, 1, 'amdgpu', '<none>'),
  ]);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('observeNode', () => {
  it("finds every holder of the exporter's buffers with its pod, and nothing else", () => {
    const obs = observeNode({ root, exporters: ['habanalabs'], devices: ['/dev/accel/accel0'] });
    expect(obs.problems).toEqual([]);
    expect(obs.buffers).toHaveLength(1);
    const [buf] = obs.buffers;
    expect(buf).toMatchObject({
      inode: 31,
      exporter: 'habanalabs',
      name: 'weights',
      sizeBytes: 1048576,
      count: 5,
    });
    expect(buf?.attachedDevices).toEqual(['0000:3b:00.0']);
    expect(buf?.holders.map((h) => [h.pid, h.comm, h.fds, h.mappings, h.pod])).toEqual([
      [900, 'debugger', [7], 0, null],
      [4711, 'trainer', [5], 1, { uid: UID_A, containerID: ID }],
      [4800, 'loader', [], 1, { uid: UID_B, containerID: ID }],
    ]);
    // 5 references, 4 of them fds or mappings: one is held elsewhere (the exporter's handle).
    expect(buf?.unaccountedReferences).toBe(1);
    expect(obs.deviceHolders.map((h) => [h.device, h.pid, h.fds])).toEqual([
      ['/dev/accel/accel0', 4711, [3]],
    ]);
  });

  it('reports a buffer only bufinfo knows, held by nothing the fd tables show', () => {
    bufinfo([entry(31, 5, 'habanalabs', 'weights'), entry(55, 1, 'habanalabs', '<none>')]);
    const obs = observeNode({ root, exporters: ['habanalabs'] });
    expect(obs.buffers.find((b) => b.inode === 55)).toMatchObject({
      holders: [],
      unaccountedReferences: 1,
      name: null,
    });
  });

  it('says so when debugfs is missing, and still reports what /proc shows', () => {
    rmSync(join(root, 'sys'), { recursive: true });
    const obs = observeNode({ root, exporters: ['habanalabs'] });
    expect(obs.problems.map((p) => p.kind)).toEqual(['debugfs-unreadable']);
    expect(obs.problems[0]?.message).toMatch(/mount -t debugfs/);
    expect(obs.buffers).toHaveLength(1);
    expect(obs.buffers[0]?.attachedDevices).toBeNull();
    expect(obs.buffers[0]?.count).toBe(5);
  });

  it('skips a process that exits between readdir and read, without a problem', () => {
    const racing: ObserveFs = {
      ...fs,
      readFileSync: ((path: string, enc: 'utf8') => {
        if (path.endsWith('/4711/maps')) throw Object.assign(new Error('gone'), { code: 'ENOENT' });
        return fs.readFileSync(path, enc);
      }) as ObserveFs['readFileSync'],
    };
    const obs = observeNode({
      root,
      exporters: ['habanalabs'],
      devices: ['/dev/accel/accel0'],
      fs: racing,
    });
    expect(obs.problems).toEqual([]);
    expect(obs.vanished).toBe(1);
    expect(obs.buffers[0]?.holders.map((h) => h.pid)).toEqual([900, 4800]);
    expect(obs.deviceHolders).toEqual([]);
  });

  it('reports the processes it may not read instead of calling them empty', () => {
    const denying: ObserveFs = {
      ...fs,
      readdirSync: ((path: string) => {
        if (path.endsWith('/4800/fd')) throw Object.assign(new Error('denied'), { code: 'EACCES' });
        return fs.readdirSync(path);
      }) as ObserveFs['readdirSync'],
    };
    const obs = observeNode({ root, exporters: ['habanalabs'], fs: denying });
    expect(obs.problems.map((p) => p.kind)).toEqual(['permission-denied']);
    expect(obs.problems[0]?.message).toMatch(/pid 4800\).*CAP_SYS_PTRACE/);
  });

  it('names a device node it cannot find', () => {
    const obs = observeNode({ root, exporters: ['habanalabs'], devices: ['/dev/accel/accel9'] });
    expect(obs.problems.map((p) => p.kind)).toEqual(['device-missing']);
    expect(obs.problems[0]?.message).toMatch(/accel9/);
  });

  it('lists MR holders from the rdma table and reports an unreadable one', () => {
    const table = JSON.stringify([
      { ifname: 'mlx5_0', mrn: 1, mrlen: 4096, pid: 4800, comm: 'loader' },
      { ifname: 'mlx5_0', mrn: 2, mrlen: 4096, pid: 4800, comm: 'loader' },
      { ifname: 'mlx5_0', mrn: 3, mrlen: 4096, pid: 31337, comm: 'exited' },
    ]);
    const obs = observeNode({ root, exporters: ['habanalabs'], rdmaMrs: () => table });
    expect(obs.mrHolders.map((h) => [h.pid, h.mrs, h.pod?.uid])).toEqual([[4800, 2, UID_B]]);
    const broken = observeNode({ root, exporters: ['habanalabs'], rdmaMrs: () => 'not json' });
    expect(broken.problems.map((p) => p.kind)).toEqual(['rdma-unreadable']);
  });

  it('fails with a clear error when there is no /proc at all', () => {
    expect(() => observeNode({ root: join(root, 'nowhere'), exporters: ['habanalabs'] })).toThrow(
      /cannot list .*proc/,
    );
  });
});
