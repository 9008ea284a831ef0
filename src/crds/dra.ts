// The DRA vocabulary shared by the agent (the driver's ResourceSlices), the controller (claims
// become leases, leases gate claims and pods) and the plugin: names, how a slice device maps to
// an Accelerator, and the opaque parameters a claim may pass to its lease.
import { z } from 'zod';
import type { ResourceType } from '../kube/index.ts';
import { Duration } from './common.ts';
import { Revocation, type AcceleratorLease } from './lease.ts';

/** The DRA driver name, the DeviceClass name, and every slice's spec.driver. */
export const DRA_DRIVER = 'accel.dmabuf.io';

/** Binding condition: the device is Owned at the claim's lease's epoch. */
export const HANDOFF_COMPLETE = 'accel.dmabuf.io/handoff-complete';
/** Binding failure condition: the handoff is Unresolvable, the scheduler must allocate elsewhere. */
export const UNRESOLVABLE = 'accel.dmabuf.io/unresolvable';
/** The device taint the agent publishes on a cordoned device, so no new claim is allocated it. */
export const CORDON_TAINT = 'accel.dmabuf.io/cordoned';

/** The scheduling gate a holder pod waits behind, and the label that asks for it. */
export const LEASE_GATE = 'accel.dmabuf.io/lease';

/** The label a claim's lease selects holder pods by: nobody sets it, the claim gates its pods. */
export const CLAIM_UID_LABEL = 'accel.dmabuf.io/claim-uid';

/**
 * Is the lease a ResourceClaim's (DRA mode)? Such a lease gates its pod through binding
 * conditions, never through the scheduling gate, and is found from the claim by name.
 */
export const isClaimLease = (lease: AcceleratorLease): boolean =>
  ((lease.metadata.ownerReferences ?? []) as { kind?: string; apiVersion?: string }[]).some(
    (o) => o.kind === 'ResourceClaim' && (o.apiVersion ?? '').startsWith('resource.k8s.io/'),
  );

export const RESOURCE_CLAIMS: ResourceType = {
  group: 'resource.k8s.io',
  version: 'v1',
  plural: 'resourceclaims',
  kind: 'ResourceClaim',
  namespaced: true,
};
export const RESOURCE_SLICES: ResourceType = {
  group: 'resource.k8s.io',
  version: 'v1',
  plural: 'resourceslices',
  kind: 'ResourceSlice',
  namespaced: false,
};

/** A node's slice: one per node, pool named after the node. */
export const sliceName = (node: string): string => `${node}.${DRA_DRIVER}`;

/**
 * The slice device of an Accelerator (named `<node>-<device>`, no '-' in `<device>`), and back.
 * Undefined when the name is not of that node.
 */
export function sliceDeviceOf(accelerator: string, node: string): string | undefined {
  const device = accelerator.startsWith(`${node}-`) ? accelerator.slice(node.length + 1) : '';
  return device !== '' && !device.includes('-') ? device : undefined;
}
export const acceleratorOfDevice = (pool: string, device: string): string => `${pool}-${device}`;

/**
 * What a claim may say about its lease, as opaque config for driver accel.dmabuf.io
 * (`spec.devices.config[].opaque.parameters`, or the DeviceClass's config).
 */
export const LeaseParameters = z
  .object({
    apiVersion: z.literal('accel.dmabuf.io/v1alpha1'),
    kind: z.literal('LeaseParameters'),
    priority: z.int().min(-1000000).max(1000000).optional(),
    duration: Duration.optional(),
    revocation: Revocation.partial().optional(),
  })
  .strict();
export type LeaseParameters = z.infer<typeof LeaseParameters>;
