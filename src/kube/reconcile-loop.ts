// The worker loop of a controller: take a key, reconcile it, and turn the outcome into
// forget / requeue-after / rate-limited requeue, with controller-runtime's metrics and log keys.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from './clock.ts';
import { isConflict } from './errors.ts';
import { reconcileMetrics } from './metrics.ts';

/**
 * What a reconcile asks for next. Nothing (or `{}`) means done: the key's backoff is
 * forgotten. Throwing means error: the key is requeued with per-key exponential backoff.
 */
export type ReconcileResult = void | { requeueAfter?: number; requeue?: boolean };

export interface ReconcileContext {
  /** Child logger carrying controller, controllerKind, namespace, name and reconcileID. */
  log: Logger | undefined;
  reconcileID: string;
}

export type Reconciler = (key: string, ctx: ReconcileContext) => Promise<ReconcileResult>;

/** An error retrying cannot fix (bad spec, say): logged and counted, the key is not requeued. */
export class TerminalError extends Error {
  override readonly name = 'TerminalError';
}

/**
 * What the loop needs of a queue: hand out keys one worker at a time, and take them back
 * forgotten, delayed or rate-limited. WorkQueue is one; the loop knows no more of it than this.
 */
export interface ReconcileQueue {
  readonly name: string;
  readonly controllerKind: string | undefined;
  readonly clock: Clock;
  readonly registry: Registry | undefined;
  readonly logger: Logger | undefined;
  get(): Promise<string | undefined>;
  done(key: string): void;
  forget(key: string): void;
  addAfter(key: string, ms: number): void;
  addRateLimited(key: string): void;
  numRequeues(key: string): number;
}

/** How long the workers may run on microtasks alone before the event loop gets a turn. */
export const YIELD_AFTER_MS = 10;

export async function reconcileLoop(
  queue: ReconcileQueue,
  workers: number,
  reconcile: Reconciler,
): Promise<void> {
  const metrics = queue.registry ? reconcileMetrics(queue.registry) : undefined;
  const controller = queue.name;

  const processOne = async (key: string): Promise<void> => {
    const reconcileID = randomUUID();
    const slash = key.indexOf('/');
    const log = queue.logger?.child({
      controller,
      ...(queue.controllerKind ? { controllerKind: queue.controllerKind } : {}),
      ...(slash >= 0 ? { namespace: key.slice(0, slash) } : {}),
      name: slash >= 0 ? key.slice(slash + 1) : key,
      reconcileID,
    });
    const started = queue.clock.now();
    let result: 'success' | 'error' | 'requeue' | 'requeue_after';
    try {
      const r = await reconcile(key, { log, reconcileID });
      if (r && r.requeueAfter !== undefined && r.requeueAfter > 0) {
        queue.forget(key);
        queue.addAfter(key, r.requeueAfter);
        result = 'requeue_after';
      } else if (r && r.requeue) {
        queue.addRateLimited(key);
        result = 'requeue';
      } else {
        queue.forget(key);
        result = 'success';
      }
    } catch (err) {
      result = 'error';
      metrics?.errors.inc({ controller });
      if (err instanceof TerminalError) {
        queue.forget(key);
        log?.error({ err }, 'Reconciler error (terminal, not requeued)');
      } else if (isConflict(err)) {
        // Someone wrote first; the next reconcile starts from the newer object. Expected, not alarming.
        queue.addRateLimited(key);
        log?.info(
          { retries: queue.numRequeues(key), err: (err as Error).message },
          'conflict, requeued',
        );
      } else {
        queue.addRateLimited(key);
        log?.error({ err, retries: queue.numRequeues(key) }, 'Reconciler error');
      }
    } finally {
      metrics?.time.observe({ controller }, (queue.clock.now() - started) / 1000);
      queue.done(key);
    }
    metrics?.total.inc({ controller, result });
  };

  // A reconcile that decides nothing to write never waits on I/O, and `await` alone only runs
  // microtasks: a first pass over thousands of such keys would keep /healthz, /readyz and the
  // watches from being served until it ends. So the workers give the event loop a turn once
  // they have run YIELD_AFTER_MS without one.
  let since = performance.now();
  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      await processOne(key);
      if (performance.now() - since >= YIELD_AFTER_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        since = performance.now();
      }
    }
  };

  await Promise.all(Array.from({ length: Math.max(1, workers) }, worker));
}
