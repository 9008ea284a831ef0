// Item 1: handoff latency (lease deletion to the next lease Granted) against its floors, a bare
// client's write-then-observe-by-watch hops (floor.ts), interleaved sample by sample, and the
// handoff's time by stage (watch events on the lease and the Accelerator) beside the floor's hops.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { percentiles, type Percentiles } from './report.ts';
import {
  configMapFloor,
  type Floor,
  type FloorSample,
  handoffWritesFloor,
  HOPS_PER_HANDOFF,
  HOPS_TWO_ROUND,
  twoRoundFloor,
} from './floor.ts';
import {
  groupHops,
  type Mark,
  type Stage,
  stagesBetween,
  stageTable,
  type StageRow,
} from './stages.ts';
import type { Bench } from './stack.ts';
import { counter, GROUP, requestsByVerb, sleep, startAgent, waitFor } from './stack.ts';

interface Lease {
  metadata: { name?: string; namespace?: string };
  status?: { phase?: string; queuePosition?: number };
}
interface Accel {
  metadata: { name?: string };
  spec?: { owner?: { lease?: { name?: string }; epoch?: number } };
  status?: { phase?: string; owner?: { lease?: { name?: string } }; observedEpoch?: number };
}

type Ratios = { p50: number; p95: number; p99: number };

export interface HandoffResult {
  handoffs: number;
  hopsPerHandoff: number;
  handoffMs: Percentiles;
  /** The handoff's own writes, on objects of the same kinds, by a bare client (floor.ts). */
  floorMs: Percentiles;
  overFloor: Ratios;
  /** Hops of the two-round floor: the deletion, then owner and Granted in one round. */
  twoRoundHops: number;
  twoRoundFloorMs: Percentiles;
  overTwoRoundFloor: Ratios;
  /** The same number of hops on a ConfigMap: what a hop costs on a built-in kind. */
  configMapFloorMs: Percentiles;
  overConfigMapFloor: Ratios;
  /**
   * The handoff by stage (DELETE sent, the new owner on the Accelerator seen, Owned at it seen,
   * Granted seen), beside the four-hop floor's hops grouped the same way (hops 1 and 2, 3, 4).
   */
  stages: StageRow[];
  /** DELETE sent to its answer (inside the first stage). */
  deleteAnsweredMs: Percentiles;
  /**
   * Controller API requests (all verbs, Events included) per handoff, from its own
   * rest_client_requests_total: from just before the deletion until the controller is quiet
   * after the old lease is gone. `meanByVerb` keys are "verb resource", with the status code
   * appended when it is not 2xx.
   */
  requestsPerHandoff?: Percentiles & { mean: number; meanByVerb: Record<string, number> };
  /**
   * Mean per handoff of the components' own timers over the same window as the requests (so the
   * work after Granted, the finalizer and the Events, is in): WORK's names.
   */
  workPerHandoff?: Record<string, number>;
  samples: {
    handoffMs: number[];
    floorMs: number[];
    twoRoundFloorMs: number[];
    configMapFloorMs: number[];
    requests: number[];
  };
}

/** The marks of one handoff, in order; the first is the DELETE sent. */
export const HANDOFF_MARKS = ['DELETE sent', 'owner seen', 'Owned seen', 'Granted seen'] as const;
/** The four-hop floor's hops as the handoff's stages: the deletion and the owner write are one. */
const FLOOR_GROUPS = [2, 1, 1];

/** The components' own counters read around each handoff: name, process, metric. */
const WORK = [
  ['controller reconciles', 'controller', 'controller_runtime_reconcile_total', 1],
  ['controller reconcile ms', 'controller', 'controller_runtime_reconcile_time_seconds_sum', 1000],
  ['controller queue wait ms', 'controller', 'workqueue_queue_duration_seconds_sum', 1000],
  ['agent syncs', 'agent', 'accel_agent_sync_duration_seconds_count', 1],
  ['agent sync ms', 'agent', 'accel_agent_sync_duration_seconds_sum', 1000],
] as const;

function work(texts: { controller: string; agent: string }): Record<string, number> {
  return Object.fromEntries(
    WORK.map(([name, proc, metric, scale]) => [name, counter(texts[proc], metric) * scale]),
  );
}

