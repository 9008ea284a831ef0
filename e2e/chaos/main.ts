// `npm run chaos -- --seeds N [--seed S]`: run chaos schedules 1..N (or replay seed S) on the
// local control plane, through the cluster test project, and say how long it took.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { flag, parseFlagsOrExit } from '../../src/kube/index.ts';

const flags = parseFlagsOrExit('chaos', {
  seeds: flag.int('run the schedules of seeds 1..N', 0, 0),
  seed: flag.int('replay the schedule of this one seed (overrides --seeds)', 0, 0),
});
if (flags.seeds === 0 && flags.seed === 0) {
  process.stderr.write('chaos: give --seeds N (schedules 1..N) or --seed S (one schedule)\n');
  process.exit(2);
}
const env = {
  ...process.env,
  ...(flags.seed > 0 ? { CHAOS_SEED: String(flags.seed) } : { CHAOS_SEEDS: String(flags.seeds) }),
};
const started = Date.now();
const root = join(import.meta.dirname, '..', '..');
const run = spawnSync(
  process.execPath,
  [
    join(root, 'node_modules', 'vitest', 'vitest.mjs'),
    'run',
    '--project',
    'cluster',
    'e2e/chaos.test.ts',
  ],
  { cwd: root, env, stdio: 'inherit' },
);
const minutes = ((Date.now() - started) / 60_000).toFixed(1);
process.stderr.write(
  `chaos: ${flags.seed > 0 ? `seed ${flags.seed}` : `${flags.seeds} schedules`} in ${minutes} min\n`,
);
process.exit(run.status ?? 1);
