import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { LEASE_GATE } from '../crds/index.ts';
import { ungatePatch } from './holder-gates.ts';
import { trimPod } from './pod-cache.ts';

const running: V1Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'loader-0',
    namespace: 'team-io',
    uid: 'u-1',
    resourceVersion: '42',
    labels: { app: 'loader' },
    annotations: { big: 'x'.repeat(1000) },
    deletionTimestamp: new Date('2026-12-01T00:00:00Z'),
    managedFields: [{ manager: 'kubectl', operation: 'Apply' }],
  },
  spec: {
    nodeName: 'node-a',
    containers: [{ name: 'c', image: 'busybox', command: ['sleep', 'infinity'] }],
    affinity: { podAntiAffinity: {} },
  },
  status: { phase: 'Running', podIP: '10.0.0.5' },
};

describe('trimPod', () => {
  it('keeps what the reaper and the wake rule read, and nothing else', () => {
    expect(trimPod(running)).toEqual({
      metadata: {
        name: 'loader-0',
        namespace: 'team-io',
        uid: 'u-1',
        resourceVersion: '42',
        labels: { app: 'loader' },
        deletionTimestamp: new Date('2026-12-01T00:00:00Z'),
      },
      spec: { containers: [], nodeName: 'node-a' },
    });
  });

  it("keeps a gated pod's gates and affinity, so ungating it patches what the pod has", () => {
    const gated: V1Pod = {
      metadata: { name: 'h', namespace: 'a', uid: 'u-2', resourceVersion: '7' },
      spec: {
        containers: [{ name: 'c' }],
        schedulingGates: [{ name: LEASE_GATE }, { name: 'other' }],
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z'] }] },
              ],
            },
          },
        },
      },
    };
    expect(ungatePatch(trimPod(gated), 'node-b')).toEqual(ungatePatch(gated, 'node-b'));
  });
});
