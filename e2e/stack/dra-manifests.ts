// The DRA objects the cluster tests and the bench create: the chart's DeviceClass, a claim for
// one device of driver accel.dmabuf.io (with LeaseParameters if given), and a pod that uses it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

export const RESOURCE = '/apis/resource.k8s.io/v1';

/** The chart's DeviceClass, as deploy/dra/deviceclass.yaml ships it. */
export function deviceClassManifest(): unknown {
  const file = join(import.meta.dirname, '..', '..', 'deploy', 'dra', 'deviceclass.yaml');
  return parse(readFileSync(file, 'utf8'));
}

export function claimManifest(ns: string, name: string, params?: Record<string, unknown>) {
  return {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaim',
    metadata: { name, namespace: ns },
    spec: {
      devices: {
        requests: [{ name: 'accel', exactly: { deviceClassName: 'accel.dmabuf.io' } }],
        ...(params && {
          config: [
            {
              requests: ['accel'],
              opaque: {
                driver: 'accel.dmabuf.io',
                parameters: {
                  apiVersion: 'accel.dmabuf.io/v1alpha1',
                  kind: 'LeaseParameters',
                  ...params,
                },
              },
            },
          ],
        }),
      },
    },
  };
}

/** A pod the scheduler places (no nodeName), using `claim`. */
export function claimPodManifest(
  ns: string,
  name: string,
  claim: string,
  labels: Record<string, string> = {},
) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels },
    spec: {
      resourceClaims: [{ name: 'accel', resourceClaimName: claim }],
      containers: [
        {
          name: 'train',
          image: 'registry.example/workload:1',
          resources: { claims: [{ name: 'accel' }] },
        },
      ],
      tolerations: [{ operator: 'Exists' }],
    },
  };
}
