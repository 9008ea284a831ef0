// The lease controller: informers feed a work queue keyed by accelerator; each reconcile reads
// the caches, asks the arbiter (and, for a stuck device, the reaper) what to do, and does it.
// Level-triggered throughout: every decision is made again from the caches.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { DmaBufExport } from '../crds/index.ts';
import {
  Accelerator,
  AcceleratorLease,
  AcceleratorLeasePolicy,
  CORDON_ANNOTATION,
  DEFAULT_LEASE_POLICY,
  idleEvictionsOf,
  idleEvictionsPatch,
  LAST_HANDOFF_ANNOTATION,
  parseObject,
  policyNameFor,
  targetOf,
  type EvictionRecord,
  type AcceleratorLeaseStatus,
  type AcceleratorOwner,
  kubeTime,
} from '../crds/index.ts';
import {
  ACCELERATOR_LEASES,
  ACCELERATORS,
  Informer,
  type KubeClient,
  MutationCache,
  ResourceClient,
  WorkQueue,
  type Clock,
  realClock,
} from '../kube/index.ts';
import {
  callPod,
  DEFAULT_REAPER_POLICY,
  podsBeingEvicted,
  recordOutcome,
  requestsSince,
  type PodLookup,
  type ReaperEffect,
  type ReaperPolicy,
  type ReapState,
  type ReapSummary,
} from '../reaper/index.ts';
import { decideMissing } from './arbiter.ts';
import { execute, type EventSink, type Writes } from './execute.ts';
import { decideHandoff } from './handoff.ts';
import { place } from './placement.ts';
import { overLimitActions, overNamespaceLimit, type NamespaceLimit } from './namespace-limit.ts';

export const FIELD_MANAGER = 'accel-lease-controller';
const PLACEMENT_KEY = 'placement';
const LIMITS_KEY = 'namespace-limits';
const ACCEL_PREFIX = 'accelerator/';

export interface LeaseControllerOptions {
  kc: KubeConfig;
  client: KubeClient;
  log: Logger;
  registry: Registry;
  events: EventSink;
  workers?: number;
  clock?: Clock;
  resyncPeriodMs?: number;
  policy?: ReaperPolicy;
  /** The AcceleratorLeasePolicy of namespaces without the lease-policy label. */
  defaultLeasePolicy?: string;
}

const push = <T>(m: Map<string, T[]>, k: string, v: T) => {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
};
/** Reaper states of a handoff that is not (or no longer) held up by pins. */
const NOT_STUCK: ReadonlySet<ReapState> = new Set(['Off', 'NotStuck', 'Resolved']);
const present = <T>(xs: (T | undefined)[]): T[] => xs.filter((x): x is T => x !== undefined);

export class LeaseController {
  readonly accelerators: Informer<Accelerator>;
  readonly leases: Informer<AcceleratorLease>;
  readonly exports: Informer<DmaBufExport>;
  readonly pods: Informer<V1Pod>;
  readonly namespaces: Informer<V1Namespace>;
  readonly leasePolicies: Informer<AcceleratorLeasePolicy>;
  readonly queue: WorkQueue;
  private readonly policy: ReaperPolicy;
  /** When this process sent eviction calls, for the cluster-wide per-minute cap. */
  private evictionCalls: number[] = [];
  private readonly evictionsTotal: Counter<'result'>;
  private readonly planSize: Gauge<'accelerator'>;
  private readonly unresolvableTotal: Counter;
  private readonly reapState: Gauge<'accelerator' | 'state'>;
  private readonly graceEnds: Gauge<'accelerator'>;
  /** The state each accelerator's reapState series carries, so a change removes the old one. */
  private readonly reapStates = new Map<string, ReapState>();
  private readonly opts: LeaseControllerOptions;
  private readonly clock: Clock;
  private readonly handoffSeconds: Histogram;
  /** Our own writes, read in place of the caches until their watch events arrive. */
  private readonly writtenLeases = new MutationCache<AcceleratorLease>();
  private readonly writtenAccels = new MutationCache<Accelerator>();

