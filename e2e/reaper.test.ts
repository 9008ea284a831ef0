// The seed's story on a real API server: a loader pod's RDMA memory region keeps tenant A's
// buffer pinned; the reaper evicts exactly the pods that hold pins, per exporter profile, within
// its limits, and says so when it cannot.
import { describe, expect, it } from 'vitest';
import type { AcceleratorLease, EvictionRecord } from '../src/crds/index.ts';
import { testNamespace } from './harness/index.ts';
import {
  api,
  createLease,
  createActiveExport,
  createImportGrant,
  createPod,
  getLease,
  GROUP,
  phaseIs,
  podExists,
  ready,
  startAgent,
  startController,
  testNode,
  waitFor,
} from './stack/index.ts';

type Profile = 'static' | 'dynamic' | 'revocable';

interface Story {
  node: string;
  accel: string;
  a: string;
  io: string;
  b: string;
  agent: Awaited<ReturnType<typeof startAgent>>;
}

/**
 * Tenant A holds the device; its trainer exports 1 GiB; loader-0 in team-io registers it as an
 * RDMA MR; bystander-0 (team-io) and idle-0 (team-a) hold nothing; tenant B waits.
 */
async function seedStory(
  profile: Profile,
  opts: {
    controllerArgs?: string[];
    revocation?: Record<string, number>;
    importers?: { name: string; kind: string; pod: string }[];
    extraPods?: string[];
  } = {},
): Promise<Story> {
  const node = await testNode(`reap-${profile.slice(0, 3)}`);
  const accel = `${node}-hl0`;
  const [a, io, b] = [
    await testNamespace('team-a'),
    await testNamespace('team-io'),
    await testNamespace('team-b'),
  ];
  const agent = await startAgent({ node, profile });
  await ready(await startController({ extraArgs: opts.controllerArgs ?? [] }));
  await createLease(a, 'tenant-a', { accelerator: accel });
  await phaseIs(a, 'tenant-a', 'Granted');
  await createPod(a, 'trainer-0', node, { app: 'tenant-a' });
  await createPod(a, 'idle-0', node, { app: 'tenant-a' });
  await createPod(io, 'loader-0', node);
  await createPod(io, 'bystander-0', node);
  await createImportGrant(io, [a]);
  for (const pod of opts.extraPods ?? []) await createPod(io, pod, node);
  const importers = (opts.importers ?? [{ name: 'nic0', kind: 'rdma-mr', pod: 'loader-0' }]).map(
    (i) => ({
      name: i.name,
      kind: i.kind,
      pod: { namespace: io, name: i.pod },
    }),
  );
  await createActiveExport(a, 'weights', {
    accelerator: accel,
    lease: 'tenant-a',
    exporter: { pod: 'trainer-0' },
    sizeBytes: 1 << 30,
    importers,
  });
  await createLease(b, 'tenant-b', {
    accelerator: accel,
    revocation: { gracePeriodSeconds: 2, maxEvictions: 5, ...opts.revocation },
  });
  await waitFor(
    'tenant-b queued',
    async () => (await getLease(b, 'tenant-b')).status?.queuePosition === 1,
  );
  return { node, accel, a, io, b, agent };
}

const releaseA = (s: Story) =>
  api('DELETE', `${GROUP}/namespaces/${s.a}/acceleratorleases/tenant-a`);

const evicted = (l: AcceleratorLease) =>
  (l.status?.evictions ?? [])
    .filter((r: EvictionRecord) => r.result === 'Evicted' || r.result === 'Deleted')
    .map((r) => r.pod.name);

/**
 * Puts loader-0 under PDB `loaders`, which allows no disruption while it is the only loader
 * (minAvailable, not maxUnavailable: the pods are bare, with no controller to scale by).
 */
async function guardLoader(s: Story): Promise<void> {
  await api(
    'PATCH',
    `/api/v1/namespaces/${s.io}/pods/loader-0`,
    { metadata: { labels: { role: 'loader' } } },
    'application/merge-patch+json',
  );
  await api('POST', `/apis/policy/v1/namespaces/${s.io}/poddisruptionbudgets`, {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'loaders', namespace: s.io },
    spec: { minAvailable: 1, selector: { matchLabels: { role: 'loader' } } },
  });
}

async function untouched(s: Story, pods: [string, string][]) {
  for (const [ns, name] of pods)
    expect(await podExists(ns, name), `${ns}/${name} untouched`).toBe(true);
}

