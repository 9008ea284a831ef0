// Operator bounds on what tenants choose, on a real API server: a tenant with only the built-in
// edit role in its namespace is refused, at admission, any lease outside the AcceleratorLeasePolicy
// its namespace selects (and any lease at all where the label names no known policy), with a
// message naming the policy and what it allows; the controller queues at most the policy's
// leases per namespace. Only objects with the release's guard label are guarded.
import { describe, expect, it, onTestFinished } from 'vitest';
import { LEASE_POLICY_LABEL, type AcceleratorLease } from '../src/crds/index.ts';
import type { KubeClient } from '../src/kube/index.ts';
import { helm, testNamespace } from './harness/index.ts';
import { CHART, identityOf, installChart, refusal, tenantIn, type Release } from './stack/chart.ts';
import { api, GROUP, ready, startController, waitFor } from './stack/index.ts';

const MERGE = 'application/merge-patch+json';
const POLICIES = `${GROUP}/acceleratorleasepolicies`;
const leases = (ns: string) => `${GROUP}/namespaces/${ns}/acceleratorleases`;

/** The chart's default bounds, plus a maxDuration so that the duration bound is exercised. */
const DEFAULT_SPEC = {
  priority: { min: -1000, max: 0 },
  minGracePeriodSeconds: 10,
  maxEvictions: 10,
  maxDuration: '2h',
  maxLeasesPerNamespace: 16,
};
/** Looser for everything a lease chooses, and only two leases per namespace. */
const LOOSE_SPEC = {
  priority: { min: -1000, max: 1000000 },
  minGracePeriodSeconds: 0,
  maxEvictions: 1000,
  maxLeasesPerNamespace: 2,
};

function leaseBody(release: Release, ns: string, name: string, spec: Record<string, unknown>) {
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'AcceleratorLease',
    metadata: { name, namespace: ns, labels: release.guardLabel },
    spec: {
      // No such device: these leases only wait, and no device of another suite is touched.
      accelerator: `${release.name}-no-device`,
      holder: { podSelector: { matchLabels: { app: name } } },
      ...spec,
    },
  };
}

/** A namespace of this test whose leases are bounded by `policy` (none: the default policy). */
async function namespaceWith(prefix: string, policy?: string): Promise<string> {
  const ns = await testNamespace(prefix);
  if (policy !== undefined) {
    await api(
      'PATCH',
      `/api/v1/namespaces/${ns}`,
      { metadata: { labels: { [LEASE_POLICY_LABEL]: policy } } },
      MERGE,
    );
  }
  return ns;
}

interface Setup {
  release: Release;
  loose: string;
  create(
    tenant: KubeClient,
    ns: string,
    name: string,
    spec: Record<string, unknown>,
    dryRun?: boolean,
  ): Promise<AcceleratorLease>;
}

async function setUp(): Promise<Setup> {
  const release = await installChart({
    defaultPolicy: DEFAULT_SPEC,
    policies: { loose: LOOSE_SPEC },
  });
  const create: Setup['create'] = (tenant, ns, name, spec, dryRun = false) =>
    tenant.request<AcceleratorLease>({
      method: 'POST',
      path: leases(ns) + (dryRun ? '?dryRun=All' : ''),
      body: leaseBody(release, ns, name, spec),
    });
  return { release, loose: `${release.name}-loose`, create };
}

/** Waits until the tenant may create leases (the edit role aggregates the chart's ClusterRole)
 * and the release's admission policies refuse `spec` in `ns` (the API server has loaded the
 * bindings and their params); returns that first refusal. */
async function policiesInEffect(
  s: Setup,
  tenant: KubeClient,
  ns: string,
  spec: Record<string, unknown>,
): Promise<{ code: number; message: string }> {
  return waitFor('the lease policies in effect', async () => {
    const r = await refusal(s.create(tenant, ns, 'probe', spec, true)).catch(() => undefined);
    return r?.message.includes('AcceleratorLeasePolicy') ? r : undefined;
  });
}

