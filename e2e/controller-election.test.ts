// The controller process under leader election, as the chart runs it: every replica (a standby,
// one whose election namespace is missing, one still filling its caches) exits 0 soon after
// SIGTERM, and a missing election namespace is one error a person sees, in the log and on
// /readyz, until it exists.
import { randomBytes } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { kubeConfig, TEST_NAMESPACE_LABEL, testNamespace } from './harness/index.ts';
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

async function readyz(c: Component): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${c.httpPort}/readyz`);
  return { status: res.status, body: await res.text() };
}

/** A namespace name nothing has created yet; deleted after the test if the test creates it. */
function missingNamespace(prefix: string): string {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  onTestFinished(async () => {
    await api('DELETE', `/api/v1/namespaces/${name}`).catch(() => undefined);
  });
  return name;
}

const errorLines = (c: Component) =>
  c
    .log()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .filter((l) => l.level >= 50);

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

  it('says once, in the log and on /readyz, to create a missing election namespace, and leads once it exists', async () => {
    const ns = missingNamespace('late-election-ns');
    const c = await startController({ electionNamespace: ns });
    const wanted = `leader election: namespace ${ns} does not exist: create it (kubectl create namespace ${ns}) or pass --leader-election-namespace`;
    const probe = await waitFor('/readyz naming the namespace', async () => {
      const r = await readyz(c);
      return r.body.includes(wanted) ? r : undefined;
    });
    expect(probe.status).toBe(503);
    // Several retries later (retry period 1 s) there is still exactly one error line.
    await sleep(4_000);
    expect(errorLines(c).map((l) => l.msg)).toEqual([wanted]);

    await api('POST', '/api/v1/namespaces', {
      metadata: { name: ns, labels: { [TEST_NAMESPACE_LABEL]: 'true' } },
    });
    await waitFor('it leads', async () => (await holder(ns)) === c.name);
    await ready(c);
    expect((await readyz(c)).body).not.toContain('does not exist');
    expect(errorLines(c)).toHaveLength(1);
    expect(c.exited()).toBe(false);
  });
});
