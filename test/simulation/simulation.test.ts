// The handoff simulation: the controller's own view, reconcile and executor, its writes through
// clusterWrites to an in-memory API server (resourceVersions, 409s, lagging watches), the node
// agent's own sync on the simulated kernel, and faults: crashes after any write, restarts,
// PDB refusals, slow pods, hidden holders, expiry, priorities, handoffs in a row. I1-I5 are
// checked after every write (world.ts). Seeds run in worker threads; the base seed is printed.
// Replay one seed with its trace: SIM_SEED=123 npx vitest run test/simulation
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { scenario } from './scenario.ts';
import { REGRESSION_SEEDS } from './seeds.ts';
import type { ShardResult } from './shard.ts';
import { emptyStats, runScenario, World, type Stats } from './world.ts';

const SCENARIOS = Number(process.env.SIM_SCENARIOS ?? 10_000);
const REPLAY = process.env.SIM_SEED;

function shard(base: number, count: number, offset: number, stride: number): Promise<ShardResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./shard.ts', import.meta.url), {
      workerData: { simulationShard: true, base, count, offset, stride },
    });
    worker.once('message', (result: ShardResult) => {
      resolve(result);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`simulation worker exited with code ${code}`));
    });
  });
}

/** The failing seed again, in this thread, with its trace. */
async function explain(seed: number, message: string): Promise<Error> {
  const world = new World(scenario(seed), emptyStats(), true);
  try {
    await world.run();
  } catch {
    // the same seed fails the same way; its trace is what we want
  }
  console.log(`scenario ${seed} failed; trace:\n${(world.trace ?? []).slice(-150).join('\n')}`);
  return new Error(
    `scenario seed ${seed} failed: ${message}\n` +
      `replay: SIM_SEED=${seed} npx vitest run test/simulation`,
  );
}

function add(into: Stats, from: Stats): void {
  for (const k of Object.keys(into) as (keyof Stats)[]) into[k] += from[k];
}

describe('the handoff pipeline, simulated under faults', () => {
  if (REPLAY !== undefined) {
    it(`keeps I1-I5 in scenario ${REPLAY}, replayed with its trace`, async () => {
      const seed = Number(REPLAY);
      const stats = emptyStats();
      const world = await runScenario(seed, stats, true).catch(async (err: Error) => {
        throw await explain(seed, err.message);
      });
      console.log(`scenario ${seed} passed:\n${(world.trace ?? []).join('\n')}`);
    });
    return;
  }

  it.each(REGRESSION_SEEDS)('keeps I1-I5 in regression scenario %i', async (seed) => {
    await runScenario(seed, emptyStats()).catch(async (err: Error) => {
      throw await explain(seed, err.message);
    });
  });

  it(`keeps I1-I5 over ${SCENARIOS} seeded scenarios`, { timeout: 900_000 }, async () => {
    const base = (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0;
    const shards = Math.max(1, Math.min(4, availableParallelism()));
    console.log(`simulation: base seed ${base}, ${SCENARIOS} scenarios, ${shards} workers`);
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: shards }, (_, i) => shard(base, SCENARIOS, i, shards)),
    );
    const stats = emptyStats();
    for (const r of results) add(stats, r.stats);
    const failed = results.find((r) => r.failure)?.failure;
    if (failed) throw await explain(failed.seed, failed.message);
    const ms = Math.round(performance.now() - started);
    console.log(`simulation: ${JSON.stringify(stats)} in ${ms} ms`);
    expect(stats.scenarios).toBe(SCENARIOS);
    // The run means little unless the faults and outcomes it is about actually happen.
    const often = (what: keyof Stats, share: number) =>
      expect(stats[what], `${what} in ${SCENARIOS} scenarios`).toBeGreaterThan(SCENARIOS * share);
    often('stuck', 0.5);
    often('handoffs', 1.5);
    often('chains', 0.2);
    often('unresolvable', 0.1);
    often('evictions', 1);
    often('refusals', 0.3);
    often('earlyRetries', 0.02);
    often('deletes', 0.05);
    often('crashesAfterWrite', 0.3);
    often('controllerRestarts', 0.3);
    often('agentRestarts', 0.1);
    often('conflicts', 0.01);
    often('concurrentWrites', 0.1);
    often('laggedRounds', 0.5);
    often('hiddenHolders', 0.05);
    often('slowPods', 0.1);
    often('expiries', 0.05);
    often('dryRun', 0.01);
    often('idle', 0.03);
  });
});
