// What a reconcile reads: the caches, with this process's own newer writes in place of what the
// watches have not delivered yet, the lease and export indexes, the leases each namespace's
// policy admits, pods and PodDisruptionBudgets as the reaper sees them, and eviction counts from
// the records.
import type { V1Namespace, V1Pod, V1ResourceSlice } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  Accelerator,
  AcceleratorLease,
  AcceleratorLeasePolicy,
  CORDON_TAINT,
  DEFAULT_LEASE_POLICY,
  idleEvictionsOf,
  parseObject,
  policyNameFor,
  targetOf,
  type DmaBufExport,
  type EvictionRecord,
  podKey,
} from '../crds/index.ts';
import { MutationCache } from '../kube/index.ts';
import type { ClaimDevice, ResourceClaim } from './claims.ts';
import {
  podsBeingEvicted,
  requestsAfter,
  type DisruptionLookup,
  type PodLookup,
} from '../reaper/index.ts';
import { disruptionLookup, type PodDisruptionBudget } from './disruption-budgets.ts';
import { LeaseIndex, type Admitted } from './lease-index.ts';
import type { NamespaceLimit } from './namespace-limit.ts';
import type { Change } from './keys.ts';
import type { Writes } from './writes.ts';

/** A read-only cache of one resource, keyed as informers key it (namespace/name, or name). */
export interface Store<T> {
  get(key: string): T | undefined;
  list(): T[];
}

/** The caches a reconcile reads. Informers in the controller; the simulation's lagging copies. */
export interface Caches {
  readonly accelerators: Store<Accelerator>;
  readonly leases: Store<AcceleratorLease>;
  readonly exports: Store<DmaBufExport>;
  readonly pods: Store<V1Pod>;
  readonly namespaces: Store<V1Namespace>;
  readonly leasePolicies: Store<AcceleratorLeasePolicy>;
  /** policy/v1 PodDisruptionBudgets: a refused eviction is retried once its budget allows. */
  readonly pdbs: Store<PodDisruptionBudget>;
  /** --dra only: ResourceClaims, and the ResourceSlices of driver accel.dmabuf.io. */
  readonly claims?: Store<ResourceClaim>;
  readonly slices?: Store<ResourceSlice>;
}

export type ResourceSlice = V1ResourceSlice;
export type { Admitted };

const push = <T>(m: Map<string, T[]>, k: string, v: T) => {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
};
const present = <T>(xs: (T | undefined)[]): T[] => xs.filter((x): x is T => x !== undefined);

export interface ViewOptions {
  readonly log: Logger;
  /** The AcceleratorLeasePolicy of namespaces without the lease-policy label. */
  readonly defaultLeasePolicy?: string;
  /** Called with each lease whose admission changed: its device (or the placement) must be woken. */
  readonly onAdmissionChanged: (lease: AcceleratorLease) => void;
}

/**
 * The controller's view of the cluster. The wiring tells it of every watch event (`notice`);
 * `recording` wraps the writes so their results are read until the
 * watches catch up. Indexes are brought up to date lazily, one changed lease at a time: a cold
 * start reconciles every accelerator against the same caches, and a burst of handoffs changes a
 * few leases per event; neither re-reads them all.
 */
export class ControllerView {
  private readonly caches: Caches;
  private readonly opts: ViewOptions;
  private readonly writtenLeases = new MutationCache<AcceleratorLease>();
  private readonly writtenAccels = new MutationCache<Accelerator>();
  private readonly writtenClaims = new MutationCache<ResourceClaim>();
  /** Each lease parsed once per resourceVersion (undefined: it breaks the schema), by uid. */
  private readonly parsed = new Map<string, { rv?: string; lease?: AcceleratorLease }>();
  /** Leases changed since the index was brought up to date: uid -> namespace/name. */
  private readonly dirtyLeases = new Map<string, string>();
  private readonly leaseIndex = new LeaseIndex();
  private leasesListed = false;
  /** Exports changed since the export index was brought up to date: uid -> namespace/name. */
  private readonly dirtyExports = new Map<string, string>();
  /** Accelerators changed since the idle records were brought up to date, by name. */
  private readonly dirtyAccels = new Set<string>();
  /** The idle reaps' records, by accelerator; only the few accelerators that have any. */
  private idleIndex?: Map<string, EvictionRecord[]>;
  /** Exports by the accelerator they name, and the accelerator each uid was filed under. */
  private exportIndex?: {
    byAccelerator: Map<string, readonly DmaBufExport[]>;
    filedUnder: Map<string, string>;
  };
  private limitChanges = 0;

