// Starts and stops the local control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kwok) on loopback with `kwokctl --runtime binary`, from the cached binaries.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { binaryPaths, ensureBinaries } from './binaries.ts';
import type { BinaryPaths, Log } from './binaries.ts';
import { pidAlive } from './lock.ts';
import { isReady, rawRequest } from './raw-api.ts';

const run = promisify(execFile);

export const CLUSTER_NAME = 'accel-lease';
/** The simulated nodes every local cluster has; tests bind pods to them by name. */
export const NODES = ['node-a', 'node-b'] as const;
/** The annotation that hands a node to kwok; a node without it is left to its own kubelet. */
export const KWOK_NODE_SELECTOR = 'kwok.x-k8s.io/node=fake';

const repoRoot = resolve(import.meta.dirname, '..', '..');

/** Where the cluster's state lives: `.cluster/` in the checkout (git-ignored). */
export function stateDir(): string {
  return process.env.ACCEL_LEASE_CLUSTER_DIR ?? join(repoRoot, '.cluster');
}
export function kubeconfigPath(): string {
  return join(stateDir(), 'kubeconfig');
}
function kwokWorkdir(): string {
  return join(stateDir(), 'kwok');
}
function clusterDir(): string {
  return join(kwokWorkdir(), 'clusters', CLUSTER_NAME);
}
function pidsDir(): string {
  return join(clusterDir(), 'pids');
}

const defaultLog: Log = (line) => process.stderr.write(`[cluster] ${line}\n`);

function elapsedSince(started: number): string {
  return `${((Date.now() - started) / 1000).toFixed(1)}s`;
}

