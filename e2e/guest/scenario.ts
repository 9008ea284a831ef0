// The real-kernel suite's scenario, run by Node inside the guest (scenarios/holders.sh sets up
// the cgroups first). Processes in kubelet-shaped cgroups hold vgem dma-bufs in every way the
// observer must see; after each change it prints raw bufinfo, what the observer finds (the
// scan's JSON) and what the agent's own sync would publish with the linux backend, between
// BEGIN/END markers. The `scan` command itself runs twice as a separate process. One Node for
// the rest: each Node start costs seconds over 9p under TCG.
//
//   node e2e/guest/scenario.ts   (env: CG_A, CG_B, CG_C cgroup.procs files; UID_*, ID_*)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { linuxBackend, observeNode, rdmaTool } from '../../src/agent/backends/linux/index.ts';
import { scanJson } from '../../src/agent/scan/report.ts';
import type { PodView } from '../../src/agent/processes.ts';
import { publish } from '../../src/agent/publish.ts';
import { newState } from '../../src/agent/state.ts';
import { syncNode } from '../../src/agent/sync.ts';

const env = (name: string) => process.env[name] ?? '';
const NODE = 'guest';
const DEVICE = `${NODE}-hl0`;
const BUFINFO = '/sys/kernel/debug/dma_buf/bufinfo';

const out = (line: string) => process.stdout.write(`${line}\n`);
const block = (what: string, label: string, text: string, exit?: number) => {
  out(`BEGIN ${what} ${label}`);
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  out(`END ${what} ${label}${exit === undefined ? '' : ` ${exit}`}`);
};

const holders = new Map<string, ChildProcess>();

/** Start a holder in the cgroup whose cgroup.procs is `procs`; resolves on its READY line. */
function start(
  role: string,
  procs: string,
  args: string[],
  program = 'dmabuf-holder',
): Promise<void> {
  // Join the cgroup first, then become the holder: every buffer it makes is made in the pod.
  const child = spawn('sh', ['-c', `echo $$ > ${procs} && exec ${program} "$@"`, 'sh', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  holders.set(role, child);
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout?.on('data', (d: Buffer) => {
      text += d.toString();
      const line = /^READY .*$/m.exec(text)?.[0];
      if (line) {
        out(`HOLDER ${role} ${line}`);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`holder ${role} exited ${code} before READY`)));
  });
}

function stop(role: string): Promise<void> {
  const child = holders.get(role);
  if (!child) throw new Error(`no holder ${role}`);
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.on('exit', () => {
      out(`STOPPED ${role} ${child.pid}`);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

const observe = () => observeNode({ root: '/', exporters: ['drm'], devices: ['/dev/dri/card0'] });

function snapshot(label: string): void {
  block('bufinfo', label, readFileSync(BUFINFO, 'utf8'));
  block('scan', label, JSON.stringify(scanJson(observe())), 0);
}

/** The scan command as an operator runs it, in its own process. */
function scanCommand(what: string, label: string, args: string[]): void {
  const r = spawnSync(process.execPath, ['src/agent/scan/main.ts', '--exporter', 'drm', ...args], {
    encoding: 'utf8',
  });
  block(what, label, `${r.stdout}${r.stderr}`, r.status ?? -1);
}

/** Soft-RoCE's MR table as iproute2 prints it, and the MR holders the observer finds in it. */
async function rdma(): Promise<void> {
  await start('mr', env('CG_B'), ['65536'], 'mr-holder');
  const raw = spawnSync('rdma', ['-j', 'resource', 'show', 'mr'], { encoding: 'utf8' });
  block('rdma-raw', 'mr', raw.stdout, raw.status ?? -1);
  const obs = observeNode({ root: '/', exporters: ['drm'], rdmaMrs: rdmaTool() });
  block('rdma', 'mr', JSON.stringify(scanJson(obs)), 0);
  await stop('mr');
}

// The agent's own sync and publishing with the linux backend, as the agent runs them.
const state = newState(NODE, { count: 1, memoryBytes: 2 ** 30, profile: 'static' });
const backend = linuxBackend({
  root: '/',
  devices: [{ name: DEVICE, paths: ['/dev/dri/card0'], exporter: 'drm' }],
  ledgerFile: '/tmp/agent-guest.json.linux.json',
});
const pods = new Map<string, PodView>(
  (
    [
      [env('UID_A'), 'team-a', 'trainer-0'],
      [env('UID_B'), 'team-b', 'reader-0'],
      [env('UID_C'), 'team-c', 'mapper-0'],
    ] as const
  ).map(([uid, namespace, name]) => [
    uid,
    { uid, namespace, name, nodeName: NODE, phase: 'Running', comm: name },
  ]),
);
function agent(label: string, lease: string | undefined, epoch: number): void {
  const now = Date.now();
  backend.observe({ state, pods, now });
  const owner = {
    ...(lease && { lease: { namespace: 'team', name: lease, uid: `uid-${lease}` } }),
    epoch,
  };
  const sync = syncNode(state, {
    owners: new Map([[DEVICE, owner]]),
    pods,
    exports: [],
    remote: new Map(),
    grants: [],
    now,
    ...(backend.pins && { nodePins: backend.pins }),
  });
  const published = publish(state, {
    sync,
    previousConditions: { accelerators: new Map(), exports: new Map() },
    now,
    ...(backend.pins && { nodePins: backend.pins }),
  });
  block('agent', label, JSON.stringify(published.acceleratorStatuses.get(DEVICE)), 0);
}

out(
  `PODS a=${env('UID_A')}/${env('ID_A')} b=${env('UID_B')}/${env('ID_B')} c=${env('UID_C')}/${env('ID_C')}`,
);
// Lease a owns the device before any buffer exists: what follows is a's.
agent('granted', 'a', 1);
// The exporter holds its fd, a mapping, the device node and its GEM handle, and hands the fd to
// others over a unix socket; the reader holds only the fd it received; the mapper maps the
// buffer and closes its fd; a host process outside any pod holds an unnamed buffer of its own.
await start('exporter', env('CG_A'), [
  'export',
  'weights',
  '1048576',
  '--map',
  '--serve',
  '/tmp/weights.sock',
]);
await start('reader', env('CG_B'), ['import', '/tmp/weights.sock']);
await start('mapper', env('CG_C'), ['import', '/tmp/weights.sock', '--map', '--close-fd']);
await start('host', env('CG_ROOT'), ['export', '-', '8192']);
snapshot('all');
scanCommand('scan-command', 'all', ['--device', '/dev/dri/card0', '-o', 'json']);
// Still a's: nothing pins. Then a goes and b waits at epoch 2: every holder pins.
agent('owned', 'a', 1);
agent('handoff', 'b', 2);
await stop('reader');
snapshot('reader-exited');
await stop('exporter');
await stop('host');
snapshot('mapper-only');
agent('mapper-only', 'b', 2);
await stop('mapper');
snapshot('none');
agent('freed', 'b', 2);
await rdma();
scanCommand('text', 'none', []);