/** One handoff and the floors sampled right after it. */
export interface HandoffSample {
  /** performance.now() of each of HANDOFF_MARKS. */
  marks: number[];
  deleteAnsweredMs: number;
  /** Controller requests during the handoff, by "verb resource" (absent: not counted). */
  requests?: Record<string, number>;
  /** The components' timers over the same window (WORK's names). */
  work?: Record<string, number>;
  floor: FloorSample;
  twoRoundFloor: FloorSample;
  configMapFloor: FloorSample;
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const ratio = (a: number, c: number) => r2(a / c);

/** The figures of a run of handoffs: percentiles, ratios against each floor, stages, requests. */
export function summarizeHandoffs(samples: readonly HandoffSample[]): HandoffResult {
  const handoffMs = samples.map((s) => (s.marks.at(-1) as number) - (s.marks[0] as number));
  const floorMs = samples.map((s) => s.floor.ms);
  const twoRoundFloorMs = samples.map((s) => s.twoRoundFloor.ms);
  const configMapFloorMs = samples.map((s) => s.configMapFloor.ms);
  const h = percentiles(handoffMs);
  const over = (x: Percentiles): Ratios => ({
    p50: ratio(h.p50, x.p50),
    p95: ratio(h.p95, x.p95),
    p99: ratio(h.p99, x.p99),
  });
  const f = percentiles(floorMs);
  const f2 = percentiles(twoRoundFloorMs);
  const cf = percentiles(configMapFloorMs);
  const stageNames = stagesBetween(HANDOFF_MARKS.map((m, i): Mark => [m, i])).map((s) => s.name);
  const handoffStages: Stage[][] = samples.map((s) =>
    stagesBetween(HANDOFF_MARKS.map((m, i): Mark => [m, s.marks[i] as number])),
  );
  const floorStages = samples.map((s) => groupHops(s.floor.hopsMs, FLOOR_GROUPS, stageNames));
  const counted = samples.flatMap((s) => (s.requests ? [s.requests] : []));
  const requests = counted.map((r) => Object.values(r).reduce((a, x) => a + x, 0));
  const byVerb: Record<string, number> = {};
  for (const r of counted) for (const [v, c] of Object.entries(r)) byVerb[v] = (byVerb[v] ?? 0) + c;
  const works = samples.flatMap((s) => (s.work ? [s.work] : []));
  return {
    handoffs: samples.length,
    hopsPerHandoff: HOPS_PER_HANDOFF,
    handoffMs: h,
    floorMs: f,
    overFloor: over(f),
    twoRoundHops: HOPS_TWO_ROUND,
    twoRoundFloorMs: f2,
    overTwoRoundFloor: over(f2),
    configMapFloorMs: cf,
    overConfigMapFloor: over(cf),
    stages: stageTable(handoffStages, floorStages),
    deleteAnsweredMs: percentiles(samples.map((s) => s.deleteAnsweredMs)),
    ...(requests.length > 0 && {
      requestsPerHandoff: {
        ...percentiles(requests),
        mean: r2(requests.reduce((s, x) => s + x, 0) / requests.length),
        meanByVerb: Object.fromEntries(
          Object.entries(byVerb)
            .filter(([, c]) => c > 0)
            .map(([v, c]) => [v, r2(c / requests.length)]),
        ),
      },
    }),
    ...(works.length > 0 && {
      workPerHandoff: Object.fromEntries(
        Object.keys(works[0] ?? {}).map((k) => [
          k,
          r2(works.reduce((a, w) => a + (w[k] ?? 0), 0) / works.length),
        ]),
      ),
    }),
    samples: {
      handoffMs: handoffMs.map(r2),
      floorMs: floorMs.map(r2),
      twoRoundFloorMs: twoRoundFloorMs.map(r2),
      configMapFloorMs: configMapFloorMs.map(r2),
      requests,
    },
  };
}

/** A request count once it has stopped moving (quiet for 150 ms, at most 2 s). */
async function settled(
  count: () => Promise<Record<string, number>>,
): Promise<Record<string, number>> {
  const sum = (r: Record<string, number>) => Object.values(r).reduce((s, x) => s + x, 0);
  let last = await count();
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    await sleep(150);
    const now = await count();
    if (sum(now) === sum(last)) break;
    last = now;
  }
  return last;
}

const minus = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(Object.entries(after).map(([v, c]) => [v, c - (before[v] ?? 0)]));