  constructor(opts: LeaseControllerOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    const resync = opts.resyncPeriodMs ?? 5 * 60_000;
    this.accelerators = new Informer<Accelerator>(opts.kc, {
      path: '/apis/accel.dmabuf.io/v1alpha1/accelerators',
      resyncPeriodMs: resync,
      logger: opts.log,
      name: 'accelerators',
    });
    this.leases = new Informer<AcceleratorLease>(opts.kc, {
      path: '/apis/accel.dmabuf.io/v1alpha1/acceleratorleases',
      resyncPeriodMs: resync,
      logger: opts.log,
      name: 'acceleratorleases',
    });
    this.exports = new Informer<DmaBufExport>(opts.kc, {
      path: '/apis/accel.dmabuf.io/v1alpha1/dmabufexports',
      resyncPeriodMs: resync,
      logger: opts.log,
      name: 'dmabufexports',
    });
    this.pods = new Informer<V1Pod>(opts.kc, {
      path: '/api/v1/pods',
      resyncPeriodMs: resync,
      logger: opts.log,
      name: 'pods',
    });
    this.namespaces = new Informer<V1Namespace>(opts.kc, {
      path: '/api/v1/namespaces',
      resyncPeriodMs: resync,
      logger: opts.log,
      name: 'namespaces',
    });
    this.leasePolicies = new Informer<AcceleratorLeasePolicy>(opts.kc, {
      path: '/apis/accel.dmabuf.io/v1alpha1/acceleratorleasepolicies',
      resyncPeriodMs: resync,
      logger: opts.log,
      name: 'acceleratorleasepolicies',
    });
    this.policy = opts.policy ?? DEFAULT_REAPER_POLICY;
    this.queue = new WorkQueue({
      name: 'acceleratorlease',
      controllerKind: 'AcceleratorLease',
      registry: opts.registry,
      logger: opts.log,
      clock: this.clock,
    });
    this.handoffSeconds = new Histogram({
      name: 'handoff_duration_seconds',
      help: 'Time from an owner change written on an Accelerator to the next lease Granted.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers: [opts.registry],
    });
    this.evictionsTotal = new Counter({
      name: 'evictions_total',
      help: 'Pod eviction and deletion calls made by the reaper, by outcome.',
      labelNames: ['result'],
      registers: [opts.registry],
    });
    this.planSize = new Gauge({
      name: 'reaper_plan_size',
      help: 'Pods the reaper plans to evict to free each stuck accelerator.',
      labelNames: ['accelerator'],
      registers: [opts.registry],
    });
    this.unresolvableTotal = new Counter({
      name: 'unresolvable_total',
      help: 'Handoffs declared Unresolvable: pins remain with no evictable holder.',
      registers: [opts.registry],
    });
    this.reapState = new Gauge({
      name: 'reaper_handoff_state',
      help: 'The reaper state of each stuck handoff (GracePeriod, Evicting, RateLimited, DeadlineExceeded, Unresolvable, ...), 1 for the current one.',
      labelNames: ['accelerator', 'state'],
      registers: [opts.registry],
    });
    this.graceEnds = new Gauge({
      name: 'reaper_grace_period_end_timestamp_seconds',
      help: 'When the grace period of each stuck handoff ends, in seconds since the epoch; absent when the device is not stuck.',
      labelNames: ['accelerator'],
      registers: [opts.registry],
    });
    this.registerGauges(opts.registry);

    const onAccel = (a: Accelerator) => {
      this.queue.add(ACCEL_PREFIX + (a.metadata.name ?? ''));
      this.queue.add(PLACEMENT_KEY);
    };
    const onLease = (l: AcceleratorLease) => {
      const target = targetOf(l);
      if (target) this.queue.add(ACCEL_PREFIX + target);
      else this.queue.add(PLACEMENT_KEY);
    };
    const onLimits = () => {
      this.limitChanges++;
      this.queue.add(LIMITS_KEY);
    };
    for (const ev of ['add', 'update', 'delete', 'resync'] as const) {
      this.accelerators.on(ev, onAccel);
      this.leases.on(ev, onLease);
      this.leases.on(ev, () => this.queue.add(LIMITS_KEY));
      this.namespaces.on(ev, onLimits);
      this.leasePolicies.on(ev, onLimits);
    }
    // A pod going away may free a stuck device: wake the devices whose pins or records name it.
    const onPod = (p: V1Pod) => {
      const key = `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;
      for (const a of this.accelerators.list()) {
        if (a.status?.phase !== 'Stuck') continue;
        const named = (a.status.pins ?? []).some(
          (pin) => pin.pod && `${pin.pod.namespace}/${pin.pod.name}` === key,
        );
        if (named) this.queue.add(ACCEL_PREFIX + (a.metadata.name ?? ''));
      }
    };
    this.leases.on('delete', (l: AcceleratorLease) => this.writtenLeases.forget(l));
    for (const ev of ['add', 'update', 'delete'] as const) {
      this.leases.on(ev, (l: AcceleratorLease) => this.touchLease(l));
      this.exports.on(ev, () => this.exportChanges++);
    }
    this.accelerators.on('delete', (a: Accelerator) => this.writtenAccels.forget(a));
    this.pods.on('update', onPod);
    this.pods.on('delete', onPod);
    this.exports.on('add', (e: DmaBufExport) => this.queue.add(ACCEL_PREFIX + e.spec.accelerator));
    // A lease moving from one target to another (placement) must wake both devices.
    this.leases.on('update', (l: AcceleratorLease, old?: AcceleratorLease) => {
      const before = old && targetOf(old);
      if (before && before !== targetOf(l)) this.queue.add(ACCEL_PREFIX + before);
    });
  }

  private informers() {
    return [
      this.accelerators,
      this.leases,
      this.exports,
      this.pods,
      this.namespaces,
      this.leasePolicies,
    ];
  }

  hasSynced(): boolean {
    return this.informers().every((i) => i.hasSynced());
  }

  /** Fill the caches; safe to call on a standby replica (reads only). */
  async startInformers(): Promise<void> {
    await Promise.all(this.informers().map((i) => i.start()));
  }

  /** Run the workers until `signal` aborts (leadership lost or shutdown); then drain. */
  async run(signal: AbortSignal): Promise<void> {
    // Every write carries the leadership signal: losing the lease aborts requests in flight.
    const writes = this.recording(clusterWrites(this.opts.client, signal));
    const loop = this.queue.runWorkers(this.opts.workers ?? 4, async (key) =>
      signal.aborted ? undefined : this.reconcile(key, writes, signal),
    );
    for (const a of this.accelerators.list())
      this.queue.add(ACCEL_PREFIX + (a.metadata.name ?? ''));
    this.queue.add(PLACEMENT_KEY);
    this.queue.add(LIMITS_KEY);
    const stop = () => void this.queue.shutDown();
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
    await loop;
  }

  /** Stop taking work, wait for reconciles in flight, then close the watches. */
  async stop(): Promise<void> {
    await this.queue.shutDown();
    for (const i of this.informers()) i.stop();
  }

  /** The same writes, each result remembered until the informer has it. */
  private recording(w: Writes): Writes {
    const lease = async (p: Promise<AcceleratorLease>) => {
      const l = await p;
      this.writtenLeases.record(l);
      this.touchLease(l);
      return l;
    };
    const accel = async (p: Promise<Accelerator>) => {
      const a = await p;
      this.writtenAccels.record(a);
      return a;
    };
    return {
      setLeaseFinalizers: async (l, f) => {
        const out = await w.setLeaseFinalizers(l, f);
        this.touchLease(out);
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
    };
  }

  /** The accelerator as last written by us or seen by the informer, whichever is newer. */
  private accelerator(name: string): Accelerator | undefined {
    const cached = this.accelerators.get(name);
    return cached && this.writtenAccels.resolve(cached);
  }

  private acceleratorList(): Accelerator[] {
    return present(this.accelerators.list().map((a) => this.writtenAccels.resolve(a)));
  }

  /**
   * The leases by uid, each parsed once per resourceVersion (undefined: it breaks the schema),
   * with our newer writes applied, kept up to date one changed lease at a time: a lease event
   * (or a lease write of ours) marks it, and the next read re-resolves only the marked ones. A
   * cold start reconciles every accelerator against the same caches, and a burst of handoffs
   * changes a few leases per event; neither re-reads them all.
   */
  private readonly parsed = new Map<
    string,
    { rv: string | undefined; lease: AcceleratorLease | undefined }
  >();

  /** Leases changed since the index was brought up to date: uid -> namespace/name. */
  private readonly dirtyLeases = new Map<string, string>();
  private leaseView?: { leases: AcceleratorLease[]; byTarget: Map<string, AcceleratorLease[]> };
  /** Exports by accelerator, rebuilt after an export event (rare during handoffs). */
  private exportChanges = 0;
  private exportView?: { at: number; byAccelerator: Map<string, DmaBufExport[]> };

  private touchLease(l: AcceleratorLease): void {
    const uid = l.metadata.uid;
    if (uid) this.dirtyLeases.set(uid, `${l.metadata.namespace ?? ''}/${l.metadata.name ?? ''}`);
  }

  private currentLeases() {
    if (this.leaseView && this.dirtyLeases.size === 0) return this.leaseView;
    if (!this.leaseView) for (const raw of this.leases.list()) this.touchLease(raw);
    for (const [uid, key] of this.dirtyLeases) {
      const cached = this.leases.get(key);
      const raw = cached?.metadata.uid === uid ? this.writtenLeases.resolve(cached) : undefined;
      if (raw) this.parseLease(raw);
      else this.parsed.delete(uid);
    }
    this.dirtyLeases.clear();
    const leases = present([...this.parsed.values()].map((e) => e.lease));
    const byTarget = new Map<string, AcceleratorLease[]>();
    for (const l of leases) {
      const t = targetOf(l);
      if (t) push(byTarget, t, l);
    }
    this.leaseView = { leases, byTarget };
    return this.leaseView;
  }

  private exportsByAccelerator(): Map<string, DmaBufExport[]> {
    if (this.exportView?.at === this.exportChanges) return this.exportView.byAccelerator;
    const byAccelerator = new Map<string, DmaBufExport[]>();
    for (const e of this.exports.list()) push(byAccelerator, e.spec.accelerator, e);
    this.exportView = { at: this.exportChanges, byAccelerator };
    return byAccelerator;
  }

  private validLeases(): AcceleratorLease[] {
    return this.currentLeases().leases;
  }

  /** Namespace and policy events since the limits were last computed. */
  private limitChanges = 0;
  private admittedView?: {
    from: ReturnType<LeaseController['currentLeases']>;
    at: number;
    over: ReturnType<typeof overNamespaceLimit>;
    leases: AcceleratorLease[];
    byTarget: Map<string, AcceleratorLease[]>;
  };

  private namespaceLimit(namespace: string): NamespaceLimit | undefined {
    const labels = this.namespaces.get(namespace)?.metadata?.labels;
    const policy = policyNameFor(labels, this.opts.defaultLeasePolicy ?? DEFAULT_LEASE_POLICY);
    const raw = this.leasePolicies.get(policy);
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

  /**
   * The leases within their namespace's limit (see namespace-limit.ts), the only ones queued or
   * placed. When the set over the limit changes, the devices of the leases that moved are woken.
   */
  private admitted() {
    const from = this.currentLeases();
    const prev = this.admittedView;
    if (prev?.from === from && prev.at === this.limitChanges) return prev;
    const over = overNamespaceLimit(from.leases, (ns) => this.namespaceLimit(ns), this.clock.now());
    const leases =
      over.size === 0 ? from.leases : from.leases.filter((l) => !over.has(l.metadata.uid ?? ''));
    let byTarget = from.byTarget;
    if (over.size > 0) {
      byTarget = new Map();
      for (const l of leases) {
        const t = targetOf(l);
        if (t) push(byTarget, t, l);
      }
    }
    const moved = [
      ...[...over.values()].filter((o) => !prev?.over.has(o.lease.metadata.uid ?? '')),
      ...[...(prev?.over.values() ?? [])].filter((o) => !over.has(o.lease.metadata.uid ?? '')),
    ];
    for (const { lease } of moved) {
      const t = targetOf(lease);
      this.queue.add(t ? ACCEL_PREFIX + t : PLACEMENT_KEY);
    }
    this.admittedView = { from, at: this.limitChanges, over, leases, byTarget };
    return this.admittedView;
  }

  /** Parse one version of a lease once; undefined (and a warning) if it breaks the schema. */
  private parseLease(raw: AcceleratorLease): AcceleratorLease | undefined {
    const uid = raw.metadata.uid ?? '';
    let entry = this.parsed.get(uid);
    if (!entry || entry.rv !== raw.metadata.resourceVersion) {
      entry = { rv: raw.metadata.resourceVersion, lease: undefined };
      try {
        entry.lease = parseObject(AcceleratorLease, raw);
      } catch (err) {
        this.opts.log.warn(
          { err: (err as Error).message },
          'skipping a lease that does not match the schema',
        );
      }
      this.parsed.set(uid, entry);
    }
    return entry.lease;
  }

  /** One accelerator (or the placement pass): read the caches, decide, write. */
  async reconcile(
    key: string,
    writes: Writes,
    signal: AbortSignal,
  ): Promise<{ requeueAfter?: number } | void> {
    const now = this.clock.now();
    const nowIso = kubeTime(now);
    const at = new Date(now).toISOString();
    if (key === LIMITS_KEY) {
      await execute(overLimitActions(this.admitted().over, nowIso), writes, this.opts.events, at);
      return;
    }
    if (key === PLACEMENT_KEY) {
      const leases = this.admitted().leases;
      const queued = new Set(
        leases
          .filter((l) => !l.metadata.deletionTimestamp && targetOf(l))
          .map((l) => targetOf(l) ?? ''),
      );
      const unplaced = leases.filter((l) => !targetOf(l) && !l.metadata.deletionTimestamp);
      if (unplaced.length === 0) return;
      const accels = this.acceleratorList().map((a) => parseObject(Accelerator, a));
      for (const { lease, status } of place(unplaced, accels, queued, nowIso)) {
        if (JSON.stringify(status) !== JSON.stringify(lease.status)) {
          await writes.replaceLeaseStatus(lease, status);
        }
      }
      return;
    }
    const name = key.slice(ACCEL_PREFIX.length);
    const leases = this.admitted().byTarget.get(name) ?? [];
    const raw = this.accelerator(name);
    if (!raw) {
      this.recordReapState(name, undefined);
      await execute(decideMissing(name, leases, now).actions, writes, this.opts.events, at);
      return;
    }
    const accelerator = parseObject(Accelerator, raw);
    const decision = decideHandoff({
      accelerator,
      leases,
      exports: this.exportsByAccelerator().get(name) ?? [],
      pods: this.podLookup(),
      policy: this.policy,
      evictionsInLastMinute: this.evictionsInLastMinute(now),
      evictingElsewhere: this.evictingElsewhere(name),
      now,
    });
    const startedAt = accelerator.metadata.annotations?.[LAST_HANDOFF_ANNOTATION];
    const written = await execute(decision.actions, writes, this.opts.events, at);
    // The effects fold their answers into the records just stored, at the version just written.
    const stored = decision.idleEvictions
      ? parseObject(Accelerator, await writes.setIdleEvictions(accelerator, decision.idleEvictions))
      : accelerator;
    for (const a of decision.actions) {
      if (
        a.type === 'leaseStatus' &&
        a.status.phase === 'Granted' &&
        a.lease.status?.phase !== 'Granted' &&
        startedAt
      ) {
        this.handoffSeconds.observe(Math.max(0, (now - Date.parse(startedAt)) / 1000));
      }
    }
    const summary = decision.reaper;
    this.recordReapState(name, summary);
    if (summary) {
      this.planSize.set({ accelerator: name }, summary.planSize);
      const ownerUid = accelerator.spec.owner?.lease?.uid;
      const lease = leases.find((l) => l.metadata.uid === ownerUid);
      const wasUnresolvable = lease?.status?.conditions?.some(
        (c) => c.type === 'Blocked' && c.reason === 'Unresolvable',
      );
      if (summary.state === 'Unresolvable' && !wasUnresolvable) this.unresolvableTotal.inc();
    }
    if (decision.effects.length > 0) {
      await this.runEffects(stored, decision.effects, written.leases, writes, signal, now);
    }
    return decision.requeueAfterMs !== undefined
      ? { requeueAfter: Math.max(1, decision.requeueAfterMs) }
      : undefined;
  }

  /** One reapState series per stuck accelerator, and its grace end while it has one. */
  private recordReapState(name: string, summary: ReapSummary | undefined): void {
    const state = summary && !NOT_STUCK.has(summary.state) ? summary.state : undefined;
    const previous = this.reapStates.get(name);
    if (previous !== undefined && previous !== state) {
      this.reapState.remove({ accelerator: name, state: previous });
    }
    if (state === undefined) this.reapStates.delete(name);
    else {
      this.reapStates.set(name, state);
      this.reapState.set({ accelerator: name, state }, 1);
    }
    if (state !== undefined && summary?.graceEndsAt !== undefined) {
      this.graceEnds.set({ accelerator: name }, summary.graceEndsAt / 1000);
    } else {
      this.graceEnds.remove({ accelerator: name });
    }
  }

  /** Pods by namespace/name, as the reaper reads them. */
  private podLookup(): PodLookup {
    return {
      get: (key) => {
        const p = this.pods.get(key);
        if (!p?.metadata?.uid) return undefined;
        return {
          uid: p.metadata.uid,
          nodeName: p.spec?.nodeName,
          deletionTimestamp: p.metadata.deletionTimestamp,
        };
      },
    };
  }

  private evictionsInLastMinute(now: number): number {
    this.evictionCalls = this.evictionCalls.filter((t) => t > now - 60_000);
    // After a restart the records remember what memory forgot.
    const recorded = requestsSince(this.allRecords().flat(), now - 60_000);
    return Math.max(this.evictionCalls.length, recorded);
  }

  private allRecords(except?: string): EvictionRecord[][] {
    const out: EvictionRecord[][] = [];
    for (const l of this.validLeases()) {
      if (targetOf(l) !== except) out.push(l.status?.evictions ?? []);
    }
    for (const a of this.acceleratorList()) {
      if (a.metadata.name === except || !a.spec.owner?.idleEvictions?.length) continue;
      out.push(idleEvictionsOf(parseObject(Accelerator, a)));
    }
    return out;
  }

  /** Pods other handoffs already asked to evict: a pod pinning two devices is evicted once. */
  private evictingElsewhere(accelerator: string): Set<string> {
    const out = new Set<string>();
    for (const records of this.allRecords(accelerator))
      for (const uid of podsBeingEvicted(records)) out.add(uid);
    return out;
  }

  /**
   * The reaper's effects, after its records were written: evictions and deletions (their answers
   * folded back into the records and written), the cordon annotation, and Events.
   */
  private async runEffects(
    accelerator: Accelerator,
    effects: readonly ReaperEffect[],
    written: ReadonlyMap<string, AcceleratorLease>,
    writes: Writes,
    signal: AbortSignal,
    now: number,
  ): Promise<void> {
    const answers: {
      effect: Extract<ReaperEffect, { type: 'evict' | 'delete' }>;
      outcome: Awaited<ReturnType<typeof callPod>>;
    }[] = [];
    await Promise.all(
      effects.map(async (effect) => {
        if (effect.type === 'evict' || effect.type === 'delete') {
          if (signal.aborted) return;
          if (effect.type === 'evict') this.evictionCalls.push(now);
          const outcome = await callPod(this.opts.client, effect, signal);
          this.evictionsTotal.inc({ result: `${effect.type}:${outcome.kind}` });
          answers.push({ effect, outcome });
        } else if (effect.type === 'cordon') {
          await writes.annotate(accelerator, { [CORDON_ANNOTATION]: effect.message });
        } else {
          this.opts.events.eventRef(
            effect.regarding,
            effect.eventType,
            effect.reason,
            effect.reason,
            effect.note,
          );
        }
      }),
    );
    if (answers.length === 0) return;
    const ownerUid = accelerator.spec.owner?.lease?.uid;
    const fold = (records: readonly EvictionRecord[]) =>
      answers.reduce(
        (recs, { effect, outcome }) =>
          recordOutcome(recs, effect, outcome, this.clock.now()).records,
        [...records],
      );
    const lease = ownerUid
      ? (written.get(ownerUid) ?? this.validLeases().find((l) => l.metadata.uid === ownerUid))
      : undefined;
    if (lease) {
      await writes.replaceLeaseStatus(lease, {
        ...lease.status,
        evictions: fold(lease.status?.evictions ?? []),
      });
    } else {
      const idle = idleEvictionsOf(accelerator);
      if (idle.length > 0) await writes.setIdleEvictions(accelerator, fold(idle));
    }
  }

  private registerGauges(registry: Registry): void {
    const leases = () => this.leases.list();
    new Gauge({
      name: 'accel_lease_leases',
      help: 'AcceleratorLeases by phase.',
      labelNames: ['phase'],
      registers: [registry],
      collect() {
        this.reset();
        for (const l of leases()) this.inc({ phase: l.status?.phase ?? 'Unknown' });
      },
    });
    const accels = () => this.accelerators.list();
    new Gauge({
      name: 'accel_lease_accelerator_status',
      help: 'Each Accelerator with its node, phase and owner (namespace/name of the lease the device enforces, empty for none); always 1.',
      labelNames: ['accelerator', 'node', 'phase', 'owner'],
      registers: [registry],
      collect() {
        this.reset();
        for (const a of accels()) {
          const lease = a.status?.owner?.lease;
          this.set(
            {
              accelerator: a.metadata.name ?? '',
              node: a.spec.node,
              phase: a.status?.phase ?? 'Unknown',
              owner: lease ? `${lease.namespace}/${lease.name}` : '',
            },
            1,
          );
        }
      },
    });
    new Gauge({
      name: 'accel_lease_accelerator_heartbeat_timestamp_seconds',
      help: "When each Accelerator's node agent last refreshed status.heartbeatTime, in seconds since the epoch.",
      labelNames: ['accelerator', 'node'],
      registers: [registry],
      collect() {
        this.reset();
        for (const a of accels()) {
          const beat = Date.parse(a.status?.heartbeatTime ?? '');
          if (!Number.isFinite(beat)) continue;
          this.set({ accelerator: a.metadata.name ?? '', node: a.spec.node }, beat / 1000);
        }
      },
    });
    const byTarget = () => this.currentLeases().byTarget;
    new Gauge({
      name: 'accel_lease_queue_length',
      help: 'Leases waiting (Pending) for each accelerator they name, the granted one not counted.',
      labelNames: ['accelerator'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [accelerator, leases] of byTarget()) {
          const waiting = leases.filter((l) => (l.status?.phase ?? 'Pending') === 'Pending');
          this.set({ accelerator }, waiting.length);
        }
      },
    });
    new Gauge({
      name: 'accel_lease_stuck_accelerators',
      help: 'Accelerators whose handoff is blocked by pins of an earlier owner.',
      registers: [registry],
      collect() {
        this.set(accels().filter((a) => a.status?.phase === 'Stuck').length);
      },
    });
  }
}

/** The controller's writes on the real API server, each conditional on the resourceVersion read. */
export function clusterWrites(client: KubeClient, signal?: AbortSignal): Writes {
  const leases = new ResourceClient<AcceleratorLease>(client, ACCELERATOR_LEASES);
  const accels = new ResourceClient<Accelerator>(client, ACCELERATORS);
  const opts = { fieldManager: FIELD_MANAGER, ...(signal && { signal }) };
  return {
    setLeaseFinalizers: (lease, finalizers) =>
      leases.mergePatch(
        lease.metadata.name ?? '',
        lease.metadata.namespace,
        { metadata: { resourceVersion: lease.metadata.resourceVersion, finalizers } },
        opts,
      ),
    replaceLeaseStatus: (lease, status: AcceleratorLeaseStatus) =>
      leases.replace({ ...lease, status }, { ...opts, subresource: 'status' }),
    annotate: (accel, annotations) =>
      accels.mergePatch(accel.metadata.name ?? '', undefined, { metadata: { annotations } }, opts),
    setIdleEvictions: (accel, records) =>
      accels.mergePatch(
        accel.metadata.name ?? '',
        undefined,
        idleEvictionsPatch(accel, records),
        opts,
      ),
    setOwner: (accel, owner: AcceleratorOwner, handoffAt) =>
      accels.mergePatch(
        accel.metadata.name ?? '',
        undefined,
        {
          metadata: {
            resourceVersion: accel.metadata.resourceVersion,
            annotations: { [LAST_HANDOFF_ANNOTATION]: handoffAt },
          },
          // Idle records belong to the owner epoch they were stored with: a new owner drops them.
          spec: { owner: { lease: owner.lease ?? null, epoch: owner.epoch, idleEvictions: null } },
        },
        opts,
      ),
  };
}
