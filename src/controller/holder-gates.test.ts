import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { AcceleratorLease, AcceleratorLeaseStatus } from '../crds/index.ts';
import { lease as fixtureLease } from '../../test/fixtures/cli.ts';
import { decideGate, ungatePatch } from './holder-gates.ts';

const GATE = 'accel.dmabuf.io/lease';

function pod(
  labels: Record<string, string>,
  gates = [GATE],
  extra: Partial<V1Pod['spec']> = {},
): V1Pod {
  return {
    metadata: {
      name: 'holder-0',
      namespace: 'team-a',
      uid: 'pod-uid',
      resourceVersion: '7',
      labels,
    },
    spec: {
      containers: [{ name: 'c' }],
      schedulingGates: gates.map((name) => ({ name })),
      ...extra,
    },
  };
}

/** A lease of `name` (holder app=<app or name>) in `phase` on `accelerator`. */
function lease(
  name: string,
  phase: NonNullable<AcceleratorLeaseStatus['phase']>,
  accelerator: string | undefined,
  opts: { ns?: string; app?: string; claim?: boolean; deleting?: boolean } = {},
): AcceleratorLease {
  const l = fixtureLease(opts.ns ?? 'team-a', name, {
    ...(accelerator && { accelerator }),
    status: { phase, ...(accelerator && { accelerator }) },
    ...(opts.deleting && { deleting: true }),
  });
  l.spec.holder.podSelector = { matchLabels: { app: opts.app ?? name } };
  if (opts.claim)
    l.metadata.ownerReferences = [
      { apiVersion: 'resource.k8s.io/v1', kind: 'ResourceClaim', name, uid: 'c' },
    ];
  return l;
}

const nodeOf = (a: string) => ({ 'node-a-hl0': 'node-a', 'node-b-hl0': 'node-b' })[a];
const decide = (p: V1Pod, leases: AcceleratorLease[]) => decideGate({ pod: p, leases, nodeOf });

describe('holder gates', () => {
  it('release a gated pod onto the node of the Granted lease that selects it', () => {
    const p = pod({ app: 'train' });
    expect(decide(p, [lease('train', 'Granted', 'node-b-hl0')])).toEqual([
      { type: 'ungatePod', pod: p, node: 'node-b' },
    ]);
  });

  it('keep it gated until Granted, and for leases that do not select it', () => {
    const p = pod({ app: 'train' });
    for (const phase of ['Pending', 'Releasing', 'Released', 'Expired', 'Failed'] as const)
      expect(decide(p, [lease('train', phase, 'node-a-hl0')])).toEqual([]);
    expect(decide(p, [lease('other', 'Granted', 'node-a-hl0')])).toEqual([]);
    expect(decide(p, [lease('train', 'Granted', 'node-a-hl0', { ns: 'team-b' })])).toEqual([]);
    expect(decide(p, [lease('train', 'Granted', 'node-a-hl0', { deleting: true })])).toEqual([]);
    // A claim's lease gates through DRA binding conditions, never through this gate.
    expect(decide(p, [lease('train', 'Granted', 'node-a-hl0', { claim: true })])).toEqual([]);
  });

  it('never touch a pod without our gate', () => {
    const p = pod({ app: 'train' }, ['other.example.com/gate']);
    expect(decide(p, [lease('train', 'Granted', 'node-a-hl0')])).toEqual([]);
  });

  it('keep a pod gated that two leases on different nodes select, and say why', () => {
    const p = pod({ app: 'train' });
    const actions = decide(p, [
      lease('a', 'Granted', 'node-a-hl0', { app: 'train' }),
      lease('b', 'Granted', 'node-b-hl0', { app: 'train' }),
    ]);
    expect(actions.map((a) => a.type)).toEqual(['event', 'event']);
  });

  it('remove only our gate and AND the node into every required term', () => {
    const p = pod({ app: 'train' }, [GATE, 'other.example.com/gate'], {
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z1'] }] },
              { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z2'] }] },
            ],
          },
        },
      },
    });
    const patch = ungatePatch(p, 'node-a') as {
      metadata: { resourceVersion: string };
      spec: {
        schedulingGates: { name: string }[];
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: unknown[] };
          };
        };
      };
    };
    expect(patch.metadata.resourceVersion).toBe('7');
    expect(patch.spec.schedulingGates).toEqual([{ name: 'other.example.com/gate' }]);
    const pin = { key: 'metadata.name', operator: 'In', values: ['node-a'] };
    expect(
      patch.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
        .nodeSelectorTerms,
    ).toEqual([
      { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z1'] }], matchFields: [pin] },
      { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z2'] }], matchFields: [pin] },
    ]);
    const bare = ungatePatch(pod({}), 'node-a') as typeof patch;
    expect(
      bare.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
        .nodeSelectorTerms,
    ).toEqual([{ matchFields: [pin] }]);
  });
});
