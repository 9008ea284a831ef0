// Throughput of the simulated kernel over a handoff-shaped mix of calls (`npm run bench:kernel`).
// Prints { kernelOpsPerSec, ops, seconds, node, cpus } and records it in bench/results/kernel.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kernel, KernelError, type ExporterProfile } from '../src/device-sim/kernel/index.ts';

const DEVICES = 8;
const MEASURE_MS = Number(process.env.BENCH_MS ?? 3000);
const WARMUP_MS = 500;
const PROFILES: readonly ExporterProfile[] = ['static', 'dynamic', 'revocable'];

let clock = 0;
const kernel = new Kernel({ now: () => clock });
let ops = 0;
const refusals = new Map<string, number>();

/** Every kernel call goes through here: counted, and refusals are part of the mix. */
function call<T>(fn: () => T): T | undefined {
  ops++;
  try {
    return fn();
  } catch (err) {
    if (err instanceof KernelError) {
      refusals.set(err.code, (refusals.get(err.code) ?? 0) + 1);
      return undefined;
    }
    throw err;
  }
}

for (let d = 0; d < DEVICES; d++) {
  kernel.addDevice({
    name: `accel${d}`,
    memoryBytes: 64 * 1024 ** 3,
    profile: PROFILES[d % PROFILES.length] ?? 'static',
  });
  // A monitoring daemon per device keeps the tables from being trivially small.
  kernel.spawn({ comm: 'monitor', label: { namespace: 'kube-system', name: `monitor-${d}` } });
}

/**
 * One tenant's tenure on one device, then the handoff: acquire, spawn the tenant's pods, open,
 * export, share with importers, query as an agent would, drop, try the next owner (refused while
 * pinned), tear the pods down. About 45 calls, a few of them refused on purpose.
 */
function tenure(d: number, n: number): void {
  clock += 1000;
  const device = `accel${d}`;
  const owner = `team-${n % 7}/lease-${n}`;
  // The agent's step on a new spec.owner: drop whoever is there, acquire at the next epoch.
  call(() => kernel.drop(device));
  const epoch = (call(() => kernel.device(device))?.epoch ?? 0) + 1;
  call(() => kernel.acquire(device, owner, epoch));
  const label = (name: string) => ({ namespace: `team-${n % 7}`, name: `${name}-${n}` });
  const trainer = kernel.spawn({ comm: 'trainer', label: label('trainer') }).pid;
  const peer = kernel.spawn({ comm: 'peer', label: label('peer') }).pid;
  const loader = kernel.spawn({ comm: 'loader', label: null }).pid;
  ops += 3;
  const devFd = call(() => kernel.openDevice(trainer, device, owner)) ?? -1;
  for (let i = 0; i < 4; i++) {
    const buf = call(() =>
      kernel.exportBuffer(trainer, devFd, {
        offset: i * 1024 ** 3,
        size: 1024 ** 3,
        name: `b${i}`,
      }),
    );
    if (!buf) continue;
    const peerFd = call(() => kernel.passFd(trainer, buf.fd, peer)) ?? -1;
    call(() => kernel.attach(peer, peerFd, 'dynamic', 'p2p'));
    call(() => kernel.attach(trainer, buf.fd, 'mmap', 'view')); // refused on static devices
    if (i === 0) {
      const loaderFd = call(() => kernel.passFd(trainer, buf.fd, loader)) ?? -1;
      call(() => kernel.attach(loader, loaderFd, 'rdma-mr', 'nic0'));
    }
    if (i === 3) call(() => kernel.close(peer, peerFd));
  }
  call(() => kernel.exportBuffer(trainer, devFd, { offset: 63 * 1024 ** 3, size: 2 * 1024 ** 3 }));
  call(() => kernel.close(trainer, devFd));
  call(() => kernel.close(trainer, devFd)); // double close, refused
  call(() => kernel.buffers(device));
  call(() => kernel.pins(device));
  call(() => kernel.device(device));
  clock += 500;
  call(() => kernel.drop(device));
  call(() => kernel.acquire(device, `${owner}-next`, epoch + 1)); // refused where pins remain
  call(() => kernel.exit(trainer));
  call(() => kernel.exit(peer));
  call(() => kernel.pins(device));
  call(() => kernel.exit(loader));
  call(() => kernel.pins(device));
}

function runFor(ms: number): { ops: number; seconds: number } {
  const start = performance.now();
  const startOps = ops;
  let n = 0;
  while (performance.now() - start < ms) {
    for (let i = 0; i < 50; i++, n++) tenure(n % DEVICES, n);
  }
  return { ops: ops - startOps, seconds: (performance.now() - start) / 1000 };
}

runFor(WARMUP_MS);
const measured = runFor(MEASURE_MS);
const result = {
  kernelOpsPerSec: Math.round(measured.ops / measured.seconds),
  ops: measured.ops,
  seconds: Number(measured.seconds.toFixed(3)),
  node: process.version,
  cpus: availableParallelism(),
};
console.log(JSON.stringify(result));
if (process.env.BENCH_VERBOSE) console.error(Object.fromEntries(refusals));

const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'kernel.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
