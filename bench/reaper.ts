// Item 2: a stuck handoff cleared by the reaper (Accelerator Stuck to the waiting lease Granted),
// against its floor, a bare client evicting the same holder pods in the same scenario built again
// right after, and against `kubectl drain` of as many like pods, at its default request rate and
// with that raised (bench/drain), all in the same run. Each clearing is marked by stage.
import { execFile } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { median } from './report.ts';
import { type Mark, type Stage, stagesBetween, stageTable, type StageRow } from './stages.ts';
import type { Bench } from './stack.ts';
import { GROUP, sleep } from './stack.ts';
import {
  bareHolders,
  type Obj,
  type Pod,
  PodClock,
  stuckScenario,
  type StuckScenario,
} from './stuck.ts';

/** The marks of a clearing, in order (the bare client's has no Granted). */
export const CLEAR_MARKS = [
  'Stuck seen',
  'first eviction taken',
  'last holder gone',
  'device cleared',
  'Granted seen',
] as const;

/** The stages of one clearing from the performance.now() of its marks, CLEAR_MARKS' order. */
export const clearingStages = (at: readonly number[]): Stage[] =>
  stagesBetween(at.map((t, i): Mark => [CLEAR_MARKS[i] as string, t]));

/** How a drain ran: the command (node elided) and its wall time. */
export interface DrainRun {
  command: string;
  ms: number;
}

export interface ReaperRound {
  holders: number;
  /** Accelerator Stuck (seen by watch) to the waiting lease Granted (seen by watch). */
  reaperMs: number;
  /** Lease deletion to Granted, the whole stuck handoff as the next tenant sees it. */
  deleteToGrantedMs: number;
  /** Stuck seen to the lease status carrying the reaper's eviction records (written before any is sent). */
  recordsWrittenMs: number;
  /** The bare client in the same scenario built again: Stuck seen to the last holder's deletion seen. */
  floorMs: number;
  overFloor: number;
  /** `kubectl drain` of as many like pods on another node, at client-go's default 5 requests/s. */
  drain: DrainRun;
  overDrain: number;
  /** kubectl drain's own code (k8s.io/kubectl/pkg/drain) with the request rate raised. */
  drainFast?: DrainRun & { qps: number; burst: number };
  overDrainFast?: number;
  evictions: number;
  /**
   * The controller's requests by "verb resource" (code appended unless 2xx) from just before
   * tenant A's release to 1 s after Granted (its Events trail); absent when not counted.
   */
  controllerRequests?: Record<string, number>;
  stages: Stage[];
  floorStages: Stage[];
}

export interface ReaperResult {
  holders: number;
  /** Medians over the rounds; the ratios are median over median. */
  reaperMs: number;
  deleteToGrantedMs: number;
  recordsWrittenMs: number;
  floorMs: number;
  overFloor: number;
  drainMs: number;
  overDrain: number;
  drainFastMs?: number;
  overDrainFast?: number;
  drainCommand: string;
  drainFastCommand?: string;
  evictions: number;
  /** Mean over the rounds that counted them. */
  controllerRequests?: Record<string, number>;
  /** The reaper's stages beside the bare client's, medians over the rounds. */
  stages: StageRow[];
  rounds: ReaperRound[];
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** The requests made between two reads of the counters, leaving out the kinds not made. */
export function countsSince(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after)
      .map(([k, v]) => [k, v - (before[k] ?? 0)] as const)
      .filter(([, d]) => d > 0),
  );
}

const stuckOf = (s: StuckScenario) => (e: string, x: Obj) =>
  e !== 'delete' && x.metadata.name === s.accel && x.status?.phase === 'Stuck';

/**
 * The reaper's clearing: tenant B waits (grace 0, maxEvictions = the holders), tenant A is
 * released, and the marks come from watches on the Accelerator, tenant B's lease and the holders.
 */
