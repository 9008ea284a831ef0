// The plugin's command line: `status` and `why LEASE|pod/NAME|resourceclaim/NAME`, kubectl's flag habits (-n, -o, --context),
// and the help text that documents the exit codes scripts rely on.
import { parseArgs } from 'node:util';
import { parseDuration, rephraseParseArgs } from '../kube/index.ts';
import { UsageError } from './errors.ts';

/** How to reach the cluster, as kubectl takes it. */
export interface Connection {
  kubeconfig: string | undefined;
  context: string | undefined;
  requestTimeoutMs: number;
}

export type Command =
  | { kind: 'help'; text: string }
  | { kind: 'status'; output: 'table' | 'json'; node: string | undefined; connection: Connection }
  | {
      kind: 'why';
      output: 'text' | 'json';
      /** From -n or NAMESPACE/NAME; undefined: the kubeconfig context's namespace, else default. */
      namespace: string | undefined;
      name: string;
      /** why pod/NAME or resourceclaim/NAME: follow it to its lease first. Absent: NAME is a lease. */
      via?: WhyVia;
      connection: Connection;
    };

/** What `why` may start from besides a lease: a pod (its claim's lease, or the lease that selects it) or a claim. */
export type WhyVia = 'pod' | 'resourceclaim';

/** kubectl's names for the kinds `why` takes as TYPE/NAME. */
const WHY_TYPES: Record<string, WhyVia | 'lease'> = {
  pod: 'pod',
  pods: 'pod',
  po: 'pod',
  resourceclaim: 'resourceclaim',
  resourceclaims: 'resourceclaim',
  claim: 'resourceclaim',
  acceleratorlease: 'lease',
  acceleratorleases: 'lease',
  alease: 'lease',
};

const PROGRAM = 'kubectl dmabuf';

const EXIT_CODES = `Exit codes:
  0  ok (why: the lease is Granted)
  1  why: the lease is not granted (queued, waiting, blocked, releasing or finished)
  2  bad usage
  3  not found: the lease, its accelerator, or any accelerator on --node
  4  API server unreachable, unauthorized or forbidden, or the accel.dmabuf.io API not installed
  5  unexpected error (a bug: please report it)
Errors are one line on stderr, starting with "error: ".`;

const CONNECTION_FLAGS = `  --kubeconfig PATH       kubeconfig to use (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --context NAME          kubeconfig context to use (default: the current context)
  --request-timeout DUR   give up on an API request after this long (default 10s)
  -h, --help              show this help`;

export const HELP = {
  top: `${PROGRAM}: who owns which accelerator, and why a handoff is stuck.

Usage:
  ${PROGRAM} status [--node NODE] [-o table|json]
  ${PROGRAM} why LEASE [-n NAMESPACE] [-o text|json]
  ${PROGRAM} COMMAND --help

Commands:
  status   one row per accelerator: node, profile, phase, owner lease, epoch, pins and queue
  why      the chain that keeps a lease from its device, and the next step

Flags:
${CONNECTION_FLAGS}

${EXIT_CODES}`,
  status: `Usage: ${PROGRAM} status [--node NODE] [-o table|json]

One row per accelerator: NODE, DEVICE, PROFILE, PHASE (",Cordoned" when no lease is placed
on it), OWNER (the lease spec.owner names), EPOCH (with the device's own epoch when it lags),
PINS (how many references keep an earlier owner's memory alive, and the pods or pids holding
them) and QUEUE (the leases waiting, first in line first).

Flags:
  --node NODE             only the accelerators of this node
  -o, --output FORMAT     table (default) or json
${CONNECTION_FLAGS}

${EXIT_CODES}`,
  why: `Usage: ${PROGRAM} why LEASE|pod/NAME|resourceclaim/NAME [-n NAMESPACE] [-o text|json]

Follows an AcceleratorLease to its accelerator (phase, epoch, owner), then every pin of an
earlier epoch: export -> importer (kind, revocable or not) -> pod and pid -> the reaper's
eviction record, and ends with the next step. LEASE may be NAMESPACE/NAME. A ResourceClaim
(resourceclaim/NAME, DRA mode) is followed to the lease of its name; a pod (pod/NAME) to the
lease of a claim it uses, else to the lease whose holder selector picks it.

Flags:
  -n, --namespace NS      the lease's namespace (default: the context's namespace, else default)
  -o, --output FORMAT     text (default) or json
${CONNECTION_FLAGS}

${EXIT_CODES}`,
};

