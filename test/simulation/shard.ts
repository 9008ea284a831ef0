// A shard of the simulation, run in a worker thread by simulation.test.ts: seeds
// base + offset, base + offset + stride, ..., stopping at the first failure.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { emptyStats, runScenario, type Stats } from './world.ts';

export interface ShardResult {
  readonly stats: Stats;
  readonly failure?: { readonly seed: number; readonly message: string };
}

export interface ShardRequest {
  readonly simulationShard: true;
  readonly base: number;
  readonly count: number;
  readonly offset: number;
  readonly stride: number;
}

export async function runShard(req: Omit<ShardRequest, 'simulationShard'>): Promise<ShardResult> {
  const stats = emptyStats();
  for (let i = req.offset; i < req.count; i += req.stride) {
    const seed = (req.base + i) >>> 0;
    try {
      await runScenario(seed, stats);
    } catch (err) {
      return { stats, failure: { seed, message: (err as Error).message } };
    }
  }
  return { stats };
}

const request = workerData as ShardRequest | undefined;
if (!isMainThread && request?.simulationShard === true) {
  parentPort?.postMessage(await runShard(request));
}
