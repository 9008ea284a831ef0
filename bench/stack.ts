// The bench's own stack: the product's controller and node agents as host processes, simulated
// nodes, pods and a watch that timestamps events. Like e2e/stack, without vitest's hooks.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { KubeConfig } from '@kubernetes/client-node';
import { Informer, isAlreadyExists, KubeClient, type ObjectLike } from '../src/kube/index.ts';
import { kwokNode } from '../e2e/stack/kwok.ts';
import { freePort, sleep, waitFor as waitUntil } from '../e2e/stack/wait.ts';
import { CONTROLLER_NODE_FLAGS } from '../src/controller/node-flags.ts';

export { sleep };

/** The shared wait, with the bench's longer timeout and tighter polling. */
export const waitFor = <T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  intervalMs = 100,
): Promise<T> => waitUntil(what, check, timeoutMs, intervalMs);

const ROOT = join(import.meta.dirname, '..');
export const GROUP = '/apis/accel.dmabuf.io/v1alpha1';

export interface Proc {
  name: string;
  child: ChildProcess;
  httpPort: number;
  logFile: string;
  /** performance.now() just before the spawn, and when /readyz first answered 200. */
  spawnedAt: number;
  readyAt: number;
  stop(): Promise<void>;
  /** Prometheus text from /metrics. */
  metrics(): Promise<string>;
}

const running: Proc[] = [];

/** Kills every process the bench started (on the way out, also after a failure). */
export async function stopAll(): Promise<void> {
  await Promise.all(running.splice(0).map((p) => p.stop()));
}

export interface StartOptions {
  /** Flags for node itself, before the script (e.g. --cpu-prof); none by default. */
  nodeArgs?: string[];
  env?: Record<string, string>;
  /** How often /readyz is polled until it answers 200 (default 100 ms). */
  readyPollMs?: number;
  /** How long /readyz may take to answer 200 (default 60 s). */
  readyTimeoutMs?: number;
}

async function start(
  name: string,
  script: string,
  args: string[],
  kubeconfig: string,
  httpFlag: string,
  options: StartOptions = {},
) {
  const dir = mkdtempSync(join(tmpdir(), `accel-bench-${name}-`));
  const logFile = join(dir, 'log');
  const httpPort = await freePort();
  const spawnedAt = performance.now();
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), join(ROOT, script), ...args, httpFlag, `127.0.0.1:${httpPort}`],
    {
      env: { ...process.env, ...options.env, KUBECONFIG: kubeconfig },
      stdio: ['ignore', openSync(logFile, 'a'), openSync(logFile, 'a')],
    },
  );
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const proc: Proc = {
    name,
    child,
    httpPort,
    logFile,
    spawnedAt,
    readyAt: NaN,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000).then(() => child.kill('SIGKILL'))]);
    },
    metrics: async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text(),
  };
  running.push(proc);
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`${name} exited: ${readFileSync(logFile, 'utf8').slice(-1500)}`);
    const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => undefined);
    if (res?.status === 200) break;
    if (Date.now() > deadline)
      throw new Error(`${name} not ready after ${readyTimeoutMs / 1000} s (log: ${logFile})`);
    await sleep(options.readyPollMs ?? 100);
  }
  proc.readyAt = performance.now();
  return proc;
}

export function startController(
  kubeconfig: string,
  extraArgs: string[] = [],
  options: StartOptions = {},
): Promise<Proc> {
  return start(
    'controller',
    'src/controller/main.ts',
    ['--no-leader-elect', '--log-level', 'warn', ...extraArgs],
    kubeconfig,
    '--http-bind-address',
    { ...options, nodeArgs: [...CONTROLLER_NODE_FLAGS, ...(options.nodeArgs ?? [])] },
  );
}

/** A controller replica under leader election (give it --leader-election-namespace and timings). */
export function startReplica(kubeconfig: string, args: string[]): Promise<Proc> {
  return start(
    'replica',
    'src/controller/main.ts',
    ['--log-level', 'warn', ...args],
    kubeconfig,
    '--http-bind-address',
    { nodeArgs: [...CONTROLLER_NODE_FLAGS] },
  );
}

/** The process that plays the node agents of many simulated nodes (bench/fleet.ts). */
export function startFleet(kubeconfig: string, args: string[]): Promise<Proc> {
  // Its first pass over every node (1,250 at 10,000 devices) comes before /readyz answers.
  return start('fleet', 'bench/fleet.ts', args, kubeconfig, '--http-addr', {
    readyTimeoutMs: 10 * 60_000,
  });
}

export async function startAgent(
  kubeconfig: string,
  node: string,
  profile: 'static' | 'dynamic' | 'revocable',
  devices = 1,
  extraArgs: string[] = [],
): Promise<Proc> {
  const dir = mkdtempSync(join(tmpdir(), 'accel-bench-agent-state-'));
  const adminPort = await freePort();
  return start(
    `agent-${node}`,
    'src/agent/main.ts',
    [
      '--node',
      node,
      '--profile',
      profile,
      '--devices',
      String(devices),
      '--state-file',
      join(dir, 'state.json'),
      '--admin-addr',
      `127.0.0.1:${adminPort}`,
      ...extraArgs,
    ],
    kubeconfig,
    '--http-addr',
  );
}

