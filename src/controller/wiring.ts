// The lease controller's wiring: informers feed the view and a work queue keyed by accelerator
// (plus placement and namespace limits); workers run reconcile.ts on each key, with writes that
// carry the leadership signal. Level-triggered throughout: every decision is made again from
// the caches.
import type { KubeConfig, V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import {
  type Accelerator,
  type AcceleratorLease,
  type AcceleratorLeasePolicy,
  type DmaBufExport,
  DRA_DRIVER,
  LEASE_GATE,
  RESOURCE_CLAIMS,
  RESOURCE_SLICES,
} from '../crds/index.ts';
import {
  Informer,
  type InformerOptions,
  resourcePath,
  type KubeClient,
  WorkQueue,
  type Clock,
  realClock,
} from '../kube/index.ts';
import type { ResourceClaim } from './claims.ts';
import { isGated } from './holder-gates.ts';
import { DEFAULT_REAPER_POLICY, type ReaperPolicy } from '../reaper/index.ts';
import type { ExecutorPorts } from './executor.ts';
import { ControllerMetrics } from './metrics.ts';
import {
  acceleratorKey,
  claimKey,
  gateKey,
  leaseKeyOf,
  type ModeSources,
  LIMITS_KEY,
  PLACEMENT_KEY,
  wakeKeys,
  type Change,
} from './keys.ts';
import { reconcile, type ReconcileContext } from './reconcile.ts';
import { ControllerView, type ResourceSlice } from './view.ts';
import type { PodDisruptionBudget } from './disruption-budgets.ts';
import { trimPod } from './pod-cache.ts';
import { clusterPods, fenced, clusterReads, clusterWrites, type EventSink } from './writes.ts';

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
  /** DRA mode: watch ResourceClaims and our ResourceSlices; claims become leases. */
  dra?: boolean;
  /** Release pods gated with accel.dmabuf.io/lease once their lease is Granted. */
  holderGates?: boolean;
}

const API = '/apis/accel.dmabuf.io/v1alpha1';

export class LeaseController {
  readonly accelerators: Informer<Accelerator>;
  readonly leases: Informer<AcceleratorLease>;
  readonly exports: Informer<DmaBufExport>;
  readonly pods: Informer<V1Pod>;
  readonly namespaces: Informer<V1Namespace>;
  readonly leasePolicies: Informer<AcceleratorLeasePolicy>;
  /** policy/v1 PodDisruptionBudgets: one that comes to allow wakes the devices it refused. */
  readonly pdbs: Informer<PodDisruptionBudget>;
  /** --dra only. */
  readonly claims?: Informer<ResourceClaim>;
  readonly slices?: Informer<ResourceSlice>;
  readonly queue: WorkQueue;
  readonly view: ControllerView;
  private readonly opts: LeaseControllerOptions;
  private readonly clock: Clock;
  private readonly ctx: ReconcileContext;
  private readonly metrics: ControllerMetrics;
  /** The workers, once this replica runs them (it leads, or runs without election). */
  private workers?: Promise<void>;

  constructor(opts: LeaseControllerOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    const informer = <T extends object>(
      path: string,
      name: string,
      more: Partial<InformerOptions<T>> = {},
    ) =>
      new Informer<T>(opts.kc, {
        path,
        resyncPeriodMs: opts.resyncPeriodMs ?? 5 * 60_000,
        logger: opts.log,
        name,
        userAgent: opts.client.userAgent,
        ...more,
      });
    this.accelerators = informer(`${API}/accelerators`, 'accelerators');
    this.leases = informer(`${API}/acceleratorleases`, 'acceleratorleases');
    this.exports = informer(`${API}/dmabufexports`, 'dmabufexports');
    this.pods = informer<V1Pod>('/api/v1/pods', 'pods', { transform: trimPod });
    this.namespaces = informer('/api/v1/namespaces', 'namespaces');
    this.leasePolicies = informer(`${API}/acceleratorleasepolicies`, 'acceleratorleasepolicies');
    this.pdbs = informer('/apis/policy/v1/poddisruptionbudgets', 'poddisruptionbudgets');
    if (opts.dra) {
      this.claims = informer(resourcePath(RESOURCE_CLAIMS), 'resourceclaims');
      this.slices = informer<ResourceSlice>(resourcePath(RESOURCE_SLICES), 'resourceslices', {
        fieldSelector: `spec.driver=${DRA_DRIVER}`,
      });
    }
    this.queue = new WorkQueue({
      name: 'acceleratorlease',
      controllerKind: 'AcceleratorLease',
      registry: opts.registry,
      logger: opts.log,
      clock: this.clock,
    });
    const caches = {
      accelerators: this.accelerators,
      leases: this.leases,
      exports: this.exports,
      pods: this.pods,
      namespaces: this.namespaces,
      leasePolicies: this.leasePolicies,
      pdbs: this.pdbs,
      ...(this.claims && { claims: this.claims }),
      ...(this.slices && { slices: this.slices }),
    };
    this.view = new ControllerView(caches, {
      log: opts.log,
      ...(opts.defaultLeasePolicy !== undefined && {
        defaultLeasePolicy: opts.defaultLeasePolicy,
      }),
      onAdmissionChanged: (l) => this.queue.add(leaseKeyOf(l)),
    });
    this.metrics = new ControllerMetrics(opts.registry, {
      leases: () => this.leases.list(),
      accelerators: () => this.accelerators.list(),
      leasesByTarget: () => this.view.leasesByTarget(),
    });
    this.ctx = {
      view: this.view,
      policy: opts.policy ?? DEFAULT_REAPER_POLICY,
      observer: this.metrics,
    };
    this.watch();
  }

