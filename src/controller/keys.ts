// The work queue's keys, and which watch events wake which: one rule for the controller's
// informers and the simulation's caches alike.
import type { V1Pod } from '@kubernetes/client-node';
import {
  isClaimLease,
  LEASE_GATE,
  podKey,
  targetOf,
  type Accelerator,
  type AcceleratorLease,
  type DmaBufExport,
} from '../crds/index.ts';
import { allocatedDevices, type ResourceClaim } from './claims.ts';
import { allowedSince, selectsPod, type PodDisruptionBudget } from './disruption-budgets.ts';
import type { ResourceSlice } from './view.ts';

/** One key per accelerator, one for placement, one for namespace limits. */
export const PLACEMENT_KEY = 'placement';
export const LIMITS_KEY = 'namespace-limits';
const ACCEL_PREFIX = 'accelerator/';
export const acceleratorKey = (name: string): string => ACCEL_PREFIX + name;

const CLAIM_PREFIX = 'claim/';
const GATE_PREFIX = 'gate/';
const nsName = (o: { metadata?: { namespace?: string; name?: string } }) =>
  `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
/** --dra: one key per ResourceClaim (namespace/name). */
export const claimKey = (claim: { metadata?: { namespace?: string; name?: string } }): string =>
  CLAIM_PREFIX + nsName(claim);
/** --holder-gates: one key per gated pod (namespace/name). */
export const gateKey = (pod: V1Pod): string => GATE_PREFIX + nsName(pod);
/** The namespace/name a claim or gate key names; undefined for other keys. */
export const claimOfKey = (key: string): string | undefined =>
  key.startsWith(CLAIM_PREFIX) ? key.slice(CLAIM_PREFIX.length) : undefined;
export const gateOfKey = (key: string): string | undefined =>
  key.startsWith(GATE_PREFIX) ? key.slice(GATE_PREFIX.length) : undefined;

/** The accelerator a key names; undefined for placement and limits. */
export const acceleratorOfKey = (key: string): string | undefined =>
  key.startsWith(ACCEL_PREFIX) ? key.slice(ACCEL_PREFIX.length) : undefined;

/** The key that wakes the reconcile of `lease`: its device's, or placement's while it has none. */
export const leaseKeyOf = (lease: AcceleratorLease): string => {
  const target = targetOf(lease);
  return target ? acceleratorKey(target) : PLACEMENT_KEY;
};

export type WatchEventType = 'add' | 'update' | 'delete' | 'resync';

/** A watch event on one of the resources the controller reads. */
export type Change =
  | {
      readonly resource: 'accelerators';
      readonly type: WatchEventType;
      readonly obj: Accelerator;
      readonly old?: Accelerator;
    }
  | {
      readonly resource: 'leases';
      readonly type: WatchEventType;
      readonly obj: AcceleratorLease;
      readonly old?: AcceleratorLease;
    }
  | { readonly resource: 'exports'; readonly type: WatchEventType; readonly obj: DmaBufExport }
  | { readonly resource: 'pods'; readonly type: WatchEventType; readonly obj: V1Pod }
  | { readonly resource: 'claims'; readonly type: WatchEventType; readonly obj: ResourceClaim }
  | { readonly resource: 'slices'; readonly type: WatchEventType; readonly obj: ResourceSlice }
  | {
      readonly resource: 'pdbs';
      readonly type: WatchEventType;
      readonly obj: PodDisruptionBudget;
      readonly old?: PodDisruptionBudget;
    }
  | { readonly resource: 'namespaces' | 'leasePolicies'; readonly type: WatchEventType };

/** What the optional modes read to wake their keys; absent: the mode is off. */
export interface ModeSources {
  /** --dra: every ResourceClaim in the cache. */
  readonly claims?: () => readonly ResourceClaim[];
  /** --holder-gates: the pods of a namespace that carry our scheduling gate. */
  readonly gatedPods?: (namespace: string) => readonly V1Pod[];
}

/** What a PodDisruptionBudget's change reads to wake the devices it may let go on. */
export interface RefusalSources {
  /** Every handoff's refused evictions: the device it is for, the pod's namespace/name. */
  readonly refused: () => readonly { accelerator: string; pod: string }[];
  /** The pod cache: a budget selects pods by their labels. */
  readonly pod: (key: string) => V1Pod | undefined;
}

/**
 * The keys whose decision `change` may change. `accelerators` is the cache after the change:
 * a pod going away wakes the stuck devices whose pins name it; a PodDisruptionBudget that comes
 * to allow a disruption wakes the devices whose handoffs hold a refusal of a pod it selects.
 */
export function wakeKeys(
  change: Change,
  accelerators: () => readonly Accelerator[],
  modes: ModeSources = {},
  refusals?: RefusalSources,
): string[] {
  if (change.resource === 'pdbs') return refusals ? budgetKeys(change, refusals) : [];
  return [...handoffKeys(change, accelerators), ...modeKeys(change, modes)];
}

/** A budget that allows a disruption since a time it did not before: its refused pods' devices. */
function budgetKeys(change: Extract<Change, { resource: 'pdbs' }>, refusals: RefusalSources) {
  if (change.type === 'delete' || change.type === 'resync') return [];
  const since = allowedSince(change.obj);
  if (since === undefined || (change.old && allowedSince(change.old) === since)) return [];
  const keys = new Set<string>();
  for (const r of refusals.refused()) {
    const pod = refusals.pod(r.pod);
    if (pod && selectsPod(change.obj, pod)) keys.add(acceleratorKey(r.accelerator));
  }
  return [...keys];
}

/** The keys of DRA claims and holder gates that `change` may wake. */
function modeKeys(change: Change, modes: ModeSources): string[] {
  const { claims, gatedPods } = modes;
  switch (change.resource) {
    case 'claims':
      return [claimKey(change.obj)];
    case 'slices': {
      // A taint on a device (the cordon) may let a claim fail over.
      const pool = change.obj.spec.pool.name;
      return (claims?.() ?? [])
        .filter((c) => allocatedDevices(c).some((d) => d.pool === pool))
        .map(claimKey);
    }
    case 'leases': {
      const keys: string[] = [];
      if (claims && isClaimLease(change.obj)) keys.push(claimKey(change.obj));
      if (gatedPods && change.type !== 'resync')
        keys.push(...gatedPods(change.obj.metadata.namespace ?? '').map(gateKey));
      return keys;
    }
    case 'pods': {
      const gated = (change.obj.spec?.schedulingGates ?? []).some((g) => g.name === LEASE_GATE);
      return gatedPods && gated && change.type !== 'delete' ? [gateKey(change.obj)] : [];
    }
    case 'accelerators':
    case 'exports':
    case 'namespaces':
    case 'leasePolicies':
    case 'pdbs':
      return [];
  }
}

function handoffKeys(change: Change, accelerators: () => readonly Accelerator[]): string[] {
  switch (change.resource) {
    case 'accelerators': {
      const keys = [acceleratorKey(change.obj.metadata.name ?? ''), PLACEMENT_KEY];
      const records = (a?: Accelerator) => a?.spec.owner?.idleEvictions;
      if (recordsChanged(records(change.old), records(change.obj), change.type))
        keys.push(...stuckKeys(accelerators));
      return keys;
    }
    case 'leases': {
      const keys = [leaseKeyOf(change.obj), LIMITS_KEY];
      // A lease moving from one target to another (placement) wakes both devices.
      if (change.old && leaseKeyOf(change.old) !== keys[0]) keys.push(leaseKeyOf(change.old));
      // Every stuck device reads every handoff's records (a pod evicted for one is not asked
      // again for another): a change in them may let a device waiting on it go on.
      const records = (l?: AcceleratorLease) => l?.status?.evictions;
      if (recordsChanged(records(change.old), records(change.obj), change.type))
        keys.push(...stuckKeys(accelerators));
      return keys;
    }
    case 'exports':
      return change.type === 'add' ? [acceleratorKey(change.obj.spec.accelerator)] : [];
    case 'pods': {
      if (change.type !== 'update' && change.type !== 'delete') return [];
      const { namespace = '', name = '' } = change.obj.metadata ?? {};
      const key = podKey({ namespace, name });
      return accelerators()
        .filter(
          (a) =>
            a.status?.phase === 'Stuck' &&
            (a.status.pins ?? []).some((pin) => pin.pod && podKey(pin.pod) === key),
        )
        .map((a) => acceleratorKey(a.metadata.name ?? ''));
    }
    case 'namespaces':
    case 'leasePolicies':
      return [LIMITS_KEY];
    case 'claims':
    case 'slices':
    case 'pdbs':
      return [];
  }
}

const stuckKeys = (accelerators: () => readonly Accelerator[]): string[] =>
  accelerators()
    .filter((a) => a.status?.phase === 'Stuck')
    .map((a) => acceleratorKey(a.metadata.name ?? ''));

/** Eviction records that appeared, changed or went with this event. */
function recordsChanged(
  before: readonly unknown[] | undefined,
  after: readonly unknown[] | undefined,
  type: WatchEventType,
): boolean {
  if (type === 'resync') return false;
  if (type === 'delete') return (after ?? []).length > 0;
  return JSON.stringify(before ?? []) !== JSON.stringify(after ?? []);
}
