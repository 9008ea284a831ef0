// The floors of the handoff benchmark: the write-then-observe-by-watch hops a handoff cannot do
// without, done by a bare client (the same KubeClient and Informer, no controller or agent logic)
// against the same API server, one after another, each observed by watch before the next.
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

interface Obj {
  metadata: { name?: string; annotations?: Record<string, string> };
  data?: Record<string, string>;
  spec?: { owner?: { epoch?: number } };
  status?: { phase?: string; observedEpoch?: number };
}

export interface Floor {
  /** One sample: the wall time of HOPS_PER_HANDOFF hops, in ms. */
  sample(): Promise<number>;
  stop(): Promise<void>;
}

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

/**
 * The handoff's own four writes, on objects of the same kinds: a lease update (the deletion of a
 * lease that has a finalizer is one), a merge patch of an Accelerator's spec.owner, a server-side
 * apply of that Accelerator's status, and a lease update again (Granted). CRD writes carry their
 * schema and CEL validation, which a floor on a built-in kind would not. The controller sees
 * these objects too and has nothing to write for them: the lease names an accelerator that does
 * not exist (it stays Pending), and the accelerator has no lease and no agent.
 */
export async function handoffWritesFloor(b: Bench, ns: string, tag: string): Promise<Floor> {
  const accel = `bench-floor-${tag}`;
  const accels = await b.watch<Obj>(`${GROUP}/accelerators`, 'floor-accelerators');
  const leases = await b.watch<Obj>(`${GROUP}/namespaces/${ns}/acceleratorleases`, 'floor-leases');
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
  await b.lease(ns, 'floor', { accelerator: `${accel}-absent` });
  await waitFor('the floor lease settled', async () => {
    const l = await b.request<Obj>('GET', `${GROUP}/namespaces/${ns}/acceleratorleases/floor`);
    return l.status?.phase === 'Pending';
  });
  const leasePath = `${GROUP}/namespaces/${ns}/acceleratorleases/floor`;
  let n = 0;
  const touchLease = (v: string) =>
    hop(
      leases,
      (o) => o.metadata.name === 'floor' && o.metadata.annotations?.['bench/v'] === v,
      `floor lease ${v}`,
      () => b.request('PATCH', leasePath, { metadata: { annotations: { 'bench/v': v } } }, MERGE),
    );
  return {
    sample: async () => {
      n++;
      const t0 = performance.now();
      await touchLease(`${n}-deleted`);
      await hop(
        accels,
        (o) => o.metadata.name === accel && o.spec?.owner?.epoch === n,
        `floor owner ${n}`,
        () =>
          b.request(
            'PATCH',
            `${GROUP}/accelerators/${accel}`,
            { spec: { owner: { epoch: n } } },
            MERGE,
          ),
      );
      await hop(
        accels,
        (o) => o.metadata.name === accel && o.status?.observedEpoch === n,
        `floor status ${n}`,
        () =>
          b.request(
            'PATCH',
            `${GROUP}/accelerators/${accel}/status?fieldManager=bench-floor&force=true`,
            {
              apiVersion: API_VERSION,
              kind: 'Accelerator',
              metadata: { name: accel },
              status: { phase: 'Free', observedEpoch: n, owner: { epoch: n } },
            },
            'application/apply-patch+yaml',
          ),
      );
      return (await touchLease(`${n}-granted`)) - t0;
    },
    stop: async () => {
      accels.stop();
      leases.stop();
      await b.request('DELETE', `${GROUP}/accelerators/${accel}`).catch(() => undefined);
    },
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
      let seen = t0;
      for (let h = 0; h < HOPS_PER_HANDOFF; h++) {
        const v = `${n}-${h}`;
        seen = await hop(
          cms,
          (o) => o.metadata.name === 'floor' && o.data?.v === v,
          `floor write ${v}`,
          () =>
            b.request('PATCH', `/api/v1/namespaces/${ns}/configmaps/floor`, { data: { v } }, MERGE),
        );
      }
      return seen - t0;
    },
    stop: () => {
      cms.stop();
      return Promise.resolve();
    },
  };
}
