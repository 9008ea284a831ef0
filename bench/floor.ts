// The floors of the handoff benchmark: a bare client's write-then-observe-by-watch hops (the same
// KubeClient and Informer, no controller or agent logic) against the same API server, each
// observed by watch before the next: this design's four, the two a design without the agent's
// answer in the chain would need, and four on a built-in kind for reference.
import { performance } from 'node:perf_hooks';
import { API_VERSION } from '../src/crds/index.ts';
import { type Bench, GROUP, waitFor, type Watch } from './stack.ts';

/**
 * The sequential hops a handoff needs at minimum, each a write observed by the next actor's watch:
 * the user deletes the lease (controller sees it), the controller writes the new owner and epoch
 * on the Accelerator (agent sees it), the agent reports Owned (controller sees it), the
 * controller writes Granted (the tenant sees it).
 */
export const HOPS_PER_HANDOFF = 4;

/**
 * The least any handoff through the API server needs: the deletion seen, then the new owner and
 * Granted written in one round (concurrently) and seen. A design that granted before the agent
 * reported Owned (trusting the epoch fence at the device) could get this close; this one cannot.
 */
export const HOPS_TWO_ROUND = 2;

interface Obj {
  metadata: { name?: string; annotations?: Record<string, string> };
  data?: Record<string, string>;
  spec?: { owner?: { epoch?: number } };
  status?: { phase?: string; observedEpoch?: number };
}

export interface FloorSample {
  /** Wall time of all the hops, in ms. */
  ms: number;
  /** Each hop's own time, in order, in ms (they add up to ms). */
  hopsMs: number[];
}

export interface Floor {
  sample(): Promise<FloorSample>;
  stop(): Promise<void>;
}

/** Hop times from the start and the time each hop was seen. */
const hopsOf = (t0: number, seen: readonly number[]): FloorSample => ({
  ms: (seen.at(-1) ?? t0) - t0,
  hopsMs: seen.map((t, i) => t - (i === 0 ? t0 : (seen[i - 1] as number))),
});

const MERGE = 'application/merge-patch+json';

/** Write, then resolve with the arrival time of the watch event that shows it. */
async function hop(
  watch: Watch<Obj>,
  seen: (o: Obj) => boolean,
  what: string,
  write: () => Promise<unknown>,
): Promise<number> {
  const observed = watch.next((e, o) => e === 'update' && seen(o), what);
  await write();
  return observed;
}

/** A floor lease and Accelerator, the watches that see them, and their writes as hops. */
async function floorObjects(b: Bench, ns: string, tag: string, name: string) {
  const accel = `bench-${name}-${tag}`;
  const accels = await b.watch<Obj>(`${GROUP}/accelerators`, `${name}-accelerators`);
  const leases = await b.watch<Obj>(
    `${GROUP}/namespaces/${ns}/acceleratorleases`,
    `${name}-leases`,
  );
  await b.request('POST', `${GROUP}/accelerators`, {
    apiVersion: API_VERSION,
    kind: 'Accelerator',
    metadata: { name: accel, labels: { 'accel.dmabuf.io/node': 'bench-floor' } },
    spec: {
      node: 'bench-floor',
      index: 0,
      model: 'gaudi2',
      memoryBytes: 2 ** 30,
      exporterProfile: 'dynamic',
    },
  });
  await b.lease(ns, name, { accelerator: `${accel}-absent` });
  await waitFor(`the ${name} lease settled`, async () => {
    const l = await b.request<Obj>('GET', `${GROUP}/namespaces/${ns}/acceleratorleases/${name}`);
    return l.status?.phase === 'Pending';
  });
  const leasePath = `${GROUP}/namespaces/${ns}/acceleratorleases/${name}`;
  return {
    touchLease: (v: string) =>
      hop(
        leases,
        (o) => o.metadata.name === name && o.metadata.annotations?.['bench/v'] === v,
        `${name} lease ${v}`,
        () => b.request('PATCH', leasePath, { metadata: { annotations: { 'bench/v': v } } }, MERGE),
      ),
    writeOwner: (epoch: number) =>
      hop(
        accels,
        (o) => o.metadata.name === accel && o.spec?.owner?.epoch === epoch,
        `${name} owner ${epoch}`,
        () =>
          b.request(
            'PATCH',
            `${GROUP}/accelerators/${accel}`,
            { spec: { owner: { epoch } } },
            MERGE,
          ),
      ),
    applyStatus: (epoch: number) =>
      hop(
        accels,
        (o) => o.metadata.name === accel && o.status?.observedEpoch === epoch,
        `${name} status ${epoch}`,
        () =>
          b.request(
            'PATCH',
            `${GROUP}/accelerators/${accel}/status?fieldManager=bench-floor&force=true`,
            {
              apiVersion: API_VERSION,
              kind: 'Accelerator',
              metadata: { name: accel },
              status: { phase: 'Free', observedEpoch: epoch, owner: { epoch } },
            },
            'application/apply-patch+yaml',
          ),
      ),
    stop: async () => {
      accels.stop();
      leases.stop();
      await b.request('DELETE', `${GROUP}/accelerators/${accel}`).catch(() => undefined);
    },
  };
}

