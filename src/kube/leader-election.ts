// Leader election on a coordination.k8s.io/v1 Lease: only one replica leads, and the moment it
// may no longer be the leader its AbortSignal fires so every write it has in flight stops.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { realClock, type Clock, type TimerHandle } from './clock.ts';
import type { KubeClient } from './client.ts';
import { isAlreadyExists, isConflict, KubeApiError, statusCode } from './errors.ts';
import { leaseSchema, type Lease, type LeaseSpec } from './event-types.ts';
import {
  decideLeadership,
  electionProblem,
  nextLeaseSpec,
  releasedLeaseSpec,
  type ElectionProblem,
  type LeaseVerb,
} from './leader-decision.ts';
import { ResourceClient, type ResourceType } from './resources.ts';

export const LEASES: ResourceType = {
  group: 'coordination.k8s.io',
  version: 'v1',
  plural: 'leases',
  kind: 'Lease',
  namespaced: true,
};

/**
 * Where the elector reads and writes its Lease; a ResourceClient<Lease> is one. The signal
 * aborts a request in flight when the elector stops.
 */
export interface LeaseStore {
  find(name: string, namespace?: string, signal?: AbortSignal): Promise<Lease | undefined>;
  create(lease: Lease, opts?: { signal?: AbortSignal }): Promise<Lease>;
  replace(lease: Lease, opts?: { signal?: AbortSignal }): Promise<Lease>;
}

export interface LeaderElectionOptions {
  /** Lease namespace and name. */
  namespace: string;
  name: string;
  /** This replica, unique among candidates (pod name plus a random suffix, say). */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Clear the holder on stop() so a successor need not wait out the lease. */
  releaseOnCancel?: boolean;
  /** Called on becoming leader; signal aborts the moment leadership may be lost. */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called after losing or giving up leadership (the signal has already aborted). */
  onStoppedLeading?: () => void;
  onNewLeader?: (identity: string) => void;
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
  /** Tests substitute an in-memory store. */
  store?: LeaseStore;
  random?: () => number;
}

const gauges = new WeakMap<Registry, Gauge<'name'>>();
function masterStatusGauge(registry: Registry): Gauge<'name'> {
  let g = gauges.get(registry);
  if (!g) {
    g = new Gauge({
      name: 'leader_election_master_status',
      help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master',
      labelNames: ['name'],
      registers: [registry],
    });
    gauges.set(registry, g);
  }
  return g;
}

export class LeaderElector {
  private readonly opts: LeaderElectionOptions;
  private readonly store: LeaseStore;
  private readonly clock: Clock;
  private readonly log: Logger | undefined;
  private readonly gauge: Gauge<'name'> | undefined;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly random: () => number;

  private observed: Lease | undefined;
  private observedAt = 0;
  private observedOk = false;
  private readError = '';
  /** What stops this replica from campaigning that an operator has to fix, while it lasts. */
  private problem: ElectionProblem | undefined;
  private lastRenewAt: number | undefined;
  private leadership: AbortController | undefined;
  private deadline: TimerHandle | undefined;
  private knownLeader = '';
  private readonly stopController = new AbortController();
  private running: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;

  constructor(client: KubeClient | undefined, opts: LeaderElectionOptions) {
    this.opts = opts;
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (this.leaseDurationMs <= this.renewDeadlineMs) {
      throw new Error('lease duration must be greater than the renew deadline');
    }
    if (this.renewDeadlineMs <= this.retryPeriodMs) {
      throw new Error('renew deadline must be greater than the retry period');
    }
    if (!opts.store && !client) throw new Error('LeaderElector needs a KubeClient or a store');
    this.store = opts.store ?? new ResourceClient(client!, LEASES, (o) => leaseSchema.parse(o));
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
    this.log = opts.logger?.child({
      lease: `${opts.namespace}/${opts.name}`,
      identity: opts.identity,
    });
    this.gauge = opts.registry ? masterStatusGauge(opts.registry) : undefined;
    this.gauge?.set({ name: opts.name }, 0);
  }

