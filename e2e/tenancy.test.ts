// Multi-tenant safety on a real API server, each attack made with the identity an attacker would
// have: a tenant ServiceAccount with only the built-in edit role in its namespace, and a node
// agent whose token is bound to a pod on its own node. What must not happen is refused by the
// API server, or never becomes an eviction.
import { randomBytes } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Accelerator, AcceleratorLease, DmaBufExport, Pin } from '../src/crds/index.ts';
import type { KubeClient } from '../src/kube/index.ts';
import { TEST_NAMESPACE_LABEL, testNamespace } from './harness/index.ts';
import {
  agentIdentity,
  identityOf,
  installChart,
  patch,
  refusal,
  tenantIn,
  type Release,
} from './stack/chart.ts';
import {
  api,
  createImportGrant,
  createPod,
  getLease,
  GROUP,
  phaseIs,
  podExists,
  podManifest,
  ready,
  startAgent,
  startController,
  testNode,
  waitFor,
} from './stack/index.ts';

const MERGE = 'application/merge-patch+json';

/** Runs the real agent for `node` as the chart's node-bound identity; guards its device. */
async function agentOn(release: Release, node: string, profile: 'static' | 'dynamic') {
  const identity = await agentIdentity(release, node);
  await startAgent({ node, profile, kubeconfig: identity.file });
  const accel = `${node}-hl0`;
  await waitFor(`${accel} published`, () =>
    api<Accelerator>('GET', `${GROUP}/accelerators/${accel}`),
  );
  // From here on the admission policy guards this device (see Release.guardLabel).
  await api(
    'PATCH',
    `${GROUP}/accelerators/${accel}`,
    { metadata: { labels: release.guardLabel } },
    MERGE,
  );
  return { accel, identity };
}

/** The controller, run as the chart's ServiceAccount (the admission policy trusts only it). */
async function controllerOf(release: Release): Promise<void> {
  const sa = `${release.name}-accel-lease-controller`;
  const { file } = await identityOf(release.namespace, sa);
  await ready(await startController({ kubeconfig: file }));
}

function post(client: KubeClient, path: string, body: Record<string, unknown>) {
  return client.request({ method: 'POST', path, body });
}

/** A lease with no grace for its predecessor; `spec` overrides any of its fields. */
function lease(ns: string, name: string, accel: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'AcceleratorLease',
    metadata: { name, namespace: ns },
    spec: {
      accelerator: accel,
      holder: { podSelector: { matchLabels: { app: name } } },
      revocation: { gracePeriodSeconds: 0, maxEvictions: 5 },
      ...spec,
    },
  };
}

/** trainer-0's export `name` under lease `first`; `spec` overrides any of its fields. */
function exportOf(
  ns: string,
  accel: string,
  importers: unknown[],
  opts: { name?: string; labels?: Record<string, string>; spec?: Record<string, unknown> } = {},
) {
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'DmaBufExport',
    metadata: {
      name: opts.name ?? 'weights',
      namespace: ns,
      ...(opts.labels && { labels: opts.labels }),
    },
    spec: {
      accelerator: accel,
      lease: 'first',
      exporter: { pod: 'trainer-0' },
      sizeBytes: 1 << 20,
      importers,
      ...opts.spec,
    },
  };
}

const getExport = (ns: string) =>
  api<DmaBufExport>('GET', `${GROUP}/namespaces/${ns}/dmabufexports/weights`);

/**
 * The attack of the issue, as a tenant with edit in `attacker` only: its own pod exports a buffer
 * naming pods of `victims` as pinned importers, a second lease waits with no grace, and the first
 * lease goes. Returns the second lease once it is Granted.
 */
async function attack(
  node: string,
  accel: string,
  attacker: string,
  tenant: KubeClient,
  importers: { name: string; pod: { namespace: string; name: string } }[],
): Promise<AcceleratorLease> {
  const leases = `${GROUP}/namespaces/${attacker}/acceleratorleases`;
  await waitFor('the tenant may create leases (edit aggregates the chart role)', () =>
    post(tenant, leases, lease(attacker, 'first', accel)),
  );
  await phaseIs(attacker, 'first', 'Granted');
  await post(
    tenant,
    `/api/v1/namespaces/${attacker}/pods`,
    podManifest(attacker, 'trainer-0', node),
  );
  await waitFor('trainer Running', async () => {
    const p = await api<{ status?: { phase?: string } }>(
      'GET',
      `/api/v1/namespaces/${attacker}/pods/trainer-0`,
    );
    return p.status?.phase === 'Running';
  });
  await post(
    tenant,
    `${GROUP}/namespaces/${attacker}/dmabufexports`,
    exportOf(
      attacker,
      accel,
      importers.map((i) => ({ ...i, kind: 'pinned' })),
    ),
  );
  await waitFor(
    'export realized',
    async () => (await getExport(attacker)).status?.phase === 'Active',
  );
  await post(tenant, leases, lease(attacker, 'second', accel));
  await tenant.request({ method: 'DELETE', path: `${leases}/first` });
  return phaseIs(attacker, 'second', 'Granted', 60_000);
}

