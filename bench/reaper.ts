// Item 2: a stuck handoff cleared by the reaper (Accelerator Stuck to the waiting lease Granted),
// against `kubectl drain --pod-selector` evicting the same number of like pods, in the same run.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { median } from './report.ts';
import type { Bench } from './stack.ts';
import { GROUP, startAgent, waitFor } from './stack.ts';

const IMPORTERS_PER_EXPORT = 50; // the CRD allows 64

interface Obj {
  metadata: { name?: string; namespace?: string };
  status?: { phase?: string; queuePosition?: number };
}

export interface ReaperRound {
  holders: number;
  /** Accelerator Stuck (seen by watch) to the waiting lease Granted (seen by watch). */
  reaperMs: number;
  /** Lease deletion to Granted, the whole stuck handoff as the next tenant sees it. */
  deleteToGrantedMs: number;
  /** Wall time of `kubectl drain` on a node holding the same number of like pods. */
  drainMs: number;
  ratio: number;
  evictions: number;
  drainCommand: string;
}

const pad = (i: number) => String(i).padStart(3, '0');

export async function benchReaper(
  b: Bench,
  kubeconfig: string,
  kubectl: string,
  holders: number,
  log: (s: string) => void,
): Promise<ReaperRound> {
  const suffix = randomBytes(2).toString('hex');
  const node = await b.node('bench-reap');
  const drainNode = await b.node('bench-drain');
  const accel = `${node}-hl0`;
  const agent = await startAgent(kubeconfig, node, 'dynamic');
  const [a, io, nb] = [
    await b.namespace(`bench-reap-a-${suffix}`),
    await b.namespace(`bench-reap-io-${suffix}`),
    await b.namespace(`bench-reap-b-${suffix}`),
  ];
  try {
    await waitFor(`accelerator ${accel}`, () => b.request('GET', `${GROUP}/accelerators/${accel}`));
    const leases = await b.watch<Obj>(`${GROUP}/namespaces/${nb}/acceleratorleases`, 'reap-b');
    const accels = await b.watch<Obj>(`${GROUP}/accelerators`, 'reap-accel');
    await b.lease(a, 'tenant-a', { accelerator: accel });
    await waitFor('tenant-a Granted', async () => {
      const l = await b.request<Obj>('GET', `${GROUP}/namespaces/${a}/acceleratorleases/tenant-a`);
      return l.status?.phase === 'Granted';
    });
    await b.pods(a, ['trainer-0'], node, { app: 'tenant-a' });
    const names = Array.from({ length: holders }, (_, i) => `holder-${pad(i)}`);
    log(`  creating ${holders} holder pods and ${holders} like pods to drain`);
    await b.pods(io, names, node, { app: 'bench-holder' });
    // The drain set: like pods (same spec and names) in another namespace, on another node.
    await b.pods(nb, names, drainNode, { app: 'bench-drain' });
    // The holders' namespace lets tenant A's exports name its pods as importers.
    await b.request('POST', `${GROUP}/namespaces/${io}/dmabufimportgrants`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufImportGrant',
      metadata: { name: 'from-tenant-a', namespace: io },
      spec: { from: [{ namespace: a }] },
    });
    const exports: string[] = [];
    for (let i = 0; i < holders; i += IMPORTERS_PER_EXPORT) {
      const name = `buf-${exports.length}`;
      exports.push(name);
      await b.request('POST', `${GROUP}/namespaces/${a}/dmabufexports`, {
        apiVersion: 'accel.dmabuf.io/v1alpha1',
        kind: 'DmaBufExport',
        metadata: { name, namespace: a },
        spec: {
          accelerator: accel,
          lease: 'tenant-a',
          exporter: { pod: 'trainer-0' },
          sizeBytes: 1 << 20,
          importers: names.slice(i, i + IMPORTERS_PER_EXPORT).map((pod, k) => ({
            name: `mr${i + k}`,
            kind: 'rdma-mr',
            pod: { namespace: io, name: pod },
          })),
        },
      });
    }
    for (const name of exports) {
      await waitFor(`export ${name} Active`, async () => {
        const e = await b.request<Obj>('GET', `${GROUP}/namespaces/${a}/dmabufexports/${name}`);
        return e.status?.phase === 'Active';
      });
    }
    const queued = leases.next(
      (e, l) => e !== 'delete' && l.metadata.name === 'tenant-b' && l.status?.queuePosition === 1,
      'tenant-b queued',
    );
    await b.lease(nb, 'tenant-b', {
      accelerator: accel,
      revocation: { gracePeriodSeconds: 0, maxEvictions: holders },
    });
    await queued;

    const stuck = accels.next(
      (e, x) => e !== 'delete' && x.metadata.name === accel && x.status?.phase === 'Stuck',
      `${accel} Stuck`,
    );
    const granted = leases.next(
      (e, l) => e !== 'delete' && l.metadata.name === 'tenant-b' && l.status?.phase === 'Granted',
      'tenant-b Granted',
      300_000,
    );
    log(`  releasing tenant-a: ${holders} RDMA MRs keep the device pinned`);
    const t0 = performance.now();
    await b.request('DELETE', `${GROUP}/namespaces/${a}/acceleratorleases/tenant-a`);
    const tStuck = await stuck;
    const tGranted = await granted;
    leases.stop();
    accels.stop();
    const lease = await b.request<{ status?: { evictions?: { result: string }[] } }>(
      'GET',
      `${GROUP}/namespaces/${nb}/acceleratorleases/tenant-b`,
    );
    const evictions = (lease.status?.evictions ?? []).filter(
      (e) => e.result === 'Evicted' || e.result === 'Deleted',
    ).length;

    const drainArgs = [
      'drain',
      drainNode,
      '--pod-selector=app=bench-drain',
      '--ignore-daemonsets',
      '--delete-emptydir-data',
      '--force',
      '--timeout=300s',
    ];
    log(`  kubectl ${drainArgs.join(' ')}`);
    const d0 = performance.now();
    await promisify(execFile)(kubectl, drainArgs, {
      env: { ...process.env, KUBECONFIG: kubeconfig },
    });
    const drainMs = performance.now() - d0;
    const reaperMs = tGranted - tStuck;
    const r = (x: number) => Math.round(x * 10) / 10;
    return {
      holders,
      reaperMs: r(reaperMs),
      deleteToGrantedMs: r(tGranted - t0),
      drainMs: r(drainMs),
      ratio: Math.round((reaperMs / drainMs) * 1000) / 1000,
      evictions,
      drainCommand: `kubectl ${drainArgs.join(' ').replace(drainNode, '<node>')}`,
    };
  } finally {
    await agent.stop();
    for (const ns of [a, io, nb])
      await b.request('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
    await b.deleteNode(node);
    await b.deleteNode(drainNode);
  }
}

/** The medians over the rounds; the ratio is median reaper over median drain. */
export interface ReaperResult extends ReaperRound {
  rounds: ReaperRound[];
}

export function summarizeRounds(rounds: ReaperRound[]): ReaperResult {
  const first = rounds[0];
  if (!first) throw new Error('no reaper round ran');
  const reaperMs = median(rounds.map((r) => r.reaperMs));
  const drainMs = median(rounds.map((r) => r.drainMs));
  return {
    holders: first.holders,
    reaperMs,
    deleteToGrantedMs: median(rounds.map((r) => r.deleteToGrantedMs)),
    drainMs,
    ratio: Math.round((reaperMs / drainMs) * 1000) / 1000,
    evictions: Math.min(...rounds.map((r) => r.evictions)),
    drainCommand: first.drainCommand,
    rounds,
  };
}