  constructor(caches: Caches, opts: ViewOptions) {
    this.caches = caches;
    this.opts = opts;
  }

  // ---- what the watches say -------------------------------------------------------------------

  /** A watch event: mark what it changes, so the next read brings the indexes up to date. */
  notice(change: Change): void {
    if (change.type === 'resync') return;
    switch (change.resource) {
      case 'leases':
        if (change.type === 'delete') this.leaseDeleted(change.obj);
        else this.leaseChanged(change.obj);
        break;
      case 'exports': {
        const { uid, namespace = '', name = '' } = change.obj.metadata ?? {};
        if (uid) this.dirtyExports.set(uid, `${namespace}/${name}`);
        break;
      }
      case 'accelerators':
        this.dirtyAccels.add(change.obj.metadata.name ?? '');
        if (change.type === 'delete') this.writtenAccels.forget(change.obj);
        break;
      case 'namespaces':
      case 'leasePolicies':
        this.limitChanges++;
        break;
      case 'claims':
        if (change.type === 'delete') this.writtenClaims.forget(change.obj);
        break;
      case 'pods':
      case 'slices':
      case 'pdbs':
        break;
    }
  }

  private leaseChanged(l: AcceleratorLease): void {
    const uid = l.metadata.uid;
    if (uid) this.dirtyLeases.set(uid, `${l.metadata.namespace ?? ''}/${l.metadata.name ?? ''}`);
  }

  private leaseDeleted(l: AcceleratorLease): void {
    this.writtenLeases.forget(l);
    this.leaseChanged(l);
  }

  /** The same writes, each result remembered until the caches have it. */
  recording(w: Writes): Writes {
    const lease = async (p: Promise<AcceleratorLease>) => {
      const l = await p;
      this.writtenLeases.record(l);
      this.leaseChanged(l);
      return l;
    };
    const accel = async (p: Promise<Accelerator>) => {
      const a = await p;
      this.writtenAccels.record(a);
      this.dirtyAccels.add(a.metadata.name ?? '');
      return a;
    };
    return {
      setLeaseFinalizers: async (l, f) => {
        const out = await w.setLeaseFinalizers(l, f);
        this.leaseChanged(out);
        // The last finalizer of a deleted lease: the object is gone, whatever version it shows.
        if (out.metadata.deletionTimestamp && (out.metadata.finalizers ?? []).length === 0)
          this.writtenLeases.recordDeleted(out);
        else this.writtenLeases.record(out);
        return out;
      },
      replaceLeaseStatus: (l, st) => lease(w.replaceLeaseStatus(l, st)),
      annotate: (a, an) => accel(w.annotate(a, an)),
      setIdleEvictions: (a, r) => accel(w.setIdleEvictions(a, r)),
      setOwner: (a, o, at) => accel(w.setOwner(a, o, at)),
      createLease: async (l) => {
        const out = await w.createLease(l);
        if (out) {
          this.writtenLeases.record(out);
          this.leaseChanged(out);
        }
        return out;
      },
      // A deleted lease keeps its finalizer until the device lets it go: the watch says when.
      deleteLease: (l) => w.deleteLease(l),
      setClaimDeviceConditions: async (c, d, cs) => {
        const out = await w.setClaimDeviceConditions(c, d, cs);
        this.writtenClaims.record(out);
        return out;
      },
      ungatePod: (p, n) => w.ungatePod(p, n),
    };
  }

  // ---- reads ----------------------------------------------------------------------------------

  /** The accelerator as last written by us or seen by the cache, whichever is newer. */
  accelerator(name: string): Accelerator | undefined {
    const cached = this.caches.accelerators.get(name);
    return cached && this.writtenAccels.resolve(cached);
  }

  accelerators(): Accelerator[] {
    return present(this.caches.accelerators.list().map((a) => this.writtenAccels.resolve(a)));
  }

  /** Every lease that matches the schema, with our newer writes applied. */
  leases(): readonly AcceleratorLease[] {
    return this.currentLeases().list();
  }

  /** The leases of one namespace (a holder gate's). */
  leasesIn(namespace: string): readonly AcceleratorLease[] {
    return this.currentLeases().inNamespace(namespace);
  }

  /** Leases by the accelerator they target, all of them (the queue-length gauge). */
  leasesByTarget(): ReadonlyMap<string, readonly AcceleratorLease[]> {
    return this.currentLeases().byTarget();
  }

