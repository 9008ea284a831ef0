// DRA mode on a real API server and scheduler: the agent publishes its devices as a
// ResourceSlice whose devices bind only on accel.dmabuf.io/handoff-complete; a claim the scheduler
// allocates becomes a lease, and its pod binds once the handoff (revoke, reap) is complete.
import { beforeAll, describe, expect, it } from 'vitest';
import type { AcceleratorLease, EvictionRecord } from '../src/crds/index.ts';
import { testNamespace } from './harness/index.ts';
import { agentIdentity, identityOf, installChart, refusal } from './stack/chart.ts';
import {
  allocatedAccelerator,
  claimCondition,
  createClaim,
  createClaimPod,
  deleteSliceAfter,
  ensureDeviceClass,
  getClaim,
  podEvent,
  podNode,
} from './stack/dra.ts';
import {
  api,
  createActiveExport,
  createLease,
  createPod,
  getLease,
  GROUP,
  leaseGone,
  loaderPinsTenantA,
  phaseIs,
  podExists,
  ready,
  startAgent,
  startController,
  testNode,
  waitFor,
} from './stack/index.ts';

const COMPLETE = 'accel.dmabuf.io/handoff-complete';
const UNRESOLVABLE = 'accel.dmabuf.io/unresolvable';

const accelerator = (name: string) =>
  api<{
    spec: { owner?: { lease?: { name: string }; epoch: number } };
    status?: { phase?: string };
    metadata: { annotations?: Record<string, string> };
  }>('GET', `${GROUP}/accelerators/${name}`);

const evicted = (l: AcceleratorLease) =>
  (l.status?.evictions ?? [])
    .filter((r: EvictionRecord) => r.result === 'Evicted' || r.result === 'Deleted')
    .map((r) => r.pod.name);

interface Story {
  node: string;
  accel: string;
  a: string;
  io: string;
  b: string;
  controller: Awaited<ReturnType<typeof startController>>;
}

/**
 * Tenant A held the device with a plain lease and released it; loader-0 (team-io) still holds
 * A's buffer as an RDMA MR, so the device is Stuck. bystander-0 holds nothing.
 */
async function stuckDevice(controllerArgs: string[] = []): Promise<Story> {
  const node = await testNode('dra');
  deleteSliceAfter(node);
  const accel = `${node}-hl0`;
  const [a, io, b] = [
    await testNamespace('dra-a'),
    await testNamespace('dra-io'),
    await testNamespace('dra-b'),
  ];
  await startAgent({ node, profile: 'dynamic', extraArgs: ['--dra'] });
  const controller = await startController({ extraArgs: ['--dra', ...controllerArgs] });
  await ready(controller);
  await loaderPinsTenantA(node, accel, a, io);
  await createPod(io, 'bystander-0', node);
  await api('DELETE', `${GROUP}/namespaces/${a}/acceleratorleases/tenant-a`);
  await waitFor(
    'device Stuck on the loader',
    async () => (await accelerator(accel)).status?.phase === 'Stuck',
  );
  return { node, accel, a, io, b, controller };
}

