// The leases-per-namespace bound of an AcceleratorLeasePolicy, which admission cannot check (it
// cannot list): the controller queues at most that many of a namespace's leases, earliest first.
import {
  isFinished,
  leaseKey,
  OVER_NAMESPACE_LIMIT,
  setConditions,
  type AcceleratorLease,
  type AcceleratorLeaseStatus,
  timeMsOrZero,
} from '../crds/index.ts';
import { sameStatus, type Action } from './arbiter.ts';

/** A namespace's bound and the policy it comes from. */
export interface NamespaceLimit {
  policy: string;
  maxLeases: number;
}

/** A lease left out of every queue, and the leases of its namespace that took the places. */
export interface OverLimit {
  lease: AcceleratorLease;
  limit: NamespaceLimit;
  within: readonly string[];
}

/**
 * The leases beyond their namespace's limit, by uid; `limitOf` undefined: no limit. Leases that
 * finished take no place. Deleted leases (their finalizer must be released) and leases already
 * handed a device (status.epoch set) are always within, so a lowered limit never revokes a
 * device; the remaining places go by creation time, then name. Level-triggered: once an earlier
 * lease goes, the next one is within.
 */
export function overNamespaceLimit(
  leases: readonly AcceleratorLease[],
  limitOf: (namespace: string) => NamespaceLimit | undefined,
  now: number,
): Map<string, OverLimit> {
  const byNamespace = new Map<string, AcceleratorLease[]>();
  for (const l of leases) {
    if (isFinished(l, now)) continue;
    const ns = l.metadata.namespace ?? '';
    const list = byNamespace.get(ns);
    if (list) list.push(l);
    else byNamespace.set(ns, [l]);
  }
  const over = new Map<string, OverLimit>();
  for (const [ns, list] of byNamespace) {
    const limit = limitOf(ns);
    if (!limit || list.length <= limit.maxLeases) continue;
    const kept = (l: AcceleratorLease) =>
      l.metadata.deletionTimestamp !== undefined || l.status?.epoch !== undefined;
    const ordered = [...list].sort(
      (a, b) =>
        Number(kept(b)) - Number(kept(a)) ||
        timeMsOrZero(a.metadata.creationTimestamp) - timeMsOrZero(b.metadata.creationTimestamp) ||
        leaseKey(a).localeCompare(leaseKey(b)),
    );
    const places = Math.max(limit.maxLeases, ordered.filter(kept).length);
    const within = ordered.slice(0, places).map((l) => l.metadata.name ?? '');
    for (const lease of ordered.slice(places)) {
      over.set(lease.metadata.uid ?? '', { lease, limit, within });
    }
  }
  return over;
}

/**
 * The status (Pending, condition Granted=False OverNamespaceLimit) and, when a lease first goes
 * over, a Warning Event, for each lease over its limit; nothing for a lease already written so.
 */
export function overLimitActions(over: ReadonlyMap<string, OverLimit>, nowIso: string): Action[] {
  const actions: Action[] = [];
  for (const { lease, limit, within } of over.values()) {
    const ns = lease.metadata.namespace ?? '';
    const message =
      `lease ${leaseKey(lease)} is not queued: namespace ${ns} has ${within.length} leases ahead ` +
      `of it (${within.join(', ')}), and AcceleratorLeasePolicy ${limit.policy} allows ` +
      `${limit.maxLeases} per namespace (maxLeasesPerNamespace); it is queued once one of them ` +
      'is deleted or finishes';
    const prev = lease.status ?? {};
    const status: AcceleratorLeaseStatus = {
      phase: 'Pending',
      ...(prev.evictions !== undefined && { evictions: prev.evictions }),
      conditions: setConditions(
        prev.conditions,
        [
          {
            type: 'Granted',
            status: 'False',
            reason: OVER_NAMESPACE_LIMIT,
            message,
            observedGeneration: lease.metadata.generation ?? 0,
          },
        ],
        nowIso,
      ),
      observedGeneration: lease.metadata.generation ?? 0,
    };
    if (sameStatus(status, lease.status)) continue;
    const was = prev.conditions?.find((c) => c.type === 'Granted');
    actions.push({ type: 'leaseStatus', lease, status });
    if (was?.reason !== OVER_NAMESPACE_LIMIT) {
      actions.push({
        type: 'event',
        regarding: lease,
        eventType: 'Warning',
        reason: OVER_NAMESPACE_LIMIT,
        note: message,
      });
    }
  }
  return actions;
}
