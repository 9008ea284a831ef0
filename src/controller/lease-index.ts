// The view's indexes of the schema-valid leases, moved one changed lease at a time (by name, by
// target, by namespace, the few with eviction records), and the namespace limit's verdict on
// them, recomputed only for the namespaces whose leases, limit or next expiry changed.
import { isFinished, leaseExpiry, targetOf, type AcceleratorLease } from '../crds/index.ts';
import { overNamespaceLimit, type NamespaceLimit, type OverLimit } from './namespace-limit.ts';

const uidOf = (l: AcceleratorLease) => l.metadata.uid ?? '';
const nameOf = (l: AcceleratorLease) => `${l.metadata.namespace ?? ''}/${l.metadata.name ?? ''}`;
const NONE: ReadonlyMap<string, OverLimit> = new Map();

/** The leases admitted by their namespace's policy, and the ones left out. */
export interface Admitted {
  readonly leases: readonly AcceleratorLease[];
  readonly byTarget: ReadonlyMap<string, readonly AcceleratorLease[]>;
  readonly over: ReadonlyMap<string, OverLimit>;
  /** The admitted live leases that name no device yet: placement's work. */
  readonly unplaced: readonly AcceleratorLease[];
}

/**
 * A change costs O(its target's and namespace's leases); a read O(what it returns), but
 * `list()` and `admitted().leases`, which copy all leases once per change. A list handed out is
 * never changed (one that changes is replaced); the maps are the index's own: read them before
 * the next change. Lists are in no particular order (the arbiter sorts by queue order).
 */
export class LeaseIndex {
  private readonly byUid = new Map<string, AcceleratorLease>();
  private readonly byName = new Map<string, AcceleratorLease>();
  private readonly targets = new Map<string, readonly AcceleratorLease[]>();
  private readonly namespaces = new Map<string, Map<string, AcceleratorLease>>();
  private readonly untargeted = new Map<string, AcceleratorLease>();
  private readonly records = new Map<string, AcceleratorLease>();
  private all?: readonly AcceleratorLease[];

  // The namespace limit's verdict, and what changed since admitted() last brought it up to date.
  private readonly changedNamespaces = new Set<string>();
  private readonly changedTargets = new Set<string>();
  private readonly overIn = new Map<string, ReadonlyMap<string, OverLimit>>();
  private over: ReadonlyMap<string, OverLimit> = NONE;
  private readonly admittedTargets = new Map<string, readonly AcceleratorLease[]>();
  /** By namespace: the earliest expiry of a lease that still takes a place (see recompute). */
  private readonly expiresAt = new Map<string, number>();
  private limitsAt?: number;
  private readonly limits = new Map<string, NamespaceLimit | undefined>();
  private admittedView?: Admitted;

  /** The lease of `uid` as it is now; undefined when it is gone or breaks the schema. */
  set(uid: string, lease: AcceleratorLease | undefined): void {
    const prev = this.byUid.get(uid);
    if (prev === lease) return;
    if (prev) this.remove(uid, prev);
    if (lease) this.add(uid, lease);
    this.all = undefined;
    this.admittedView = undefined;
  }

  get(key: string): AcceleratorLease | undefined {
    return this.byName.get(key);
  }

  list(): readonly AcceleratorLease[] {
    this.all ??= [...this.byUid.values()];
    return this.all;
  }

  byTarget(): ReadonlyMap<string, readonly AcceleratorLease[]> {
    return this.targets;
  }

  inNamespace(namespace: string): readonly AcceleratorLease[] {
    return [...(this.namespaces.get(namespace)?.values() ?? [])];
  }

  /** The few leases that carry eviction records. */
  withRecords(): Iterable<AcceleratorLease> {
    return this.records.values();
  }

