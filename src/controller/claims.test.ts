import { describe, expect, it } from 'vitest';
import type { AcceleratorLease, Condition } from '../crds/index.ts';
import { decideClaim, leaseForClaim, type ResourceClaim } from './claims.ts';

const NOW = '2026-12-01T14:00:00Z';
const LATER = '2026-12-01T14:05:00Z';
const DEV = { driver: 'accel.dmabuf.io', pool: 'node-a', device: 'hl0' };

function claim(
  opts: {
    devices?: { driver: string; pool: string; device: string }[];
    conditions?: Condition[];
    config?: unknown[];
    deleting?: boolean;
  } = {},
): ResourceClaim {
  const devices = opts.devices ?? [DEV];
  return {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaim',
    metadata: {
      name: 'train',
      namespace: 'team-b',
      uid: 'claim-uid',
      ...(opts.deleting && { deletionTimestamp: new Date(NOW) }),
    },
    spec: { devices: { requests: [] } },
    status: {
      ...(devices.length > 0 && {
        allocation: {
          devices: {
            results: devices.map((d) => ({ ...d, request: 'accel' })),
            ...(opts.config && { config: opts.config as never }),
          },
        },
      }),
      ...(opts.conditions && {
        devices: [{ ...DEV, conditions: opts.conditions as never }],
      }),
    },
  };
}

function lease(
  status: AcceleratorLease['status'],
  opts: { owner?: string; accelerator?: string } = {},
): AcceleratorLease {
  const base = leaseForClaim(claim(), DEV);
  return {
    ...base,
    metadata: {
      ...base.metadata,
      uid: 'lease-uid',
      ownerReferences: [
        { kind: 'ResourceClaim', apiVersion: 'resource.k8s.io/v1', uid: opts.owner ?? 'claim-uid' },
      ],
    },
    spec: { ...base.spec, accelerator: opts.accelerator ?? 'node-a-hl0' },
    ...(status && { status }),
  };
}

const decide = (c: ResourceClaim, l?: AcceleratorLease, tainted = false, now = NOW) =>
  decideClaim({ claim: c, ...(l && { lease: l }), tainted: () => tainted, now });

const conditionsOf = (actions: ReturnType<typeof decide>) => {
  const a = actions.find((x) => x.type === 'claimDeviceStatus');
  return a?.type === 'claimDeviceStatus' ? a.conditions : undefined;
};