export async function benchHandoff(
  b: Bench,
  kubeconfig: string,
  n: number,
  log: (s: string) => void,
  /** The controller's /metrics (read between handoffs, never inside the timed window). */
  controllerMetrics?: () => Promise<string>,
): Promise<HandoffResult> {
  const node = await b.node('bench-hand');
  const accel = `${node}-hl0`;
  const agent = await startAgent(kubeconfig, node, 'dynamic');
  const ns = await b.namespace(`bench-handoff-${randomBytes(2).toString('hex')}`);
  const floors: Floor[] = [];
  const requestCount = controllerMetrics && (async () => requestsByVerb(await controllerMetrics()));
  const readBoth = async () => ({
    controller: controllerMetrics ? await controllerMetrics() : '',
    agent: await agent.metrics(),
  });
  try {
    await waitFor(`accelerator ${accel}`, () => b.request('GET', `${GROUP}/accelerators/${accel}`));
    const leases = await b.watch<Lease>(`${GROUP}/namespaces/${ns}/acceleratorleases`, 'leases');
    const accels = await b.watch<Accel>(`${GROUP}/accelerators`, 'handoff-accelerators');
    floors.push(
      await handoffWritesFloor(b, ns, node),
      await twoRoundFloor(b, ns, node),
      await configMapFloor(b, ns),
    );
    const [floor, floor2, cmFloor] = floors as [Floor, Floor, Floor];
    const name = (i: number) => `h-${i}`;
    const granted = (lease: string) =>
      leases.next(
        (e, l) => e !== 'delete' && l.metadata.name === lease && l.status?.phase === 'Granted',
        `lease ${lease} Granted`,
      );
    const first = granted(name(0));
    await b.lease(ns, name(0), { accelerator: accel });
    await first;

    const samples: HandoffSample[] = [];
    for (let i = 1; i <= n; i++) {
      const queued = leases.next(
        (e, l) => e !== 'delete' && l.metadata.name === name(i) && l.status?.queuePosition === 1,
        `lease ${name(i)} queued`,
      );
      await b.lease(ns, name(i), { accelerator: accel });
      await queued;
      // Let the previous handoff's trailing work (events, finalizer) finish before timing.
      const before = requestCount ? await settled(requestCount) : (await sleep(100), undefined);
      const workBefore = controllerMetrics && work(await readBoth());

      const mine = (a: Accel) => a.metadata.name === accel;
      const owner = accels.next(
        (e, a) => e !== 'delete' && mine(a) && a.spec?.owner?.lease?.name === name(i),
        `${accel} owner ${name(i)}`,
      );
      const owned = accels.next(
        (e, a) =>
          e !== 'delete' &&
          mine(a) &&
          a.status?.phase === 'Owned' &&
          a.status.owner?.lease?.name === name(i),
        `${accel} Owned by ${name(i)}`,
      );
      const done = granted(name(i));
      const gone = leases.next(
        (e, l) => e === 'delete' && l.metadata.name === name(i - 1),
        `lease ${name(i - 1)} gone`,
      );
      const t0 = performance.now();
      await b.request('DELETE', `${GROUP}/namespaces/${ns}/acceleratorleases/${name(i - 1)}`);
      const answered = performance.now();
      const marks = [t0, await owner, await owned, await done];
      await gone;
      const requests =
        requestCount && before ? minus(await settled(requestCount), before) : undefined;
      const workDone = workBefore && minus(work(await readBoth()), workBefore);

      // The floors, right after, on the same API server.
      samples.push({
        marks,
        deleteAnsweredMs: answered - t0,
        ...(requests && { requests }),
        ...(workDone && { work: workDone }),
        floor: await floor.sample(),
        twoRoundFloor: await floor2.sample(),
        configMapFloor: await cmFloor.sample(),
      });
      if (i % 50 === 0) {
        const last = samples.at(-1) as HandoffSample;
        log(
          `handoff ${i}/${n}: last ${((marks[3] as number) - t0).toFixed(1)} ms, floor ${last.floor.ms.toFixed(1)} ms, two-round floor ${last.twoRoundFloor.ms.toFixed(1)} ms`,
        );
      }
    }
    leases.stop();
    accels.stop();
    return summarizeHandoffs(samples);
  } finally {
    for (const f of floors) await f.stop();
    await agent.stop();
    await b.request('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
    await b.deleteNode(node);
  }
}
