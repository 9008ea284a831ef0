// Optimistic concurrency: a write carrying a stale resourceVersion gets 409 Conflict; the
// cure is to re-read and redo the change. Bounded attempts, jittered so racing writers spread out.
import { realClock, type Clock } from './clock.ts';
import { isConflict } from './errors.ts';

export interface RetryOnConflictOptions {
  /** Total attempts, the first included (default 5, like client-go's DefaultRetry). */
  attempts?: number;
  /** Delay before the second attempt; doubles after each conflict (default 10 ms). */
  baseDelayMs?: number;
  /** Fraction of random extra delay, 0..1 (default 0.5). */
  jitter?: number;
  clock?: Clock;
  random?: () => number;
}

/**
 * Runs fn until it does not throw a 409 Conflict, at most `attempts` times; other errors
 * and the last conflict propagate. fn must re-read what it writes: attempt 0 may use a cache.
 */
export async function retryOnConflict<R>(
  fn: (attempt: number) => Promise<R>,
  opts: RetryOnConflictOptions = {},
): Promise<R> {
  const attempts = Math.max(1, opts.attempts ?? 5);
  const clock = opts.clock ?? realClock;
  const random = opts.random ?? Math.random;
  const jitter = opts.jitter ?? 0.5;
  let delay = opts.baseDelayMs ?? 10;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!isConflict(err) || attempt + 1 >= attempts) throw err;
    }
    await clock.sleep(delay * (1 + jitter * random()));
    delay *= 2;
  }
}