async function kwokctl(bins: BinaryPaths, args: string[]): Promise<string> {
  // KWOK_WORKDIR keeps kwokctl's clusters, config and cache inside .cluster/ instead of ~/.kwok.
  const env = { ...process.env, KWOK_WORKDIR: kwokWorkdir() };
  try {
    const { stdout } = await run(bins.kwokctl, args, { env, maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(
      `kwokctl ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`.trim(),
    );
  }
}

/**
 * Gates and APIs beyond Kubernetes' defaults. Every suite runs without any: what DRA mode needs is
 * on by default in 1.36. The bench's DRA comparison needs DeviceTaintRules, a beta API that is off
 * by default (`DRADeviceTaintRules=true`, `resource.k8s.io/v1beta2=true`).
 */
export interface ClusterOptions {
  /** `--feature-gates` of kube-apiserver, kube-controller-manager and kube-scheduler. */
  featureGates?: string;
  /** `--runtime-config` of kube-apiserver. */
  runtimeConfig?: string;
}

/**
 * kwokctl reads its defaults from $KWOK_WORKDIR/kwok.yaml: every binary is a local path, so it
 * never downloads anything, and admission plus RBAC are on, because those are what we test.
 * No feature gate is set unless asked: what DRA mode needs is on by default in 1.36
 * (resource.k8s.io/v1, the scheduler's DynamicResources plugin, the controller-manager's
 * resourceclaim controller, DRADeviceBindingConditions, DRAResourceClaimDeviceStatus,
 * DRADeviceTaints, and MutatingAdmissionPolicy), so every suite runs on the default gates.
 */
function writeKwokctlConfig(bins: BinaryPaths, extra: ClusterOptions): void {
  mkdirSync(kwokWorkdir(), { recursive: true });
  const options = {
    runtime: 'binary',
    kubeApiserverBinary: bins['kube-apiserver'],
    kubeControllerManagerBinary: bins['kube-controller-manager'],
    kubeSchedulerBinary: bins['kube-scheduler'],
    kwokControllerBinary: bins.kwok,
    etcdBinary: bins.etcd,
    kubectlBinary: bins.kubectl,
    // kwokctl passes these to the API server, the controller-manager and the scheduler alike.
    ...(extra.featureGates && { kubeFeatureGates: extra.featureGates }),
    ...(extra.runtimeConfig && { kubeRuntimeConfig: extra.runtimeConfig }),
    kubeAuthorization: true,
    kubeAdmission: true,
    securePort: true,
    bindAddress: '127.0.0.1',
    // Pods of a real node reach the API server as kubernetes.default.svc at the Service's
    // ClusterIP (the first of the default 10.0.0.0/24): its certificate must name both.
    kubeApiserverCertSANs: [
      '10.0.0.1',
      'kubernetes',
      'kubernetes.default',
      'kubernetes.default.svc',
      'kubernetes.default.svc.cluster.local',
    ],
  };
  const pki = join(clusterDir(), 'pki');
  // kwokctl's binary runtime has kwok manage every node; a real node (`npm run cluster:node`)
  // must stay its kubelet's, so kwok takes only the nodes annotated as fake, as ensureNodes makes
  // them (kwokctl's kind runtime selects the same way).
  const yaml = [
    'kind: KwokctlConfiguration',
    'apiVersion: config.kwok.x-k8s.io/v1alpha1',
    'options:',
    ...Object.entries(options).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`),
    'componentsPatches:',
    '  - name: kwok-controller',
    '    extraArgs:',
    '      - { key: manage-all-nodes, value: "false", override: true }',
    `      - { key: manage-nodes-with-annotation-selector, value: "${KWOK_NODE_SELECTOR}" }`,
    // For logs, exec and port-forward on a real node: the API server dials its kubelet at the
    // node's InternalIP (its name resolves nowhere) and authenticates with the admin certificate.
    '  - name: kube-apiserver',
    '    extraArgs:',
    '      - { key: kubelet-preferred-address-types, value: "InternalIP,Hostname" }',
    `      - { key: kubelet-client-certificate, value: "${join(pki, 'admin.crt')}" }`,
    `      - { key: kubelet-client-key, value: "${join(pki, 'admin.key')}" }`,
    '',
  ].join('\n');
  writeFileSync(join(kwokWorkdir(), 'kwok.yaml'), yaml);
}

export function loadKubeConfig(path = kubeconfigPath()): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface NodeList {
  items: {
    metadata: { name: string };
    status?: { conditions?: { type: string; status: string }[] };
  }[];
}

async function readyNodes(kc: KubeConfig): Promise<string[]> {
  const res = await rawRequest(kc, 'GET', '/api/v1/nodes');
  if (res.status !== 200) return [];
  const list = JSON.parse(res.body) as NodeList;
  return list.items
    .filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((n) => n.metadata.name);
}

/** Simulated nodes: kwok manages every node and keeps it Ready; pods bound to it become Ready. */
async function ensureNodes(kc: KubeConfig): Promise<void> {
  for (const name of NODES) {
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        labels: {
          'kubernetes.io/hostname': name,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          type: 'kwok',
        },
        annotations: {
          [KWOK_NODE_SELECTOR.split('=')[0]!]: KWOK_NODE_SELECTOR.split('=')[1]!,
          'node.alpha.kubernetes.io/ttl': '0',
        },
      },
      spec: {},
    };
    const res = await rawRequest(kc, 'POST', '/api/v1/nodes', node);
    if (res.status !== 201 && res.status !== 409) {
      throw new Error(`creating node ${name}: HTTP ${res.status} ${res.body}`);
    }
  }
}

export interface UpResult {
  kubeconfigPath: string;
  /** False when a running cluster was reused: whoever started it owns its teardown. */
  started: boolean;
  bins: BinaryPaths;
}

/** True when the local cluster exists and its API server answers /readyz. */
export async function isRunning(): Promise<boolean> {
  if (!existsSync(kubeconfigPath()) || !existsSync(clusterDir())) return false;
  return isReady(loadKubeConfig());
}

/** The gates and APIs the existing cluster was created with, from the configuration kwokctl saved. */
function savedOptions(): Required<ClusterOptions> | undefined {
  const path = join(clusterDir(), 'kwok.yaml');
  if (!existsSync(path)) return undefined;
  for (const doc of readFileSync(path, 'utf8').split(/^---$/m)) {
    const parsed = parse(doc) as {
      kind?: string;
      options?: { kubeFeatureGates?: string; kubeRuntimeConfig?: string };
    } | null;
    if (parsed?.kind !== 'KwokctlConfiguration') continue;
    return {
      featureGates: parsed.options?.kubeFeatureGates ?? '',
      runtimeConfig: parsed.options?.kubeRuntimeConfig ?? '',
    };
  }
  return undefined;
}

/** A cluster is reused only with the gates asked for: a suite on the bench's gates tests nothing. */
function checkSameOptions(asked: ClusterOptions): void {
  const saved = savedOptions();
  if (!saved) return;
  const want = { featureGates: asked.featureGates ?? '', runtimeConfig: asked.runtimeConfig ?? '' };
  if (saved.featureGates === want.featureGates && saved.runtimeConfig === want.runtimeConfig)
    return;
  const say = (o: Required<ClusterOptions>) =>
    [
      o.featureGates ? `--feature-gates=${o.featureGates}` : 'the default feature gates',
      o.runtimeConfig ? `--runtime-config=${o.runtimeConfig}` : 'the default APIs',
    ].join(' and ');
  throw new Error(
    `the local cluster in ${stateDir()} was created with ${say(saved)}; ` +
      `this needs ${say(want)}: stop it with npm run cluster:down and run again`,
  );
}

/**
 * Brings the local control plane up, or reuses it when it already runs with the same `extra`
 * gates. Waits for /readyz and for every simulated node to be Ready, and writes the admin
 * kubeconfig to .cluster/kubeconfig.
 */
export async function up(log: Log = defaultLog, extra: ClusterOptions = {}): Promise<UpResult> {
  const bins = await ensureBinaries();
  const started = Date.now();
  let fresh = false;
  if (await isRunning()) {
    checkSameOptions(extra);
    log(`reusing the running cluster (${kubeconfigPath()})`);
  } else {
    writeKwokctlConfig(bins, extra);
    if (existsSync(join(clusterDir(), 'kwok.yaml'))) {
      checkSameOptions(extra);
      // State from an earlier run whose processes are gone (reboot, killed): start it again.
      log('starting the stopped cluster');
      try {
        await kwokctl(bins, ['start', 'cluster', '--name', CLUSTER_NAME, '--timeout', '2m']);
      } catch (err) {
        log(`restart failed, recreating: ${(err as Error).message.split('\n')[0]}`);
        await down(log);
        writeKwokctlConfig(bins, extra);
      }
    }
    if (!existsSync(join(clusterDir(), 'kwok.yaml'))) {
      log('creating cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)');
      try {
        await kwokctl(bins, [
          'create',
          'cluster',
          '--name',
          CLUSTER_NAME,
          '--runtime',
          'binary',
          '--kubeconfig',
          '',
          '--wait',
          '2m',
        ]);
      } catch (err) {
        await down(log);
        throw err;
      }
      fresh = true;
    }
    writeFileSync(
      kubeconfigPath(),
      await kwokctl(bins, ['get', 'kubeconfig', '--name', CLUSTER_NAME]),
    );
  }
  try {
    const kc = loadKubeConfig();
    await waitFor('kube-apiserver /readyz', 120_000, () => isReady(kc));
    await ensureNodes(kc);
    await waitFor(`nodes ${NODES.join(', ')} Ready`, 120_000, async () => {
      const ready = await readyNodes(kc);
      return NODES.every((n) => ready.includes(n));
    });
  } catch (err) {
    // A cluster this call created and cannot finish is removed, so no process outlives the error.
    if (fresh) await down(log);
    throw err;
  }
  log(`cluster ready in ${elapsedSince(started)}: nodes ${NODES.join(', ')} Ready`);
  return { kubeconfigPath: kubeconfigPath(), started: fresh, bins };
}

/**
 * True when the running cluster was set up for a real node: its kwok leaves alone the nodes not
 * annotated as fake, and its API server reaches kubelets by address. A cluster created before
 * either has kwok take real-0 over, or cannot show its pods' logs.
 */
export function readyForRealNodes(): boolean {
  const config = join(clusterDir(), 'kwok.yaml');
  if (!existsSync(config)) return false;
  const text = readFileSync(config, 'utf8');
  return (
    text.includes('--manage-all-nodes=false') &&
    text.includes('--kubelet-preferred-address-types=') &&
    text.includes('kubernetes.default.svc')
  );
}

/** The cluster's CA (to sign a kubelet's client certificate) and the API server's address. */
export function clusterPki(): { caCert: string; caKey: string } {
  return {
    caCert: join(clusterDir(), 'pki', 'ca.crt'),
    caKey: join(clusterDir(), 'pki', 'ca.key'),
  };
}

/** The pids kwokctl recorded for the components it forked, by component binary name. */
function recordedPids(): Map<string, number> {
  const pids = new Map<string, number>();
  if (!existsSync(pidsDir())) return pids;
  for (const file of readdirSync(pidsDir())) {
    const pid = Number.parseInt(readFileSync(join(pidsDir(), file), 'utf8'), 10);
    if (Number.isInteger(pid) && pid > 0) pids.set(file.replace(/\.pid$/, ''), pid);
  }
  return pids;
}

/**
 * Last resort, synchronous so it can run from an 'exit' handler: SIGKILL every process this
 * cluster recorded. Touches only pids from our own pid files.
 */
export function killRecordedProcesses(): void {
  for (const pid of recordedPids().values()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Stops every component and deletes all cluster state; leaves no process behind. */
export async function down(log: Log = defaultLog): Promise<void> {
  const pids = recordedPids();
  const bins = binaryPaths();
  // Never build just to delete: without kwokctl, killing the recorded processes is enough.
  if (existsSync(clusterDir()) && existsSync(bins.kwokctl)) {
    try {
      await kwokctl(bins, ['delete', 'cluster', '--name', CLUSTER_NAME]);
    } catch (err) {
      log(`kwokctl delete failed, killing the recorded processes: ${(err as Error).message}`);
    }
  }
  const deadline = Date.now() + 10_000;
  while ([...pids.values()].some(pidAlive) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const [name, pid] of pids) {
    if (pidAlive(pid)) {
      log(`${name} (pid ${pid}) still running; killing it`);
      process.kill(pid, 'SIGKILL');
    }
  }
  rmSync(kwokWorkdir(), { recursive: true, force: true });
  rmSync(kubeconfigPath(), { force: true });
  log('cluster deleted');
}
