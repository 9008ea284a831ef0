// Where each kind of accel.dmabuf.io/v1alpha1 lives on the API server, as the ResourceTypes the
// generic clients of src/kube address. The CRDs are built from these names, so the two agree.
import type { ResourceType } from '../kube/index.ts';
import { GROUP, VERSION } from './common.ts';

// `const K` keeps each kind a literal, so the zod schemas can take their `kind` from here.
function accelResource<const K extends string>(
  kind: K,
  plural: string,
  namespaced: boolean,
): ResourceType & { kind: K } {
  return { group: GROUP, version: VERSION, plural, kind, namespaced };
}

export const ACCELERATORS = accelResource('Accelerator', 'accelerators', false);
export const ACCELERATOR_LEASES = accelResource('AcceleratorLease', 'acceleratorleases', true);
export const DMABUF_EXPORTS = accelResource('DmaBufExport', 'dmabufexports', true);
export const DMABUF_IMPORT_GRANTS = accelResource('DmaBufImportGrant', 'dmabufimportgrants', true);
export const ACCELERATOR_LEASE_POLICIES = accelResource(
  'AcceleratorLeasePolicy',
  'acceleratorleasepolicies',
  false,
);
