// Chooses the cluster the cluster suites run against, once per `vitest run`, and tears down only
// what it started. Order: the user's KUBECONFIG, K3s where a Docker engine answers, else the
// local control plane (built from source the first time).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { TestProject } from 'vitest/node';
import {
  acquireForTestRun,
  ensureBinaries,
  isReady,
  kubeconfigPath,
  NODES,
  stateDir,
} from '../cluster/index.ts';
import { PROVIDED_KEY } from './cluster-info.ts';
import type { ClusterInfo, ClusterKind } from './cluster-info.ts';

const K3S_IMAGE = process.env.ACCEL_LEASE_K3S_IMAGE ?? 'rancher/k3s:v1.34.1-k3s1';

interface Acquired {
  info: ClusterInfo;
  release(): Promise<void>;
}

const log = (line: string) => process.stderr.write(`[cluster] ${line}\n`);

function samePath(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return resolve(a) === resolve(b);
  }
}

function onPath(command: string, ...args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}

/** kubectl and helm for a cluster we did not build: the user's, else ours (built if missing). */
async function externalTools(): Promise<{ kubectl: string; helm: string }> {
  const kubectl = onPath('kubectl', 'version', '--client') ? 'kubectl' : undefined;
  const helm = onPath('helm', 'version') ? 'helm' : undefined;
  if (kubectl && helm) return { kubectl, helm };
  const bins = await ensureBinaries();
  return { kubectl: kubectl ?? bins.kubectl, helm: helm ?? bins.helm };
}

async function useExternal(kubeconfig: string): Promise<Acquired> {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const server = kc.getCurrentCluster()?.server ?? '(no current cluster)';
  if (!(await isReady(kc))) {
    throw new Error(
      `KUBECONFIG=${kubeconfig} points at ${server}, which does not answer /readyz. ` +
        'Start that cluster, or unset KUBECONFIG to run on the local control plane.',
    );
  }
  log(`using the existing cluster at ${server} (KUBECONFIG); it is never torn down`);
  return {
    info: { kind: 'external', kubeconfig, ...(await externalTools()), simulatedNodes: [] },
    release: () => Promise.resolve(),
  };
}

async function dockerAnswers(): Promise<boolean> {
  const socket = '/var/run/docker.sock';
  if (!process.env.DOCKER_HOST && !existsSync(socket)) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

async function useK3s(): Promise<Acquired> {
  const { K3sContainer } = await import('@testcontainers/k3s');
  log(`starting K3s (${K3S_IMAGE}) with testcontainers`);
  const container = await new K3sContainer(K3S_IMAGE).start();
  mkdirSync(stateDir(), { recursive: true });
  const kubeconfig = join(stateDir(), 'k3s-kubeconfig');
  writeFileSync(kubeconfig, container.getKubeConfig());
  return {
    info: { kind: 'k3s', kubeconfig, ...(await externalTools()), simulatedNodes: [] },
    release: async () => {
      await container.stop();
    },
  };
}

async function useLocal(): Promise<Acquired> {
  const lease = await acquireForTestRun(log, process.env.ACCEL_LEASE_KEEP_CLUSTER === '1');
  return {
    info: {
      kind: 'local',
      kubeconfig: lease.kubeconfigPath,
      kubectl: lease.bins.kubectl,
      helm: lease.bins.helm,
      simulatedNodes: [...NODES],
    },
    release: () => lease.release(),
  };
}

async function acquire(): Promise<Acquired> {
  const forced = process.env.ACCEL_LEASE_CLUSTER as ClusterKind | undefined;
  const userKubeconfig = process.env.KUBECONFIG;
  if (forced === 'local') return useLocal();
  if (forced === 'k3s') return useK3s();
  if (forced === 'external' || (userKubeconfig && !samePath(userKubeconfig, kubeconfigPath()))) {
    if (!userKubeconfig) throw new Error('ACCEL_LEASE_CLUSTER=external needs KUBECONFIG');
    return useExternal(userKubeconfig);
  }
  if (!userKubeconfig && (await dockerAnswers())) {
    try {
      return await useK3s();
    } catch (err) {
      log(`K3s did not start (${(err as Error).message}); using the local control plane`);
    }
  }
  return useLocal();
}

/** The project's CRDs, applied the way a user would, so every suite can create leases. */
function installCrds(info: ClusterInfo): void {
  const crds = join(import.meta.dirname, '..', '..', 'deploy', 'crds');
  const run = spawnSync(info.kubectl, ['apply', '--server-side', '--force-conflicts', '-f', crds], {
    env: { ...process.env, KUBECONFIG: info.kubeconfig },
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`applying ${crds}: ${run.stderr.trim()}`);
  const wait = spawnSync(
    info.kubectl,
    ['wait', '--for=condition=Established', '--timeout=60s', '-f', crds],
    { env: { ...process.env, KUBECONFIG: info.kubeconfig }, encoding: 'utf8' },
  );
  if (wait.status !== 0) throw new Error(`waiting for the CRDs: ${wait.stderr.trim()}`);
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const acquired = await acquire();
  try {
    installCrds(acquired.info);
  } catch (err) {
    await acquired.release();
    throw err;
  }
  project.provide(PROVIDED_KEY, acquired.info);
  return () => acquired.release();
}