describe('tenancy', () => {
  it('a tenant cannot get another namespace pod evicted by naming it as an importer', async () => {
    const release = await installChart();
    const node = await testNode('ten');
    const { accel } = await agentOn(release, node, 'static');
    await controllerOf(release);
    const [attacker, victim] = [await testNamespace('attacker'), await testNamespace('victim')];
    const tenant = await tenantIn(attacker);
    await createPod(victim, 'loader-0', node);

    const granted = await attack(node, accel, attacker, tenant, [
      { name: 'v', pod: { namespace: victim, name: 'loader-0' } },
    ]);
    const v = (await getExport(attacker)).status?.attachments?.find((a) => a.name === 'v');
    expect(v?.state).toBe('Failed');
    expect(v?.message).toBe(
      `namespace ${victim} has no DmaBufImportGrant allowing imports from namespace ${attacker}: ` +
        `someone who may edit ${victim} creates one with spec.from: [{namespace: ${attacker}}] ` +
        `(kubectl apply -n ${victim} -f grant.yaml)`,
    );
    // The static device pinned on the attacker's own fds only: no eviction reached the victim.
    expect(await podExists(victim, 'loader-0')).toBe(true);
    expect((granted.status?.evictions ?? []).map((e) => e.pod.namespace)).not.toContain(victim);
  });

  it('with a grant the import works and pins as before, but only for the pods it selects', async () => {
    const release = await installChart();
    const node = await testNode('ten-grant');
    const { accel } = await agentOn(release, node, 'dynamic');
    await controllerOf(release);
    const [attacker, io] = [await testNamespace('tenant'), await testNamespace('team-io')];
    const tenant = await tenantIn(attacker);
    await createPod(io, 'loader-0', node, { app: 'loader' });
    await createPod(io, 'other-0', node);
    await createImportGrant(io, [attacker], { matchLabels: { app: 'loader' } });

    const granted = await attack(node, accel, attacker, tenant, [
      { name: 'nic0', pod: { namespace: io, name: 'loader-0' } },
      { name: 'nic1', pod: { namespace: io, name: 'other-0' } },
    ]);
    const attachments = (await getExport(attacker)).status?.attachments ?? [];
    expect(attachments.find((a) => a.name === 'nic1')?.message).toMatch(
      new RegExp(
        `^pod ${io}/other-0 is not selected by the podSelector of DmaBufImportGrant importers`,
      ),
    );
    expect(
      (granted.status?.evictions ?? []).map((e) => `${e.pod.namespace}/${e.pod.name}`),
    ).toEqual([`${io}/loader-0`]);
    expect(await podExists(io, 'loader-0')).toBe(false);
    expect(await podExists(io, 'other-0')).toBe(true);
  });

  it("an agent cannot speak for another node: node-a's agent is refused on node-b's objects", async () => {
    const release = await installChart();
    const [nodeA, nodeB] = [await testNode('ten-na'), await testNode('ten-nb')];
    const { accel: own, identity } = await agentOn(release, nodeA, 'dynamic');
    const agent = identity.client;
    const other = `${nodeB}-hl0`;
    const ns = await testNamespace('ten-exports');
    // node-b's device and an export on it, guarded by the policy like every object in production.
    await api('POST', `${GROUP}/accelerators`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'Accelerator',
      metadata: {
        name: other,
        labels: { ...release.guardLabel, 'accel.dmabuf.io/node': nodeB },
      },
      spec: { node: nodeB, index: 0, model: 'gaudi2', memoryBytes: 1 << 30 },
    });
    await api(
      'POST',
      `${GROUP}/namespaces/${ns}/dmabufexports`,
      exportOf(ns, other, [], { labels: release.guardLabel }),
    );
    const onlyOwn = `the accel-lease node agent of node ${nodeA} may write only its own node's Accelerators`;
    const attempts: [string, () => Promise<unknown>][] = [
      [
        'status',
        () => patch(agent, `${GROUP}/accelerators/${other}/status`, { status: { phase: 'Stuck' } }),
      ],
      ['spec', () => patch(agent, `${GROUP}/accelerators/${other}`, { spec: { model: 'evil' } })],
      [
        'labels',
        () => patch(agent, `${GROUP}/accelerators/${other}`, { metadata: { labels: { x: 'y' } } }),
      ],
      [
        'annotations',
        () =>
          patch(agent, `${GROUP}/accelerators/${other}`, { metadata: { annotations: { x: 'y' } } }),
      ],
      [
        'create on node-b',
        () =>
          post(agent, `${GROUP}/accelerators`, {
            apiVersion: 'accel.dmabuf.io/v1alpha1',
            kind: 'Accelerator',
            metadata: { name: `${nodeB}-hl1`, labels: release.guardLabel },
            spec: { node: nodeB, index: 1, model: 'gaudi2', memoryBytes: 1 << 30 },
          }),
      ],
      [
        'create named for node-a, placed on node-b',
        () =>
          post(agent, `${GROUP}/accelerators`, {
            apiVersion: 'accel.dmabuf.io/v1alpha1',
            kind: 'Accelerator',
            metadata: { name: `${nodeA}-hl7`, labels: release.guardLabel },
            spec: { node: nodeB, index: 7, model: 'gaudi2', memoryBytes: 1 << 30 },
          }),
      ],
      [
        'export status',
        () =>
          patch(agent, `${GROUP}/namespaces/${ns}/dmabufexports/weights/status`, {
            status: { phase: 'Pinned' },
          }),
      ],
    ];
    for (const [what, call] of attempts) {
      const r = await refusal(call());
      expect(r.code, what).toBe(403);
      expect(r.message, what).toContain(onlyOwn);
    }
    const relabel = await refusal(
      patch(agent, `${GROUP}/accelerators/${own}`, {
        metadata: { labels: { 'accel.dmabuf.io/node': nodeB } },
      }),
    );
    expect(relabel.message).toContain(onlyOwn);
    // Its own device it may annotate.
    await patch(agent, `${GROUP}/accelerators/${own}`, {
      metadata: { annotations: { 'example.com/checked': 'yes' } },
    });
    // The same ServiceAccount with a token bound to no pod names no node, and writes nothing.
    const unbound = await identityOf(release.agentNamespace, `${release.name}-accel-lease-agent`);
    const r = await refusal(
      patch(unbound.client, `${GROUP}/accelerators/${own}/status`, { status: { phase: 'Free' } }),
    );
    expect(r.message).toContain('may write only with a token bound to its pod on a node');
    const b = await api<Accelerator>('GET', `${GROUP}/accelerators/${other}`);
    expect(b.spec.model).toBe('gaudi2');
    expect(b.status).toBeUndefined();
  });

  it("the reaper does not believe a node's pin naming a pod on another node: Unresolvable, no eviction", async () => {
    const release = await installChart();
    const [nodeA, nodeB] = [await testNode('ten-ra'), await testNode('ten-rb')];
    const rogue = (await agentIdentity(release, nodeA)).client;
    const accel = `${nodeA}-hl0`;
    const path = `${GROUP}/accelerators/${accel}`;
    // A compromised agent of node A plays its part of the protocol by hand.
    await post(rogue, `${GROUP}/accelerators`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'Accelerator',
      metadata: {
        name: accel,
        labels: { ...release.guardLabel, 'accel.dmabuf.io/node': nodeA },
      },
      spec: { node: nodeA, index: 0, model: 'gaudi2', memoryBytes: 1 << 30 },
    });
    const report = (status: Record<string, unknown>) =>
      patch(rogue, `${path}/status`, {
        status: { heartbeatTime: new Date().toISOString(), ...status },
      });
    await report({ phase: 'Free', owner: { epoch: 0 }, observedEpoch: 0 });
    await controllerOf(release);
    const [a, b, victimNs] = [
      await testNamespace('ten-a'),
      await testNamespace('ten-b'),
      await testNamespace('ten-victim'),
    ];
    await createPod(victimNs, 'db-0', nodeB);
    const victim = await api<{ metadata: { uid: string } }>(
      'GET',
      `/api/v1/namespaces/${victimNs}/pods/db-0`,
    );
    await api('POST', `${GROUP}/namespaces/${a}/acceleratorleases`, lease(a, 'first', accel));
    const owned = await waitFor('spec.owner for lease first', async () => {
      const d = await api<Accelerator>('GET', path);
      return d.spec.owner?.lease ? d.spec.owner : undefined;
    });
    await report({ phase: 'Owned', owner: owned, observedEpoch: owned.epoch });
    await phaseIs(a, 'first', 'Granted');
    await api('POST', `${GROUP}/namespaces/${b}/acceleratorleases`, lease(b, 'second', accel));
    await api('DELETE', `${GROUP}/namespaces/${a}/acceleratorleases/first`);
    const next = await waitFor('spec.owner for lease second', async () => {
      const d = await api<Accelerator>('GET', path);
      return d.spec.owner?.lease?.namespace === b ? d.spec.owner : undefined;
    });
    const pin: Pin = {
      inode: 1,
      importer: 'nic0',
      kind: 'rdma-mr',
      pod: { namespace: victimNs, name: 'db-0' },
      podUID: victim.metadata.uid,
      pid: 4242,
      epoch: owned.epoch,
      since: new Date().toISOString(),
    };
    await report({
      phase: 'Stuck',
      owner: { epoch: next.epoch },
      observedEpoch: next.epoch,
      pins: [pin],
    });
    const blocked = await waitFor(
      'lease second Unresolvable',
      async () => {
        const l = await getLease(b, 'second');
        const c = l.status?.conditions?.find((x) => x.type === 'Blocked');
        return c?.reason === 'Unresolvable' ? c : undefined;
      },
      60_000,
    );
    expect(blocked.message).toContain(
      `pod ${victimNs}/db-0 runs on node ${nodeB}, not on ${nodeA} where the accelerator is`,
    );
    expect((await getLease(b, 'second')).status?.evictions ?? []).toEqual([]);
    expect(await podExists(victimNs, 'db-0')).toBe(true);
  });
});