export async function reaperClears(
  b: Bench,
  s: StuckScenario,
  log: (s: string) => void,
  requests?: () => Promise<Record<string, number>>,
) {
  const leases = await b.watch<Obj & { status?: { evictions?: unknown[] } }>(
    `${GROUP}/namespaces/${s.ns.b}/acceleratorleases`,
    'reap-b',
  );
  const accels = await b.watch<Obj>(`${GROUP}/accelerators`, 'reap-accel');
  const pods = await b.watch<Pod>(`/api/v1/namespaces/${s.ns.io}/pods`, 'reap-holders');
  const clock = new PodClock(pods);
  try {
    const isB = (e: string, l: Obj) => e !== 'delete' && l.metadata.name === 'tenant-b';
    const queued = leases.next((e, l) => isB(e, l) && l.status?.queuePosition === 1, 'B queued');
    await b.lease(s.ns.b, 'tenant-b', {
      accelerator: s.accel,
      revocation: { gracePeriodSeconds: 0, maxEvictions: s.holders.length },
    });
    await queued;
    const stuck = accels.next(stuckOf(s), `${s.accel} Stuck`);
    const records = leases.next(
      (e, l) => isB(e, l) && (l.status?.evictions?.length ?? 0) > 0,
      'tenant-b eviction records',
    );
    const cleared = accels.next(
      (e, x) =>
        e !== 'delete' &&
        x.metadata.name === s.accel &&
        x.status?.phase === 'Owned' &&
        x.status.owner?.lease?.name === 'tenant-b',
      `${s.accel} Owned by tenant-b`,
      300_000,
    );
    const granted = leases.next(
      (e, l) => isB(e, l) && l.status?.phase === 'Granted',
      'tenant-b Granted',
      300_000,
    );
    const allGone = clock.allGone(s.holders);
    log(`  releasing tenant-a: ${s.holders.length} RDMA MRs keep the device pinned`);
    const before = await requests?.();
    const t0 = performance.now();
    await b.request('DELETE', `${GROUP}/namespaces/${s.ns.a}/acceleratorleases/tenant-a`);
    const tStuck = await stuck;
    const tRecords = await records;
    const tGone = await allGone;
    const tCleared = await cleared;
    const tGranted = await granted;
    const after = before && requests && (await sleep(1000), await requests());
    const lease = await b.request<{ status?: { evictions?: { result: string }[] } }>(
      'GET',
      `${GROUP}/namespaces/${s.ns.b}/acceleratorleases/tenant-b`,
    );
    return {
      at: [tStuck, clock.firstTaken(s.holders), tGone, tCleared, tGranted],
      deleteToGrantedMs: tGranted - t0,
      recordsWrittenMs: tRecords - tStuck,
      evictions: (lease.status?.evictions ?? []).filter(
        (e) => e.result === 'Evicted' || e.result === 'Deleted',
      ).length,
      ...(before && after && { controllerRequests: countsSince(before, after) }),
      clock,
    };
  } finally {
    for (const w of [leases, accels, pods]) w.stop();
  }
}

/**
 * The floor: nobody waits (so the reaper has nothing to do), tenant A is released, and on seeing
 * Stuck a bare client sends the policy/v1 Evictions for every holder at once, with the same UID
 * preconditions the reaper sends, then waits for their deletions by watch.
 */
async function bareClientClears(b: Bench, s: StuckScenario) {
  const accels = await b.watch<Obj>(`${GROUP}/accelerators`, 'floor-accel');
  const pods = await b.watch<Pod>(`/api/v1/namespaces/${s.ns.io}/pods`, 'floor-holders');
  const clock = new PodClock(pods);
  try {
    const stuck = accels.next(stuckOf(s), `${s.accel} Stuck`);
    const free = accels.next(
      (e, x) => e !== 'delete' && x.metadata.name === s.accel && x.status?.phase === 'Free',
      `${s.accel} Free`,
      300_000,
    );
    const allGone = clock.allGone(s.holders);
    await b.request('DELETE', `${GROUP}/namespaces/${s.ns.a}/acceleratorleases/tenant-a`);
    const tStuck = await stuck;
    const uid = new Map(pods.informer.list().map((p) => [p.metadata.name, p.metadata.uid]));
    await Promise.all(
      s.holders.map((name) =>
        b.request('POST', `/api/v1/namespaces/${s.ns.io}/pods/${name}/eviction`, {
          apiVersion: 'policy/v1',
          kind: 'Eviction',
          metadata: { name, namespace: s.ns.io },
          deleteOptions: { preconditions: { uid: uid.get(name) } },
        }),
      ),
    );
    const tGone = await allGone;
    const tFree = await free;
    return { at: [tStuck, clock.firstTaken(s.holders), tGone, tFree] };
  } finally {
    for (const w of [accels, pods]) w.stop();
  }
}

