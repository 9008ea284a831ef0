import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { lease } from '../../test/fixtures/cli.ts';
import { leaseOfPod } from './holders.ts';

const claimLease = (name: string) => {
  const l = lease('team-b', name);
  l.metadata.ownerReferences = [
    { apiVersion: 'resource.k8s.io/v1', kind: 'ResourceClaim', name, uid: `uid-${name}` },
  ];
  l.spec.holder.podSelector = { matchLabels: { 'accel.dmabuf.io/claim-uid': `uid-${name}` } };
  return l;
};

const pod = (
  spec: Partial<V1Pod['spec']>,
  labels: Record<string, string> = {},
  status?: V1Pod['status'],
): V1Pod => ({
  metadata: { name: 'train-0', namespace: 'team-b', labels },
  spec: { containers: [], ...spec },
  ...(status && { status }),
});

describe('leaseOfPod', () => {
  it("follows a claim the pod names, or one generated from its template, to the claim's lease", () => {
    const leases = [claimLease('train'), claimLease('train-0-accel-x7k2p')];
    expect(
      leaseOfPod(pod({ resourceClaims: [{ name: 'accel', resourceClaimName: 'train' }] }), leases),
    ).toEqual({
      lease: 'train',
      via: ['pod team-b/train-0 uses ResourceClaim team-b/train -> lease team-b/train'],
    });
    const templated = pod(
      { resourceClaims: [{ name: 'accel', resourceClaimTemplateName: 'accel' }] },
      {},
      { resourceClaimStatuses: [{ name: 'accel', resourceClaimName: 'train-0-accel-x7k2p' }] },
    );
    expect(leaseOfPod(templated, leases)?.lease).toBe('train-0-accel-x7k2p');
  });

  it('else finds the plain lease whose holder selector picks the pod, never a claim lease', () => {
    const plain = lease('team-b', 'tenant-b');
    expect(leaseOfPod(pod({}, { app: 'tenant-b' }), [claimLease('train'), plain])).toEqual({
      lease: 'tenant-b',
      via: ['pod team-b/train-0 is a holder of lease team-b/tenant-b'],
    });
    expect(leaseOfPod(pod({}, { app: 'nobody' }), [claimLease('train'), plain])).toBeUndefined();
    // A claim the pod names that has no lease (not allocated our device) leads nowhere.
    expect(
      leaseOfPod(pod({ resourceClaims: [{ name: 'gpu', resourceClaimName: 'gpu' }] }), [plain]),
    ).toBeUndefined();
  });
});
