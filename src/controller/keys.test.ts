import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { lease } from '../../test/fixtures/cli.ts';
import type { ResourceClaim } from './claims.ts';
import type { PodDisruptionBudget } from './disruption-budgets.ts';
import {
  claimKey,
  claimOfKey,
  gateKey,
  gateOfKey,
  wakeKeys,
  type ModeSources,
  type RefusalSources,
} from './keys.ts';
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

describe('the keys a PodDisruptionBudget wakes', () => {
  const T = Date.parse('2026-11-25T10:00:00Z');
  const budget = (allowed: number, since: number, app = 'loader'): PodDisruptionBudget => ({
    metadata: { name: 'loaders', namespace: 'team-io', generation: 1 },
    spec: { maxUnavailable: 1, selector: { matchLabels: { app } } },
    status: {
      currentHealthy: 2,
      desiredHealthy: 1,
      expectedPods: 2,
      disruptionsAllowed: allowed,
      observedGeneration: 1,
      conditions: [
        {
          type: 'DisruptionAllowed',
          status: allowed > 0 ? 'True' : 'False',
          reason: '',
          message: '',
          lastTransitionTime: new Date(since),
        },
      ],
    },
  });
  const pods: Record<string, V1Pod> = {
    'team-io/loader-0': {
      metadata: { name: 'loader-0', namespace: 'team-io', labels: { app: 'loader' } },
    },
    'team-io/other-0': {
      metadata: { name: 'other-0', namespace: 'team-io', labels: { app: 'other' } },
    },
  };
  const refusals: RefusalSources = {
    refused: () => [
      { accelerator: 'node-a-hl0', pod: 'team-io/loader-0' },
      { accelerator: 'node-a-hl1', pod: 'team-io/other-0' },
      { accelerator: 'node-a-hl2', pod: 'team-io/loader-0' },
    ],
    pod: (key) => pods[key],
  };
  const wake = (
    obj: PodDisruptionBudget,
    old?: PodDisruptionBudget,
    type: 'add' | 'update' | 'delete' | 'resync' = 'update',
  ) => wakeKeys({ resource: 'pdbs', type, obj, ...(old && { old }) }, none, {}, refusals);

  it('wake the devices whose handoffs hold a refusal of a pod it selects, once it allows', () => {
    expect(wake(budget(1, T + 5000), budget(0, T))).toEqual([
      'accelerator/node-a-hl0',
      'accelerator/node-a-hl2',
    ]);
    expect(wake(budget(1, T), undefined, 'add')).toHaveLength(2);
  });

  it('wake nothing while it allows none, or allows since the same time as before', () => {
    expect(wake(budget(0, T + 5000), budget(1, T))).toEqual([]);
    expect(wake(budget(1, T), budget(1, T))).toEqual([]);
    expect(wake(budget(1, T), undefined, 'delete')).toEqual([]);
    expect(wake(budget(1, T + 5000, 'nobody'), budget(0, T))).toEqual([]);
  });
});
