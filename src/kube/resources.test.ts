import { describe, expect, it } from 'vitest';
import { ACCELERATORS, ACCELERATOR_LEASES, resourcePath } from './resources.ts';

describe('resourcePath', () => {
  it('builds core, group, namespaced, cluster-scoped and subresource paths', () => {
    expect(resourcePath(ACCELERATORS, undefined, 'node-a-hl0', 'status')).toBe(
      '/apis/accel.dmabuf.io/v1alpha1/accelerators/node-a-hl0/status',
    );
    expect(resourcePath(ACCELERATOR_LEASES, 'team-a', 'tenant-a')).toBe(
      '/apis/accel.dmabuf.io/v1alpha1/namespaces/team-a/acceleratorleases/tenant-a',
    );
    expect(resourcePath(ACCELERATOR_LEASES)).toBe(
      '/apis/accel.dmabuf.io/v1alpha1/acceleratorleases',
    );
    expect(
      resourcePath(
        { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true },
        'ns',
      ),
    ).toBe('/api/v1/namespaces/ns/pods');
  });
});
