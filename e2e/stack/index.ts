// The product's own processes for a cluster test: a simulated node, node agents and controller
// replicas started as host processes (as users run them), stopped when the test finishes.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { onTestFailed, onTestFinished } from 'vitest';
import type { AcceleratorLease } from '../../src/crds/index.ts';
import { isNotFound, KubeClient } from '../../src/kube/index.ts';
import { CONTROLLER_NODE_FLAGS } from '../../src/controller/node-flags.ts';
import { clusterInfo, kubeConfig } from '../harness/index.ts';
import { kwokNode } from './kwok.ts';
import { freePort, waitFor } from './wait.ts';

export { freePort, sleep, waitFor } from './wait.ts';
export { nodeBoundPod, serviceAccountKubeconfig, type IdentityOptions } from './identity.ts';

const ROOT = join(import.meta.dirname, '..', '..');

let admin: KubeClient | undefined;

/** The cluster admin's client, shared by the suite. */
export function adminClient(): KubeClient {
  admin ??= new KubeClient(kubeConfig());
  return admin;
}

/** A Kubernetes API call as the admin; throws KubeApiError on a non-2xx answer. */
export function api<T = Record<string, unknown>>(
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  contentType?: string,
): Promise<T> {
  return adminClient().request<T>({
    method: method,
    path,
    ...(body !== undefined && { body }),
    ...(contentType !== undefined && { contentType }),
  });
}

/** A fresh simulated node that kwok keeps Ready, deleted (with its Accelerators) after the test. */
export async function testNode(prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await api('POST', '/api/v1/nodes', kwokNode(name));
  onTestFinished(async () => {
    await api('DELETE', `/api/v1/nodes/${name}`).catch(() => undefined);
    await api(
      'DELETE',
      `/apis/accel.dmabuf.io/v1alpha1/accelerators?labelSelector=${encodeURIComponent(`accel.dmabuf.io/node=${name}`)}`,
    ).catch(() => undefined);
  });
  await waitFor(`node ${name} Ready`, async () => {
    const n = await api<{ status?: { conditions?: { type: string; status: string }[] } }>(
      'GET',
      `/api/v1/nodes/${name}`,
    );
    return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  });
  return name;
}

export interface Component {
  name: string;
  process: ChildProcess;
  httpPort: number;
  logFile: string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL, as a crash: no cleanup runs. */
  kill(): Promise<void>;
  exited(): boolean;
  log(): string;
}

async function startComponent(
  name: string,
  script: string,
  args: string[],
  nodeArgs: readonly string[] = [],
): Promise<Component> {
  const dir = mkdtempSync(join(tmpdir(), `accel-${name}-`));
  const logFile = join(dir, 'log');
  const out = openSync(logFile, 'a');
  const httpPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      join(ROOT, script),
      ...args.map((a) => a.replace('$HTTP', `127.0.0.1:${httpPort}`)),
    ],
    {
      env: { ...process.env, KUBECONFIG: clusterInfo().kubeconfig },
      stdio: ['ignore', out, out],
    },
  );
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  const component: Component = {
    name,
    process: child,
    httpPort,
    logFile,
    exited: () => exitCode !== undefined,
    log: () => readFileSync(logFile, 'utf8'),
    stop: async () => {
      if (exitCode === undefined) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (exitCode === undefined) child.kill('SIGKILL');
      await exited;
    },
  };
  onTestFailed(() => {
    console.log(
      `--- ${name} log (${logFile}) ---\n${component.log().split('\n').slice(-60).join('\n')}`,
    );
  });
  onTestFinished(async () => {
    await component.kill();
  });
  return component;
}

/** Wait until the component answers /readyz with 200; one that exits fails at once. */
export async function ready(c: Component, timeoutMs = 30_000): Promise<void> {
  const state = await waitFor(
    `${c.name} ready`,
    async () => {
      if (c.exited()) return 'exited';
      const res = await fetch(`http://127.0.0.1:${c.httpPort}/readyz`).catch(() => undefined);
      return res?.status === 200 && 'ready';
    },
    timeoutMs,
  );
  if (state === 'exited') throw new Error(`${c.name} exited:\n${c.log().slice(-2000)}`);
}

export interface AgentOptions {
  node: string;
  profile?: 'static' | 'dynamic' | 'revocable';
  devices?: number;
  stateFile?: string;
  heartbeat?: string;
  /** Run as this identity instead of the cluster admin (a node-bound agent token, say). */
  kubeconfig?: string;
  extraArgs?: string[];
  /** How long to wait for /readyz (default 30 s). */
  readyTimeoutMs?: number;
}

export async function startAgent(
  opts: AgentOptions,
): Promise<Component & { stateFile: string; adminPort: number }> {
  const stateFile =
    opts.stateFile ?? join(mkdtempSync(join(tmpdir(), 'accel-agent-state-')), 'state.json');
  const adminPort = await freePort();
  const c = await startComponent(
    `agent-${opts.node}`,
    'src/agent/main.ts',
    [
      '--node',
      opts.node,
      '--profile',
      opts.profile ?? 'static',
      '--devices',
      String(opts.devices ?? 1),
      '--state-file',
      stateFile,
      '--http-addr',
      '$HTTP',
      '--admin-addr',
      `127.0.0.1:${adminPort}`,
      '--heartbeat',
      opts.heartbeat ?? '5s',
      ...(opts.kubeconfig !== undefined ? ['--kubeconfig', opts.kubeconfig] : []),
      ...(opts.extraArgs ?? []),
    ],
    CONTROLLER_NODE_FLAGS,
  );
  await ready(c, opts.readyTimeoutMs);
  return Object.assign(c, { stateFile, adminPort });
}

