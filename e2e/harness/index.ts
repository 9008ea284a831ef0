// What cluster test files use: the cluster the global setup chose, a namespace per test that is
// deleted afterwards, kubectl, helm and promtool, and (on the local control plane only) fault injection.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { KubeConfig, CoreV1Api } from '@kubernetes/client-node';
import { expect, inject, onTestFinished } from 'vitest';
import { ensureBinaries, startApiServerReplica } from '../cluster/index.ts';
import type { ApiServerReplica, ReplicaOptions } from '../cluster/index.ts';
import { PROVIDED_KEY } from './cluster-info.ts';
import type { ClusterInfo } from './cluster-info.ts';

export { rawRequest } from '../cluster/index.ts';
export type { ApiServerReplica, RawResponse, ReplicaOptions } from '../cluster/index.ts';
export type { ClusterInfo, ClusterKind } from './cluster-info.ts';

/** Label on every namespace a test creates, so leftovers on a shared cluster can be found. */
export const TEST_NAMESPACE_LABEL = 'accel.dmabuf.io/e2e';

export function clusterInfo(): ClusterInfo {
  return inject(PROVIDED_KEY);
}

/** A client configuration for the cluster under test (admin credentials). */
export function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  const { kubeconfig } = clusterInfo();
  // KUBECONFIG may list several files; loadFromDefault merges them the way kubectl does.
  const saved = process.env.KUBECONFIG;
  process.env.KUBECONFIG = kubeconfig;
  try {
    kc.loadFromDefault();
  } finally {
    if (saved === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = saved;
  }
  return kc;
}

/**
 * Creates a namespace with a unique name starting with `prefix` and deletes it when the
 * current test finishes (pass or fail). Call it inside a test.
 */
export async function testNamespace(prefix: string): Promise<string> {
  const base = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 50);
  const name = `${base}-${randomBytes(4).toString('hex')}`;
  const core = kubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespace({
    body: { metadata: { name, labels: { [TEST_NAMESPACE_LABEL]: 'true' } } },
  });
  onTestFinished(async () => {
    await core.deleteNamespace({ name, propagationPolicy: 'Background' }).catch(() => undefined);
  });
  return name;
}

export interface ToolResult {
  stdout: string;
  stderr: string;
  code: number;
}

function runTool(binary: string, args: string[], stdin = ''): Promise<ToolResult> {
  const { kubeconfig } = clusterInfo();
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      args,
      { env: { ...process.env, KUBECONFIG: kubeconfig }, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ stdout, stderr: stderr || (err ? err.message : ''), code });
      },
    );
    child.stdin?.end(stdin);
  });
}

/** Runs kubectl against the cluster under test; resolves with its exit code instead of throwing. */
export function kubectl(args: string[]): Promise<ToolResult> {
  return runTool(clusterInfo().kubectl, args);
}

/** The generated CustomResourceDefinitions (npm run crds:generate). */
export const CRD_DIR = join(import.meta.dirname, '..', '..', 'deploy', 'crds');

/**
 * Applies every CRD server-side and waits until `established` (names such as
 * acceleratorleases.accel.dmabuf.io) are served; fails the test with kubectl's stderr otherwise.
 * Resolves with the apply's output, for tests that check what was applied.
 */
export async function applyCrds(established: readonly string[]): Promise<ToolResult> {
  const applied = await kubectl([
    'apply',
    '--server-side',
    '--field-manager=accel-lease-e2e',
    '-f',
    CRD_DIR,
  ]);
  expect(applied.code, applied.stderr).toBe(0);
  const ready = await kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    ...established.map((crd) => `crd/${crd}`),
  ]);
  expect(ready.code, ready.stderr).toBe(0);
  return applied;
}

/** Runs helm against the cluster under test; resolves with its exit code instead of throwing. */
export function helm(args: string[]): Promise<ToolResult> {
  return runTool(clusterInfo().helm, args);
}

/** Runs the pinned promtool (built on first use, like the control plane), stdin fed to it. */
export async function promtool(args: string[], stdin = ''): Promise<ToolResult> {
  return runTool((await ensureBinaries()).promtool, args, stdin);
}

/** Fault injection, offered only by the local control plane. */
export interface LocalControlPlane {
  /**
   * Starts a second kube-apiserver (same etcd, flags and keys) that only the calling test uses,
   * and stops it when the test finishes. Stopping and starting it is a real API server restart
   * for that test's clients, while parallel suites keep the first API server.
   */
  startApiServerReplica(opts?: ReplicaOptions): Promise<ApiServerReplica>;
}

export const NEEDS_LOCAL_CONTROL_PLANE =
  'needs the local control plane (it stops and starts a kube-apiserver process), ' +
  'but the suite runs on an external cluster';

/** The local control plane's fault injection, or undefined on an external or K3s cluster. */
export function localControlPlane(): LocalControlPlane | undefined {
  if (clusterInfo().kind !== 'local') return undefined;
  return {
    startApiServerReplica: async (opts?: ReplicaOptions) => {
      const replica = await startApiServerReplica(opts);
      onTestFinished(() => replica.dispose());
      return replica;
    },
  };
}