const OPTIONS = {
  output: { type: 'string', short: 'o' },
  node: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  'request-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  // pflag reads `-o=json` as json; parseArgs keeps the `=`.
  const v = value.replace(/^=/, '');
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw new UsageError(`${flag} must be ${allowed.join(' or ')}, got ${JSON.stringify(v)}`);
}

/** argv without node and the script. Throws UsageError with a one-line message. */
export function parseCommand(argv: readonly string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(rephraseParseArgs(err instanceof Error ? err.message : String(err)));
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (command !== 'status' && command !== 'why') {
    if (values.help && command === undefined) return { kind: 'help', text: HELP.top };
    throw new UsageError(
      command === undefined
        ? `a command is required: status or why (see ${PROGRAM} --help)`
        : `unknown command ${JSON.stringify(command)}: want status or why (see ${PROGRAM} --help)`,
    );
  }
  if (values.help) return { kind: 'help', text: HELP[command] };

  const timeout = values['request-timeout'] ?? '10s';
  const requestTimeoutMs = parseDuration(timeout);
  if (requestTimeoutMs === undefined || requestTimeoutMs <= 0) {
    throw new UsageError(
      `--request-timeout must be a duration like 10s, got ${JSON.stringify(timeout)}`,
    );
  }
  const connection: Connection = {
    kubeconfig: values.kubeconfig,
    context: values.context,
    requestTimeoutMs,
  };

  if (command === 'status') {
    if (rest.length > 0) {
      throw new UsageError(`status takes no arguments, got ${JSON.stringify(rest[0])}`);
    }
    if (values.namespace !== undefined) {
      throw new UsageError('status covers every namespace: -n/--namespace applies to why only');
    }
    return {
      kind: 'status',
      output:
        values.output === undefined ? 'table' : oneOf('--output', values.output, ['table', 'json']),
      node: values.node,
      connection,
    };
  }

  if (values.node !== undefined) throw new UsageError('--node applies to status only');
  const [lease, ...extra] = rest;
  if (lease === undefined || lease === '') {
    throw new UsageError(`why needs a lease: ${PROGRAM} why LEASE [-n NAMESPACE]`);
  }
  if (extra.length > 0) {
    throw new UsageError(`why takes one lease, got ${JSON.stringify(extra[0])} as well`);
  }
  let namespace = values.namespace;
  let name = lease;
  const slash = lease.indexOf('/');
  const typed = slash >= 0 ? WHY_TYPES[lease.slice(0, slash).toLowerCase()] : undefined;
  if (typed !== undefined) {
    name = lease.slice(slash + 1);
    if (name === '' || name.includes('/')) {
      throw new UsageError(`want ${lease.slice(0, slash)}/NAME, got ${JSON.stringify(lease)}`);
    }
  } else if (slash >= 0) {
    const [ns, n] = [lease.slice(0, slash), lease.slice(slash + 1)];
    if (ns === '' || n === '' || n.includes('/')) {
      throw new UsageError(`LEASE must be NAME or NAMESPACE/NAME, got ${JSON.stringify(lease)}`);
    }
    if (namespace !== undefined && namespace !== ns) {
      throw new UsageError(`the lease ${lease} is not in namespace ${namespace} given with -n`);
    }
    namespace = ns;
    name = n;
  }
  return {
    kind: 'why',
    output:
      values.output === undefined ? 'text' : oneOf('--output', values.output, ['text', 'json']),
    namespace,
    name,
    ...(typed !== undefined && typed !== 'lease' && { via: typed }),
    connection,
  };
}