  /** The lease named namespace/name, if it matches the schema. */
  lease(key: string): AcceleratorLease | undefined {
    return this.currentLeases().get(key);
  }

  /** --dra: the claim namespace/name, with our newer status write applied. */
  claim(key: string): ResourceClaim | undefined {
    const cached = this.caches.claims?.get(key);
    return cached && this.writtenClaims.resolve(cached);
  }

  claims(): ResourceClaim[] {
    return this.caches.claims?.list() ?? [];
  }

  /** --dra: is the slice device of `d` tainted as cordoned (NoSchedule)? */
  deviceTainted(d: ClaimDevice): boolean {
    return (this.caches.slices?.list() ?? []).some(
      (s) =>
        s.spec.driver === d.driver &&
        s.spec.pool.name === d.pool &&
        (s.spec.devices ?? []).some(
          (dev) =>
            dev.name === d.device &&
            (dev.taints ?? []).some((t) => t.key === CORDON_TAINT && t.effect === 'NoSchedule'),
        ),
    );
  }

  /** Pods that carry a scheduling gate named `gate`, in `namespace`. */
  gatedPods(namespace: string, gate: string): V1Pod[] {
    return this.caches.pods
      .list()
      .filter(
        (p) =>
          p.metadata?.namespace === namespace &&
          (p.spec?.schedulingGates ?? []).some((g) => g.name === gate),
      );
  }

  /** The pod namespace/name as the cache has it. */
  pod(key: string): V1Pod | undefined {
    return this.caches.pods.get(key);
  }

  /**
   * The exports that name `accelerator`. Built from the cache once; after that each changed
   * export is moved out of the list it was filed in and into its accelerator's (a list that
   * changes is replaced, never edited, so a list read before stays as it was).
   */
  exportsOf(accelerator: string): readonly DmaBufExport[] {
    return this.currentExports().get(accelerator) ?? [];
  }

  private currentExports(): ReadonlyMap<string, readonly DmaBufExport[]> {
    if (!this.exportIndex) {
      const byAccelerator = new Map<string, DmaBufExport[]>();
      const filedUnder = new Map<string, string>();
      for (const e of this.caches.exports.list()) {
        push(byAccelerator, e.spec.accelerator, e);
        if (e.metadata?.uid) filedUnder.set(e.metadata.uid, e.spec.accelerator);
      }
      this.exportIndex = { byAccelerator, filedUnder };
      this.dirtyExports.clear();
    }
    const { byAccelerator, filedUnder } = this.exportIndex;
    for (const [uid, key] of this.dirtyExports) {
      const was = filedUnder.get(uid);
      if (was !== undefined) {
        const rest = (byAccelerator.get(was) ?? []).filter((e) => e.metadata?.uid !== uid);
        if (rest.length > 0) byAccelerator.set(was, rest);
        else byAccelerator.delete(was);
        filedUnder.delete(uid);
      }
      const cached = this.caches.exports.get(key);
      if (cached?.metadata?.uid !== uid) continue;
      const accel = cached.spec.accelerator;
      byAccelerator.set(accel, [...(byAccelerator.get(accel) ?? []), cached]);
      filedUnder.set(uid, accel);
    }
    this.dirtyExports.clear();
    return byAccelerator;
  }

  /** Pods by namespace/name, as the reaper reads them. */
  readonly pods: PodLookup = {
    get: (key) => {
      const p = this.caches.pods.get(key);
      if (!p?.metadata?.uid) return undefined;
      return {
        uid: p.metadata.uid,
        nodeName: p.spec?.nodeName,
        deletionTimestamp: p.metadata.deletionTimestamp,
      };
    },
  };

  /** Since when each pod's PodDisruptionBudget allows a disruption, as the reaper reads it. */
  readonly disruptions: DisruptionLookup = {
    allowedSince: (key) => disruptionLookup(this.caches.pdbs, this.caches.pods).allowedSince(key),
  };

  /**
   * The pods whose eviction a PodDisruptionBudget refused last, with the device each handoff is
   * for: a budget that comes to allow a disruption wakes those devices.
   */
  refusedEvictions(): { accelerator: string; pod: string }[] {
    const out: { accelerator: string; pod: string }[] = [];
    const add = (accelerator: string | undefined, records: readonly EvictionRecord[]) => {
      for (const r of records) {
        if (accelerator && r.result === 'Refused' && r.finished === undefined)
          out.push({ accelerator, pod: podKey(r.pod) });
      }
    };
    for (const l of this.currentLeases().withRecords()) add(targetOf(l), l.status?.evictions ?? []);
    for (const [name, records] of this.idleRecords()) add(name, records);
    return out;
  }

