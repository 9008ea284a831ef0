// The Linux observer and `scan` against a real kernel: Debian's stock 6.1 under QEMU, with vgem
// exporting real dma-bufs to processes in kubelet-shaped cgroups (scenarios/holders.sh). Every
// holder reports what it holds; the scan must find exactly those, with the right pods.
import { beforeAll, describe, expect, it } from 'vitest';
import type { ScanJson } from '../../src/agent/scan/report.ts';
import type { AcceleratorStatus } from '../../src/crds/index.ts';
import { ensureGuest } from './build.ts';
import { block, holders, type HolderTruth } from './console.ts';
import { runGuest } from './run.ts';

let output = '';
let truth: Map<string, HolderTruth>;
let pods: Record<'a' | 'b' | 'c', { uid: string; containerID: string }>;

beforeAll(async () => {
  const started = Date.now();
  const image = await ensureGuest();
  const built = Date.now();
  const run = await runGuest(image, 'e2e/guest/scenarios/holders.sh', { timeoutMs: 600_000 });
  output = run.console;
  process.stderr.write(
    `[kernel] ${image.release}: guest ready in ${((built - started) / 1000).toFixed(1)}s, scenario ran in ${run.seconds.toFixed(1)}s\n`,
  );
  truth = holders(output);
  const line = /^PODS a=(\S+)\/(\S+) b=(\S+)\/(\S+) c=(\S+)\/(\S+)$/m.exec(output);
  if (!line)
    throw new Error(
      `the guest printed no PODS line; its console ended:\n${output.split('\n').slice(-25).join('\n')}`,
    );
  const [, ua = '', ia = '', ub = '', ib = '', uc = '', ic = ''] = line;
  pods = {
    a: { uid: ua, containerID: ia },
    b: { uid: ub, containerID: ib },
    c: { uid: uc, containerID: ic },
  };
});

function role(name: string): HolderTruth {
  const t = truth.get(name);
  if (!t) throw new Error(`holder ${name} never got ready in the guest`);
  return t;
}

function scan(label: string): ScanJson {
  const { text, exit } = block(output, 'scan', label);
  expect(exit, `scan ${label} exit code`).toBe(0);
  return JSON.parse(text) as ScanJson;
}

/** The raw bufinfo object line of `ino`, matched without the parser under test. */
function bufinfoLine(label: string, ino: number): { count: number; devices: string[] } | undefined {
  const text = block(output, 'bufinfo', label).text;
  const lines = text.split('\n');
  const at = lines.findIndex((l) =>
    new RegExp(`^\\d+\\t\\w+\\t\\w+\\t\\d+\\tdrm\\t0*${ino}\\t`).test(l),
  );
  if (at < 0) return undefined;
  const devices: string[] = [];
  for (let i = at + 1; i < lines.length && !lines[i]?.startsWith('Total'); i++) {
    if (lines[i] !== '\tAttached Devices:' && lines[i]?.startsWith('\t'))
      devices.push(lines[i]?.trim() ?? '');
  }
  return { count: Number(lines[at]?.split('\t')[3]), devices };
}

const holderOf = (
  name: string,
  fds: number[],
  mappings: number,
  pod: (typeof pods)['a'] | null,
) => ({
  pid: role(name).pid,
  comm: 'dmabuf-holder',
  fds,
  mappings,
  pod,
});

describe('scan on a real kernel', () => {
  it('finds exactly the holders that exist, each with its pod, and nothing else', () => {
    const s = scan('all');
    const weights = role('exporter').ino;
    const scratch = role('host').ino;
    expect(role('reader').ino).toBe(weights);
    expect(s.problems).toEqual([]);
    expect(s.buffers.map((b) => [b.inode, b.exporter, b.name, b.sizeBytes])).toEqual(
      [
        [weights, 'drm', 'weights', role('exporter').sizeBytes],
        [scratch, 'drm', null, role('host').sizeBytes],
      ].sort((x, y) => Number(x[0]) - Number(y[0])),
    );
    const byIno = new Map(s.buffers.map((b) => [b.inode, b]));
    expect(byIno.get(weights)?.holders).toEqual([
      holderOf('exporter', [role('exporter').fd], 1, pods.a), // systemd driver, cgroup v2
      holderOf('reader', [role('reader').fd], 0, pods.b), // cgroupfs driver, cgroup v2
      holderOf('mapper', [], 1, pods.c), // cgroupfs driver, cgroup v1; mapping only
    ]);
    expect(byIno.get(scratch)?.holders).toEqual([holderOf('host', [role('host').fd], 0, null)]);
    expect(s.deviceHolders).toEqual([
      {
        device: '/dev/dri/card0',
        pid: role('exporter').pid,
        comm: 'dmabuf-holder',
        fds: [role('exporter').device],
        pod: pods.a,
      },
      {
        device: '/dev/dri/card0',
        pid: role('host').pid,
        comm: 'dmabuf-holder',
        fds: [role('host').device],
        pod: null,
      },
    ]);
  });

  it('reports the reference count and attached devices bufinfo shows', () => {
    for (const label of ['all', 'reader-exited', 'mapper-only']) {
      for (const b of scan(label).buffers) {
        const raw = bufinfoLine(label, b.inode);
        expect(raw, `bufinfo ${label} lists inode ${b.inode}`).toBeDefined();
        expect(b.count, `count of inode ${b.inode} in ${label}`).toBe(raw?.count);
        expect(b.attachedDevices).toEqual(raw?.devices);
      }
    }
    // The exporter's GEM handle holds references no fd or mapping accounts for; they are said.
    const weights = scan('all').buffers.find((b) => b.name === 'weights');
    expect(weights?.unaccountedReferences).toBeGreaterThan(0);
  });

  it('drops a holder that exits and keeps the others', () => {
    const s = scan('reader-exited');
    const weights = s.buffers.find((b) => b.inode === role('exporter').ino);
    expect(weights?.holders.map((h) => h.pid)).toEqual([role('exporter').pid, role('mapper').pid]);
    expect(weights?.count).toBe(
      (scan('all').buffers.find((b) => b.inode === role('exporter').ino)?.count ?? 0) - 1,
    );
  });

  it('still finds a buffer held only by a mapping whose fd was closed', () => {
    const s = scan('mapper-only');
    expect(s.buffers).toEqual([
      {
        inode: role('exporter').ino,
        exporter: 'drm',
        name: 'weights',
        sizeBytes: role('exporter').sizeBytes,
        count: 1,
        attachedDevices: [],
        unaccountedReferences: 0,
        holders: [holderOf('mapper', [], 1, pods.c)],
      },
    ]);
    expect(s.deviceHolders).toEqual([]);
  });

  it('prints the same JSON from the scan command as the observer gives in-process', () => {
    const { text, exit } = block(output, 'scan-command', 'all');
    expect(exit).toBe(0);
    expect(JSON.parse(text)).toEqual(scan('all'));
  });

  it('finds nothing once the last holder has exited, and says so', () => {
    expect(scan('none')).toEqual({ buffers: [], deviceHolders: [], mrHolders: [], problems: [] });
    expect(block(output, 'bufinfo', 'none').text).toMatch(/Total 0 objects/);
    const text = block(output, 'text', 'none');
    expect(text.exit).toBe(0);
    expect(text.text).toBe('no dma-buf of exporter drm on this node\n');
  });
});

