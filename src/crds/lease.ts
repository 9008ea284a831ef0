// AcceleratorLease: a tenant's claim for exclusive ownership of one device, queued per device.
import { z } from 'zod';
import {
  Conditions,
  Duration,
  ImporterKind,
  LabelSelector,
  MAX_OBJECT_KEY,
  PodRef,
  ResourceName,
  resourceObject,
  Timestamp,
  withRules,
} from './common.ts';
import { ACCELERATOR_LEASES } from './resources.ts';
import type { Pin } from './accelerator.ts';
import { EvictionRecord, MAX_EVICTION_RECORDS } from './eviction.ts';

export const Revocation = z
  .object({
    gracePeriodSeconds: z
      .int()
      .min(0)
      .max(86400)
      .default(30)
      .describe('how long a stuck handoff waits for pins to be released before evicting'),
    maxEvictions: z
      .int()
      .min(0)
      .max(1000)
      .default(5)
      .describe('at most this many pods are evicted to free the device for this lease'),
  })
  .strict();

export const AcceleratorLeaseSpec = withRules(
  z
    .object({
      accelerator: ResourceName.optional().describe('the Accelerator to own'),
      selector: LabelSelector.optional().describe('any Accelerator matching these labels'),
      holder: z
        .object({ podSelector: LabelSelector })
        .strict()
        .describe("the tenant's pods that use the device, in the lease's namespace"),
      priority: z.int().min(-1000000).max(1000000).default(0),
      duration: Duration.optional().describe('maximum hold; the lease expires after it'),
      revocation: Revocation.prefault({}),
    })
    .strict(),
  [
    {
      rule: 'has(self.accelerator) != has(self.selector)',
      message: 'exactly one of spec.accelerator or spec.selector must be set',
      holds: (spec) => (spec.accelerator === undefined) !== (spec.selector === undefined),
    },
    {
      rule: 'has(self.accelerator) == has(oldSelf.accelerator) && (!has(self.accelerator) || self.accelerator == oldSelf.accelerator) && has(self.selector) == has(oldSelf.selector) && (!has(self.selector) || self.selector == oldSelf.selector)',
      message:
        'spec.accelerator and spec.selector are immutable: delete the lease and create another to target a different device',
    },
  ],
);
export type AcceleratorLeaseSpec = z.infer<typeof AcceleratorLeaseSpec>;

export const LeasePhase = z.enum([
  'Pending',
  'Granted',
  'Releasing',
  'Released',
  'Expired',
  'Failed',
]);
export type LeasePhase = z.infer<typeof LeasePhase>;

/** status.blockedBy holds this many pins at most; a device reports up to 1024, so writers cut. */
export const MAX_BLOCKERS = 256;

/** One pin that stands between this lease and its device. */
export const Blocker = z
  .object({
    accelerator: ResourceName,
    export: z
      .string()
      .max(MAX_OBJECT_KEY)
      .optional()
      .describe('namespace/name of the DmaBufExport'),
    importer: z.string().max(63).optional(),
    kind: z.enum([...ImporterKind.options, 'fd']),
    pod: PodRef.optional(),
    pid: z.int().min(1),
    reason: z.string().max(1024).optional().describe('why it cannot be cleared, when it cannot'),
  })
  .strict();
export type Blocker = z.infer<typeof Blocker>;

/**
 * The pins on `accelerator` as status.blockedBy lists them: the first MAX_BLOCKERS (the schema's
 * maxItems), each with the reason `reasonOf` gives, cut to the schema's maxLength.
 */
export function blockersOf(
  accelerator: string,
  pins: readonly Pin[],
  reasonOf: (pin: Pin) => string | undefined = () => undefined,
): Blocker[] {
  return pins.slice(0, MAX_BLOCKERS).map((p) => {
    const reason = reasonOf(p);
    return {
      accelerator,
      ...(p.export !== undefined && { export: p.export }),
      ...(p.importer !== undefined && { importer: p.importer }),
      kind: p.kind,
      ...(p.pod !== undefined && { pod: p.pod }),
      pid: p.pid,
      ...(reason !== undefined && { reason: reason.slice(0, 1024) }),
    };
  });
}

/** Whether `blocker` is the entry blockersOf wrote for `pin` (same holder and attachment). */
export function isBlockerOf(blocker: Blocker, pin: Pin): boolean {
  return (
    blocker.pid === pin.pid &&
    blocker.kind === pin.kind &&
    blocker.importer === pin.importer &&
    blocker.export === pin.export
  );
}

export const AcceleratorLeaseStatus = z
  .object({
    phase: LeasePhase.optional(),
    accelerator: ResourceName.optional(),
    epoch: z.int().min(0).optional(),
    queuePosition: z.int().min(0).optional(),
    grantedAt: Timestamp.optional(),
    expiresAt: Timestamp.optional(),
    blockedBy: z.array(Blocker).max(MAX_BLOCKERS).optional(),
    evictions: z.array(EvictionRecord).max(MAX_EVICTION_RECORDS).optional(),
    conditions: Conditions.optional(),
    observedGeneration: z.int().min(0).optional(),
  })
  .strict();
export type AcceleratorLeaseStatus = z.infer<typeof AcceleratorLeaseStatus>;

export const AcceleratorLease = resourceObject(ACCELERATOR_LEASES, {
  spec: AcceleratorLeaseSpec,
  status: AcceleratorLeaseStatus.optional(),
});
export type AcceleratorLease = z.infer<typeof AcceleratorLease>;
