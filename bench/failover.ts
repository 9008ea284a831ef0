// Failover: from SIGKILL of the leading replica to the new leader's first reconcile, and to the
// handoff that was waiting completing, against the floor the election sets: a standby may take a
// Lease only once it has seen no renewal for a whole lease duration. Run on its own with
// `node bench/failover.ts` (writes results/failover.json), or as part of `npm run bench`.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { percentile } from './report.ts';
import { counter, GROUP, sleep, startAgent, startReplica, waitFor, type Bench } from './stack.ts';

export interface ElectionTimings {
  readonly label: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

/** The chart's defaults (client-go's), and the shorter timings the cluster tests run with. */
export const TIMINGS: readonly ElectionTimings[] = [
  {
    label: 'default 15s/10s/2s',
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
  },
  { label: 'short 4s/3s/1s', leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 1_000 },
];

export interface FailoverRow extends ElectionTimings {
  /** Medians over the samples. */
  readonly toFirstReconcileMs: number;
  readonly toHandoffMs: number;
  /** toFirstReconcileMs over the lease duration. */
  readonly overLease: number;
  readonly samples: { toFirstReconcileMs: number[]; toHandoffMs: number[] };
}

export interface FailoverResult {
  readonly rows: readonly FailoverRow[];
}

const flag = (ms: number) => `${ms / 1000}s`;

/** One failover: two replicas, tenant A Granted and B waiting; the leader dies as A is released. */
async function once(b: Bench, kubeconfig: string, t: ElectionTimings, node: string, accel: string) {
  const ns = await b.namespace(`failover-${randomBytes(3).toString('hex')}`);
  const args = (id: string) => [
    '--identity',
    id,
    '--leader-election-namespace',
    ns,
    '--lease-duration',
    flag(t.leaseDurationMs),
    '--renew-deadline',
    flag(t.renewDeadlineMs),
    '--retry-period',
    flag(t.retryPeriodMs),
  ];
  const replicas = new Map([
    ['failover-a', await startReplica(kubeconfig, args('failover-a'))],
    ['failover-b', await startReplica(kubeconfig, args('failover-b'))],
  ]);
  try {
    const holder = await waitFor('a leader', async () => {
      const l = await b
        .request<{ spec?: { holderIdentity?: string } }>(
          'GET',
          `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/accel-lease-controller`,
        )
        .catch(() => undefined);
      return l?.spec?.holderIdentity || undefined;
    });
    const leader = replicas.get(holder)!;
    const standby = [...replicas.values()].find((r) => r !== leader)!;
    const lease = (name: string) =>
      b.request('POST', `${GROUP}/namespaces/${ns}/acceleratorleases`, {
        apiVersion: 'accel.dmabuf.io/v1alpha1',
        kind: 'AcceleratorLease',
        metadata: { name, namespace: ns },
        spec: { accelerator: accel, holder: { podSelector: { matchLabels: { app: name } } } },
      });
    const phase = async (name: string) =>
      (
        await b.request<{ status?: { phase?: string; queuePosition?: number } }>(
          'GET',
          `${GROUP}/namespaces/${ns}/acceleratorleases/${name}`,
        )
      ).status;
    await lease('tenant-a');
    await waitFor('tenant-a Granted', async () => (await phase('tenant-a'))?.phase === 'Granted');
    await lease('tenant-b');
    await waitFor('tenant-b queued', async () => (await phase('tenant-b'))?.queuePosition === 1);

    const killedAt = performance.now();
    leader.child.kill('SIGKILL');
    await b.request('DELETE', `${GROUP}/namespaces/${ns}/acceleratorleases/tenant-a`);
    const reconciled = waitFor(
      'the new leader reconciling',
      async () =>
        counter(await standby.metrics(), 'controller_runtime_reconcile_total') > 0 &&
        performance.now(),
      120_000,
      20,
    );
    const granted = waitFor(
      'tenant-b Granted',
      async () => (await phase('tenant-b'))?.phase === 'Granted' && performance.now(),
      120_000,
      20,
    );
    const [r, g] = await Promise.all([reconciled, granted]);
    await b.request('DELETE', `${GROUP}/namespaces/${ns}/acceleratorleases/tenant-b`);
    await waitFor('tenant-b gone', async () => !(await phase('tenant-b').catch(() => undefined)));
    return { toFirstReconcileMs: Math.round(r - killedAt), toHandoffMs: Math.round(g - killedAt) };
  } finally {
    await Promise.all([...replicas.values()].map((p) => p.stop()));
    await b.request('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
  }
}

export async function benchFailover(
  b: Bench,
  kubeconfig: string,
  samples: number,
  log: (line: string) => void,
): Promise<FailoverResult> {
  const node = await b.node('failover');
  const agent = await startAgent(kubeconfig, node, 'dynamic');
  const accel = `${node}-hl0`;
  const rows: FailoverRow[] = [];
  try {
    for (const t of TIMINGS) {
      const s = { toFirstReconcileMs: [] as number[], toHandoffMs: [] as number[] };
      for (let i = 0; i < samples; i++) {
        const one = await once(b, kubeconfig, t, node, accel);
        s.toFirstReconcileMs.push(one.toFirstReconcileMs);
        s.toHandoffMs.push(one.toHandoffMs);
        log(
          `failover ${t.label} #${i + 1}: first reconcile ${one.toFirstReconcileMs} ms, handoff ${one.toHandoffMs} ms`,
        );
        await sleep(500);
      }
      const toFirstReconcileMs = percentile(s.toFirstReconcileMs, 50);
      rows.push({
        ...t,
        toFirstReconcileMs,
        toHandoffMs: percentile(s.toHandoffMs, 50),
        overLease: Math.round((toFirstReconcileMs / t.leaseDurationMs) * 100) / 100,
        samples: s,
      });
    }
  } finally {
    await agent.stop();
    await b.deleteNode(node);
  }
  return { rows };
}