  /**
   * The leases within their namespace's limit at `now`, and each lease that moved in or out
   * reported to `moved`. A namespace is recomputed when one of its leases changed, when
   * `limitsAt` differs from the last call's (a namespace label or a policy changed), or when
   * `now` reaches the expiry of one of its leases that took a place: the verdict is the one a
   * fresh computation at `now` gives, for any `now` not earlier than a previous call's.
   */
  admitted(
    now: number,
    limitsAt: number,
    limitOf: (namespace: string) => NamespaceLimit | undefined,
    moved: (lease: AcceleratorLease) => void,
  ): Admitted {
    if (limitsAt !== this.limitsAt) {
      this.limitsAt = limitsAt;
      this.limits.clear();
      for (const ns of this.namespaces.keys()) this.changedNamespaces.add(ns);
      for (const ns of this.overIn.keys()) this.changedNamespaces.add(ns);
    }
    for (const [ns, at] of this.expiresAt) if (now >= at) this.changedNamespaces.add(ns);
    if (this.admittedView && this.changedNamespaces.size === 0) return this.admittedView;

    const limit = (ns: string) => {
      if (!this.limits.has(ns)) this.limits.set(ns, limitOf(ns));
      return this.limits.get(ns);
    };
    const movedLeases: AcceleratorLease[] = [];
    let overChanged = false;
    for (const ns of this.changedNamespaces) {
      const prev = this.overIn.get(ns) ?? NONE;
      const next = this.recompute(ns, limit(ns), now);
      if (prev.size === 0 && next.size === 0) continue;
      overChanged = true;
      for (const [uid, o] of next) if (!prev.has(uid)) movedLeases.push(o.lease);
      for (const [uid, o] of prev) if (!next.has(uid)) movedLeases.push(o.lease);
      for (const o of [...prev.values(), ...next.values()]) {
        const t = targetOf(o.lease);
        if (t) this.changedTargets.add(t);
      }
      if (next.size > 0) this.overIn.set(ns, next);
      else this.overIn.delete(ns);
    }
    this.changedNamespaces.clear();
    if (overChanged) {
      const over = new Map<string, OverLimit>();
      for (const inNs of this.overIn.values()) for (const [uid, o] of inNs) over.set(uid, o);
      this.over = over.size > 0 ? over : NONE;
    }
    for (const t of this.changedTargets) {
      const list = this.targets.get(t) ?? [];
      const admitted = this.over.size === 0 ? list : list.filter((l) => !this.over.has(uidOf(l)));
      if (admitted.length > 0) this.admittedTargets.set(t, admitted);
      else this.admittedTargets.delete(t);
    }
    this.changedTargets.clear();

    this.admittedView = this.admittedOf(this.over);
    for (const l of movedLeases) moved(l);
    return this.admittedView;
  }

  // ---- internals ------------------------------------------------------------------------------

  private add(uid: string, l: AcceleratorLease): void {
    this.byUid.set(uid, l);
    this.byName.set(nameOf(l), l);
    const t = targetOf(l);
    if (t) {
      this.targets.set(t, [...(this.targets.get(t) ?? []), l]);
      this.changedTargets.add(t);
    } else this.untargeted.set(uid, l);
    const ns = l.metadata.namespace ?? '';
    const inNs = this.namespaces.get(ns);
    if (inNs) inNs.set(uid, l);
    else this.namespaces.set(ns, new Map([[uid, l]]));
    this.changedNamespaces.add(ns);
    if ((l.status?.evictions?.length ?? 0) > 0) this.records.set(uid, l);
  }

  private remove(uid: string, l: AcceleratorLease): void {
    this.byUid.delete(uid);
    // A lease recreated under the same name may already be in its place.
    const name = nameOf(l);
    if (this.byName.get(name) === l) this.byName.delete(name);
    const t = targetOf(l);
    if (t) {
      const rest = (this.targets.get(t) ?? []).filter((x) => x !== l);
      if (rest.length > 0) this.targets.set(t, rest);
      else this.targets.delete(t);
      this.changedTargets.add(t);
    } else this.untargeted.delete(uid);
    const ns = l.metadata.namespace ?? '';
    const inNs = this.namespaces.get(ns);
    inNs?.delete(uid);
    if (inNs?.size === 0) this.namespaces.delete(ns);
    this.changedNamespaces.add(ns);
    this.records.delete(uid);
  }

  /**
   * One namespace's leases over its limit. Without a limit, or with no more leases than it
   * allows (finished ones included), none: nothing to sort, and no expiry can change that.
   */
  private recompute(
    ns: string,
    limit: NamespaceLimit | undefined,
    now: number,
  ): ReadonlyMap<string, OverLimit> {
    this.expiresAt.delete(ns);
    const leases = this.namespaces.get(ns);
    if (!limit || !leases || leases.size <= limit.maxLeases) return NONE;
    const list = [...leases.values()];
    // A lease that takes a place now gives it up when it expires: recompute then.
    let next = Infinity;
    for (const l of list) {
      const end = leaseExpiry(l);
      if (end !== undefined && !isFinished(l, now)) next = Math.min(next, end);
    }
    if (next !== Infinity) this.expiresAt.set(ns, next);
    const over = overNamespaceLimit(list, () => limit, now);
    return over.size > 0 ? over : NONE;
  }

  /**
   * `leases`, all of them, is built on first read (the hot paths read byTarget), so like
   * byTarget it is the index's state at that read: read it before the index changes again.
   */
  private admittedOf(over: ReadonlyMap<string, OverLimit>): Admitted {
    const all = () => this.list();
    let leases: readonly AcceleratorLease[] | undefined;
    return {
      get leases() {
        leases ??= over.size === 0 ? all() : all().filter((l) => !over.has(uidOf(l)));
        return leases;
      },
      unplaced: [...this.untargeted.values()].filter(
        (l) => !l.metadata.deletionTimestamp && !over.has(uidOf(l)),
      ),
      byTarget: this.admittedTargets,
      over,
    };
  }
}
