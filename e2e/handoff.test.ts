// The handoff on a real API server: node agent and lease controller as host processes, leases
// applied as a user would, and I1 checked on every watch event, not just the end state.
import { describe, expect, it } from 'vitest';
import type { AcceleratorLease, DmaBufExport } from '../src/crds/index.ts';
import { Informer } from '../src/kube/index.ts';
import { kubeConfig, testNamespace } from './harness/index.ts';
import {
  api,
  createLease,
  createPod,
  getLease,
  GROUP,
  leaseGone,
  phaseIs,
  ready,
  startAgent,
  startController,
  testNode,
  waitFor,
} from './stack/index.ts';

/**
 * Watches every lease and fails the test if two are ever Granted on one accelerator at once
 * (invariant I1), at the granularity of watch events.
 */
async function watchI1(accelPrefix: string) {
  const informer = new Informer<AcceleratorLease>(kubeConfig(), {
    path: `${GROUP}/acceleratorleases`,
    name: 'i1-watch',
  });
  const violations: string[] = [];
  let grants = 0;
  const check = () => {
    const granted = new Map<string, string[]>();
    for (const l of informer.list()) {
      const accel = l.status?.accelerator;
      if (l.status?.phase !== 'Granted' || !accel?.startsWith(accelPrefix)) continue;
      granted.set(accel, [
        ...(granted.get(accel) ?? []),
        `${l.metadata.namespace}/${l.metadata.name}`,
      ]);
    }
    for (const [accel, holders] of granted) {
      if (holders.length > 1) violations.push(`${accel}: ${holders.join(', ')}`);
    }
  };
  informer.on('add', check);
  informer.on('update', (l, old) => {
    if (l.status?.phase === 'Granted' && old.status?.phase !== 'Granted') grants++;
    check();
  });
  informer.on('delete', check);
  await informer.start();
  return {
    violations,
    grants: () => grants,
    stop: () => informer.stop(),
  };
}

