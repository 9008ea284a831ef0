// The bench's command line: how much each benchmark does, with the defaults the recorded runs use.
import { flag } from '../src/kube/index.ts';

export const BENCH_FLAGS = {
  handoffs: flag.int('handoffs timed against their floor', 200, 1),
  holders: flag.int('holder pods the reaper and kubectl drain each clear', 100, 1),
  rounds: flag.int('rounds of the reaper against its floor and drain', 3, 1),
  drainQps: flag.int(
    "requests per second (and burst) of the drain with kubectl's rate raised",
    1000,
    1,
  ),
  pdbSize: flag.int('holder pods under each PodDisruptionBudget in the PDB round', 3, 1),
  scaleAccelerators: flag.int('accelerators in the scale fleet', 1000, 1),
  scaleLeases: flag.string('leases in the scale fleet (default 5 per accelerator)'),
  scaleExports: flag.string('exports in the scale fleet (default 20 per accelerator)'),
  scaleColdStarts: flag.int('controller cold starts timed against a LIST', 3, 1),
  growthSizes: flag.string(
    'accelerators of each growth run (2 leases and 4 exports per accelerator), ascending',
    '1000,3000,10000',
  ),
  growthBurst: flag.int('lease deletions in the burst of each growth run', 1000, 1),
  burstWorkers: flag.string(
    "--workers of the scale part's extra bursts, ascending, each on the fleet refilled (none to skip)",
    '2,8,16',
  ),
  failoverSamples: flag.int('leader kills timed per election timing', 3, 1),
  draRounds: flag.int(
    'rounds of the DRA comparison, each a DeviceTaintRule run and a handoff run',
    3,
    1,
  ),
  draWindow: flag.int("seconds B's pod is given to run after the DeviceTaintRule is lifted", 30, 1),
  only: flag.string(
    'comma-separated benchmarks to run (handoff, reaper, dra, failover, scale, growth, kernel); the rest are reported as not measured',
    'handoff,reaper,dra,failover,scale,growth,kernel',
  ),
  scaleCpuProf: flag.string(
    "directory for V8 CPU profiles of the scale and growth benches' controllers (off)",
  ),
};

/**
 * A comma-separated list of positive whole numbers in ascending order, each once (`what` names
 * one, `example` is a valid value), or a one-line error naming the flag.
 */
export function ascendingCounts(flagName: string, text: string, what: string, example: string) {
  const items = text.split(',').map((x) => x.trim());
  const bad = items.find((x) => !/^[1-9]\d*$/.test(x));
  if (bad !== undefined)
    throw new Error(
      `${flagName}: "${bad}" is not a positive whole number of ${what} (e.g. ${example})`,
    );
  const out = items.map(Number);
  if (out.some((x, i) => i > 0 && x <= (out[i - 1] ?? 0)))
    throw new Error(`${flagName}: give the ${what} in ascending order, each once (${text})`);
  return out;
}
