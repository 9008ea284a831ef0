// Every command a user runs answers --help on stdout with exit 0, naming each of its flags and
// their defaults. Adding a command is one line in COMMANDS.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BENCH_FLAGS } from '../bench/flags.ts';
import { SCAN_FLAGS } from './agent/scan/flags.ts';
import { CONTROLLER_FLAGS } from './controller/flags.ts';
import { AGENT_FLAGS } from './agent/index.ts';
import { flagName, type FlagSpecs } from './kube/index.ts';

const ROOT = join(import.meta.dirname, '..');

interface HelpCase {
  /** What a user types, for the test's name. */
  command: string;
  /** argv after node (a .ts entry point) or an executable under the root. */
  argv: string[];
  /** Strings the help must contain: every flag, and every default. */
  mentions: string[];
}

/** A command whose flags are FlagSpecs: every `--flag` and every `(default ...)` must show. */
function fromSpecs(command: string, script: string, specs: FlagSpecs): HelpCase {
  const mentions = Object.entries(specs).flatMap(([key, spec]) => [
    `--${flagName(key)}`,
    ...(spec.defaultText !== undefined ? [`default ${spec.defaultText}`] : []),
  ]);
  return { command, argv: [script, '--help'], mentions };
}

const PLUGIN = 'bin/kubectl-dmabuf';
const CONNECTION = ['--kubeconfig', '--context', '--request-timeout', 'default 10s', '--help'];

const COMMANDS: HelpCase[] = [
  fromSpecs('npm start (controller)', 'src/controller/main.ts', CONTROLLER_FLAGS),
  fromSpecs('npm run agent', 'src/agent/main.ts', AGENT_FLAGS),
  fromSpecs('npm run bench', 'bench/run.ts', BENCH_FLAGS),
  fromSpecs('npm run scan', 'src/agent/scan/main.ts', SCAN_FLAGS),
  {
    command: 'kubectl dmabuf',
    argv: [PLUGIN, '--help'],
    mentions: ['status', 'why', ...CONNECTION],
  },
  {
    command: 'kubectl dmabuf status',
    argv: [PLUGIN, 'status', '--help'],
    mentions: ['--node', '--output', 'table (default)', ...CONNECTION],
  },
  {
    command: 'kubectl dmabuf why',
    argv: [PLUGIN, 'why', '--help'],
    mentions: ['--namespace', '--output', 'text (default)', ...CONNECTION],
  },
];

/** A Node process starting cold takes seconds beside the rest of the suite on a busy machine. */
const COLD_START_MS = 30_000;

function run(argv: string[]) {
  const [first = '', ...rest] = argv;
  const [file, args] = first.endsWith('.ts')
    ? [process.execPath, [join(ROOT, first), ...rest]]
    : [join(ROOT, first), rest];
  // No cluster, and nothing a command might read before it answers --help.
  const env = { ...process.env, KUBECONFIG: '/nonexistent' };
  return spawnSync(file, args, { encoding: 'utf8', env, timeout: 30_000 });
}

describe('--help', () => {
  it.each(COMMANDS)(
    '$command lists its flags and defaults, exit 0',
    ({ argv, mentions }) => {
      const r = run(argv);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const missing = mentions.filter((m) => !r.stdout.includes(m));
      expect(missing, `not in:\n${r.stdout}`).toEqual([]);
    },
    COLD_START_MS,
  );
});