function agent(label: string): AcceleratorStatus {
  const { text, exit } = block(output, 'agent', label);
  expect(exit).toBe(0);
  return JSON.parse(text) as AcceleratorStatus;
}

const pinsOf = (status: AcceleratorStatus) =>
  (status.pins ?? [])
    .map((p) => [
      p.pid,
      p.kind,
      p.inode,
      p.importer ?? null,
      p.pod ? `${p.pod.namespace}/${p.pod.name}` : null,
      p.epoch,
    ])
    .sort((x, y) => Number(x[0]) - Number(y[0]) || Number(x[2]) - Number(y[2]));

describe('the agent with the linux backend on a real kernel', () => {
  it('publishes the lease that owned the device before its buffers existed, with no pins', () => {
    for (const label of ['granted', 'owned']) {
      const status = agent(label);
      expect(status.phase, label).toBe('Owned');
      expect(status.owner).toEqual({
        lease: { namespace: 'team', name: 'a', uid: 'uid-a' },
        epoch: 1,
      });
      expect(status.pins).toEqual([]);
      expect(status.conditions?.find((c) => c.type === 'Observed')?.status).toBe('True');
    }
  });

  it('after the owner drop pins every holder of the old buffers and every old device fd, with pods', () => {
    const status = agent('handoff');
    expect(status.phase).toBe('Stuck');
    expect(status.owner).toEqual({ epoch: 2 });
    const weights = role('exporter').ino;
    const scratch = role('host').ino;
    expect(pinsOf(status)).toEqual(
      [
        [role('exporter').pid, 'fd', 0, null, 'team-a/trainer-0', 1],
        [role('exporter').pid, 'fd', weights, null, 'team-a/trainer-0', 1],
        [role('reader').pid, 'fd', weights, null, 'team-b/reader-0', 1],
        [role('mapper').pid, 'mmap', weights, 'cpu-mapping', 'team-c/mapper-0', 1],
        // Outside any pod: a pin no eviction can clear (the Unresolvable path).
        [role('host').pid, 'fd', 0, null, null, 1],
        [role('host').pid, 'fd', scratch, null, null, 1],
      ].sort((x, y) => Number(x[0]) - Number(y[0]) || Number(x[2]) - Number(y[2])),
    );
    expect(status.conditions?.find((c) => c.type === 'OwnerApplied')?.reason).toBe('Pinned');
  });

  it('keeps the mapping-only holder pinned after the others exit, and grants the next lease once it is gone', () => {
    expect(pinsOf(agent('mapper-only'))).toEqual([
      [role('mapper').pid, 'mmap', role('exporter').ino, 'cpu-mapping', 'team-c/mapper-0', 1],
    ]);
    const freed = agent('freed');
    expect(freed.phase).toBe('Owned');
    expect(freed.owner).toEqual({
      lease: { namespace: 'team', name: 'b', uid: 'uid-b' },
      epoch: 2,
    });
    expect(freed.pins).toEqual([]);
  });
});

describe('the RDMA MR table on a real kernel (soft-RoCE)', () => {
  it("finds the process that registered an MR, with its pod, from iproute2's real output", () => {
    const mr = /^HOLDER mr READY pid=(\d+) mrs=1 size=(\d+)$/m.exec(output);
    expect(mr, 'the guest printed no READY line of the MR holder').not.toBeNull();
    const pid = Number(mr?.[1]);
    const { text, exit } = block(output, 'rdma-raw', 'mr');
    expect(exit).toBe(0);
    const raw = JSON.parse(text) as { pid?: number; mrlen?: number }[];
    expect(raw.filter((m) => m.pid === pid).map((m) => m.mrlen)).toEqual([Number(mr?.[2])]);
    const s = JSON.parse(block(output, 'rdma', 'mr').text) as ScanJson;
    expect(s.problems).toEqual([]);
    expect(s.mrHolders).toEqual([{ pid, comm: 'mr-holder', mrs: 1, pod: pods.b }]);
  });
});
