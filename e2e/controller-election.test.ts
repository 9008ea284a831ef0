// The controller process under leader election, as the chart runs it: every replica (a standby,
// one whose election namespace is missing, one still filling its caches) exits 0 soon after
// SIGTERM.
import { randomBytes } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { kubeConfig, testNamespace } from './harness/index.ts';
import {
  adminClient,
  api,
  ready,
  serviceAccountKubeconfig,
  sleep,
  startController,
  waitFor,
  type Component,
} from './stack/index.ts';

const LEASE = 'accel-lease-controller';

const holder = async (ns: string) =>
  (
    await api<{ spec?: { holderIdentity?: string } }>(
      'GET',
      `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${LEASE}`,
    )
  ).spec?.holderIdentity;

/** SIGTERM, then the exit code and how long it took, or 'running' if it outlives `withinMs`. */
async function terminate(c: Component, withinMs: number) {
  const started = Date.now();
  const code = await Promise.race([c.stop(), sleep(withinMs).then(() => 'running' as const)]);
  return { code, ms: Date.now() - started };
}

/** A namespace name nothing has created yet; deleted after the test if the test creates it. */
function missingNamespace(prefix: string): string {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  onTestFinished(async () => {
    await api('DELETE', `/api/v1/namespaces/${name}`).catch(() => undefined);
  });
  return name;
}

describe('controller replicas under leader election', () => {
  it('a standby exits 0 within seconds of SIGTERM while the leader keeps leading', async () => {
    const ns = await testNamespace('standby');
    const leader = await startController({ electionNamespace: ns, identity: 'leader' });
    await waitFor('a leader', async () => (await holder(ns)) === 'leader');
    const standby = await startController({ electionNamespace: ns, identity: 'standby' });
    await ready(standby);
    await waitFor('the standby sees the leader', () => standby.log().includes('leader observed'));

    const { code, ms } = await terminate(standby, 5_000);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2_000);
    expect(leader.exited()).toBe(false);
    expect(await holder(ns)).toBe('leader');
  });

  it('a replica whose election namespace is missing exits 0 within seconds of SIGTERM', async () => {
    const ns = missingNamespace('no-election-ns');
    const c = await startController({ electionNamespace: ns });
    await waitFor('an election attempt', () => /namespace|lease write failed/.test(c.log()));
    const { code, ms } = await terminate(c, 5_000);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2_000);
  });

  it('a replica whose caches cannot sync (its ServiceAccount may list nothing) exits 0 on SIGTERM', async () => {
    const ns = await testNamespace('unsynced');
    await api('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, {
      metadata: { name: 'nobody' },
    });
    const kubeconfig = await serviceAccountKubeconfig(adminClient(), kubeConfig(), {
      namespace: ns,
      serviceAccount: 'nobody',
    });
    const c = await startController({ electionNamespace: ns, kubeconfig });
    await waitFor('a failed list', () => c.log().includes('list failed; retrying'));
    const { code, ms } = await terminate(c, 5_000);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2_000);
  });
});
