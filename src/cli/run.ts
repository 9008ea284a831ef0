// One invocation of the plugin: parse, read the cluster, render, and return the exit code.
import { KubeClient, loadKubeConfig } from '../kube/index.ts';
import { parseCommand, type Connection } from './args.ts';
import { ConfigError, EXIT, failure, type ExitCode } from './errors.ts';
import { ClusterReader } from './read.ts';
import { status, statusTable } from './status.ts';
import { renderWhy, why, whyExitCode } from './why.ts';

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  now(): number;
}

interface Cluster {
  reader: ClusterReader;
  server: string;
  /** The namespace of the kubeconfig's context, else default. */
  namespace: string;
}

function connect(c: Connection): Cluster {
  let kc;
  try {
    kc = loadKubeConfig({ kubeconfig: c.kubeconfig, context: c.context });
  } catch (err) {
    throw new ConfigError(`cannot load a kubeconfig: ${(err as Error).message}`);
  }
  const client = new KubeClient(kc, {
    userAgent: 'kubectl-dmabuf',
    requestTimeoutMs: c.requestTimeoutMs,
  });
  return {
    reader: new ClusterReader(client),
    server: `the API server at ${kc.getCurrentCluster()?.server ?? '?'}`,
    namespace: kc.getContextObject(kc.getCurrentContext())?.namespace || 'default',
  };
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/** Runs `kubectl dmabuf ARGV...`; never throws: every failure is a line on stderr and a code. */
export async function run(argv: readonly string[], io: Io): Promise<ExitCode> {
  let server: string | undefined;
  try {
    const cmd = parseCommand(argv);
    if (cmd.kind === 'help') {
      io.stdout(`${cmd.text}\n`);
      return EXIT.ok;
    }
    const cluster = connect(cmd.connection);
    server = cluster.server;
    const now = io.now();

    if (cmd.kind === 'status') {
      const rows = status(await cluster.reader.statusModel(cmd.node, now));
      if (cmd.output === 'json') io.stdout(json({ devices: rows }));
      else if (rows.length === 0) io.stderr('No accelerators found.\n');
      else io.stdout(`${statusTable(rows)}\n`);
      return EXIT.ok;
    }

    const namespace = cmd.namespace ?? cluster.namespace;
    const start = cmd.via && (await cluster.reader.leaseOf(cmd.via, namespace, cmd.name));
    const input = await cluster.reader.whyInput(namespace, start ? start.lease : cmd.name, now);
    const chain = why(input);
    if (cmd.output === 'json') io.stdout(json(start ? { via: start.via, ...chain } : chain));
    else
      io.stdout(
        `${start ? start.via.map((l) => `${l}\n`).join('') : ''}${renderWhy(chain, now)}\n`,
      );
    return whyExitCode(chain);
  } catch (err) {
    const { code, message } = failure(err, server);
    io.stderr(`error: ${message}\n`);
    return code;
  }
}
