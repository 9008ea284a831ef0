// AcceleratorLeasePolicy: the administrator's bounds on what a tenant's lease may choose, picked
// per namespace by a label. Admission enforces the per-lease bounds; the controller the count.
import { z } from 'zod';
import { Duration, withRules, resourceObject } from './common.ts';
import { ACCELERATOR_LEASE_POLICIES } from './resources.ts';

/** Namespace label naming the AcceleratorLeasePolicy that bounds the leases in it. */
export const LEASE_POLICY_LABEL = 'accel.dmabuf.io/lease-policy';
/** The policy of a namespace without that label. */
export const DEFAULT_LEASE_POLICY = 'default';
/** Reason of the Granted=False condition on a lease the controller leaves unqueued because its
 * namespace has maxLeasesPerNamespace leases ahead of it. */
export const OVER_NAMESPACE_LIMIT = 'OverNamespaceLimit';

// An empty spec is the safe policy: every field defaults to the bound of the chart's `default`.
const DEFAULT_PRIORITY = { min: -1000, max: 0 };

export const PriorityRange = withRules(
  z
    .object({
      min: z
        .int()
        .min(-1000000)
        .max(1000000)
        .default(DEFAULT_PRIORITY.min)
        .describe('lowest priority allowed'),
      max: z
        .int()
        .min(-1000000)
        .max(1000000)
        .default(DEFAULT_PRIORITY.max)
        .describe('highest priority allowed'),
    })
    .strict(),
  [
    {
      rule: 'self.min <= self.max',
      message: 'spec.priority.min must not exceed spec.priority.max',
      holds: (r) => r.min <= r.max,
    },
  ],
);

export const AcceleratorLeasePolicySpec = z
  .object({
    // Spelt out: the API server checks a default against the CEL rules before nested defaults.
    priority: PriorityRange.prefault(DEFAULT_PRIORITY).describe(
      'the range of spec.priority a lease may ask for; above 0 lets a tenant jump the queue',
    ),
    minGracePeriodSeconds: z
      .int()
      .min(0)
      .max(86400)
      .default(10)
      .describe(
        "the least spec.revocation.gracePeriodSeconds a lease may set: how long the previous tenant's pinning pods are left before the reaper evicts them",
      ),
    maxEvictions: z
      .int()
      .min(0)
      .max(1000)
      .default(10)
      .describe('the most spec.revocation.maxEvictions a lease may set'),
    maxDuration: Duration.optional().describe(
      'when set, every lease must set spec.duration, no longer than this',
    ),
    maxLeasesPerNamespace: z
      .int()
      .min(0)
      .max(10000)
      .default(16)
      .describe(
        'leases a namespace may have that hold or wait for a device; the controller leaves the later ones (by creation) unqueued',
      ),
  })
  .strict();
export type AcceleratorLeasePolicySpec = z.infer<typeof AcceleratorLeasePolicySpec>;

export const AcceleratorLeasePolicy = resourceObject(ACCELERATOR_LEASE_POLICIES, {
  spec: AcceleratorLeasePolicySpec.prefault({}),
});
export type AcceleratorLeasePolicy = z.infer<typeof AcceleratorLeasePolicy>;

/** The policy that bounds leases in a namespace with these labels. */
export function policyNameFor(
  namespaceLabels: Readonly<Record<string, string>> | undefined,
  defaultPolicy: string = DEFAULT_LEASE_POLICY,
): string {
  return namespaceLabels?.[LEASE_POLICY_LABEL] ?? defaultPolicy;
}