async function eventsFor(ns: string, name: string): Promise<string[]> {
  const list = await api<{
    items: {
      reason: string;
      regarding: { name: string };
      eventTime?: string;
      series?: { lastObservedTime: string };
      metadata: { creationTimestamp: string };
    }[];
  }>('GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events`);
  return list.items
    .filter((e) => e.regarding.name === name)
    .sort((a, b) =>
      (a.eventTime ?? a.metadata.creationTimestamp).localeCompare(
        b.eventTime ?? b.metadata.creationTimestamp,
      ),
    )
    .map((e) => e.reason);
}

describe('handoff', () => {
  it('grants, queues, and hands a dynamic device over with revocable imports revoked', async () => {
    const node = await testNode('hand');
    const accel = `${node}-hl0`;
    const [a, b] = [await testNamespace('team-a'), await testNamespace('team-b')];
    const i1 = await watchI1(node);
    await startAgent({ node, profile: 'dynamic' });
    const ctl = await startController();
    await ready(ctl);

    await createLease(a, 'tenant-a', { accelerator: accel });
    const granted = await phaseIs(a, 'tenant-a', 'Granted');
    expect(granted.status).toMatchObject({ accelerator: accel, epoch: 1, queuePosition: 0 });
    expect(granted.metadata.finalizers).toContain('accel.dmabuf.io/finalizer');

    await createLease(b, 'tenant-b', { accelerator: accel });
    await waitFor(
      'tenant-b queued at position 1',
      async () => (await getLease(b, 'tenant-b')).status?.queuePosition === 1,
    );
    expect((await getLease(b, 'tenant-b')).status?.phase).toBe('Pending');

    // A's workload: an exporter and two revocable importers, all on this node.
    await createPod(a, 'trainer-0', node, { app: 'tenant-a' });
    await createPod(a, 'peer-0', node, { app: 'tenant-a' });
    await api('POST', `${GROUP}/namespaces/${a}/dmabufexports`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufExport',
      metadata: { name: 'weights', namespace: a },
      spec: {
        accelerator: accel,
        lease: 'tenant-a',
        exporter: { pod: 'trainer-0' },
        sizeBytes: 1 << 30,
        importers: [
          { name: 'p2p', kind: 'dynamic', pod: { namespace: a, name: 'peer-0' } },
          { name: 'view', kind: 'mmap', pod: { namespace: a, name: 'trainer-0' } },
        ],
      },
    });
    const exportPath = `${GROUP}/namespaces/${a}/dmabufexports/weights`;
    await waitFor(
      'export Active',
      async () => (await api<DmaBufExport>('GET', exportPath)).status?.phase === 'Active',
    );

    await api('DELETE', `${GROUP}/namespaces/${a}/acceleratorleases/tenant-a`);
    const b2 = await phaseIs(b, 'tenant-b', 'Granted');
    expect(b2.status?.epoch).toBe(2);
    await waitFor('tenant-a finalizer released', () => leaseGone(a, 'tenant-a'));
    const exp = await api<DmaBufExport>('GET', exportPath);
    expect(exp.status?.attachments?.map((x) => [x.name, x.state])).toEqual(
      expect.arrayContaining([
        ['p2p', 'Revoked'],
        ['view', 'Revoked'],
      ]),
    );
    expect(await eventsFor(b, 'tenant-b')).toEqual(['Queued', 'Granted']);
    const accelEvents = await eventsFor('default', accel);
    expect(accelEvents.filter((r) => r === 'HandoffStarted').length).toBeGreaterThanOrEqual(1);
    expect(i1.violations).toEqual([]);
    i1.stop();
  });

  it('grants a higher-priority lease created later before an older one', async () => {
    const node = await testNode('prio');
    const accel = `${node}-hl0`;
    const ns = await testNamespace('prio');
    await startAgent({ node, profile: 'dynamic' });
    await ready(await startController());
    await createLease(ns, 'holder', { accelerator: accel });
    await phaseIs(ns, 'holder', 'Granted');
    await createLease(ns, 'old', { accelerator: accel, priority: 0 });
    await new Promise((r) => setTimeout(r, 1100)); // a strictly later creationTimestamp
    await createLease(ns, 'vip', { accelerator: accel, priority: 10 });
    await waitFor(
      'vip first in line',
      async () => (await getLease(ns, 'vip')).status?.queuePosition === 1,
    );
    expect((await getLease(ns, 'old')).status?.queuePosition).toBe(2);
    await api('DELETE', `${GROUP}/namespaces/${ns}/acceleratorleases/holder`);
    await phaseIs(ns, 'vip', 'Granted');
    expect((await getLease(ns, 'old')).status?.phase).toBe('Pending');
  });

  it('expires a lease with a duration on time and hands over', async () => {
    const node = await testNode('exp');
    const accel = `${node}-hl0`;
    const ns = await testNamespace('exp');
    await startAgent({ node, profile: 'dynamic' });
    await ready(await startController());
    await createLease(ns, 'short', { accelerator: accel, duration: '5s' });
    const g = await phaseIs(ns, 'short', 'Granted');
    await createLease(ns, 'next', { accelerator: accel });
    const expiresAt = Date.parse(g.status?.expiresAt ?? '');
    expect(expiresAt - Date.parse(g.status?.grantedAt ?? '')).toBe(5000);
    await phaseIs(ns, 'short', 'Expired', 20_000);
    const next = await phaseIs(ns, 'next', 'Granted');
    // Released on time: within a few seconds of expiresAt (timestamps have 1 s resolution).
    expect(Date.now() - expiresAt).toBeLessThan(10_000);
    expect(next.status?.epoch).toBe(2);
  });

  it('with two replicas only the leader writes; SIGKILL of the leader hands the work over', async () => {
    const node = await testNode('ha');
    const accel = `${node}-hl0`;
    const ns = await testNamespace('ha');
    const i1 = await watchI1(node);
    await startAgent({ node, profile: 'dynamic' });
    const one = await startController({ electionNamespace: ns, identity: 'one' });
    await ready(one);
    const two = await startController({ electionNamespace: ns, identity: 'two' });
    await ready(two);
    const leaseObj = () =>
      api<{ spec: { holderIdentity?: string } }>(
        'GET',
        `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/accel-lease-controller`,
      );
    const leader = await waitFor('a leader', async () => (await leaseObj()).spec.holderIdentity);
    const [l, f] = leader === 'one' ? [one, two] : [two, one];

    await createLease(ns, 'a', { accelerator: accel });
    await phaseIs(ns, 'a', 'Granted');
    await createLease(ns, 'b', { accelerator: accel });
    await waitFor('b queued', async () => (await getLease(ns, 'b')).status?.queuePosition === 1);
    const reconciles = async (c: typeof l) => {
      const text = await (await fetch(`http://127.0.0.1:${c.httpPort}/metrics`)).text();
      return [...text.matchAll(/^controller_runtime_reconcile_total\{[^}]*\} (\d+)/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    };
    expect(await reconciles(l)).toBeGreaterThan(0);
    expect(await reconciles(f)).toBe(0);

    await l.kill();
    await api('DELETE', `${GROUP}/namespaces/${ns}/acceleratorleases/a`);
    await waitFor(
      'the follower leads',
      async () => (await leaseObj()).spec.holderIdentity === f.name,
      30_000,
    );
    const b = await phaseIs(ns, 'b', 'Granted', 30_000);
    expect(b.status?.epoch).toBe(2);
    await waitFor('a released', () => leaseGone(ns, 'a'));
    expect(i1.violations).toEqual([]);
    expect(i1.grants()).toBeGreaterThanOrEqual(1);
    i1.stop();
  });

  it('completes a handoff after the controller is killed mid-way, without skipping or reusing an epoch', async () => {
    const node = await testNode('crash');
    const accel = `${node}-hl0`;
    const ns = await testNamespace('crash');
    const agent = await startAgent({ node, profile: 'dynamic' });
    let ctl = await startController();
    await ready(ctl);
    await createLease(ns, 'a', { accelerator: accel });
    await phaseIs(ns, 'a', 'Granted');
    await createLease(ns, 'b', { accelerator: accel });
    // Slow the device's revoke so the controller dies with the handoff in flight.
    const slow = await fetch(`http://127.0.0.1:${agent.adminPort}/slow-revoke`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ delayMs: 3000 }),
    });
    expect(slow.status).toBe(200);
    await api('DELETE', `${GROUP}/namespaces/${ns}/acceleratorleases/a`);
    await waitFor('owner moved to b', async () => {
      const a = await api<{ spec: { owner?: { lease?: { name: string }; epoch: number } } }>(
        'GET',
        `${GROUP}/accelerators/${accel}`,
      );
      return a.spec.owner?.lease?.name === 'b';
    });
    await ctl.kill();
    ctl = await startController();
    await ready(ctl);
    const b = await phaseIs(ns, 'b', 'Granted', 30_000);
    expect(b.status?.epoch).toBe(2);
    const a = await api<{
      spec: { owner?: { epoch: number } };
      status?: { observedEpoch?: number };
    }>('GET', `${GROUP}/accelerators/${accel}`);
    expect(a.spec.owner?.epoch).toBe(2);
    expect(a.status?.observedEpoch).toBe(2);
  });

  it('completes a handoff after the agent is restarted, losing no export record', async () => {
    const node = await testNode('agent');
    const accel = `${node}-hl0`;
    const ns = await testNamespace('agent');
    let agent = await startAgent({ node, profile: 'dynamic' });
    await ready(await startController());
    await createLease(ns, 'a', { accelerator: accel });
    await phaseIs(ns, 'a', 'Granted');
    await createPod(ns, 'trainer-0', node);
    await api('POST', `${GROUP}/namespaces/${ns}/dmabufexports`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufExport',
      metadata: { name: 'buf', namespace: ns },
      spec: { accelerator: accel, lease: 'a', exporter: { pod: 'trainer-0' }, sizeBytes: 4096 },
    });
    const path = `${GROUP}/namespaces/${ns}/dmabufexports/buf`;
    const before = await waitFor('export Active', async () => {
      const e = await api<DmaBufExport>('GET', path);
      return e.status?.phase === 'Active' ? e : undefined;
    });
    await createLease(ns, 'b', { accelerator: accel });
    await agent.kill();
    await api('DELETE', `${GROUP}/namespaces/${ns}/acceleratorleases/a`);
    agent = await startAgent({ node, profile: 'dynamic', stateFile: agent.stateFile });
    await phaseIs(ns, 'b', 'Granted', 30_000);
    const after = await api<DmaBufExport>('GET', path);
    expect(after.status?.inode).toBe(before.status?.inode);
    expect(after.status?.epoch).toBe(1);
  });

  it('rejects invalid objects with the CEL message, and keeps a lease for a missing device Pending', async () => {
    const ns = await testNamespace('bad');
    const rejected = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('expected the API server to reject the object');
    };
    expect(
      await rejected(
        createLease(ns, 'both', { accelerator: 'x', selector: { matchLabels: { a: 'b' } } }),
      ),
    ).toContain('exactly one of spec.accelerator or spec.selector must be set');
    const exportBody = (spec: Record<string, unknown>) => ({
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufExport',
      metadata: { name: 'bad', namespace: ns },
      spec: { accelerator: 'x', lease: 'l', exporter: { pod: 'p' }, sizeBytes: 4096, ...spec },
    });
    expect(
      await rejected(
        api('POST', `${GROUP}/namespaces/${ns}/dmabufexports`, exportBody({ sizeBytes: -1 })),
      ),
    ).toMatch(
      /spec\.sizeBytes: Invalid value: -1: spec\.sizeBytes in body should be greater than or equal to 1/,
    );
    expect(
      await rejected(
        api(
          'POST',
          `${GROUP}/namespaces/${ns}/dmabufexports`,
          exportBody({
            importers: [{ name: 'n', kind: 'rdma', pod: { namespace: ns, name: 'p' } }],
          }),
        ),
      ),
    ).toContain('spec.importers[0].kind: Unsupported value: "rdma"');

    const node = await testNode('missing');
    await ready(await startController());
    await createLease(ns, 'lost', { accelerator: `${node}-hl9` });
    const lost = await waitFor('lease says the device is missing', async () => {
      const l = await getLease(ns, 'lost');
      return l.status?.conditions?.find((c) => c.reason === 'AcceleratorNotFound') ? l : undefined;
    });
    expect(lost.status?.phase).toBe('Pending');
    expect(lost.status?.conditions?.[0]?.message).toContain(
      `accelerator ${node}-hl9 does not exist`,
    );
  });
});
