// Time as a dependency: production code reads the wall clock and arms real timers,
// unit tests inject FakeClock and advance it by hand so every schedule is deterministic.

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch (or since any fixed origin, for a fake clock). */
  now(): number;
  /** Runs fn once after ms; the handle cancels it. Real timers are unref'd. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Resolves after ms, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * The longest delay Node's setTimeout honours (a signed 32-bit count of ms, ~24.8 days); a
 * longer one fires after 1 ms. Clamped to it instead, a far deadline (a lease's expiry) wakes
 * its owner early, once every 24.8 days, and a level-triggered caller re-arms it.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  sleep: (ms, signal) => sleepOn(realClock, ms, signal),
};

function sleepOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      reject(signal?.reason as Error);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

interface PendingTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A manually advanced clock. Timers fire in due order (ties in arming order) during
 * advance(); a timer armed by a firing timer fires in the same advance() if it is due.
 */
export class FakeClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly timers = new Set<PendingTimer>();

  constructor(start = 0) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: PendingTimer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.add(timer);
    return { cancel: () => this.timers.delete(timer) };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Number of armed timers (useful to assert that nothing is left scheduled). */
  pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by ms, firing every timer that falls due on the way. */
  advance(ms: number): void {
    const target = this.current + ms;
    while (this.fireNext(target));
    this.current = target;
  }

  /** Like advance(), but lets promise continuations run between timers. */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.current + ms;
    await flushMicrotasks();
    while (this.fireNext(target)) await flushMicrotasks();
    this.current = target;
    await flushMicrotasks();
  }

  /** Fires the earliest timer due by `limit`, moving time to it; false when none is due. */
  private fireNext(limit: number): boolean {
    const next = this.nextDue(limit);
    if (!next) return false;
    this.timers.delete(next);
    this.current = next.at;
    next.fn();
    return true;
  }

  private nextDue(limit: number): PendingTimer | undefined {
    let best: PendingTimer | undefined;
    for (const t of this.timers) {
      if (t.at > limit) continue;
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/** Lets queued promise callbacks run (a macrotask turn drains every microtask before it). */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * RFC 3339 with exactly six fractional digits: the API server's MicroTime (Lease renewTime,
 * Event eventTime) is parsed with a fixed-width layout and rejects milliseconds.
 */
export function toMicroTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
