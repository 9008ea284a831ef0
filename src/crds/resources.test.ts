import { describe, expect, it } from 'vitest';
import { apiVersionOf, resourcePath } from '../kube/index.ts';
import { API_VERSION } from './common.ts';
import { DEFINITIONS } from './definitions.ts';
import { ACCELERATORS, ACCELERATOR_LEASES } from './resources.ts';

describe('accel.dmabuf.io resources', () => {
  it('address the paths the CRDs serve', () => {
    expect(resourcePath(ACCELERATORS, undefined, 'node-a-hl0', 'status')).toBe(
      '/apis/accel.dmabuf.io/v1alpha1/accelerators/node-a-hl0/status',
    );
    expect(resourcePath(ACCELERATOR_LEASES, 'team-a', 'tenant-a')).toBe(
      '/apis/accel.dmabuf.io/v1alpha1/namespaces/team-a/acceleratorleases/tenant-a',
    );
    expect(resourcePath(ACCELERATOR_LEASES)).toBe(
      '/apis/accel.dmabuf.io/v1alpha1/acceleratorleases',
    );
  });

  it('share the API version of the schemas, one per definition', () => {
    for (const def of DEFINITIONS) expect(apiVersionOf(def.type)).toBe(API_VERSION);
    expect(new Set(DEFINITIONS.map((d) => d.type.kind)).size).toBe(DEFINITIONS.length);
  });
});
