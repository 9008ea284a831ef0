// `npm run bench:check`: fails when bench/README.md's results section, results/summary.json or
// the plot differ from what bench/results/*.json make (as `npm run bench` writes them), so the
// figures shown are always those recorded. Needs no cluster; `npm run bench:readme` rewrites them.
import { drift, updateReadme } from './readme.ts';

if (process.argv.includes('--write')) {
  await updateReadme();
} else {
  const stale = await drift();
  if (stale.length > 0) {
    process.stderr.write(
      `bench:check: not what bench/results/*.json make: ${stale.join(', ')}; run \`npm run bench:readme\` to regenerate them from the recorded results (never edit the results section by hand)\n`,
    );
    process.exit(1);
  }
}
