// Item 1: handoff latency (lease deletion to the next lease Granted) against its floor, the same
// write-then-observe-by-watch hops done by a bare client (floor.ts), interleaved sample by sample.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { percentiles, type Percentiles } from './report.ts';
import { configMapFloor, type Floor, handoffWritesFloor, HOPS_PER_HANDOFF } from './floor.ts';
import type { Bench } from './stack.ts';
import { GROUP, sleep, startAgent, waitFor } from './stack.ts';

interface Lease {
  metadata: { name?: string; namespace?: string };
  status?: { phase?: string; queuePosition?: number };
}
export interface HandoffResult {
  handoffs: number;
  hopsPerHandoff: number;
  handoffMs: Percentiles;
  /** The handoff's own writes, on objects of the same kinds, by a bare client (floor.ts). */
  floorMs: Percentiles;
  overFloor: { p50: number; p95: number; p99: number };
  /** The same number of hops on a ConfigMap: what a hop costs on a built-in kind. */
  configMapFloorMs: Percentiles;
  overConfigMapFloor: { p50: number; p95: number; p99: number };
  /**
   * Controller API requests (all verbs, Events included) per handoff, from its own
   * rest_client_requests_total: from just before the deletion until the controller is quiet
   * after the old lease is gone. `meanByVerb` keys are "verb resource", with the status code
   * appended when it is not 2xx.
   */
  requestsPerHandoff?: Percentiles & { mean: number; meanByVerb: Record<string, number> };
  samples: {
    handoffMs: number[];
    floorMs: number[];
    configMapFloorMs: number[];
    requests: number[];
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

export async function benchHandoff(
  b: Bench,
  kubeconfig: string,
  n: number,
  log: (s: string) => void,
  /** The controller's requests by verb (read between handoffs, never inside the timed window). */
  requestCount?: () => Promise<Record<string, number>>,
): Promise<HandoffResult> {
  const node = await b.node('bench-hand');
  const accel = `${node}-hl0`;
  const agent = await startAgent(kubeconfig, node, 'dynamic');
  const ns = await b.namespace(`bench-handoff-${randomBytes(2).toString('hex')}`);
  const floors: Floor[] = [];
  try {
    await waitFor(`accelerator ${accel}`, () => b.request('GET', `${GROUP}/accelerators/${accel}`));
    const leases = await b.watch<Lease>(`${GROUP}/namespaces/${ns}/acceleratorleases`, 'leases');
    floors.push(await handoffWritesFloor(b, ns, node), await configMapFloor(b, ns));
    const [floor, cmFloor] = floors as [Floor, Floor];
    const name = (i: number) => `h-${i}`;
    const granted = (lease: string) =>
      leases.next(
        (e, l) => e !== 'delete' && l.metadata.name === lease && l.status?.phase === 'Granted',
        `lease ${lease} Granted`,
      );
    const first = granted(name(0));
    await b.lease(ns, name(0), { accelerator: accel });
    await first;

    const handoffMs: number[] = [];
    const floorMs: number[] = [];
    const configMapFloorMs: number[] = [];
    const requests: number[] = [];
    const byVerb: Record<string, number> = {};
    for (let i = 1; i <= n; i++) {
      const queued = leases.next(
        (e, l) => e !== 'delete' && l.metadata.name === name(i) && l.status?.queuePosition === 1,
        `lease ${name(i)} queued`,
      );
      await b.lease(ns, name(i), { accelerator: accel });
      await queued;
      // Let the previous handoff's trailing work (events, finalizer) finish before timing.
      const before = requestCount ? await settled(requestCount) : (await sleep(100), {});

      const done = granted(name(i));
      const gone = leases.next(
        (e, l) => e === 'delete' && l.metadata.name === name(i - 1),
        `lease ${name(i - 1)} gone`,
      );
      const t0 = performance.now();
      await b.request('DELETE', `${GROUP}/namespaces/${ns}/acceleratorleases/${name(i - 1)}`);
      handoffMs.push((await done) - t0);
      await gone;
      if (requestCount) {
        const after = await settled(requestCount);
        let n = 0;
        for (const [verb, c] of Object.entries(after)) {
          const d = c - (before[verb] ?? 0);
          byVerb[verb] = (byVerb[verb] ?? 0) + d;
          n += d;
        }
        requests.push(n);
      }

      // The floors, right after, on the same API server.
      floorMs.push(await floor.sample());
      configMapFloorMs.push(await cmFloor.sample());
      if (i % 50 === 0)
        log(
          `handoff ${i}/${n}: last ${handoffMs.at(-1)?.toFixed(1)} ms, floor ${floorMs.at(-1)?.toFixed(1)} ms`,
        );
    }
    leases.stop();
    const h = percentiles(handoffMs);
    const f = percentiles(floorMs);
    const cf = percentiles(configMapFloorMs);
    const ratio = (a: number, c: number) => Math.round((a / c) * 100) / 100;
    const over = (x: Percentiles) => ({
      p50: ratio(h.p50, x.p50),
      p95: ratio(h.p95, x.p95),
      p99: ratio(h.p99, x.p99),
    });
    return {
      handoffs: n,
      hopsPerHandoff: HOPS_PER_HANDOFF,
      handoffMs: h,
      floorMs: f,
      overFloor: over(f),
      configMapFloorMs: cf,
      overConfigMapFloor: over(cf),
      ...(requests.length > 0 && {
        requestsPerHandoff: {
          ...percentiles(requests),
          mean: Math.round((requests.reduce((s, x) => s + x, 0) / requests.length) * 100) / 100,
          meanByVerb: Object.fromEntries(
            Object.entries(byVerb)
              .filter(([, c]) => c > 0)
              .map(([v, c]) => [v, Math.round((c / requests.length) * 100) / 100]),
          ),
        },
      }),
      samples: {
        handoffMs: handoffMs.map((x) => Math.round(x * 100) / 100),
        floorMs: floorMs.map((x) => Math.round(x * 100) / 100),
        configMapFloorMs: configMapFloorMs.map((x) => Math.round(x * 100) / 100),
        requests,
      },
    };
  } finally {
    for (const f of floors) await f.stop();
    await agent.stop();
    await b.request('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
    await b.deleteNode(node);
  }
}
