// The lease controller: informers feed a work queue keyed by accelerator; each reconcile reads
// the caches, asks the arbiter what to write, and writes it. Level-triggered throughout.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Gauge, Histogram, type Registry } from 'prom-client';
import {
  Accelerator,
  AcceleratorLease,
  parseObject,
  type AcceleratorLeaseStatus,
  type AcceleratorOwner,
} from '../crds/index.ts';
import {
  ACCELERATOR_LEASES,
  ACCELERATORS,
  Informer,
  type KubeClient,
  ResourceClient,
  WorkQueue,
  type Clock,
  realClock,
} from '../kube/index.ts';
import { decide, decideMissing } from './arbiter.ts';
import { execute, type EventSink, type Writes } from './execute.ts';
import { LAST_HANDOFF_ANNOTATION, place } from './placement.ts';

export const FIELD_MANAGER = 'accel-lease-controller';
const PLACEMENT_KEY = 'placement';
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
}

const iso = (t: number) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Which accelerator a lease waits for: named in spec, or chosen by placement (status). */
export function targetOf(lease: AcceleratorLease): string | undefined {
  return lease.spec.accelerator ?? lease.status?.accelerator;
}

export class LeaseController {
  readonly accelerators: Informer<Accelerator>;
  readonly leases: Informer<AcceleratorLease>;
  readonly queue: WorkQueue;
  private readonly opts: LeaseControllerOptions;
  private readonly clock: Clock;
  private readonly handoffSeconds: Histogram;

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
    for (const ev of ['add', 'update', 'delete', 'resync'] as const) {
      this.accelerators.on(ev, onAccel);
      this.leases.on(ev, onLease);
    }
    // A lease moving from one target to another (placement) must wake both devices.
    this.leases.on('update', (l: AcceleratorLease, old?: AcceleratorLease) => {
      const before = old && targetOf(old);
      if (before && before !== targetOf(l)) this.queue.add(ACCEL_PREFIX + before);
    });
  }

  hasSynced(): boolean {
    return this.accelerators.hasSynced() && this.leases.hasSynced();
  }

  /** Fill the caches; safe to call on a standby replica (reads only). */
  async startInformers(): Promise<void> {
    await Promise.all([this.accelerators.start(), this.leases.start()]);
  }

  /** Run the workers until `signal` aborts (leadership lost or shutdown); then drain. */
  async run(signal: AbortSignal): Promise<void> {
    // Every write carries the leadership signal: losing the lease aborts requests in flight.
    const writes = clusterWrites(this.opts.client, signal);
    const loop = this.queue.runWorkers(this.opts.workers ?? 4, async (key) =>
      signal.aborted ? undefined : this.reconcile(key, writes),
    );
    for (const a of this.accelerators.list())
      this.queue.add(ACCEL_PREFIX + (a.metadata.name ?? ''));
    this.queue.add(PLACEMENT_KEY);
    const stop = () => void this.queue.shutDown();
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
    await loop;
  }

  /** Stop taking work, wait for reconciles in flight, then close the watches. */
  async stop(): Promise<void> {
    await this.queue.shutDown();
    this.accelerators.stop();
    this.leases.stop();
  }

  private validLeases(): AcceleratorLease[] {
    const out: AcceleratorLease[] = [];
    for (const raw of this.leases.list()) {
      try {
        out.push(parseObject(AcceleratorLease, raw));
      } catch (err) {
        this.opts.log.warn(
          { err: (err as Error).message },
          'skipping a lease that does not match the schema',
        );
      }
    }
    return out;
  }

  /** One accelerator (or the placement pass): read the caches, decide, write. */
  async reconcile(key: string, writes: Writes): Promise<{ requeueAfter?: number } | void> {
    const now = this.clock.now();
    const nowIso = iso(now);
    if (key === PLACEMENT_KEY) {
      const leases = this.validLeases();
      const queued = new Set(
        leases
          .filter((l) => !l.metadata.deletionTimestamp && targetOf(l))
          .map((l) => targetOf(l) ?? ''),
      );
      const unplaced = leases.filter((l) => !targetOf(l) && !l.metadata.deletionTimestamp);
      const accels = this.accelerators.list().map((a) => parseObject(Accelerator, a));
      for (const { lease, status } of place(unplaced, accels, queued, nowIso)) {
        if (JSON.stringify(status) !== JSON.stringify(lease.status)) {
          await writes.replaceLeaseStatus(lease, status);
        }
      }
      return;
    }
    const name = key.slice(ACCEL_PREFIX.length);
    const leases = this.validLeases().filter((l) => targetOf(l) === name);
    const raw = this.accelerators.get(name);
    const decision = raw
      ? decide(parseObject(Accelerator, raw), leases, now)
      : decideMissing(name, leases, now);
    const startedAt = raw?.metadata.annotations?.[LAST_HANDOFF_ANNOTATION];
    await execute(decision.actions, writes, this.opts.events, nowIso);
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
    return decision.requeueAfterMs !== undefined
      ? { requeueAfter: Math.max(1, decision.requeueAfterMs) }
      : undefined;
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
    setOwner: (accel, owner: AcceleratorOwner, handoffAt) =>
      accels.mergePatch(
        accel.metadata.name ?? '',
        undefined,
        {
          metadata: {
            resourceVersion: accel.metadata.resourceVersion,
            annotations: { [LAST_HANDOFF_ANNOTATION]: handoffAt },
          },
          spec: { owner: { lease: owner.lease ?? null, epoch: owner.epoch } },
        },
        opts,
      ),
  };
}