/** A fresh node with `count` like pods (same spec, names and labels), drained by `command`. */
async function timeDrain(
  b: Bench,
  kubeconfig: string,
  count: number,
  command: (node: string) => [string, string[]],
  log: (s: string) => void,
): Promise<DrainRun> {
  const node = await b.node('bench-drain');
  const ns = await b.namespace(`${node}-pods`);
  try {
    const names = Array.from({ length: count }, (_, i) => `holder-${String(i).padStart(3, '0')}`);
    await b.pods(ns, names, node, { app: 'bench-drain' });
    const [bin, args] = command(node);
    const shown = `${bin.split('/').at(-1)} ${args.join(' ').replace(node, '<node>')}`;
    log(`  ${shown}`);
    const d0 = performance.now();
    await promisify(execFile)(bin, args, { env: { ...process.env, KUBECONFIG: kubeconfig } });
    return { command: shown, ms: r1(performance.now() - d0) };
  } finally {
    await b.request('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
    await b.deleteNode(node);
  }
}

const DRAIN_FLAGS = [
  '--pod-selector=app=bench-drain',
  '--ignore-daemonsets',
  '--delete-emptydir-data',
  '--force',
  '--timeout=300s',
];

/** What the drains run: the built kubectl, and bench/drain with its request rate (if built). */
export interface DrainTools {
  kubectl: string;
  fast?: { bin: string; qps: number; burst: number };
}

/** One round: the reaper, then the bare client on the scenario built again, then the drains. */
export async function benchReaper(
  b: Bench,
  kubeconfig: string,
  tools: DrainTools,
  holders: number,
  log: (s: string) => void,
  /** The controller's requests by "verb resource", counted around the reaper's clearing. */
  controllerRequests?: () => Promise<Record<string, number>>,
): Promise<ReaperRound> {
  const holderPods = bareHolders(holders);
  const s1 = await stuckScenario(b, kubeconfig, holderPods, log);
  const reaper = await reaperClears(b, s1, log, controllerRequests).finally(() => s1.stop());
  log('  the same scenario again, cleared by a bare client');
  const s2 = await stuckScenario(b, kubeconfig, holderPods, log);
  const floor = await bareClientClears(b, s2).finally(() => s2.stop());
  const count = s1.holders.length;
  const drain = await timeDrain(
    b,
    kubeconfig,
    count,
    (n) => [tools.kubectl, ['drain', n, ...DRAIN_FLAGS]],
    log,
  );
  const fast = tools.fast;
  const drainFast = fast
    ? {
        ...(await timeDrain(
          b,
          kubeconfig,
          count,
          (n) => [fast.bin, [`--qps=${fast.qps}`, `--burst=${fast.burst}`, ...DRAIN_FLAGS, n]],
          log,
        )),
        qps: fast.qps,
        burst: fast.burst,
      }
    : undefined;
  const stages = clearingStages(reaper.at);
  const floorStages = clearingStages(floor.at);
  const reaperMs = (reaper.at[4] as number) - (reaper.at[0] as number);
  const floorMs = (floor.at[2] as number) - (floor.at[0] as number);
  return {
    holders: count,
    reaperMs: r1(reaperMs),
    deleteToGrantedMs: r1(reaper.deleteToGrantedMs),
    recordsWrittenMs: r1(reaper.recordsWrittenMs),
    floorMs: r1(floorMs),
    overFloor: r3(reaperMs / floorMs),
    drain,
    overDrain: r3(reaperMs / drain.ms),
    ...(drainFast && { drainFast, overDrainFast: r3(reaperMs / drainFast.ms) }),
    evictions: reaper.evictions,
    ...(reaper.controllerRequests && { controllerRequests: reaper.controllerRequests }),
    stages: stages.map((x) => ({ ...x, ms: r1(x.ms) })),
    floorStages: floorStages.map((x) => ({ ...x, ms: r1(x.ms) })),
  };
}

function meanCounts(counted: readonly Record<string, number>[]) {
  if (counted.length === 0) return {};
  const sum: Record<string, number> = {};
  for (const c of counted) for (const [k, v] of Object.entries(c)) sum[k] = (sum[k] ?? 0) + v;
  const mean = (v: number) => Math.round((v / counted.length) * 10) / 10;
  return {
    controllerRequests: Object.fromEntries(Object.entries(sum).map(([k, v]) => [k, mean(v)])),
  };
}

/** Medians over the rounds; each ratio is the median reaper time over the median floor or drain. */
export function summarizeRounds(rounds: ReaperRound[]): ReaperResult {
  const first = rounds[0];
  if (!first) throw new Error('no reaper round ran');
  const reaperMs = median(rounds.map((r) => r.reaperMs));
  const floorMs = median(rounds.map((r) => r.floorMs));
  const drainMs = median(rounds.map((r) => r.drain.ms));
  const fast = rounds.flatMap((r) => (r.drainFast ? [r.drainFast] : []));
  const drainFastMs = fast.length === rounds.length ? median(fast.map((d) => d.ms)) : undefined;
  return {
    holders: first.holders,
    reaperMs,
    deleteToGrantedMs: median(rounds.map((r) => r.deleteToGrantedMs)),
    recordsWrittenMs: median(rounds.map((r) => r.recordsWrittenMs)),
    floorMs,
    overFloor: r3(reaperMs / floorMs),
    drainMs,
    overDrain: r3(reaperMs / drainMs),
    ...(drainFastMs !== undefined && {
      drainFastMs,
      overDrainFast: r3(reaperMs / drainFastMs),
      drainFastCommand: first.drainFast?.command,
    }),
    drainCommand: first.drain.command,
    evictions: Math.min(...rounds.map((r) => r.evictions)),
    ...meanCounts(rounds.flatMap((r) => (r.controllerRequests ? [r.controllerRequests] : []))),
    stages: stageTable(
      rounds.map((r) => r.stages),
      rounds.map((r) => r.floorStages),
    ),
    rounds,
  };
}