describe('admitted extremes', () => {
  it('the longest names, the longest duration and the largest size admitted wedge nothing', async () => {
    const node = await testNode('ten-x');
    const accel = `${node}-hl0`;
    await startAgent({ node, profile: 'dynamic' });
    await ready(await startController());
    // A namespace of the longest name the API server allows.
    const ns = `x${randomBytes(4).toString('hex')}`.padEnd(63, 'x');
    await api('POST', '/api/v1/namespaces', {
      metadata: { name: ns, labels: { [TEST_NAMESPACE_LABEL]: 'true' } },
    });
    onTestFinished(async () => {
      await api('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
    });
    const longest = (c: string) => c.repeat(253);
    // A label value holds 63 characters, not a lease name's 253.
    const holder = { podSelector: { matchLabels: { app: 'long' } } };
    const first = longest('a');
    const leases = `${GROUP}/namespaces/${ns}/acceleratorleases`;
    const tooLong = await refusal(
      api('POST', leases, lease(ns, 'never', accel, { duration: '9999999999h' })),
    );
    expect(tooLong.code).toBe(422);
    expect(tooLong.message).toContain('spec.duration');
    await api(
      'POST',
      leases,
      lease(ns, first, accel, { holder, duration: '8760h', priority: 1000000 }),
    );
    const granted = await phaseIs(ns, first, 'Granted');
    expect(Date.parse(granted.status?.expiresAt ?? '')).toBeGreaterThan(
      Date.now() + 8759 * 3_600_000,
    );
    await createPod(ns, 'trainer-0', node);
    await createPod(ns, 'loader-0', node);
    const weights = longest('w');
    const nic0 = { name: 'nic0', kind: 'rdma-mr', pod: { namespace: ns, name: 'loader-0' } };
    await api(
      'POST',
      `${GROUP}/namespaces/${ns}/dmabufexports`,
      exportOf(ns, accel, [nic0], { name: weights, spec: { lease: first } }),
    );
    // Larger than any device: the export fails for good, and nothing else does.
    await api(
      'POST',
      `${GROUP}/namespaces/${ns}/dmabufexports`,
      exportOf(ns, accel, [], {
        name: 'huge',
        spec: { lease: first, sizeBytes: Number.MAX_SAFE_INTEGER },
      }),
    );
    await waitFor('the long-named export Active', async () => {
      const e = await api<DmaBufExport>(
        'GET',
        `${GROUP}/namespaces/${ns}/dmabufexports/${weights}`,
      );
      return e.status?.phase === 'Active';
    });
    await waitFor('the huge export Failed', async () => {
      const e = await api<DmaBufExport>('GET', `${GROUP}/namespaces/${ns}/dmabufexports/huge`);
      return e.status?.phase === 'Failed';
    });
    await api('POST', leases, lease(ns, longest('b'), accel, { holder }));
    await api('DELETE', `${leases}/${first}`);
    // With no grace the reaper acts on the pin as soon as the agent reports it, so the pin is
    // seen through the eviction it caused: its reason names the export of the longest name.
    const next = await phaseIs(ns, longest('b'), 'Granted', 60_000);
    expect(next.status?.evictions?.map((e) => e.pod.name)).toEqual(['loader-0']);
    expect(next.status?.evictions?.[0]?.reason).toContain(`export ${ns}/${weights}`);
    // Events about objects of the longest names are recorded too.
    await waitFor('an Event on the lease of the longest name', async () => {
      const list = await api<{ items: { regarding: { name: string } }[] }>(
        'GET',
        `/apis/events.k8s.io/v1/namespaces/${ns}/events`,
      );
      return list.items.some((e) => e.regarding.name === longest('b'));
    });
  });
});
