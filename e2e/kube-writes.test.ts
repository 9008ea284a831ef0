// Writes against a real API server: server-side apply with field managers on our CRD,
// status written through the subresource, and read-modify-write that survives a 409 Conflict.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { ACCELERATOR_LEASES, API_VERSION } from '../src/crds/index.ts';
import { isConflict, KubeClient, ResourceClient } from '../src/kube/index.ts';
import { applyCrds, kubeConfig, testNamespace } from './harness/index.ts';

interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    managedFields?: Array<{ manager?: string; subresource?: string }>;
  };
  spec?: { accelerator?: string; priority?: number; holder?: unknown };
  status?: { phase?: string; queuePosition?: number };
}

function leaseApply(ns: string, spec: Record<string, unknown>) {
  return {
    apiVersion: API_VERSION,
    kind: 'AcceleratorLease',
    metadata: { name: 'tenant-a', namespace: ns },
    spec: {
      accelerator: 'node-a-hl0',
      holder: { podSelector: { matchLabels: { app: 'train' } } },
      ...spec,
    },
  };
}

describe('writes on a real API server', () => {
  beforeAll(async () => {
    await applyCrds(['acceleratorleases.accel.dmabuf.io']);
  });

  it('server-side applies with named field managers: conflicts without force, takes over with it', async () => {
    const ns = await testNamespace('kube-ssa');
    const client = new KubeClient(kubeConfig());
    const leases = new ResourceClient<Lease>(client, ACCELERATOR_LEASES);
    const created = await vi.waitFor(
      () => leases.apply(leaseApply(ns, { priority: 1 }), { fieldManager: 'tenant-tool' }),
      { timeout: 30_000, interval: 250 },
    );
    expect(created.spec?.priority).toBe(1);

    const conflict = await leases
      .apply(leaseApply(ns, { priority: 5 }), { fieldManager: 'accel-lease-controller' })
      .catch((e: unknown) => e);
    expect(isConflict(conflict)).toBe(true);

    const forced = await leases.apply(leaseApply(ns, { priority: 5 }), {
      fieldManager: 'accel-lease-controller',
      force: true,
    });
    expect(forced.spec?.priority).toBe(5);
    expect(forced.metadata?.managedFields?.map((f) => f.manager)).toContain(
      'accel-lease-controller',
    );

    // Status goes through the subresource, under its own manager; the spec is untouched.
    const withStatus = await leases.applyStatus(
      {
        apiVersion: API_VERSION,
        kind: 'AcceleratorLease',
        metadata: { name: 'tenant-a', namespace: ns },
        status: { phase: 'Pending', queuePosition: 2 },
      },
      { fieldManager: 'accel-lease-controller', force: true },
    );
    expect(withStatus.status).toMatchObject({ phase: 'Pending', queuePosition: 2 });
    expect(withStatus.spec?.priority).toBe(5);
    const statusManaged = withStatus.metadata?.managedFields?.filter(
      (f) => f.subresource === 'status',
    );
    expect(statusManaged?.map((f) => f.manager)).toContain('accel-lease-controller');

    // A merge patch on /status (client-node would default to JSON Patch; we set the type).
    const patched = await leases.patchStatus('tenant-a', ns, { phase: 'Granted' });
    expect(patched.status).toMatchObject({ phase: 'Granted', queuePosition: 2 });
    // A status write does not change the spec even if it carries one.
    const ignored = await leases.mergePatch(
      'tenant-a',
      ns,
      { spec: { priority: 9 } },
      { subresource: 'status' },
    );
    expect(ignored.spec?.priority).toBe(5);
  });

  it('mutate retries after a 409 Conflict from a concurrent writer', async () => {
    const ns = await testNamespace('kube-conflict');
    const client = new KubeClient(kubeConfig());
    const leases = new ResourceClient<Lease>(client, ACCELERATOR_LEASES);
    const stale = await vi.waitFor(
      () => leases.apply(leaseApply(ns, { priority: 1 }), { fieldManager: 'e2e' }),
      { timeout: 30_000, interval: 250 },
    );
    // Someone else writes after we read: our copy is now stale.
    await leases.mergePatch('tenant-a', ns, { metadata: { labels: { touched: 'yes' } } });

    const before = { ...client.requests.byVerb };
    const out = await leases.mutate(
      'tenant-a',
      ns,
      (l) => {
        l.spec = { ...l.spec, priority: 7 };
      },
      { current: stale },
    );
    expect(out.spec?.priority).toBe(7);
    expect(out.metadata?.labels).toEqual({ touched: 'yes' }); // the other write survived
    // One PUT refused with 409, one GET to re-read, one PUT that succeeded.
    expect(client.requests.byVerb.update - before.update).toBe(2);
    expect(client.requests.byVerb.get - before.get).toBe(1);
    expect(client.requests.byCode.get(409)).toBeGreaterThanOrEqual(1);

    // A plain replace with the stale copy is refused: optimistic concurrency really applies.
    const err = await leases.replace(stale).catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);
  });
});
