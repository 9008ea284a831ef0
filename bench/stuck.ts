// The stuck-handoff scenario the reaper benchmarks share: tenant A holds a `dynamic` device, its
// trainer's buffers are registered as RDMA memory regions (non-revocable) by holder pods in another
// namespace, so releasing A leaves the device Stuck. Also the clocks that mark, by watch, when each
// holder's eviction was taken and when it was gone.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Bench, Proc, Watch } from './stack.ts';
import { GROUP, startAgent, waitFor } from './stack.ts';

const IMPORTERS_PER_EXPORT = 50; // the CRD allows 64

export interface Obj {
  metadata: { name?: string; namespace?: string };
  status?: { phase?: string; queuePosition?: number; owner?: { lease?: { name?: string } } };
}

export interface Pod {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
  };
  status?: { phase?: string };
}

export interface StuckScenario {
  node: string;
  accel: string;
  /** Tenant A's namespace, the holders' namespace, tenant B's namespace. */
  ns: { a: string; io: string; b: string };
  /** The holder pods' names, all in ns.io, each named by one rdma-mr importer. */
  holders: string[];
  agent: Proc;
  stop(): Promise<void>;
}

const pad = (i: number) => String(i).padStart(3, '0');

export interface HolderPods {
  /** Creates the holder pods in `ns` on `node` (Running) and returns their names. */
  (b: Bench, ns: string, node: string): Promise<string[]>;
}

/** `count` bare holder pods, holder-000, holder-001, ... */
export const bareHolders =
  (count: number): HolderPods =>
  async (b, ns, node) => {
    const names = Array.from({ length: count }, (_, i) => `holder-${pad(i)}`);
    await b.pods(ns, names, node, { app: 'bench-holder' });
    return names;
  };

/**
 * Tenant A Granted on a fresh node's device, its trainer, the holders (made by `holderPods`), the
 * import grant and the exports, all Active: releasing tenant A then leaves the device Stuck.
 */
export async function stuckScenario(
  b: Bench,
  kubeconfig: string,
  holderPods: HolderPods,
  log: (s: string) => void,
): Promise<StuckScenario> {
  const suffix = randomBytes(2).toString('hex');
  const node = await b.node('bench-reap');
  const accel = `${node}-hl0`;
  const agent = await startAgent(kubeconfig, node, 'dynamic');
  const ns = {
    a: await b.namespace(`bench-reap-a-${suffix}`),
    io: await b.namespace(`bench-reap-io-${suffix}`),
    b: await b.namespace(`bench-reap-b-${suffix}`),
  };
  const stop = async () => {
    await agent.stop();
    for (const n of Object.values(ns))
      await b.request('DELETE', `/api/v1/namespaces/${n}`).catch(() => undefined);
    await b.deleteNode(node);
  };
  try {
    await waitFor(`accelerator ${accel}`, () => b.request('GET', `${GROUP}/accelerators/${accel}`));
    await b.lease(ns.a, 'tenant-a', { accelerator: accel });
    await waitFor('tenant-a Granted', async () => {
      const l = await b.request<Obj>(
        'GET',
        `${GROUP}/namespaces/${ns.a}/acceleratorleases/tenant-a`,
      );
      return l.status?.phase === 'Granted';
    });
    await b.pods(ns.a, ['trainer-0'], node, { app: 'tenant-a' });
    const holders = await holderPods(b, ns.io, node);
    log(`  ${holders.length} holder pods Running on ${node}`);
    // The holders' namespace lets tenant A's exports name its pods as importers.
    await b.request('POST', `${GROUP}/namespaces/${ns.io}/dmabufimportgrants`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufImportGrant',
      metadata: { name: 'from-tenant-a', namespace: ns.io },
      spec: { from: [{ namespace: ns.a }] },
    });
    const exports: string[] = [];
    for (let i = 0; i < holders.length; i += IMPORTERS_PER_EXPORT) {
      const name = `buf-${exports.length}`;
      exports.push(name);
      await b.request('POST', `${GROUP}/namespaces/${ns.a}/dmabufexports`, {
        apiVersion: 'accel.dmabuf.io/v1alpha1',
        kind: 'DmaBufExport',
        metadata: { name, namespace: ns.a },
        spec: {
          accelerator: accel,
          lease: 'tenant-a',
          exporter: { pod: 'trainer-0' },
          sizeBytes: 1 << 20,
          importers: holders.slice(i, i + IMPORTERS_PER_EXPORT).map((pod, k) => ({
            name: `mr${i + k}`,
            kind: 'rdma-mr',
            pod: { namespace: ns.io, name: pod },
          })),
        },
      });
    }
    for (const name of exports) {
      await waitFor(`export ${name} Active`, async () => {
        const e = await b.request<Obj>('GET', `${GROUP}/namespaces/${ns.a}/dmabufexports/${name}`);
        return e.status?.phase === 'Active';
      });
    }
    return { node, accel, ns, holders, agent, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * When each pod's eviction was taken (first seen terminating, or gone) and when it was gone, by
 * watch arrival time; `allGone` resolves when every named pod is.
 */
export class PodClock {
  readonly taken = new Map<string, number>();
  readonly gone = new Map<string, number>();
  private waiters: { names: readonly string[]; resolve: (t: number) => void }[] = [];

  constructor(watch: Watch<Pod>) {
    const mark = (pod: Pod, deleted: boolean) => {
      const t = performance.now();
      const name = pod.metadata.name;
      if (deleted || pod.metadata.deletionTimestamp !== undefined)
        if (!this.taken.has(name)) this.taken.set(name, t);
      if (!deleted) return;
      this.gone.set(name, t);
      this.waiters = this.waiters.filter((w) => {
        if (!w.names.every((n) => this.gone.has(n))) return true;
        w.resolve(t);
        return false;
      });
    };
    watch.informer.on('update', (p: Pod) => mark(p, false));
    watch.informer.on('delete', (p: Pod) => mark(p, true));
  }

  /** The arrival time of the deletion that left none of `names`. */
  allGone(names: readonly string[], timeoutMs = 300_000): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        const left = names.filter((n) => !this.gone.has(n));
        reject(
          new Error(
            `${left.length} pods still present after ${timeoutMs / 1000}s: ${left.slice(0, 5).join(', ')}`,
          ),
        );
      }, timeoutMs);
      this.waiters.push({
        names,
        resolve: (t) => {
          clearTimeout(timer);
          resolve(t);
        },
      });
    });
  }

  /** The earliest time any of `names` was taken. */
  firstTaken(names: readonly string[]): number {
    return Math.min(...names.map((n) => this.taken.get(n) ?? Infinity));
  }
}