  /** Every watch event: tell the view, and wake the keys whose decision it may change. */
  private watch(): void {
    const accelerators = () => this.accelerators.list();
    const modes: ModeSources = {
      ...(this.claims && { claims: () => this.view.claims() }),
      ...(this.opts.holderGates && {
        gatedPods: (ns: string) => this.view.gatedPods(ns, LEASE_GATE),
      }),
    };
    const refusals = {
      refused: () => this.view.refusedEvictions(),
      pod: (key: string) => this.pods.get(key),
    };
    const on = (change: Change) => {
      this.view.notice(change);
      for (const key of wakeKeys(change, accelerators, modes, refusals)) this.queue.add(key);
    };
    for (const type of ['add', 'update', 'delete', 'resync'] as const) {
      this.accelerators.on(type, (obj: Accelerator, old?: Accelerator) =>
        on({ resource: 'accelerators', type, obj, ...(old && { old }) }),
      );
      this.leases.on(type, (obj: AcceleratorLease, old?: AcceleratorLease) =>
        on({ resource: 'leases', type, obj, ...(old && { old }) }),
      );
      this.exports.on(type, (obj: DmaBufExport) => on({ resource: 'exports', type, obj }));
      this.pods.on(type, (obj: V1Pod) => on({ resource: 'pods', type, obj }));
      this.namespaces.on(type, () => on({ resource: 'namespaces', type }));
      this.leasePolicies.on(type, () => on({ resource: 'leasePolicies', type }));
      this.pdbs.on(type, (obj: PodDisruptionBudget, old?: PodDisruptionBudget) =>
        on({ resource: 'pdbs', type, obj, ...(old && { old }) }),
      );
      this.claims?.on(type, (obj: ResourceClaim) => on({ resource: 'claims', type, obj }));
      this.slices?.on(type, (obj: ResourceSlice) => on({ resource: 'slices', type, obj }));
    }
  }

  private informers() {
    return [
      this.accelerators,
      this.leases,
      this.exports,
      this.pods,
      this.namespaces,
      this.leasePolicies,
      this.pdbs,
      ...(this.claims ? [this.claims] : []),
      ...(this.slices ? [this.slices] : []),
    ];
  }

  hasSynced(): boolean {
    return this.informers().every((i) => i.hasSynced());
  }

  /** Fill the caches; safe to call on a standby replica (reads only). */
  async startInformers(): Promise<void> {
    await Promise.all(this.informers().map((i) => i.start()));
  }

  /**
   * Run the workers until `signal` aborts (leadership lost or shutdown); then drain. `fence`,
   * under leader election, is asked before every write whether this replica still leads.
   */
  async run(signal: AbortSignal, fence: () => boolean = () => !signal.aborted): Promise<void> {
    // Every write carries the leadership signal: losing the lease aborts requests in flight.
    // The fence is asked twice: before a write is begun, and again by the client just before its
    // first byte goes out, after any wait for credentials or a connection.
    const client = this.opts.client.withFence(fence);
    const { writes, pods, events } = fenced(
      {
        writes: clusterWrites(client, signal),
        pods: clusterPods(client),
        events: this.opts.events,
      },
      fence,
      signal,
    );
    const ports: ExecutorPorts = {
      writes: this.view.recording(writes),
      reads: clusterReads(this.opts.client),
      pods,
      events,
      signal,
      now: () => this.clock.now(),
      onPodCall: (effect, outcome) => this.metrics.podCall(effect, outcome),
    };
    const loop = (this.workers = this.queue.runWorkers(this.opts.workers ?? 4, async (key) =>
      signal.aborted ? undefined : reconcile(key, this.clock.now(), this.ctx, ports),
    ));
    for (const a of this.accelerators.list()) this.queue.add(acceleratorKey(a.metadata.name ?? ''));
    for (const c of this.view.claims()) this.queue.add(claimKey(c));
    if (this.opts.holderGates)
      for (const p of this.pods.list()) if (isGated(p)) this.queue.add(gateKey(p));
    this.queue.add(PLACEMENT_KEY);
    this.queue.add(LIMITS_KEY);
    const stop = () => void this.queue.shutDown();
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
    await loop;
  }

  /**
   * Stop taking work, wait for the reconciles in flight (a replica that never ran workers has
   * none: the keys its watches queued are dropped), then close the watches.
   */
  async stop(): Promise<void> {
    const drained = this.queue.shutDown();
    if (this.workers) await drained;
    for (const i of this.informers()) i.stop();
  }
}