/**
 * The handoff's own four writes, on objects of the same kinds: a lease update (the deletion of a
 * lease that has a finalizer is one), a merge patch of an Accelerator's spec.owner, a server-side
 * apply of that Accelerator's status, and a lease update again (Granted). CRD writes carry their
 * schema and CEL validation, which a floor on a built-in kind would not. The controller sees
 * these objects too and has nothing to write for them: the lease names an accelerator that does
 * not exist (it stays Pending), and the accelerator has no lease and no agent.
 */
export async function handoffWritesFloor(b: Bench, ns: string, tag: string): Promise<Floor> {
  const o = await floorObjects(b, ns, tag, 'floor');
  let n = 0;
  return {
    sample: async () => {
      n++;
      const t0 = performance.now();
      // One after another: each write is sent once the previous one is seen.
      const deleted = await o.touchLease(`${n}-deleted`);
      const owner = await o.writeOwner(n);
      const status = await o.applyStatus(n);
      const granted = await o.touchLease(`${n}-granted`);
      return hopsOf(t0, [deleted, owner, status, granted]);
    },
    stop: o.stop,
  };
}

/**
 * HOPS_TWO_ROUND on the same kinds: the lease update (the deletion), then the owner patch and the
 * lease update (Granted) sent together; the second hop ends when both are seen.
 */
export async function twoRoundFloor(b: Bench, ns: string, tag: string): Promise<Floor> {
  const o = await floorObjects(b, ns, tag, 'floor2');
  let n = 0;
  return {
    sample: async () => {
      n++;
      const t0 = performance.now();
      const deleted = await o.touchLease(`${n}-deleted`);
      const both = await Promise.all([o.writeOwner(n), o.touchLease(`${n}-granted`)]);
      return hopsOf(t0, [deleted, Math.max(...both)]);
    },
    stop: o.stop,
  };
}

/** The same number of hops as merge patches of one ConfigMap: the cost of a hop on a built-in kind. */
export async function configMapFloor(b: Bench, ns: string): Promise<Floor> {
  const cms = await b.watch<Obj>(`/api/v1/namespaces/${ns}/configmaps`, 'floor-configmaps');
  await b.request('POST', `/api/v1/namespaces/${ns}/configmaps`, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'floor', namespace: ns },
    data: { v: 'start' },
  });
  let n = 0;
  return {
    sample: async () => {
      n++;
      const t0 = performance.now();
      const seen: number[] = [];
      for (let h = 0; h < HOPS_PER_HANDOFF; h++) {
        const v = `${n}-${h}`;
        const t = await hop(
          cms,
          (o) => o.metadata.name === 'floor' && o.data?.v === v,
          `floor write ${v}`,
          () =>
            b.request('PATCH', `/api/v1/namespaces/${ns}/configmaps/floor`, { data: { v } }, MERGE),
        );
        seen.push(t);
      }
      return hopsOf(t0, seen);
    },
    stop: () => {
      cms.stop();
      return Promise.resolve();
    },
  };
}
