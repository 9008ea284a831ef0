// The work queue's keys, and which watch events wake which: one rule for the controller's
// informers and the simulation's caches alike.
import type { V1Pod } from '@kubernetes/client-node';
import {
  podKey,
  targetOf,
  type Accelerator,
  type AcceleratorLease,
  type DmaBufExport,
} from '../crds/index.ts';

/** One key per accelerator, one for placement, one for namespace limits. */
export const PLACEMENT_KEY = 'placement';
export const LIMITS_KEY = 'namespace-limits';
const ACCEL_PREFIX = 'accelerator/';
export const acceleratorKey = (name: string): string => ACCEL_PREFIX + name;

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
  | { readonly resource: 'accelerators'; readonly type: WatchEventType; readonly obj: Accelerator }
  | {
      readonly resource: 'leases';
      readonly type: WatchEventType;
      readonly obj: AcceleratorLease;
      readonly old?: AcceleratorLease;
    }
  | { readonly resource: 'exports'; readonly type: WatchEventType; readonly obj: DmaBufExport }
  | { readonly resource: 'pods'; readonly type: WatchEventType; readonly obj: V1Pod }
  | { readonly resource: 'namespaces' | 'leasePolicies'; readonly type: WatchEventType };

/**
 * The keys whose decision `change` may change. `accelerators` is the cache after the change:
 * a pod going away wakes the stuck devices whose pins name it.
 */
export function wakeKeys(change: Change, accelerators: () => readonly Accelerator[]): string[] {
  switch (change.resource) {
    case 'accelerators':
      return [acceleratorKey(change.obj.metadata.name ?? ''), PLACEMENT_KEY];
    case 'leases': {
      const keys = [leaseKeyOf(change.obj), LIMITS_KEY];
      // A lease moving from one target to another (placement) wakes both devices.
      if (change.old && leaseKeyOf(change.old) !== keys[0]) keys.push(leaseKeyOf(change.old));
      return keys;
    }
    case 'exports':
      return change.type === 'add' ? [acceleratorKey(change.obj.spec.accelerator)] : [];
    case 'pods': {
      if (change.type !== 'update' && change.type !== 'delete') return [];
      const key = `${change.obj.metadata?.namespace ?? ''}/${change.obj.metadata?.name ?? ''}`;
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
  }
}