/** Runs fn over items with at most `limit` calls in flight; rejects with the first failure. */
export async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Sum of a counter over all its label sets in Prometheus text (optionally filtered by a label). */
export function counter(text: string, name: string, labelFilter = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (labelFilter && !rest.includes(labelFilter)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/**
 * A counter in Prometheus text summed by a key built from each sample's labels (samples whose
 * key is undefined are left out).
 */
export function sumBy(
  text: string,
  name: string,
  key: (labels: ReadonlyMap<string, string>) => string | undefined,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
    const labels = new Map<string, string>();
    for (const x of (m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels.set(x[1] ?? '', x[2] ?? '');
    const k = key(labels);
    if (k !== undefined) out[k] = (out[k] ?? 0) + Number(m[2]);
  }
  return out;
}

/**
 * The controller's requests by "verb resource" (code appended unless 2xx), from the
 * rest_client_requests_total lines of its /metrics.
 */
export const requestsByVerb = (metrics: string): Record<string, number> =>
  sumBy(metrics, 'rest_client_requests_total', (l) => {
    const code = l.get('code') ?? '';
    return `${l.get('verb')} ${l.get('resource')}${code.startsWith('2') ? '' : ` ${code}`}`;
  });

export class Bench {
  readonly client: KubeClient;
  readonly kc: KubeConfig;
  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.client = new KubeClient(kc);
  }

  request<T = Record<string, unknown>>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<T> {
    return this.client.request<T>({
      method,
      path,
      ...(body !== undefined && { body }),
      ...(contentType !== undefined && { contentType }),
    });
  }

  async namespace(name: string): Promise<string> {
    await this.request('POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name },
    }).catch((err: unknown) => {
      if (!isAlreadyExists(err)) throw err;
    });
    return name;
  }

  /** A fresh simulated node that kwok keeps Ready. */
  async node(prefix: string): Promise<string> {
    const name = `${prefix}-${randomBytes(3).toString('hex')}`;
    await this.request('POST', '/api/v1/nodes', kwokNode(name));
    await waitFor(`node ${name} Ready`, async () => {
      const n = await this.request<{
        status?: { conditions?: { type: string; status: string }[] };
      }>('GET', `/api/v1/nodes/${name}`);
      return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    });
    return name;
  }

  async deleteNode(name: string): Promise<void> {
    await this.request('DELETE', `/api/v1/nodes/${name}`).catch(() => undefined);
    await this.request(
      'DELETE',
      `${GROUP}/accelerators?labelSelector=${encodeURIComponent(`accel.dmabuf.io/node=${name}`)}`,
    ).catch(() => undefined);
  }

  /** Pods bound to `node` (kwok runs them), created 20 at a time, waited for until Running. */
  async pods(
    ns: string,
    names: string[],
    node: string,
    labels: Record<string, string>,
  ): Promise<void> {
    for (let i = 0; i < names.length; i += 20) {
      await Promise.all(
        names.slice(i, i + 20).map((name) =>
          this.request('POST', `/api/v1/namespaces/${ns}/pods`, {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name, namespace: ns, labels },
            spec: {
              nodeName: node,
              containers: [{ name: 'work', image: 'registry.example/workload:1' }],
              tolerations: [{ operator: 'Exists' }],
            },
          }),
        ),
      );
    }
    const want = new Set(names);
    await waitFor(`${names.length} pods Running in ${ns}`, async () => {
      const list = await this.request<{
        items: { metadata: { name: string }; status?: { phase?: string } }[];
      }>('GET', `/api/v1/namespaces/${ns}/pods`);
      return (
        list.items.filter((p) => want.has(p.metadata.name) && p.status?.phase === 'Running')
          .length === names.length
      );
    });
  }

  lease(ns: string, name: string, spec: Record<string, unknown>, holderApp = name) {
    return this.request('POST', `${GROUP}/namespaces/${ns}/acceleratorleases`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'AcceleratorLease',
      metadata: { name, namespace: ns },
      spec: { holder: { podSelector: { matchLabels: { app: holderApp } } }, ...spec },
    });
  }

  /** A watch that timestamps events, with promises for "the first event satisfying p". */
  async watch<T extends ObjectLike>(path: string, name: string): Promise<Watch<T>> {
    const w = new Watch<T>(new Informer<T>(this.kc, { path, name }));
    await w.start();
    return w;
  }
}

type Event = 'add' | 'update' | 'delete';

/** Informer events with their arrival time (performance.now(), ms). */
export class Watch<T extends ObjectLike> {
  private waiters: { p: (e: Event, o: T) => boolean; resolve: (t: number) => void }[] = [];
  readonly informer: Informer<T>;
  constructor(informer: Informer<T>) {
    this.informer = informer;
    for (const ev of ['add', 'update', 'delete'] as const) {
      informer.on(ev, (o: T) => {
        const t = performance.now();
        this.waiters = this.waiters.filter((w) => {
          if (!w.p(ev, o)) return true;
          w.resolve(t);
          return false;
        });
      });
    }
  }

  start(): Promise<void> {
    return this.informer.start();
  }

  stop(): void {
    this.informer.stop();
  }

  /** Resolves with the arrival time of the first later event matching p. */
  next(p: (e: Event, o: T) => boolean, what: string, timeoutMs = 120_000): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`)),
        timeoutMs,
      );
      this.waiters.push({
        p,
        resolve: (t) => {
          clearTimeout(timer);
          resolve(t);
        },
      });
    });
  }
}
