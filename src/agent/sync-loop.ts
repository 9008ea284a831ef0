// The sync loop: one pass at a time, a trigger during a pass runs one more after it, a failed
// pass retries with backoff (1 s doubling to 30 s), and timers wake it for deadlines and periods.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { AgentMetrics } from './metrics.ts';

/** One pass over the node: true on success, false to retry with backoff; a throw counts as false. */
export type SyncPass = () => Promise<boolean>;

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;
/** Past a wake deadline, so the pass that follows sees it expired. */
const WAKE_SLACK_MS = 5;

export class SyncLoop {
  /** No pass before start(): before every cache has synced, an empty pod cache would look like every pod exited. */
  private started = false;
  private halted = false;
  private everSucceeded = false;
  private running: Promise<void> | undefined;
  private rerun = false;
  private retryMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private readonly periodic: NodeJS.Timeout[] = [];
  /** Callers of synced(), resolved when the next pass to start is done. */
  private readonly waiters: Array<() => void> = [];

  private readonly pass: SyncPass;
  private readonly metrics: AgentMetrics;
  private readonly log: Logger;

  constructor(pass: SyncPass, metrics: AgentMetrics, log: Logger) {
    this.pass = pass;
    this.metrics = metrics;
    this.log = log;
  }

  /** Set once halt() ran: no pass starts any more. */
  get stopping(): boolean {
    return this.halted;
  }

  /** A pass is in progress. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Some pass has succeeded: the node has been reconciled at least once. */
  get ready(): boolean {
    return this.everSucceeded;
  }

  start(): void {
    this.started = true;
    this.trigger();
  }

  /** Runs a pass now, or one more after the current one. */
  trigger(): void {
    if (this.halted || !this.started) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.running = this.runPasses();
  }

  /** Resolves when a pass that starts after this call is done (at once when stopping). */
  synced(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.halted) return resolve();
      this.waiters.push(resolve);
      this.trigger();
    });
  }

  /** Triggers every `ms`, after `before` (which marks what the timed pass must also do). */
  every(ms: number, before?: () => void): void {
    this.periodic.push(
      setInterval(() => {
        before?.();
        this.trigger();
      }, ms),
    );
  }

  /** Triggers at `at` (ms since the epoch), replacing any earlier wake; undefined cancels it. */
  wakeAt(at: number | undefined): void {
    clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    if (at === undefined || this.halted) return;
    this.wakeTimer = setTimeout(() => this.trigger(), Math.max(0, at - Date.now()) + WAKE_SLACK_MS);
  }

  /** Starts no pass any more and clears every timer; a pass in progress runs on. */
  halt(): void {
    this.halted = true;
    for (const timer of this.periodic) clearInterval(timer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.wakeTimer);
  }

  /** Resolves when the pass in progress, if any, is done. */
  async settled(): Promise<void> {
    await this.running;
  }

  /** Resolves every synced() still waiting: after a stop, no pass will. */
  releaseWaiters(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async runPasses(): Promise<void> {
    do {
      this.rerun = false;
      const done = this.waiters.splice(0);
      const started = performance.now();
      let ok = false;
      try {
        ok = await this.pass();
        this.metrics.syncs.inc({ result: ok ? 'success' : 'retry' });
      } catch (err) {
        this.metrics.syncs.inc({ result: 'error' });
        this.log.error({ err }, 'node sync failed');
      }
      this.metrics.syncSeconds.observe((performance.now() - started) / 1000);
      if (ok) {
        this.everSucceeded = true;
        this.retryMs = 0;
      } else {
        this.scheduleRetry();
      }
      for (const w of done) w();
    } while (this.rerun && !this.halted);
    this.running = undefined;
  }

  private scheduleRetry(): void {
    if (this.halted || this.retryTimer) return;
    this.retryMs = Math.min(this.retryMs === 0 ? FIRST_RETRY_MS : this.retryMs * 2, MAX_RETRY_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.trigger();
    }, this.retryMs);
  }
}
