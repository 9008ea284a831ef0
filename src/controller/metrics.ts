// The controller's own metrics: what reconciles observe (handoff durations, reaper state, pod
// calls) and gauges collected from the view at scrape time.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Accelerator, AcceleratorLease } from '../crds/index.ts';
import type { CallOutcome, ReapState, ReapSummary } from '../reaper/index.ts';
import type { PodCall } from './writes.ts';

/** What a reconcile reports as it goes; the simulation runs without one. */
export interface ReconcileObserver {
  /** A lease was Granted `seconds` after its device's owner change was written. */
  handoffGranted(seconds: number): void;
  /** The reaper's view of a stuck handoff, or undefined when the device is not (or no longer) stuck. */
  reaped(accelerator: string, summary: ReapSummary | undefined, newlyUnresolvable: boolean): void;
  podCall(effect: PodCall, outcome: CallOutcome): void;
}

/** Reaper states of a handoff that is not (or no longer) held up by pins. */
const NOT_STUCK: ReadonlySet<ReapState> = new Set(['Off', 'NotStuck', 'Resolved']);

/** What the scrape-time gauges read. */
export interface GaugeSources {
  leases(): readonly AcceleratorLease[];
  accelerators(): readonly Accelerator[];
  leasesByTarget(): ReadonlyMap<string, readonly AcceleratorLease[]>;
}

export class ControllerMetrics implements ReconcileObserver {
  private readonly handoffSeconds: Histogram;
  private readonly evictionsTotal: Counter<'result'>;
  private readonly planSize: Gauge<'accelerator'>;
  private readonly unresolvableTotal: Counter;
  private readonly reapState: Gauge<'accelerator' | 'state'>;
  private readonly graceEnds: Gauge<'accelerator'>;
  /** The state each accelerator's reapState series carries, so a change removes the old one. */
  private readonly reapStates = new Map<string, ReapState>();

  constructor(registry: Registry, sources: GaugeSources) {
    const registers = [registry];
    this.handoffSeconds = new Histogram({
      name: 'handoff_duration_seconds',
      help: 'Time from an owner change written on an Accelerator to the next lease Granted.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    this.evictionsTotal = new Counter({
      name: 'evictions_total',
      help: 'Pod eviction and deletion calls made by the reaper, by outcome.',
      labelNames: ['result'],
      registers,
    });
    this.planSize = new Gauge({
      name: 'reaper_plan_size',
      help: 'Pods the reaper plans to evict to free each stuck accelerator.',
      labelNames: ['accelerator'],
      registers,
    });
    this.unresolvableTotal = new Counter({
      name: 'unresolvable_total',
      help: 'Handoffs declared Unresolvable: pins remain with no evictable holder.',
      registers,
    });
    this.reapState = new Gauge({
      name: 'reaper_handoff_state',
      help: 'The reaper state of each stuck handoff (GracePeriod, Evicting, RateLimited, DeadlineExceeded, Unresolvable, ...), 1 for the current one.',
      labelNames: ['accelerator', 'state'],
      registers,
    });
    this.graceEnds = new Gauge({
      name: 'reaper_grace_period_end_timestamp_seconds',
      help: 'When the grace period of each stuck handoff ends, in seconds since the epoch; absent when the device is not stuck.',
      labelNames: ['accelerator'],
      registers,
    });
    registerGauges(registry, sources);
  }

  handoffGranted(seconds: number): void {
    this.handoffSeconds.observe(seconds);
  }

  podCall(effect: PodCall, outcome: CallOutcome): void {
    this.evictionsTotal.inc({ result: `${effect.type}:${outcome.kind}` });
  }

  /** One reapState series per stuck accelerator, and its grace end while it has one. */
  reaped(name: string, summary: ReapSummary | undefined, newlyUnresolvable: boolean): void {
    if (summary) this.planSize.set({ accelerator: name }, summary.planSize);
    if (newlyUnresolvable) this.unresolvableTotal.inc();
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
}

function registerGauges(registry: Registry, sources: GaugeSources): void {
  new Gauge({
    name: 'accel_lease_leases',
    help: 'AcceleratorLeases by phase.',
    labelNames: ['phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const l of sources.leases()) this.inc({ phase: l.status?.phase ?? 'Unknown' });
    },
  });
  new Gauge({
    name: 'accel_lease_accelerator_status',
    help: 'Each Accelerator with its node, phase and owner (namespace/name of the lease the device enforces, empty for none); always 1.',
    labelNames: ['accelerator', 'node', 'phase', 'owner'],
    registers: [registry],
    collect() {
      this.reset();
      for (const a of sources.accelerators()) {
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
      for (const a of sources.accelerators()) {
        const beat = Date.parse(a.status?.heartbeatTime ?? '');
        if (!Number.isFinite(beat)) continue;
        this.set({ accelerator: a.metadata.name ?? '', node: a.spec.node }, beat / 1000);
      }
    },
  });
  new Gauge({
    name: 'accel_lease_queue_length',
    help: 'Leases waiting (Pending) for each accelerator they name, the granted one not counted.',
    labelNames: ['accelerator'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [accelerator, leases] of sources.leasesByTarget()) {
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
      this.set(sources.accelerators().filter((a) => a.status?.phase === 'Stuck').length);
    },
  });
}