describe('lease policy', () => {
  it('rejects policy values the schema does not allow, before anything is installed', async () => {
    const bad: [string, string][] = [
      ['leasePolicy.policies.x.maxEvictions=5000', 'maximum: got 5,000, want 1,000'],
      ['leasePolicy.policies.x.maxDuration=forever', "'forever' does not match pattern"],
      ['leasePolicy.policies.x.maxLeases=3', "additional properties 'maxLeases' not allowed"],
      ['leasePolicy.policies.Team_A.maxEvictions=5', "invalid propertyName 'Team_A'"],
      ['leasePolicy.defaultPolicy=Default', "'Default' does not match pattern"],
    ];
    for (const [value, why] of bad) {
      const r = await helm(['template', 'r', CHART, '--kube-version', '1.30.0', '--set', value]);
      expect(r.code, value).not.toBe(0);
      expect(r.stderr, value).toContain(why);
    }
  });

  it('refuses at admission what the namespace policy does not allow, naming the policy and the bound', async () => {
    const s = await setUp();
    const { release } = s;
    const def = release.defaultPolicy;
    const nsA = await namespaceWith('policy-default');
    const nsB = await namespaceWith('policy-loose', s.loose);
    const nsC = await namespaceWith('policy-unknown', 'no-such-policy');
    const [tenantA, tenantB, tenantC] = [
      await tenantIn(nsA),
      await tenantIn(nsB),
      await tenantIn(nsC),
    ];
    const inBounds = { duration: '2h' };
    const by = `allowed by AcceleratorLeasePolicy ${def} (namespace ${nsA} has no ${LEASE_POLICY_LABEL} label, so the default policy applies)`;

    const jump = await policiesInEffect(s, tenantA, nsA, { ...inBounds, priority: 1000000 });
    expect(jump.code).toBe(403);
    expect(jump.message).toContain(
      `AcceleratorLease ${nsA}/probe: priority 1000000 is outside [-1000, 0] ${by}`,
    );

    const refused = async (name: string, spec: Record<string, unknown>) => {
      const r = await refusal(s.create(tenantA, nsA, name, spec));
      expect(r.code, r.message).toBe(403);
      return r.message;
    };
    expect(await refused('low', { ...inBounds, priority: -1001 })).toContain(
      `AcceleratorLease ${nsA}/low: priority -1001 is outside [-1000, 0] ${by}`,
    );
    expect(
      await refused('no-grace', {
        ...inBounds,
        revocation: { gracePeriodSeconds: 0, maxEvictions: 5 },
      }),
    ).toContain(
      `AcceleratorLease ${nsA}/no-grace: spec.revocation.gracePeriodSeconds 0 is below the minimum 10 ${by}`,
    );
    expect(
      await refused('greedy', {
        ...inBounds,
        revocation: { gracePeriodSeconds: 30, maxEvictions: 11 },
      }),
    ).toContain(
      `AcceleratorLease ${nsA}/greedy: spec.revocation.maxEvictions 11 is above the maximum 10 ${by}`,
    );
    expect(await refused('long', { duration: '2h0m1s' })).toContain(
      `AcceleratorLease ${nsA}/long: spec.duration 2h0m1s is longer than the maximum 2h ${by}`,
    );
    expect(await refused('forever', {})).toContain(
      `AcceleratorLease ${nsA}/forever: spec.duration must be set, at most 2h, ${by}`,
    );

    // At the bounds, and with the lease defaults (priority 0, grace 30, 5 evictions): admitted.
    await s.create(tenantA, nsA, 'edge', {
      priority: -1000,
      duration: '120m',
      revocation: { gracePeriodSeconds: 10, maxEvictions: 10 },
    });
    const plain = await s.create(tenantA, nsA, 'plain', inBounds);
    expect(plain.spec).toMatchObject({ priority: 0, revocation: { gracePeriodSeconds: 30 } });
    // UPDATE is bounded too: the tenant cannot raise its priority afterwards.
    const raise = await refusal(
      tenantA.request({
        method: 'PATCH',
        path: `${leases(nsA)}/plain`,
        body: { spec: { priority: 5 } },
        contentType: MERGE,
      }),
    );
    expect(raise.message).toContain(`AcceleratorLease ${nsA}/plain: priority 5 is outside`);
    // A metadata-only UPDATE (what the controller's finalizer writes are) is not re-judged.
    await tenantA.request({
      method: 'PATCH',
      path: `${leases(nsA)}/plain`,
      body: { metadata: { annotations: { note: 'x' } } },
      contentType: MERGE,
    });

    // The looser policy of a labelled namespace: what the default refuses, it admits.
    const looseRefusal = await policiesInEffect(s, tenantB, nsB, { priority: -1001 });
    await s.create(tenantB, nsB, 'urgent', {
      priority: 1000000,
      revocation: { gracePeriodSeconds: 0, maxEvictions: 1000 },
    });
    expect(looseRefusal.message).toContain(
      `AcceleratorLease ${nsB}/probe: priority -1001 is outside [-1000, 1000000] allowed by AcceleratorLeasePolicy ${s.loose} (namespace ${nsB} selects it with label ${LEASE_POLICY_LABEL})`,
    );

    // A label naming no policy of the chart: refused whatever the lease, never let through.
    const unknown = await waitFor('the unknown-policy refusal in effect', async () => {
      const r = await refusal(s.create(tenantC, nsC, 'any', inBounds, true)).catch(() => undefined);
      return r?.message.includes('no such policy') ? r : undefined;
    });
    expect(unknown.code).toBe(403);
    expect(unknown.message).toContain(
      `AcceleratorLease ${nsC}/any: namespace ${nsC} selects AcceleratorLeasePolicy no-such-policy with label ${LEASE_POLICY_LABEL}, and no such policy is installed (known: ${def}, ${s.loose})`,
    );
    await refusal(s.create(tenantC, nsC, 'any', inBounds));

    // Tenants read policies, never write them, nor move their namespace to another policy.
    const read = await tenantA.request<{ spec: { maxDuration?: string } }>({
      method: 'GET',
      path: `${POLICIES}/${def}`,
    });
    expect(read.spec.maxDuration).toBe('2h');
    const writes = [
      () =>
        tenantA.request({
          method: 'PATCH',
          path: `${POLICIES}/${def}`,
          body: { spec: { priority: { max: 1000000 } } },
          contentType: MERGE,
        }),
      () =>
        tenantA.request({
          method: 'POST',
          path: POLICIES,
          body: {
            apiVersion: 'accel.dmabuf.io/v1alpha1',
            kind: 'AcceleratorLeasePolicy',
            metadata: { name: `${release.name}-mine` },
            spec: {},
          },
        }),
      () => tenantA.request({ method: 'DELETE', path: `${POLICIES}/${def}` }),
      () =>
        tenantA.request({
          method: 'PATCH',
          path: `/api/v1/namespaces/${nsA}`,
          body: { metadata: { labels: { [LEASE_POLICY_LABEL]: s.loose } } },
          contentType: MERGE,
        }),
    ];
    for (const w of writes) expect((await refusal(w())).code).toBe(403);

    // A policy the chart binds but someone deleted: its namespaces are refused, not unbounded.
    await api('DELETE', `${POLICIES}/${s.loose}`);
    const gone = await waitFor('the deleted policy refusing', async () => {
      const r = await refusal(s.create(tenantB, nsB, 'after', { priority: 0 }, true)).catch(
        () => undefined,
      );
      return r;
    });
    expect(gone.message).toContain(
      `binding '${release.name}-accel-lease-lease-bounds-policy-${s.loose}' denied request: failed to configure binding: no params found`,
    );
  });

  it('queues at most maxLeasesPerNamespace leases of a namespace, earliest first', async () => {
    const s = await setUp();
    const { release } = s;
    const ns = await namespaceWith('policy-count', s.loose);
    const tenant = await tenantIn(ns);
    onTestFinished(async () => {
      // Should the test stop before the controller releases them, finalizers would keep the
      // namespace terminating for good.
      const list = await api<{ items: AcceleratorLease[] }>('GET', leases(ns));
      for (const l of list.items) {
        await api(
          'PATCH',
          `${leases(ns)}/${l.metadata.name}`,
          { metadata: { finalizers: null } },
          MERGE,
        ).catch(() => undefined);
      }
    });
    // The controller as the chart's ServiceAccount: its RBAC must let it read policies and
    // Namespaces. Namespaces without the label get this release's default policy.
    const ctl = await identityOf(release.namespace, `${release.name}-accel-lease-controller`);
    await ready(
      await startController({
        extraArgs: ['--kubeconfig', ctl.file, '--default-lease-policy', release.defaultPolicy],
      }),
    );

    await policiesInEffect(s, tenant, ns, { priority: -1001 });
    for (const name of ['l1', 'l2', 'l3']) await s.create(tenant, ns, name, {});
    const reason = (l: AcceleratorLease) =>
      l.status?.conditions?.find((c) => c.type === 'Granted')?.reason;
    const get = (name: string) => api<AcceleratorLease>('GET', `${leases(ns)}/${name}`);
    const over = await waitFor('l3 left out of the queue', async () => {
      const l = await get('l3');
      return reason(l) === 'OverNamespaceLimit' ? l : undefined;
    });
    expect(over.status?.phase).toBe('Pending');
    expect(over.status?.conditions?.find((c) => c.type === 'Granted')?.message).toBe(
      `lease ${ns}/l3 is not queued: namespace ${ns} has 2 leases ahead of it (l1, l2), and AcceleratorLeasePolicy ${s.loose} allows 2 per namespace (maxLeasesPerNamespace); it is queued once one of them is deleted or finishes`,
    );
    for (const name of ['l1', 'l2']) {
      await waitFor(
        `${name} queued`,
        async () => reason(await get(name)) === 'AcceleratorNotFound',
      );
    }
    const warning = await waitFor('a Warning Event on l3', async () => {
      const list = await api<{
        items: { type: string; reason: string; note: string; regarding: { name: string } }[];
      }>('GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events`);
      return list.items.find((e) => e.regarding.name === 'l3' && e.reason === 'OverNamespaceLimit');
    });
    expect(warning.type).toBe('Warning');
    expect(warning.note).toContain(`AcceleratorLeasePolicy ${s.loose} allows 2 per namespace`);

    // Level-triggered: once an earlier lease goes, the next in creation order is queued.
    await tenant.request({ method: 'DELETE', path: `${leases(ns)}/l1` });
    await waitFor('l3 queued once l1 is gone', async () =>
      reason(await get('l3')) === 'AcceleratorNotFound' ? true : undefined,
    );
    await s.create(tenant, ns, 'l4', {});
    await waitFor('l4 left out of the queue', async () =>
      reason(await get('l4')) === 'OverNamespaceLimit' ? true : undefined,
    );
    expect(reason(await get('l2'))).toBe('AcceleratorNotFound');
  });
});