  /**
   * The leases within their namespace's limit (see namespace-limit.ts), the only ones queued or
   * placed. When the set over the limit changes, each lease that moved is reported.
   */
  admitted(now: number): Admitted {
    return this.currentLeases().admitted(
      now,
      this.limitChanges,
      (ns) => this.namespaceLimit(ns),
      this.opts.onAdmissionChanged,
    );
  }

  /**
   * Evictions and deletions sent within the minute before `now`, cluster-wide, for the
   * per-minute cap. From the records alone: each request is written before it is sent, so a
   * restarted controller counts what it sent before, and nothing relaxes the cap.
   */
  evictionsInLastMinute(now: number): number {
    return requestsAfter(this.allRecords().flat(), now - 60_000);
  }

  /** Pods other handoffs already asked to evict: a pod pinning two devices is evicted once. */
  evictingElsewhere(accelerator: string): Set<string> {
    const out = new Set<string>();
    for (const records of this.allRecords(accelerator))
      for (const uid of podsBeingEvicted(records)) out.add(uid);
    return out;
  }

  // ---- internals ------------------------------------------------------------------------------

  /** Every handoff's records: each lease's, and each accelerator's idle reap, but `except`'s. */
  private allRecords(except?: string): EvictionRecord[][] {
    const out: EvictionRecord[][] = [];
    for (const l of this.currentLeases().withRecords()) {
      if (targetOf(l) !== except) out.push(l.status?.evictions ?? []);
    }
    for (const [name, records] of this.idleRecords()) if (name !== except) out.push(records);
    return out;
  }

  private idleRecords(): Map<string, EvictionRecord[]> {
    if (!this.idleIndex) {
      this.idleIndex = new Map();
      for (const a of this.caches.accelerators.list()) this.dirtyAccels.add(a.metadata.name ?? '');
    }
    for (const name of this.dirtyAccels) {
      const a = this.accelerator(name);
      if (a?.spec.owner?.idleEvictions?.length)
        this.idleIndex.set(name, idleEvictionsOf(parseObject(Accelerator, a)));
      else this.idleIndex.delete(name);
    }
    this.dirtyAccels.clear();
    return this.idleIndex;
  }

  /** The lease index with every lease changed since the last read moved into place. */
  private currentLeases(): LeaseIndex {
    if (!this.leasesListed) {
      for (const raw of this.caches.leases.list()) this.leaseChanged(raw);
      this.leasesListed = true;
    }
    for (const [uid, key] of this.dirtyLeases) {
      const cached = this.caches.leases.get(key);
      const raw = cached?.metadata.uid === uid ? this.writtenLeases.resolve(cached) : undefined;
      if (raw) this.parseLease(raw);
      else this.parsed.delete(uid);
      this.leaseIndex.set(uid, this.parsed.get(uid)?.lease);
    }
    this.dirtyLeases.clear();
    return this.leaseIndex;
  }

  /** Parse one version of a lease once; undefined (and a warning) if it breaks the schema. */
  private parseLease(raw: AcceleratorLease): void {
    const uid = raw.metadata.uid ?? '';
    const entry = this.parsed.get(uid);
    if (entry && entry.rv === raw.metadata.resourceVersion) return;
    const next: { rv?: string; lease?: AcceleratorLease } = { rv: raw.metadata.resourceVersion };
    try {
      next.lease = parseObject(AcceleratorLease, raw);
    } catch (err) {
      this.opts.log.warn(
        { err: (err as Error).message },
        'skipping a lease that does not match the schema',
      );
    }
    this.parsed.set(uid, next);
  }

  private namespaceLimit(namespace: string): NamespaceLimit | undefined {
    const labels = this.caches.namespaces.get(namespace)?.metadata?.labels;
    const policy = policyNameFor(labels, this.opts.defaultLeasePolicy ?? DEFAULT_LEASE_POLICY);
    const raw = this.caches.leasePolicies.get(policy);
    if (!raw) return undefined; // admission refuses leases in namespaces without a policy
    try {
      return {
        policy,
        maxLeases: parseObject(AcceleratorLeasePolicy, raw).spec.maxLeasesPerNamespace,
      };
    } catch {
      return undefined;
    }
  }
}