  /** Campaigns, leads, and after a loss campaigns again, until stop(). */
  run(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  /**
   * Stops campaigning: a leader aborts its signal at once; the retry sleep and any Lease request
   * in flight are cancelled; then a leader releases the Lease if configured. Resolves when done.
   */
  async stop(): Promise<void> {
    if (!this.stopController.signal.aborted) {
      this.stopController.abort();
      const wasLeading = this.isLeader();
      this.lose('stopping');
      this.stopped = (async () => {
        await this.running;
        if (wasLeading && this.opts.releaseOnCancel) await this.release();
      })();
    }
    await this.stopped;
  }

  isLeader(): boolean {
    return this.leadership !== undefined;
  }

  /**
   * Whether this replica may still write as leader, asked right before each write. It goes by
   * the clock, not the deadline timer: a process that was stopped (SIGSTOP, a long GC pause) runs
   * I/O callbacks before timers when it resumes, so the timer alone would let a write out after
   * the lease may have passed to another replica. Past the renew deadline of its last renewal,
   * this replica stops leading there and then and answers false.
   */
  fence(): boolean {
    const renewedAt = this.lastRenewAt;
    if (renewedAt !== undefined && this.clock.now() - renewedAt >= this.renewDeadlineMs) {
      this.lose(`not renewed within the renew deadline (${this.renewDeadlineMs} ms)`);
    }
    return this.isLeader();
  }

  /** Holder of the lease as last observed ('' if none). */
  leader(): string {
    return this.knownLeader;
  }

  /**
   * For /readyz: true when leading, or a standby that can read the Lease and campaign; else
   * why not, in the words of the error log line (a missing namespace, a refused verb).
   */
  ready(): true | string {
    if (this.isLeader()) return true;
    if (this.problem) return this.problem.message;
    if (!this.observedOk) {
      const { namespace, name } = this.opts;
      return `cannot read the election Lease ${namespace}/${name}${this.readError ? `: ${this.readError}` : ''}`;
    }
    return true;
  }

  private async loop(): Promise<void> {
    while (!this.stopController.signal.aborted) {
      await this.tryAcquireOrRenew();
      // Candidates jitter their retries so they do not collide; a leader renews on the beat.
      const wait = this.isLeader()
        ? this.retryPeriodMs
        : this.retryPeriodMs * (1 + 1.2 * this.random());
      try {
        await this.clock.sleep(wait, this.stopController.signal);
      } catch {
        break;
      }
    }
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { namespace, name, identity } = this.opts;
    const signal = this.stopController.signal;
    let current: Lease | undefined;
    try {
      current = await this.store.find(name, namespace, signal);
      this.observedOk = true;
    } catch (err) {
      if (signal.aborted) return;
      this.observedOk = false;
      this.readError = errText(err);
      this.failed('get', err, 'cannot read the leader lease');
      return;
    }
    if (signal.aborted) return;
    const now = this.clock.now();
    if (!current || !isDeepStrictEqual(current.spec, this.observed?.spec)) {
      this.observedAt = now;
    }
    this.observed = current;
    this.noteLeader(current?.spec?.holderIdentity ?? '');

    const decision = decideLeadership({
      identity,
      now,
      leaseDurationMs: this.leaseDurationMs,
      renewDeadlineMs: this.renewDeadlineMs,
      observed: current?.spec,
      observedAt: this.observedAt,
      leading: this.isLeader(),
      lastRenewAt: this.lastRenewAt,
    });
    switch (decision.action) {
      case 'wait':
        this.resolved();
        return;
      case 'lost':
        this.resolved();
        this.lose(decision.reason);
        return;
      case 'create':
      case 'acquire':
      case 'renew': {
        const spec = nextLeaseSpec(decision, current?.spec, identity, now, this.leaseDurationMs);
        try {
          const written = current
            ? await this.store.replace({ ...current, spec }, { signal })
            : await this.store.create(
                {
                  apiVersion: 'coordination.k8s.io/v1',
                  kind: 'Lease',
                  metadata: { name, namespace },
                  spec,
                },
                { signal },
              );
          // Recorded even when stopping: release() replaces this very version.
          this.observed = written;
          this.observedAt = this.clock.now();
          if (signal.aborted) return;
          this.resolved();
          this.lastRenewAt = now;
          this.noteLeader(identity);
          this.armDeadline(now);
          if (!this.isLeader()) this.becomeLeader(decision.action);
        } catch (err) {
          if (signal.aborted) return;
          // Someone else wrote first (409): the election itself works. Anything else the
          // deadline timer turns into a loss of leadership if it goes on for too long.
          if (isConflict(err) || isAlreadyExists(err)) {
            this.resolved();
            this.log?.debug({ err: errText(err), action: decision.action }, 'lease write failed');
          } else {
            this.failed(current ? 'update' : 'create', err, 'lease write failed');
          }
        }
      }
    }
  }

  /**
   * A Lease request failed. A failure an operator must fix is logged at error level once per
   * distinct cause, and stays this replica's readiness reason until a round succeeds; any
   * other is a warning each time, as retrying may well fix it.
   */
  private failed(verb: LeaseVerb, err: unknown, what: string): void {
    const { namespace, name } = this.opts;
    const detail = err instanceof KubeApiError ? err.status?.message : undefined;
    const problem = electionProblem({
      verb,
      code: statusCode(err),
      namespace,
      name,
      ...(detail !== undefined && { detail }),
    });
    if (!problem) {
      this.log?.warn({ err: errText(err), verb }, what);
      return;
    }
    if (problem.cause !== this.problem?.cause) {
      this.log?.error({ err: errText(err), verb }, problem.message);
    }
    this.problem = problem;
  }

  /** A round got through to a decision: whatever problem there was is fixed. */
  private resolved(): void {
    if (!this.problem) return;
    this.log?.info({ resolved: this.problem.message }, 'leader election can proceed again');
    this.problem = undefined;
  }

  private becomeLeader(how: string): void {
    const leadership = new AbortController();
    this.leadership = leadership;
    this.gauge?.set({ name: this.opts.name }, 1);
    this.log?.info({ how }, 'became leader');
    try {
      void Promise.resolve(this.opts.onStartedLeading(leadership.signal)).catch((err: unknown) =>
        this.log?.error({ err }, 'onStartedLeading failed'),
      );
    } catch (err) {
      this.log?.error({ err }, 'onStartedLeading failed');
    }
  }

  /** Counted from when the successful write was sent, not from when its reply came. */
  private armDeadline(sentAt: number): void {
    this.deadline?.cancel();
    this.deadline = this.clock.setTimeout(
      () => this.lose(`not renewed within the renew deadline (${this.renewDeadlineMs} ms)`),
      Math.max(0, sentAt + this.renewDeadlineMs - this.clock.now()),
    );
  }

  private lose(reason: string): void {
    this.deadline?.cancel();
    this.deadline = undefined;
    const leadership = this.leadership;
    if (!leadership) return;
    this.leadership = undefined;
    this.lastRenewAt = undefined;
    leadership.abort(
      new Error(`leadership of ${this.opts.namespace}/${this.opts.name} lost: ${reason}`),
    );
    this.gauge?.set({ name: this.opts.name }, 0);
    this.log?.warn({ reason }, 'stopped leading');
    try {
      this.opts.onStoppedLeading?.();
    } catch (err) {
      this.log?.error({ err }, 'onStoppedLeading failed');
    }
  }

  /**
   * Clears the holder if it is still us. A renew cancelled by stop() may have reached the server
   * all the same, making our copy stale: on a conflict, read the Lease again and retry once.
   */
  private async release(): Promise<void> {
    const { namespace, name, identity } = this.opts;
    let current = this.observed;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!current || current.spec?.holderIdentity !== identity) return;
      const spec: LeaseSpec = releasedLeaseSpec(current.spec, this.clock.now());
      try {
        this.observed = await this.store.replace({ ...current, spec });
        this.log?.info('released the leader lease');
        return;
      } catch (err) {
        if (attempt === 0 && isConflict(err)) {
          current = await this.store.find(name, namespace).catch(() => undefined);
          continue;
        }
        this.log?.warn({ err: errText(err) }, 'could not release the leader lease');
        return;
      }
    }
  }

  private noteLeader(holder: string): void {
    if (holder === this.knownLeader) return;
    this.knownLeader = holder;
    if (holder) {
      this.log?.info({ leader: holder }, 'new leader observed');
      try {
        this.opts.onNewLeader?.(holder);
      } catch (err) {
        this.log?.error({ err }, 'onNewLeader failed');
      }
    }
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
