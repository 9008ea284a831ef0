// The real clock's timers: a delay beyond what Node's setTimeout holds must not fire at once.
import { describe, expect, it } from 'vitest';
import { MAX_TIMER_MS, realClock } from './clock.ts';

describe('realClock.setTimeout', () => {
  it('waits (rather than firing after 1 ms) for a delay longer than 24.8 days', async () => {
    let fired = false;
    // A lease of 30 days: its expiry is this far ahead when it is granted.
    const timer = realClock.setTimeout(() => (fired = true), 30 * 86_400_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    timer.cancel();
    expect(fired).toBe(false);
    expect(MAX_TIMER_MS).toBe(2 ** 31 - 1);
  });
});
