// A second kube-apiserver on the local cluster's etcd, with the same flags and keys as the first,
// on its own port. A fault test stops and starts it freely: suites running in parallel keep
// talking to the first one, so a restart disturbs only the test that asked for it.
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { CLUSTER_NAME, kubeconfigPath, loadKubeConfig, stateDir } from './control-plane.ts';
import { pidAlive } from './lock.ts';
import { isReady } from './raw-api.ts';

export interface ApiServerReplica {
  readonly port: number;
  /** The client URL of the etcd it stores in (the first server's). */
  readonly etcd: string;
  /** Admin credentials, pointed at this replica only. */
  readonly kubeConfig: KubeConfig;
  /** SIGTERM, and wait until the process has exited (SIGKILL after 10 s). */
  stop(): Promise<void>;
  /** Start the process again on the same port; resolves once /readyz answers 200. */
  start(): Promise<void>;
  /** Stop for good and forget the pid file. */
  dispose(): Promise<void>;
}

interface SavedComponent {
  name: string;
  binary: string;
  args?: string[];
  workDir?: string;
}

function clusterDir(): string {
  return join(stateDir(), 'kwok', 'clusters', CLUSTER_NAME);
}

/** The exact command kwokctl runs for kube-apiserver, from the configuration it saved. */
function savedApiServer(): SavedComponent {
  const path = join(clusterDir(), 'kwok.yaml');
  if (!existsSync(path))
    throw new Error(`no local cluster state at ${path}: run npm run cluster:up`);
  for (const doc of readFileSync(path, 'utf8').split(/^---$/m)) {
    const parsed = parse(doc) as { kind?: string; components?: SavedComponent[] } | null;
    const found = parsed?.components?.find((c) => c.name === 'kube-apiserver');
    if (found) return found;
  }
  throw new Error(`${path} has no kube-apiserver component`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

/** The admin's credentials for a server on 127.0.0.1:`port`. */
export function kubeConfigFor(port: number): KubeConfig {
  const base = loadKubeConfig(kubeconfigPath());
  const current = base.getCurrentCluster();
  if (!current) throw new Error(`${kubeconfigPath()} has no current cluster`);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ ...current, server: `https://127.0.0.1:${port}` }],
    users: base.getUsers(),
    contexts: base.getContexts(),
    currentContext: base.getCurrentContext(),
  });
  return kc;
}

export interface ReplicaOptions {
  /** Flags added to the first server's (an audit log, say). */
  extraArgs?: readonly string[];
}

export async function startApiServerReplica(opts: ReplicaOptions = {}): Promise<ApiServerReplica> {
  const saved = savedApiServer();
  const port = await freePort();
  const args = [
    ...(saved.args ?? []).map((arg) =>
      arg.startsWith('--secure-port=') ? `--secure-port=${port}` : arg,
    ),
    ...(opts.extraArgs ?? []),
  ];
  const name = `kube-apiserver-replica-${port}`;
  // In kwokctl's pid directory, so `cluster:down` also stops a replica a crashed test left.
  const pidFile = join(clusterDir(), 'pids', `${name}.pid`);
  const logFile = join(clusterDir(), 'logs', `${name}.log`);
  mkdirSync(join(clusterDir(), 'pids'), { recursive: true });
  mkdirSync(join(clusterDir(), 'logs'), { recursive: true });
  const kubeConfig = kubeConfigFor(port);
  let pid: number | undefined;

  const start = async () => {
    if (pid !== undefined && pidAlive(pid)) return;
    const out = openSync(logFile, 'a');
    const child = spawn(saved.binary, args, {
      cwd: saved.workDir ?? clusterDir(),
      detached: true,
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${saved.binary}`);
    pid = child.pid;
    writeFileSync(pidFile, String(pid));
    const deadline = Date.now() + 120_000;
    while (!(await isReady(kubeConfig))) {
      if (!pidAlive(pid)) throw new Error(`${name} exited during startup; see ${logFile}`);
      if (Date.now() > deadline) throw new Error(`${name} not ready after 120s; see ${logFile}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const stop = async () => {
    if (pid === undefined || !pidAlive(pid)) return;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (pidAlive(pid)) {
      if (Date.now() > deadline) process.kill(pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const etcd = args
    .find((a) => a.startsWith('--etcd-servers='))
    ?.split('=')[1]
    ?.split(',')[0];
  if (!etcd) throw new Error('kube-apiserver has no --etcd-servers flag');
  await start();
  return {
    port,
    etcd,
    kubeConfig,
    start,
    stop,
    dispose: async () => {
      await stop();
      rmSync(pidFile, { force: true });
    },
  };
}
