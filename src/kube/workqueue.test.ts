import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FakeClock, flushMicrotasks } from './clock.ts';
import {
  BucketRateLimiter,
  ItemExponentialRateLimiter,
  defaultControllerRateLimiter,
} from './rate-limiter.ts';
import { TerminalError } from './reconcile-loop.ts';
import { WorkQueue } from './workqueue.ts';

function newQueue(clock = new FakeClock(), registry?: Registry): WorkQueue {
  return new WorkQueue({ name: 'test', clock, ...(registry ? { registry } : {}) });
}

describe('WorkQueue', () => {
  it('collapses repeated adds of a queued key', async () => {
    const q = newQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.len()).toBe(0);
  });

  it('never hands out a key that is being processed; re-adds run after done()', async () => {
    const q = newQueue();
    q.add('a');
    const first = await q.get();
    expect(first).toBe('a');
    q.add('a');
    q.add('a');
    expect(q.len()).toBe(0); // dirty, not queued
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await flushMicrotasks();
    expect(second).toBeUndefined();
    q.done('a');
    await flushMicrotasks();
    expect(second).toBe('a');
    q.done('a');
    expect(q.len()).toBe(0);
  });

  it('runWorkers never reconciles one key concurrently, even with many workers', async () => {
    const q = newQueue();
    const inFlight = new Set<string>();
    let overlaps = 0;
    let calls = 0;
    const run = q.runWorkers(4, async (key) => {
      calls++;
      if (inFlight.has(key)) overlaps++;
      inFlight.add(key);
      await flushMicrotasks();
      if (calls < 20) q.add(key); // re-add while processing
      inFlight.delete(key);
    });
    q.add('x');
    q.add('y');
    for (let i = 0; i < 50; i++) await flushMicrotasks();
    await q.shutDown();
    await run;
    expect(overlaps).toBe(0);
    expect(calls).toBeGreaterThanOrEqual(20);
  });

  it('addAfter delivers after the delay and keeps the earliest deadline', async () => {
    const clock = new FakeClock();
    const q = newQueue(clock);
    q.addAfter('a', 100);
    q.addAfter('a', 50);
    q.addAfter('a', 500);
    clock.advance(49);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe('a');
    q.done('a');
    clock.advance(1000);
    expect(q.len()).toBe(0); // the later deadlines were collapsed
  });

  it('addRateLimited backs off 5ms, 10ms, 20ms ... and forget() resets', async () => {
    const clock = new FakeClock();
    const q = newQueue(clock);
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = clock.now();
      q.addRateLimited('k');
      while (q.len() === 0 && clock.now() - start < 10_000) clock.advance(1);
      delays.push(clock.now() - start);
      q.done((await q.get())!);
    }
    expect(delays).toEqual([5, 10, 20, 40, 80]);
    expect(q.numRequeues('k')).toBe(5);
    q.forget('k');
    expect(q.numRequeues('k')).toBe(0);
  });

  it('shutDown hands out what is queued, drops delayed keys, refuses adds, then ends', async () => {
    const clock = new FakeClock();
    const q = newQueue(clock);
    q.add('a');
    q.addAfter('later', 10);
    const drained = q.shutDown();
    q.add('b');
    expect(clock.pending()).toBe(0);
    expect(await q.get()).toBe('a');
    let isDrained = false;
    void drained.then(() => (isDrained = true));
    await flushMicrotasks();
    expect(isDrained).toBe(false); // 'a' still processing
    q.done('a');
    await flushMicrotasks();
    expect(isDrained).toBe(true);
    expect(await q.get()).toBeUndefined();
  });

  it('gives the event loop a turn while keys that never wait on I/O are reconciled', async () => {
    const q = newQueue();
    const keys = 200;
    for (let i = 0; i < keys; i++) q.add(`k${i}`);
    let done = 0;
    let doneWhenServed: number | undefined;
    // What /healthz is to the controller: a callback that needs a turn of the event loop.
    setImmediate(() => (doneWhenServed = done));
    const run = q.runWorkers(4, () => {
      const until = performance.now() + 0.5; // a reconcile's CPU, no I/O
      while (performance.now() < until);
      done++;
      return Promise.resolve();
    });
    while (done < keys) await new Promise((resolve) => setImmediate(resolve));
    await q.shutDown();
    await run;
    expect(doneWhenServed).toBeDefined();
    expect(doneWhenServed).toBeLessThan(keys / 2);
  });

  it('shutDown wakes idle workers so runWorkers resolves', async () => {
    const q = newQueue();
    const run = q.runWorkers(3, () => Promise.resolve());
    await flushMicrotasks();
    await q.shutDown();
    await expect(run).resolves.toBeUndefined();
  });

  it('runWorkers maps results to forget / requeueAfter / rate-limited requeue', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const q = newQueue(clock, registry);
    const seen: string[] = [];
    let failures = 0;
    const run = q.runWorkers(1, async (key) => {
      seen.push(`${key}@${clock.now()}`);
      await flushMicrotasks();
      if (key === 'fail' && failures++ < 2) throw new Error('boom');
      if (key === 'terminal') throw new TerminalError('bad spec');
      if (key === 'later' && clock.now() === 0) return { requeueAfter: 1000 };
      return undefined;
    });
    q.add('fail');
    q.add('later');
    q.add('terminal');
    await clock.advanceAsync(0);
    await clock.advanceAsync(5); // first retry after 5ms
    await clock.advanceAsync(10); // second retry after 10 more
    await clock.advanceAsync(1000);
    await q.shutDown();
    await run;
    expect(seen).toEqual(['fail@0', 'later@0', 'terminal@0', 'fail@5', 'fail@15', 'later@1000']);
    expect(q.numRequeues('fail')).toBe(0); // forgotten after success
    const text = await registry.metrics();
    expect(text).toContain(
      'controller_runtime_reconcile_total{controller="test",result="error"} 3',
    );
    expect(text).toContain(
      'controller_runtime_reconcile_total{controller="test",result="success"} 2',
    );
    expect(text).toContain(
      'controller_runtime_reconcile_total{controller="test",result="requeue_after"} 1',
    );
    expect(text).toContain('controller_runtime_reconcile_errors_total{controller="test"} 3');
    expect(text).toContain('workqueue_retries_total{name="test"} 2');
    expect(text).toContain('workqueue_adds_total{name="test"} 6');
    expect(text).toContain('workqueue_depth{name="test"} 0');
    expect(text).toContain('controller_runtime_reconcile_time_seconds_count{controller="test"} 6');
    expect(text).toContain('workqueue_queue_duration_seconds_count{name="test"} 6');
    expect(text).toContain('workqueue_work_duration_seconds_count{name="test"} 6');
  });

  it('two queues on one registry share the metric families', () => {
    const registry = new Registry();
    newQueue(new FakeClock(), registry).add('a');
    newQueue(new FakeClock(), registry).add('a');
    expect(registry.getSingleMetric('workqueue_adds_total')).toBeDefined();
  });
});

