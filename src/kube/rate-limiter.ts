// Per-key retry delays for the work queue, as in client-go's workqueue: exponential
// backoff per failing key, capped overall by a token bucket shared by all keys.
import type { Clock } from './clock.ts';

export interface RateLimiter {
  /** Delay in ms before key may be retried; records one more failure for key. */
  when(key: string): number;
  /** Clears key's failure history (call when key succeeded or was dropped). */
  forget(key: string): void;
  /** Failures recorded for key since the last forget(). */
  numRequeues(key: string): number;
}

/** base * 2^failures, capped at max: 5ms, 10ms, 20ms, ... 1000s with the defaults. */
export class ItemExponentialRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(baseMs = 5, maxMs = 1_000_000) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // 2^n overflows to Infinity long before it matters; min() keeps the cap exact.
    return Math.min(this.baseMs * 2 ** n, this.maxMs);
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/**
 * A token bucket over all keys (qps refill, burst capacity). Each when() reserves a token;
 * once the bucket is empty the reservations queue up at 1/qps intervals, like Go's
 * rate.Limiter.Reserve().
 */
export class BucketRateLimiter implements RateLimiter {
  private readonly clock: Clock;
  private readonly qps: number;
  private readonly burst: number;
  private tokens: number;
  private last: number;

  constructor(clock: Clock, qps = 10, burst = 100) {
    this.clock = clock;
    this.qps = qps;
    this.burst = burst;
    this.tokens = burst;
    this.last = clock.now();
  }

  when(_key: string): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.qps) / 1000);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.qps;
  }

  forget(_key: string): void {}

  numRequeues(_key: string): number {
    return 0;
  }
}

/** The longest delay any of the limiters asks for. */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(key: string): number {
    return Math.max(0, ...this.limiters.map((l) => l.when(key)));
  }

  forget(key: string): void {
    for (const l of this.limiters) l.forget(key);
  }

  numRequeues(key: string): number {
    return Math.max(0, ...this.limiters.map((l) => l.numRequeues(key)));
  }
}

/** controller-runtime's default: per-key 5ms..1000s backoff, global 10 qps with burst 100. */
export function defaultControllerRateLimiter(clock: Clock): RateLimiter {
  return new MaxOfRateLimiter(
    new ItemExponentialRateLimiter(5, 1_000_000),
    new BucketRateLimiter(clock, 10, 100),
  );
}