describe('reaper', () => {
  it('dynamic device: evicts exactly the RDMA MR holder, then grants B', async () => {
    const s = await seedStory('dynamic');
    await releaseA(s);
    const stuck = await waitFor('device Stuck', async () => {
      const a = await api<{ status?: { phase?: string; pins?: { pod?: { name: string } }[] } }>(
        'GET',
        `${GROUP}/accelerators/${s.accel}`,
      );
      return a.status?.phase === 'Stuck' ? a : undefined;
    });
    expect(stuck.status?.pins?.map((p) => p.pod?.name)).toEqual(['loader-0']);
    const b = await phaseIs(s.b, 'tenant-b', 'Granted', 60_000);
    expect(b.status?.epoch).toBe(2);
    expect(evicted(b)).toEqual(['loader-0']);
    expect(b.status?.evictions?.[0]?.reason).toContain('rdma-mr importer nic0');
    expect(await podExists(s.io, 'loader-0')).toBe(false);
    await untouched(s, [
      [s.io, 'bystander-0'],
      [s.a, 'trainer-0'],
      [s.a, 'idle-0'],
    ]);
  });

  it('static device: the loader first, then the trainer that still holds the buffer, nothing else', async () => {
    const s = await seedStory('static');
    await releaseA(s);
    const b = await phaseIs(s.b, 'tenant-b', 'Granted', 90_000);
    const order = (b.status?.evictions ?? []).map((r) => [r.pod.name, r.result]);
    expect(order).toEqual([
      ['loader-0', 'Evicted'],
      ['trainer-0', 'Evicted'],
    ]);
    const [loader, trainer] = b.status?.evictions ?? [];
    expect(Date.parse(loader?.finished ?? '')).toBeLessThanOrEqual(
      Date.parse(trainer?.started ?? ''),
    );
    await untouched(s, [
      [s.io, 'bystander-0'],
      [s.a, 'idle-0'],
    ]);
  });

  it('revocable device: the RDMA MR is revoked, nothing is evicted', async () => {
    const s = await seedStory('revocable');
    await releaseA(s);
    const b = await phaseIs(s.b, 'tenant-b', 'Granted', 30_000);
    expect(b.status?.evictions ?? []).toEqual([]);
    const exp = await api<{ status?: { attachments?: { name: string; state: string }[] } }>(
      'GET',
      `${GROUP}/namespaces/${s.a}/dmabufexports/weights`,
    );
    expect(exp.status?.attachments?.find((x) => x.name === 'nic0')?.state).toBe('Revoked');
    await untouched(s, [
      [s.io, 'loader-0'],
      [s.io, 'bystander-0'],
      [s.a, 'trainer-0'],
      [s.a, 'idle-0'],
    ]);
  });

  it('three pins across three pods on a static device: exactly those three, pinned-importer holders first', async () => {
    const s = await seedStory('static', {
      extraPods: ['loader-1'],
      importers: [
        { name: 'nic0', kind: 'rdma-mr', pod: 'loader-0' },
        { name: 'nic1', kind: 'pinned', pod: 'loader-1' },
      ],
    });
    await releaseA(s);
    const b = await phaseIs(s.b, 'tenant-b', 'Granted', 90_000);
    const names = (b.status?.evictions ?? []).map((r) => r.pod.name);
    expect(names.slice(0, 2).sort()).toEqual(['loader-0', 'loader-1']);
    expect(names).toEqual(expect.arrayContaining(['trainer-0']));
    expect(names).toHaveLength(3);
    expect(names[2]).toBe('trainer-0');
    await untouched(s, [
      [s.io, 'bystander-0'],
      [s.a, 'idle-0'],
    ]);
  });

  it('a hidden holder outside any pod: Unresolvable, nothing evicted, the device cordoned', async () => {
    const s = await seedStory('dynamic');
    const res = await fetch(`http://127.0.0.1:${s.agent.adminPort}/hidden-holders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ export: `${s.a}/weights`, comm: 'rdma-agent' }),
    });
    expect(res.status).toBe(201);
    // The loader lets go by itself, so only the hidden holder is left.
    await api('DELETE', `${GROUP}/namespaces/${s.a}/dmabufexports/weights`).catch(() => undefined);
    await releaseA(s);
    const b = await waitFor(
      'Unresolvable',
      async () => {
        const l = await getLease(s.b, 'tenant-b');
        const c = l.status?.conditions?.find((x) => x.type === 'Blocked');
        return c?.reason === 'Unresolvable' ? l : undefined;
      },
      60_000,
    );
    const blocked = b.status?.conditions?.find((x) => x.type === 'Blocked');
    expect(blocked?.message).toMatch(/in no pod/);
    expect((b.status?.evictions ?? []).filter((r) => r.result !== 'Planned')).toEqual([]);
    const accel = await api<{ metadata: { annotations?: Record<string, string> } }>(
      'GET',
      `${GROUP}/accelerators/${s.accel}`,
    );
    expect(accel.metadata.annotations?.['accel.dmabuf.io/cordoned']).toBeTruthy();
    await untouched(s, [
      [s.io, 'loader-0'],
      [s.io, 'bystander-0'],
      [s.a, 'trainer-0'],
      [s.a, 'idle-0'],
    ]);
  });

  it('maxEvictions: 1 with two holders: evicts one, then stops with Unresolvable and says why', async () => {
    const s = await seedStory('dynamic', {
      revocation: { maxEvictions: 1 },
      importers: [
        { name: 'nic0', kind: 'rdma-mr', pod: 'loader-0' },
        { name: 'nic1', kind: 'rdma-mr', pod: 'bystander-0' },
      ],
    });
    await releaseA(s);
    const b = await waitFor(
      'Unresolvable',
      async () => {
        const l = await getLease(s.b, 'tenant-b');
        return l.status?.conditions?.find((x) => x.type === 'Blocked')?.reason === 'Unresolvable'
          ? l
          : undefined;
      },
      60_000,
    );
    expect(b.status?.phase).toBe('Pending');
    expect(evicted(b)).toHaveLength(1);
    expect(b.status?.conditions?.find((x) => x.type === 'Blocked')?.message).toMatch(/budget/);
  });

  it('dry run: the plan is reported, nothing is evicted', async () => {
    const s = await seedStory('dynamic', { controllerArgs: ['--dry-run'] });
    await releaseA(s);
    const b = await waitFor(
      'a dry-run record',
      async () => {
        const l = await getLease(s.b, 'tenant-b');
        return l.status?.evictions?.some((r) => r.result === 'DryRun') ? l : undefined;
      },
      60_000,
    );
    expect(b.status?.evictions?.map((r) => [r.pod.name, r.result])).toEqual([
      ['loader-0', 'DryRun'],
    ]);
    await new Promise((r) => setTimeout(r, 3000));
    await untouched(s, [
      [s.io, 'loader-0'],
      [s.io, 'bystander-0'],
      [s.a, 'trainer-0'],
    ]);
    expect((await getLease(s.b, 'tenant-b')).status?.phase).toBe('Pending');
  });

  it('a PDB that blocks the loader: retries while refused, then deletes after the deadline when told to', async () => {
    const s = await seedStory('dynamic', {
      controllerArgs: ['--eviction-deadline', '6s', '--on-deadline', 'Delete'],
    });
    await guardLoader(s);
    await waitFor('PDB status computed', async () => {
      const p = await api<{ status?: { expectedPods?: number } }>(
        'GET',
        `/apis/policy/v1/namespaces/${s.io}/poddisruptionbudgets/loaders`,
      );
      return p.status?.expectedPods === 1;
    });
    await releaseA(s);
    const refused = await waitFor(
      'a refused eviction',
      async () => {
        const l = await getLease(s.b, 'tenant-b');
        return l.status?.evictions?.some(
          (r) => r.result === 'Refused' || /429|disruption budget/i.test(r.message ?? ''),
        )
          ? l
          : undefined;
      },
      60_000,
    );
    expect(refused.status?.phase).toBe('Pending');
    const b = await phaseIs(s.b, 'tenant-b', 'Granted', 90_000);
    expect(b.status?.evictions?.map((r) => [r.pod.name, r.result])).toEqual([
      ['loader-0', 'Deleted'],
    ]);
    await untouched(s, [
      [s.io, 'bystander-0'],
      [s.a, 'trainer-0'],
    ]);
  });

  it('a PDB that refused the loader: evicted once the PDB allows a disruption, not after the backoff', async () => {
    // A backoff no test waits out: only the budget allowing can bring the retry.
    const s = await seedStory('dynamic', {
      controllerArgs: ['--eviction-retry-initial', '10m', '--eviction-retry-max', '10m'],
    });
    const pdbPath = `/apis/policy/v1/namespaces/${s.io}/poddisruptionbudgets/loaders`;
    await guardLoader(s);
    type Budget = { metadata: { generation?: number }; status?: Record<string, number> };
    const computed = (p: Budget) =>
      p.status?.expectedPods === 1 &&
      (p.status.observedGeneration ?? 0) >= (p.metadata.generation ?? 1);
    await waitFor('PDB status computed', async () => computed(await api<Budget>('GET', pdbPath)));
    await releaseA(s);
    const loaderRecord = async () =>
      (await getLease(s.b, 'tenant-b')).status?.evictions?.find((r) => r.pod.name === 'loader-0');
    const refused = await waitFor(
      'a refused eviction',
      async () => {
        const r = await loaderRecord();
        return r?.lastOutcome === 'Refused' ? r : undefined;
      },
      60_000,
    );
    expect(refused.attempts).toBe(1);
    // While the budget allows none, nothing is sent again before the backoff: still attempt 1.
    // Waiting also puts the budget's change in a later second than the refusal, as stored.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect((await loaderRecord())?.attempts).toBe(1);
    await api('PATCH', pdbPath, { spec: { minAvailable: 0 } }, 'application/merge-patch+json');
    const b = await phaseIs(s.b, 'tenant-b', 'Granted', 90_000);
    expect(evicted(b)).toEqual(['loader-0']);
    const [record] = b.status?.evictions ?? [];
    expect(record).toMatchObject({ result: 'Evicted', attempts: 2, lastOutcome: 'Accepted' });
    // The second attempt went out long before the 10-minute backoff after the first.
    const first = Date.parse(refused.lastAttemptTime ?? '');
    const second = Date.parse(record?.lastAttemptTime ?? '');
    expect(second - first).toBeGreaterThanOrEqual(3000);
    expect(second - first).toBeLessThan(10 * 60_000);
    await untouched(s, [
      [s.io, 'bystander-0'],
      [s.a, 'trainer-0'],
    ]);
  });
});
