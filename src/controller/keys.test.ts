import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { lease } from '../../test/fixtures/cli.ts';
import type { ResourceClaim } from './claims.ts';
import { claimKey, claimOfKey, gateKey, gateOfKey, wakeKeys, type ModeSources } from './keys.ts';
import type { ResourceSlice } from './view.ts';

const claim = (name: string, pool?: string): ResourceClaim => ({
  metadata: { name, namespace: 'team-b', uid: `uid-${name}` },
  spec: { devices: { requests: [] } },
  ...(pool && {
    status: {
      allocation: {
        devices: {
          results: [{ driver: 'accel.dmabuf.io', pool, device: 'hl0', request: 'accel' }],
        },
      },
    },
  }),
});

const gatedPod = (name: string, gates = ['accel.dmabuf.io/lease']): V1Pod => ({
  metadata: { name, namespace: 'team-b' },
  spec: { containers: [], schedulingGates: gates.map((g) => ({ name: g })) },
});

const slice = (pool: string): ResourceSlice => ({
  metadata: { name: `${pool}.accel.dmabuf.io` },
  spec: { driver: 'accel.dmabuf.io', pool: { name: pool, generation: 1, resourceSliceCount: 1 } },
});

const none = () => [];
const modes: ModeSources = {
  claims: () => [claim('on-a', 'node-a'), claim('on-b', 'node-b'), claim('unallocated')],
  gatedPods: (ns) => (ns === 'team-b' ? [gatedPod('holder-0')] : []),
};

describe('the keys of DRA mode and holder gates', () => {
  it('name a claim or a pod and nothing else', () => {
    expect(claimOfKey(claimKey(claim('train')))).toBe('team-b/train');
    expect(gateOfKey(gateKey(gatedPod('holder-0')))).toBe('team-b/holder-0');
    expect(claimOfKey('accelerator/node-a-hl0')).toBeUndefined();
    expect(gateOfKey(claimKey(claim('train')))).toBeUndefined();
  });

  it("wake a claim on its own change, its lease's, and a taint on its pool's slice", () => {
    const c = { resource: 'claims', type: 'update', obj: claim('train') } as const;
    expect(wakeKeys(c, none, modes)).toEqual(['claim/team-b/train']);
    const s = { resource: 'slices', type: 'update', obj: slice('node-a') } as const;
    expect(wakeKeys(s, none, modes)).toEqual(['claim/team-b/on-a']);
    const l = lease('team-b', 'train');
    l.metadata.ownerReferences = [{ apiVersion: 'resource.k8s.io/v1', kind: 'ResourceClaim' }];
    const keys = wakeKeys({ resource: 'leases', type: 'update', obj: l }, none, modes);
    expect(keys).toContain('claim/team-b/train');
    // A plain lease is no claim's.
    const plain = wakeKeys(
      { resource: 'leases', type: 'update', obj: lease('team-b', 'tenant-b') },
      none,
      modes,
    );
    expect(plain.some((k) => k.startsWith('claim/'))).toBe(false);
  });

  it("wake the gated pods of a lease's namespace, and a gated pod on its own change", () => {
    const keys = wakeKeys(
      { resource: 'leases', type: 'update', obj: lease('team-b', 'tenant-b') },
      none,
      modes,
    );
    expect(keys).toContain('gate/team-b/holder-0');
    expect(
      wakeKeys({ resource: 'pods', type: 'add', obj: gatedPod('holder-1') }, none, modes),
    ).toEqual(['gate/team-b/holder-1']);
    expect(
      wakeKeys(
        { resource: 'pods', type: 'add', obj: gatedPod('other', ['example.com/gate']) },
        none,
        modes,
      ),
    ).toEqual([]);
  });

  it('wake nothing of either mode when it is off', () => {
    const l = lease('team-b', 'train');
    l.metadata.ownerReferences = [{ apiVersion: 'resource.k8s.io/v1', kind: 'ResourceClaim' }];
    const keys = wakeKeys({ resource: 'leases', type: 'update', obj: l }, none);
    expect(keys.some((k) => k.startsWith('claim/') || k.startsWith('gate/'))).toBe(false);
    expect(wakeKeys({ resource: 'pods', type: 'add', obj: gatedPod('holder-1') }, none)).toEqual(
      [],
    );
  });
});
