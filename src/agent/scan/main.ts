// `npm run scan -- --exporter NAME...`: every dma-buf of those exporters on this machine and who
// holds it, read-only, no cluster needed. A bad flag: one line, exit 2; /proc unreadable: one
// line, exit 1. What could not be read (debugfs, another user's fds) is said, on stderr in text
// mode and under "problems" in JSON, and never turns into "nothing found".
import { FlagError, parseFlags, usage } from '../../kube/flags.ts';
import { ObserveError, observeNode, rdmaTool } from '../backends/linux/index.ts';
import { SCAN_FLAGS } from './flags.ts';
import { scanJson, scanText } from './report.ts';

const PROGRAM = 'accel-lease-scan';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(`${usage(PROGRAM, SCAN_FLAGS)}\n`);
  process.exit(0);
}
let flags;
try {
  flags = parseFlags(SCAN_FLAGS, argv);
} catch (err) {
  if (!(err instanceof FlagError)) throw err;
  process.stderr.write(`${PROGRAM}: ${err.message}\n`);
  process.exit(2);
}

try {
  const observation = observeNode({
    root: flags.root,
    exporters: flags.exporter,
    devices: flags.device,
    ...(flags.rdma && { rdmaMrs: rdmaTool() }),
  });
  if (flags.output === 'json') {
    process.stdout.write(`${JSON.stringify(scanJson(observation), null, 2)}\n`);
  } else {
    process.stdout.write(scanText(observation, flags.exporter));
    for (const p of observation.problems)
      process.stderr.write(`${PROGRAM}: warning: ${p.message}\n`);
  }
} catch (err) {
  if (!(err instanceof ObserveError)) throw err;
  process.stderr.write(`${PROGRAM}: ${err.message}\n`);
  process.exit(1);
}