describe('rate limiters', () => {
  it('per-key exponential backoff doubles from 5ms and caps at 1000s', () => {
    const rl = new ItemExponentialRateLimiter(5, 1_000_000);
    const seq = Array.from({ length: 30 }, () => rl.when('k'));
    expect(seq.slice(0, 6)).toEqual([5, 10, 20, 40, 80, 160]);
    expect(Math.max(...seq)).toBe(1_000_000);
    expect(seq.at(-1)).toBe(1_000_000);
    expect(rl.when('other')).toBe(5); // independent per key
    for (let i = 0; i < 2000; i++) rl.when('k'); // no overflow to NaN/Infinity
    expect(rl.when('k')).toBe(1_000_000);
  });

  it('global bucket allows a burst of 100, then 10 per second', () => {
    const clock = new FakeClock();
    const rl = new BucketRateLimiter(clock, 10, 100);
    const burst = Array.from({ length: 100 }, (_, i) => rl.when(`k${i}`));
    expect(burst.every((d) => d === 0)).toBe(true);
    expect(rl.when('k100')).toBe(100);
    expect(rl.when('k101')).toBe(200);
    clock.advance(1000); // refills 10 tokens, 2 were owed
    expect(rl.when('k102')).toBe(0);
  });

  it('the default limiter is the max of both: fresh keys past the burst wait for the bucket', () => {
    const clock = new FakeClock();
    const rl = defaultControllerRateLimiter(clock);
    for (let i = 0; i < 100; i++) expect(rl.when(`k${i}`)).toBe(5);
    expect(rl.when('fresh')).toBe(100);
  });
});