describe('a claim allocated one of our devices', () => {
  it('becomes a lease of the same namespace and name, owned by the claim, on the device', () => {
    const actions = decide(claim());
    expect(actions).toHaveLength(1);
    const [a] = actions;
    if (a?.type !== 'createLease') throw new Error(`want createLease, got ${a?.type}`);
    expect(a.lease.metadata).toMatchObject({
      name: 'train',
      namespace: 'team-b',
      ownerReferences: [
        {
          apiVersion: 'resource.k8s.io/v1',
          kind: 'ResourceClaim',
          name: 'train',
          uid: 'claim-uid',
          controller: true,
        },
      ],
    });
    expect(a.lease.spec.accelerator).toBe('node-a-hl0');
    // It selects no pod by label: the claim gates its pod, not a scheduling gate.
    expect(a.lease.spec.holder.podSelector).toEqual({
      matchLabels: { 'accel.dmabuf.io/claim-uid': 'claim-uid' },
    });
  });

  it("takes priority and revocation from the claim's opaque LeaseParameters", () => {
    const config = [
      {
        source: 'FromClaim',
        opaque: {
          driver: 'accel.dmabuf.io',
          parameters: {
            apiVersion: 'accel.dmabuf.io/v1alpha1',
            kind: 'LeaseParameters',
            priority: 5,
            revocation: { gracePeriodSeconds: 2 },
          },
        },
      },
    ];
    const [a] = decide(claim({ config }));
    if (a?.type !== 'createLease') throw new Error('want createLease');
    expect(a.lease.spec.priority).toBe(5);
    expect(a.lease.spec.revocation).toEqual({ gracePeriodSeconds: 2, maxEvictions: 5 });
  });

  it('ignores devices of other drivers', () => {
    expect(
      decide(claim({ devices: [{ driver: 'gpu.example.com', pool: 'p', device: 'd' }] })),
    ).toEqual([]);
  });

  it('says the handoff is pending while the lease is not Granted, and never early', () => {
    for (const phase of ['Pending', 'Releasing'] as const) {
      const c = conditionsOf(
        decide(claim(), lease({ phase, accelerator: 'node-a-hl0', queuePosition: 1 })),
      );
      const complete = c?.find((x) => x.type === 'accel.dmabuf.io/handoff-complete');
      expect(complete?.status).toBe('False');
      expect(complete?.message).toBe(`lease train is ${phase}: queue position 1 for node-a-hl0`);
    }
  });

  it('sets handoff-complete=True once Granted on the device, saying the epoch and who was evicted', () => {
    const c = conditionsOf(
      decide(
        claim(),
        lease({
          phase: 'Granted',
          accelerator: 'node-a-hl0',
          epoch: 2,
          evictions: [
            {
              pod: { namespace: 'team-io', name: 'loader-0' },
              podUID: 'u',
              action: 'Evict',
              result: 'Evicted',
              reason: 'rdma-mr importer nic0',
              started: NOW,
            } as never,
          ],
        }),
      ),
    );
    const complete = c?.find((x) => x.type === 'accel.dmabuf.io/handoff-complete');
    expect(complete).toMatchObject({ status: 'True', reason: 'Owned', lastTransitionTime: NOW });
    expect(complete?.message).toContain('epoch 2');
    expect(complete?.message).toContain('team-io/loader-0 (rdma-mr importer nic0)');
    expect(c?.find((x) => x.type === 'accel.dmabuf.io/unresolvable')?.status).toBe('False');
  });

  it('does not count a Granted lease that is being deleted, or one Granted on another device', () => {
    const deleting = lease({ phase: 'Granted', accelerator: 'node-a-hl0', epoch: 2 });
    deleting.metadata.deletionTimestamp = NOW;
    const c1 = conditionsOf(decide(claim(), deleting));
    expect(c1?.find((x) => x.type === 'accel.dmabuf.io/handoff-complete')?.status).toBe('False');
    const c2 = conditionsOf(
      decide(claim(), lease({ phase: 'Granted', accelerator: 'node-a-hl1', epoch: 2 })),
    );
    expect(c2?.find((x) => x.type === 'accel.dmabuf.io/handoff-complete')?.status).toBe('False');
  });

  it('sets unresolvable=True only once the device is tainted, so the scheduler cannot pick it again', () => {
    const blocked = lease({
      phase: 'Pending',
      accelerator: 'node-a-hl0',
      conditions: [
        {
          type: 'Blocked',
          status: 'True',
          reason: 'Unresolvable',
          message: 'ino 7 is pinned by a process outside any pod',
          lastTransitionTime: NOW,
        },
      ],
    });
    const before = conditionsOf(decide(claim(), blocked, false));
    expect(before?.find((x) => x.type === 'accel.dmabuf.io/unresolvable')?.status).toBe('False');
    const after = conditionsOf(decide(claim(), blocked, true));
    expect(after?.find((x) => x.type === 'accel.dmabuf.io/unresolvable')).toMatchObject({
      status: 'True',
      reason: 'Unresolvable',
      message: 'ino 7 is pinned by a process outside any pod',
    });
  });

  it('writes nothing when the claim already says it, whatever the time now', () => {
    const granted = lease({ phase: 'Granted', accelerator: 'node-a-hl0', epoch: 1 });
    const first = conditionsOf(decide(claim(), granted));
    if (!first) throw new Error('want a status write');
    // The server answers in its own key order.
    const stored = first.map((c) => ({
      message: c.message,
      lastTransitionTime: c.lastTransitionTime,
      type: c.type,
      reason: c.reason,
      status: c.status,
    }));
    expect(decide(claim({ conditions: stored }), granted, false, LATER)).toEqual([]);
  });

  it('keeps lastTransitionTime when only the message changes', () => {
    const pending = lease({ phase: 'Pending', accelerator: 'node-a-hl0', queuePosition: 1 });
    const first = conditionsOf(decide(claim(), pending)) ?? [];
    const moved = lease({ phase: 'Pending', accelerator: 'node-a-hl0', queuePosition: 0 });
    const next = conditionsOf(decide(claim({ conditions: first }), moved, false, LATER)) ?? [];
    expect(
      next.find((c) => c.type === 'accel.dmabuf.io/handoff-complete')?.lastTransitionTime,
    ).toBe(NOW);
  });
});

describe('a claim whose allocation changed', () => {
  it('deletes its lease when the scheduler deallocated it (failover), and only its own', () => {
    const mine = lease({ phase: 'Pending', accelerator: 'node-a-hl0' });
    expect(decide(claim({ devices: [] }), mine)).toEqual([{ type: 'deleteLease', lease: mine }]);
    const other = lease({ phase: 'Pending' }, { owner: 'someone-else' });
    expect(decide(claim({ devices: [] }), other)).toEqual([]);
  });

  it('deletes a lease on the old device first, and creates the new one once it is gone', () => {
    const old = lease({ phase: 'Pending' }, { accelerator: 'node-a-hl0' });
    const moved = claim({ devices: [{ ...DEV, device: 'hl1' }] });
    expect(decide(moved, old)).toEqual([{ type: 'deleteLease', lease: old }]);
    old.metadata.deletionTimestamp = NOW;
    expect(decide(moved, old)).toEqual([]);
    const [a] = decide(moved);
    expect(a?.type === 'createLease' && a.lease.spec.accelerator).toBe('node-a-hl1');
  });

  it("never touches a lease of the same name that is not the claim's: it warns", () => {
    const other = lease({ phase: 'Granted', accelerator: 'node-a-hl0' }, { owner: 'someone-else' });
    const actions = decide(claim(), other);
    expect(actions.map((a) => a.type)).toEqual(['event']);
  });

  it('keeps the lease of a claim being deleted while it is allocated (its pod may still run)', () => {
    const mine = lease({ phase: 'Granted', accelerator: 'node-a-hl0', epoch: 1 });
    const actions = decide(claim({ deleting: true }), mine);
    expect(actions.map((a) => a.type)).toEqual(['claimDeviceStatus']);
    expect(decide(claim({ deleting: true, devices: [] }), mine)).toEqual([
      { type: 'deleteLease', lease: mine },
    ]);
    // ...and creates none for it.
    expect(decide(claim({ deleting: true }))).toEqual([]);
  });
});