describe('DRA mode', () => {
  beforeAll(ensureDeviceClass);

  it("binds B's pod only after the reaper evicted exactly the loader, and its claim says why", async () => {
    const s = await stuckDevice();
    await createClaim(s.b, 'train', { revocation: { gracePeriodSeconds: 4, maxEvictions: 5 } });
    await createClaimPod(s.b, 'train-0', 'train');

    const pending = await podEvent(s.b, 'train-0', 'BindingConditionsPending');
    expect(pending).toBeDefined();
    expect(await allocatedAccelerator(s.b, 'train')).toBe(s.accel);
    // The claim became a lease of the same name, owned by the claim, on the allocated device.
    const claim = await getClaim(s.b, 'train');
    const lease = await getLease(s.b, 'train');
    expect(lease.spec.accelerator).toBe(s.accel);
    expect(lease.metadata.ownerReferences).toMatchObject([
      { kind: 'ResourceClaim', name: 'train', uid: claim.metadata.uid, controller: true },
    ]);
    // While the loader's pin remains: unbound, and the claim says the handoff is not complete.
    expect(await podExists(s.io, 'loader-0')).toBe(true);
    expect(await podNode(s.b, 'train-0')).toBeUndefined();
    const before = await waitFor('claim condition written', () =>
      claimCondition(s.b, 'train', COMPLETE),
    );
    expect(before.status).toBe('False');

    await waitFor('train-0 bound', async () => (await podNode(s.b, 'train-0')) === s.node, 60_000);
    const granted = await getLease(s.b, 'train');
    expect(granted.status?.phase).toBe('Granted');
    expect(evicted(granted)).toEqual(['loader-0']);
    expect(await podExists(s.io, 'loader-0')).toBe(false);
    expect(await podExists(s.io, 'bystander-0')).toBe(true);
    expect(await podExists(s.a, 'trainer-0')).toBe(true);
    const done = await claimCondition(s.b, 'train', COMPLETE);
    expect(done).toMatchObject({ status: 'True', reason: 'Owned' });
    expect(done?.message).toContain(`epoch ${granted.status?.epoch}`);
    expect(done?.message).toContain(`${s.io}/loader-0`);
    expect((await claimCondition(s.b, 'train', UNRESOLVABLE))?.status).toBe('False');

    // Deleting the pod and its claim releases the lease (finalizer path) and the device. The
    // lease itself stays until its eviction of the loader is a minute old (it is the per-minute
    // cap's only memory of it), which may be just under a minute from here.
    await api('DELETE', `/api/v1/namespaces/${s.b}/pods/train-0`);
    await api('DELETE', `/apis/resource.k8s.io/v1/namespaces/${s.b}/resourceclaims/train`);
    await waitFor('lease train gone', () => leaseGone(s.b, 'train'), 90_000);
    const freed = await waitFor('device Free, owned by nobody', async () => {
      const a = await accelerator(s.accel);
      return a.status?.phase === 'Free' && !a.spec.owner?.lease ? a : undefined;
    });
    expect(freed.spec.owner?.epoch).toBe((granted.status?.epoch ?? 0) + 1);
  });

  it('fails over to another free device when the pin has no evictable holder', async () => {
    const node = await testNode('dra-fo');
    deleteSliceAfter(node);
    const [hl0, hl1] = [`${node}-hl0`, `${node}-hl1`];
    const [a, b] = [await testNamespace('fo-a'), await testNamespace('fo-b')];
    const agent = await startAgent({ node, profile: 'dynamic', devices: 2, extraArgs: ['--dra'] });
    await ready(await startController({ extraArgs: ['--dra'] }));
    // hl0: A's buffer held by a process outside any pod once A lets go.
    await createLease(a, 'tenant-a', { accelerator: hl0 });
    await phaseIs(a, 'tenant-a', 'Granted');
    await createPod(a, 'trainer-0', node, { app: 'tenant-a' });
    await createActiveExport(a, 'weights', {
      accelerator: hl0,
      lease: 'tenant-a',
      exporter: { pod: 'trainer-0' },
      sizeBytes: 1 << 20,
    });
    const hidden = await fetch(`http://127.0.0.1:${agent.adminPort}/hidden-holders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ export: `${a}/weights`, comm: 'rogue' }),
    });
    expect(hidden.status).toBe(201);
    await api('DELETE', `${GROUP}/namespaces/${a}/acceleratorleases/tenant-a`);
    await waitFor('hl0 Stuck', async () => (await accelerator(hl0)).status?.phase === 'Stuck');
    // The scheduler allocates a pool's devices in slice order: B gets hl0 first.
    await createClaim(b, 'train', { revocation: { gracePeriodSeconds: 1, maxEvictions: 5 } });
    await createClaimPod(b, 'train-0', 'train');
    await waitFor('B allocated hl0', async () => (await allocatedAccelerator(b, 'train')) === hl0);
    // Unresolvable: the device is cordoned (tainted in the slice), the claim says so, the
    // scheduler takes the allocation back, and the claim's lease on hl0 goes.
    await waitFor(
      'hl0 cordoned',
      async () =>
        (await accelerator(hl0)).metadata.annotations?.['accel.dmabuf.io/cordoned'] !== undefined,
      60_000,
    );
    await waitFor(
      'B deallocated from hl0',
      async () => (await allocatedAccelerator(b, 'train')) !== hl0,
      60_000,
    );
    await waitFor('hl0 owned by nobody again', async () => {
      const owner = (await accelerator(hl0)).spec.owner;
      return owner?.lease?.name !== 'train';
    });

    // The scheduler allocates again, and only hl1 is left untainted: B's pod binds there.
    await waitFor('train-0 bound', async () => (await podNode(b, 'train-0')) === node, 90_000);
    expect(await allocatedAccelerator(b, 'train')).toBe(hl1);
    expect((await getLease(b, 'train')).spec.accelerator).toBe(hl1);
    expect((await claimCondition(b, 'train', COMPLETE))?.status).toBe('True');
    const slice = await api<{ spec: { devices: { name: string; taints?: { key: string }[] }[] } }>(
      'GET',
      `/apis/resource.k8s.io/v1/resourceslices/${node}.accel.dmabuf.io`,
    );
    expect(slice.spec.devices.find((d) => d.name === 'hl0')?.taints?.map((t) => t.key)).toEqual([
      'accel.dmabuf.io/cordoned',
    ]);
  });

  it('a controller restart mid-handoff neither loses the condition nor sets it early', async () => {
    const s = await stuckDevice();
    await createClaim(s.b, 'train', { revocation: { gracePeriodSeconds: 10, maxEvictions: 5 } });
    await createClaimPod(s.b, 'train-0', 'train');
    await podEvent(s.b, 'train-0', 'BindingConditionsPending');
    const pending = await waitFor('claim condition written', () =>
      claimCondition(s.b, 'train', COMPLETE),
    );
    expect(pending.status).toBe('False');
    // Killed mid-handoff, before the grace ends: nothing is evicted, nothing set, while it is down.
    await s.controller.kill();
    await new Promise((r) => setTimeout(r, 3000));
    expect(await claimCondition(s.b, 'train', COMPLETE)).toMatchObject({ status: 'False' });
    expect(await podNode(s.b, 'train-0')).toBeUndefined();
    expect(await podExists(s.io, 'loader-0')).toBe(true);

    const second = await startController({ extraArgs: ['--dra'] });
    await ready(second);
    expect((await claimCondition(s.b, 'train', COMPLETE))?.status).toBe('False');

    await waitFor('train-0 bound', async () => (await podNode(s.b, 'train-0')) === s.node, 60_000);
    const done = await claimCondition(s.b, 'train', COMPLETE);
    expect(done?.status).toBe('True');
    expect(evicted(await getLease(s.b, 'train'))).toEqual(['loader-0']);
    // A fresh controller computes the same condition from the lease: nothing moves.
    await second.kill();
    const again = await startController({ extraArgs: ['--dra'] });
    await ready(again);
    await new Promise((r) => setTimeout(r, 3000));
    expect(await claimCondition(s.b, 'train', COMPLETE)).toEqual(done);
  });

  it("runs on the chart's DRA rights: its node's slice, our driver's device status, nothing more", async () => {
    // The DeviceClass is the suite's (cluster-scoped, one name): the release does not own it.
    const release = await installChart({ set: ['dra.enabled=true', 'dra.deviceClass=false'] });
    const node = await testNode('dra-rbac');
    deleteSliceAfter(node);
    const b = await testNamespace('rbac-b');
    const agentId = await agentIdentity(release, node);
    await startAgent({ node, profile: 'dynamic', kubeconfig: agentId.file, extraArgs: ['--dra'] });
    const ctlId = await identityOf(release.namespace, `${release.name}-accel-lease-controller`);
    await ready(await startController({ kubeconfig: ctlId.file, extraArgs: ['--dra'] }));

    await createClaim(b, 'train');
    await createClaimPod(b, 'train-0', 'train');
    await waitFor('train-0 bound', async () => (await podNode(b, 'train-0')) === node, 60_000);
    expect((await claimCondition(b, 'train', COMPLETE))?.status).toBe('True');

    // Device status is authorized per driver (resourceclaims/driver, named by driver): ours only.
    const may = async (name: string) =>
      (
        await ctlId.client.request<{ status: { allowed: boolean } }>({
          method: 'POST',
          path: '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SelfSubjectAccessReview',
            spec: {
              resourceAttributes: {
                group: 'resource.k8s.io',
                resource: 'resourceclaims',
                subresource: 'driver',
                verb: 'arbitrary-node:patch',
                name,
                namespace: b,
              },
            },
          },
        })
      ).status.allowed;
    expect(await may('accel.dmabuf.io')).toBe(true);
    expect(await may('gpu.example.com')).toBe(false);
    // The agent's token is bound to its node: a slice of another node is refused by the policy.
    const elsewhere = await refusal(
      agentId.client.request({
        method: 'POST',
        path: '/apis/resource.k8s.io/v1/resourceslices',
        body: {
          apiVersion: 'resource.k8s.io/v1',
          kind: 'ResourceSlice',
          metadata: { name: `node-a-${release.name}.accel.dmabuf.io`, labels: release.guardLabel },
          spec: {
            driver: 'accel.dmabuf.io',
            nodeName: 'node-a',
            pool: { name: 'node-a', generation: 1, resourceSliceCount: 1 },
            devices: [],
          },
        },
      }),
    );
    expect(elsewhere.code).toBe(403);
    expect(elsewhere.message).toContain('written only by the accel-lease agent of its node');
  });
});
