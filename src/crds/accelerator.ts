// Accelerator: one device, published by its node agent; spec.owner is the controller's to write.
import { z } from 'zod';
import {
  Bytes,
  Conditions,
  ExporterProfile,
  ImporterKind,
  LeaseRef,
  MAX_OBJECT_KEY,
  PodRef,
  ResourceName,
  resourceObject,
  Timestamp,
  withRules,
} from './common.ts';
import { ACCELERATORS } from './resources.ts';
import { EvictionRecord, MAX_EVICTION_RECORDS } from './eviction.ts';

/**
 * An owner: a lease and a fencing epoch. No lease means "owned by nobody" at that epoch,
 * so that dropping ownership is itself an epoch change the device must honour.
 */
export const AcceleratorOwner = z
  .object({
    lease: LeaseRef.optional(),
    epoch: z.int().min(0),
  })
  .strict();
export type AcceleratorOwner = z.infer<typeof AcceleratorOwner>;

/**
 * spec.owner, the controller's to write. Its epoch is the fencing token: it never goes down,
 * and every change of lease raises it. (status.owner, the device's report, has no such rule:
 * a device moves from "nobody at epoch E" to "lease L at epoch E" once the pins are gone.)
 */
const DesiredOwner = withRules(
  AcceleratorOwner.extend({
    idleEvictions: z
      .array(EvictionRecord)
      .max(MAX_EVICTION_RECORDS)
      .optional()
      .describe(
        "the reaper's eviction records while no lease waits (reapWhenIdle); they belong to this epoch and go with an owner change",
      ),
  }).strict(),
  [
    {
      rule: 'self.epoch >= oldSelf.epoch',
      message: 'owner.epoch must never decrease: it is the fencing token devices compare',
    },
    {
      rule: '(has(self.lease) == has(oldSelf.lease) && (!has(self.lease) || self.lease.uid == oldSelf.lease.uid)) || self.epoch > oldSelf.epoch',
      message: 'owner.epoch must increase whenever owner.lease changes',
    },
  ],
);
export type AcceleratorSpecOwner = z.infer<typeof DesiredOwner>;

export const AcceleratorSpec = withRules(
  z
    .object({
      node: ResourceName,
      index: z.int().min(0),
      model: z.string().min(1).max(63),
      memoryBytes: Bytes.min(1),
      exporterProfile: ExporterProfile.default('static'),
      owner: DesiredOwner.optional(),
    })
    .strict(),
  [
    {
      rule: '!has(oldSelf.owner) || has(self.owner)',
      message:
        'spec.owner cannot be removed once set: drop ownership by clearing spec.owner.lease and raising the epoch',
    },
    { rule: 'self.node == oldSelf.node', message: 'spec.node is immutable' },
    { rule: 'self.index == oldSelf.index', message: 'spec.index is immutable' },
  ],
);
export type AcceleratorSpec = z.infer<typeof AcceleratorSpec>;

export const AcceleratorPhase = z.enum(['Free', 'Owned', 'Revoking', 'Stuck', 'Unhealthy']);
export type AcceleratorPhase = z.infer<typeof AcceleratorPhase>;

/** A reference that keeps the previous owner's memory alive, and who holds it. */
export const Pin = z
  .object({
    export: z
      .string()
      .max(MAX_OBJECT_KEY)
      .optional()
      .describe('namespace/name of the DmaBufExport, when known'),
    buffer: z.string().max(253).optional().describe('dma-buf name as the exporter set it'),
    inode: z.int().min(0),
    importer: z.string().max(63).optional().describe('importer name, for an attachment'),
    kind: z.enum([...ImporterKind.options, 'fd']),
    pod: PodRef.optional().describe(
      'the pod whose process holds the pin; absent for a hidden holder',
    ),
    podUID: z
      .string()
      .max(64)
      .optional()
      .describe('uid of that pod as the node saw it: the reaper evicts only a pod with this uid'),
    pid: z.int().min(1),
    comm: z.string().max(64).optional(),
    epoch: z.int().min(0).describe('the owner epoch whose memory the pin keeps alive'),
    since: Timestamp,
  })
  .strict();
export type Pin = z.infer<typeof Pin>;

/**
 * Pins that keep an owner older than `epoch` (by default spec.owner's) alive: what blocks a
 * handoff to that epoch. Only meaningful once status.observedEpoch has caught up with it.
 */
export function stalePins(
  accelerator: Accelerator,
  epoch: number = accelerator.spec.owner?.epoch ?? 0,
): Pin[] {
  return (accelerator.status?.pins ?? []).filter((p) => p.epoch < epoch);
}

export const AcceleratorStatus = z
  .object({
    phase: AcceleratorPhase.optional(),
    owner: AcceleratorOwner.optional().describe('the owner as enforced by the device'),
    observedEpoch: z.int().min(0).optional(),
    pins: z.array(Pin).max(1024).optional(),
    conditions: Conditions.optional(),
    heartbeatTime: Timestamp.optional(),
  })
  .strict();
export type AcceleratorStatus = z.infer<typeof AcceleratorStatus>;

export const Accelerator = resourceObject(ACCELERATORS, {
  spec: AcceleratorSpec,
  status: AcceleratorStatus.optional(),
});
export type Accelerator = z.infer<typeof Accelerator>;

/**
 * The idle reap's eviction records (spec.owner.idleEvictions): those of the current owner epoch,
 * since every owner change drops them. `accelerator` is parsed (parseObject throws
 * InvalidObjectError on a record the schema rejects); nothing here resets what it cannot read.
 */
export function idleEvictionsOf(accelerator: Accelerator): EvictionRecord[] {
  return accelerator.spec.owner?.idleEvictions ?? [];
}

/**
 * The merge patch that stores `records` as the idle reap's (none: removes the field), conditional
 * on the resourceVersion read, so that records never land on an owner that changed meanwhile.
 */
export function idleEvictionsPatch(
  accelerator: Accelerator,
  records: readonly EvictionRecord[],
): {
  metadata: { resourceVersion: string | undefined };
  spec: { owner: { idleEvictions: EvictionRecord[] | null } };
} {
  return {
    metadata: { resourceVersion: accelerator.metadata.resourceVersion },
    spec: { owner: { idleEvictions: records.length > 0 ? [...records] : null } },
  };
}
