// A client-go style work queue: keys (not events) are queued, so repeated adds collapse,
// and a key is never handed to two workers at once. Delays and retries run on an injected clock.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { realClock, type Clock, type TimerHandle } from './clock.ts';
import { workQueueMetrics, type WorkQueueMetrics } from './metrics.ts';
import { defaultControllerRateLimiter, type RateLimiter } from './rate-limiter.ts';
import { reconcileLoop, type ReconcileQueue, type Reconciler } from './reconcile-loop.ts';

export interface WorkQueueOptions {
  /** Queue name; also the `controller` label and log key of runWorkers(). */
  name: string;
  /** Kind the controller reconciles, for the `controllerKind` log key. */
  controllerKind?: string;
  clock?: Clock;
  /** Defaults to 5ms..1000s per key, capped by a 10 qps / burst 100 bucket. */
  rateLimiter?: RateLimiter;
  /** Where workqueue_* and controller_runtime_* metrics go; none when omitted. */
  registry?: Registry;
  logger?: Logger;
}

export class WorkQueue implements ReconcileQueue {
  readonly name: string;
  readonly controllerKind: string | undefined;
  readonly clock: Clock;
  readonly registry: Registry | undefined;
  readonly logger: Logger | undefined;
  private readonly rateLimiter: RateLimiter;
  private readonly metrics: WorkQueueMetrics | undefined;

  // Keys ready to be handed out, in order. Invariant: queue ⊆ dirty, queue ∩ processing = ∅.
  private readonly queue: string[] = [];
  // Keys that need processing (queued, or re-added while being processed).
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly waiting = new Map<string, { readyAt: number; timer: TimerHandle }>();
  private readonly addedAt = new Map<string, number>();
  private readonly startedAt = new Map<string, number>();
  private readonly getters: Array<(key: string | undefined) => void> = [];
  private readonly drainWaiters: Array<() => void> = [];
  private closing = false;

  constructor(opts: WorkQueueOptions) {
    this.name = opts.name;
    this.controllerKind = opts.controllerKind;
    this.clock = opts.clock ?? realClock;
    this.rateLimiter = opts.rateLimiter ?? defaultControllerRateLimiter(this.clock);
    this.registry = opts.registry;
    this.logger = opts.logger;
    this.metrics = opts.registry ? workQueueMetrics(opts.registry) : undefined;
  }

  /** Queues key unless it is already queued; a key being processed is re-queued by done(). */
  add(key: string): void {
    if (this.closing || this.dirty.has(key)) return;
    this.dirty.add(key);
    this.metrics?.adds.inc({ name: this.name });
    this.addedAt.set(key, this.clock.now());
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /** Queues key after ms; if key is already waiting, the earlier deadline wins. */
  addAfter(key: string, ms: number): void {
    if (this.closing) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.clock.now() + ms;
    const existing = this.waiting.get(key);
    if (existing) {
      if (existing.readyAt <= readyAt) return;
      existing.timer.cancel();
    }
    const timer = this.clock.setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, ms);
    this.waiting.set(key, { readyAt, timer });
  }

  /** Queues key after the rate limiter's delay for it (per-key backoff, global bucket). */
  addRateLimited(key: string): void {
    if (this.closing) return;
    this.metrics?.retries.inc({ name: this.name });
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /** Ends key's backoff: its next failure starts again at the base delay. */
  forget(key: string): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.rateLimiter.numRequeues(key);
  }

  /** Keys ready to be handed out (not counting delayed or in-flight keys). */
  len(): number {
    return this.queue.length;
  }

  shuttingDown(): boolean {
    return this.closing;
  }

  /**
   * Next key to process; the caller owns it until done(key). Resolves undefined once the
   * queue is shut down and empty.
   */
  get(): Promise<string | undefined> {
    const key = this.pop();
    if (key !== undefined) return Promise.resolve(key);
    if (this.closing) return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** Releases key; if it was added again meanwhile, it goes back to the queue now. */
  done(key: string): void {
    const started = this.startedAt.get(key);
    if (started !== undefined) {
      this.metrics?.workDuration.observe({ name: this.name }, (this.clock.now() - started) / 1000);
      this.startedAt.delete(key);
    }
    this.processing.delete(key);
    if (this.dirty.has(key)) this.push(key);
    this.checkDrained();
  }

  /**
   * Stops accepting keys and drops delayed ones; keys already queued are still handed out.
   * Resolves when the queue is empty and no key is being processed.
   */
  shutDown(): Promise<void> {
    this.closing = true;
    for (const { timer } of this.waiting.values()) timer.cancel();
    this.waiting.clear();
    const drained = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    if (this.queue.length === 0) {
      for (const g of this.getters.splice(0)) g(undefined);
    }
    this.checkDrained();
    return drained;
  }

  /**
   * Runs n workers that feed keys to reconcile until the queue is shut down and drained.
   * Thrown errors requeue the key rate-limited; see Reconciler for the other results.
   */
  runWorkers(n: number, reconcile: Reconciler): Promise<void> {
    return reconcileLoop(this, n, reconcile);
  }

  private push(key: string): void {
    const getter = this.getters.shift();
    if (getter) {
      this.hand(key);
      getter(key);
      return;
    }
    this.queue.push(key);
    this.metrics?.depth.inc({ name: this.name });
  }

  private pop(): string | undefined {
    const key = this.queue.shift();
    if (key === undefined) return undefined;
    this.metrics?.depth.dec({ name: this.name });
    this.hand(key);
    return key;
  }

  private hand(key: string): void {
    const now = this.clock.now();
    const added = this.addedAt.get(key);
    if (added !== undefined) {
      this.metrics?.queueDuration.observe({ name: this.name }, (now - added) / 1000);
      this.addedAt.delete(key);
    }
    this.startedAt.set(key, now);
    this.dirty.delete(key);
    this.processing.add(key);
  }

  private checkDrained(): void {
    if (!this.closing || this.queue.length > 0 || this.processing.size > 0) return;
    for (const g of this.getters.splice(0)) g(undefined);
    for (const w of this.drainWaiters.splice(0)) w();
  }
}