export interface ControllerOptions {
  /** Namespace of the leader election Lease; without it, leader election is off. */
  electionNamespace?: string;
  identity?: string;
  extraArgs?: string[];
  /** Run as this identity instead of the cluster admin (the chart's ServiceAccount, say). */
  kubeconfig?: string;
}

export async function startController(opts: ControllerOptions = {}): Promise<Component> {
  const identity = opts.identity ?? `ctl-${randomBytes(2).toString('hex')}`;
  const election = opts.electionNamespace
    ? [
        '--leader-election-namespace',
        opts.electionNamespace,
        '--leader-election-id',
        'accel-lease-controller',
        '--lease-duration',
        '4s',
        '--renew-deadline',
        '3s',
        '--retry-period',
        '1s',
      ]
    : ['--no-leader-elect'];
  const c = await startComponent(identity, 'src/controller/main.ts', [
    '--identity',
    identity,
    '--http-bind-address',
    '$HTTP',
    ...election,
    ...(opts.kubeconfig !== undefined ? ['--kubeconfig', opts.kubeconfig] : []),
    ...(opts.extraArgs ?? []),
  ]);
  return c;
}

export const GROUP = '/apis/accel.dmabuf.io/v1alpha1';

/** A workload pod bound to `node`, for kwok to run; its container is named after the pod. */
export function podManifest(
  ns: string,
  name: string,
  node: string,
  labels: Record<string, string> = {},
) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels },
    spec: {
      nodeName: node,
      containers: [{ name: name.replace(/-\d+$/, ''), image: 'registry.example/workload:1' }],
      tolerations: [{ operator: 'Exists' }],
    },
  };
}

/** A pod bound to `node` (kwok runs it), waited for until Running. */
export async function createPod(
  ns: string,
  name: string,
  node: string,
  labels: Record<string, string> = {},
) {
  await api('POST', `/api/v1/namespaces/${ns}/pods`, podManifest(ns, name, node, labels));
  await waitFor(`pod ${ns}/${name} Running`, async () => {
    const p = await api<{ status?: { phase?: string } }>(
      'GET',
      `/api/v1/namespaces/${ns}/pods/${name}`,
    );
    return p.status?.phase === 'Running';
  });
}

/** An AcceleratorLease whose holder pods are labelled app=<name>. */
export function createLease(
  ns: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<AcceleratorLease> {
  return api<AcceleratorLease>('POST', `${GROUP}/namespaces/${ns}/acceleratorleases`, {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'AcceleratorLease',
    metadata: { name, namespace: ns },
    spec: { holder: { podSelector: { matchLabels: { app: name } } }, ...spec },
  });
}

/** Does the pod exist (terminating included)? */
export async function podExists(ns: string, name: string): Promise<boolean> {
  try {
    await api('GET', `/api/v1/namespaces/${ns}/pods/${name}`);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

export const getLease = (ns: string, name: string) =>
  api<AcceleratorLease>('GET', `${GROUP}/namespaces/${ns}/acceleratorleases/${name}`);

export async function leaseGone(ns: string, name: string): Promise<boolean> {
  try {
    await getLease(ns, name);
    return false;
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}

/** Wait for a lease to reach a phase; returns it. */
export function phaseIs(ns: string, name: string, phase: string, timeoutMs = 30_000) {
  return waitFor(
    `lease ${ns}/${name} ${phase}`,
    async () => {
      const l = await getLease(ns, name);
      return l.status?.phase === phase ? l : undefined;
    },
    timeoutMs,
  );
}

/**
 * A DmaBufImportGrant in `ns`: exports of the `from` namespaces may name its pods (those the
 * selector picks, all by default) as importers.
 */
export function createImportGrant(
  ns: string,
  from: readonly string[],
  podSelector?: Record<string, unknown>,
  name = 'importers',
): Promise<unknown> {
  return api('POST', `${GROUP}/namespaces/${ns}/dmabufimportgrants`, {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'DmaBufImportGrant',
    metadata: { name, namespace: ns },
    spec: { from: from.map((namespace) => ({ namespace })), ...(podSelector && { podSelector }) },
  });
}

/** A DmaBufExport in `ns`, waited for until the node agent reports it Active. */
export async function createActiveExport(
  ns: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  await api('POST', `${GROUP}/namespaces/${ns}/dmabufexports`, {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'DmaBufExport',
    metadata: { name, namespace: ns },
    spec,
  });
  await waitFor(`export ${ns}/${name} Active`, async () => {
    const e = await api<{ status?: { phase?: string } }>(
      'GET',
      `${GROUP}/namespaces/${ns}/dmabufexports/${name}`,
    );
    return e.status?.phase === 'Active';
  });
}

/**
 * The seed story up to the handoff: tenant-a in `a` holds `accel` (waited for until Granted), its
 * trainer-0 exports 1 GiB, and loader-0 in `io` (with `io`'s grant) registers it as the RDMA MR
 * nic0. Releasing tenant-a then leaves the device pinned by the loader.
 */
export async function loaderPinsTenantA(node: string, accel: string, a: string, io: string) {
  await createLease(a, 'tenant-a', { accelerator: accel });
  await phaseIs(a, 'tenant-a', 'Granted');
  await createPod(a, 'trainer-0', node, { app: 'tenant-a' });
  await createPod(io, 'loader-0', node);
  await createImportGrant(io, [a]);
  await createActiveExport(a, 'weights', {
    accelerator: accel,
    lease: 'tenant-a',
    exporter: { pod: 'trainer-0' },
    sizeBytes: 1 << 30,
    importers: [{ name: 'nic0', kind: 'rdma-mr', pod: { namespace: io, name: 'loader-0' } }],
  });
}
