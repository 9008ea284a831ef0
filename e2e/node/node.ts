// Starts and stops real-0: containerd with runc, kubelet and kube-proxy as host processes beside
// the local control plane, the bridge the pods live on, and the host services (DNS, a way to the
// API server) that a cluster's add-ons would give them. stopNode undoes every change startNode
// makes to the host.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import {
  clusterPki,
  ensureNodeBinaries,
  isRunning,
  kubeconfigPath,
  readyForRealNodes,
  loadKubeConfig,
  nodeBinaryPaths,
  rawRequest,
} from '../cluster/index.ts';
import type { Log, NodeBinaryPaths } from '../cluster/index.ts';
import { waitFor } from '../stack/wait.ts';
import {
  containerdConfig,
  cniConfig,
  kubeletArgs,
  kubeletConfig,
  kubeProxyConfig,
} from './configs.ts';
import { daemonPid, logTail, startDaemon, stopDaemon } from './daemons.ts';
import type { DaemonName } from './daemons.ts';
import { bridgeExists, prepareHost, restoreHost, shimPids } from './host.ts';
import { ensurePauseImage } from './image.ts';
import { NETWORK, NODE_NAME, nodeDir, paths } from './layout.ts';
import { CNI_BIN_DIR, RUNC, whyNoRealNode } from './prerequisites.ts';

const run = promisify(execFile);

/** The machine cannot run a node; the message says in one line what it lacks. */
export class RealNodeUnavailableError extends Error {
  constructor(reason: string) {
    super(`no real node on this machine: ${reason}`);
    this.name = 'RealNodeUnavailableError';
  }
}

const defaultLog: Log = (line) => process.stderr.write(`[node] ${line}\n`);

async function sh(command: string, args: string[]): Promise<string> {
  try {
    return (await run(command, args, { maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

function shQuiet(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}

/** A client certificate for system:node:real-0 in system:nodes, signed by the cluster's CA. */
async function writeKubeletCredentials(kc: KubeConfig): Promise<void> {
  const dir = paths.pki();
  mkdirSync(dir, { recursive: true });
  const { caCert, caKey } = clusterPki();
  const key = join(dir, 'kubelet.key');
  const csr = join(dir, 'kubelet.csr');
  const cert = join(dir, 'kubelet.crt');
  await sh('openssl', [
    'req',
    '-new',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-subj',
    `/O=system:nodes/CN=system:node:${NODE_NAME}`,
    '-out',
    csr,
  ]);
  await sh('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    caCert,
    '-CAkey',
    caKey,
    '-set_serial',
    String(Date.now()),
    '-days',
    '30',
    '-sha256',
    '-out',
    cert,
  ]);
  const server = kc.getCurrentCluster()!.server;
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server, 'certificate-authority': caCert } }],
    users: [{ name: NODE_NAME, user: { 'client-certificate': cert, 'client-key': key } }],
    contexts: [{ name: NODE_NAME, context: { cluster: 'local', user: NODE_NAME } }],
    'current-context': NODE_NAME,
  };
  writeFileSync(paths.kubeletKubeconfig(), JSON.stringify(kubeconfig, null, 2));
}

/** The address the API server advertises in the `kubernetes` Service: what pods will dial. */
async function advertisedApiServer(kc: KubeConfig): Promise<string> {
  const res = await rawRequest(
    kc,
    'GET',
    '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes',
  );
  if (res.status !== 200)
    throw new Error(`reading the kubernetes EndpointSlice: HTTP ${res.status}`);
  const slice = JSON.parse(res.body) as {
    endpoints: { addresses: string[] }[];
    ports: { port: number }[];
  };
  const address = slice.endpoints[0]?.addresses[0];
  const port = slice.ports[0]?.port;
  if (!address || !port) throw new Error('the kubernetes EndpointSlice has no endpoint');
  return `${address}:${port}`;
}

async function waitForDaemon(
  name: DaemonName,
  what: string,
  check: () => boolean | Promise<boolean>,
) {
  await waitFor(
    what,
    async () => {
      if (daemonPid(name) === undefined) {
        throw new Error(`${name} exited; its log ends:\n${logTail(name)}`);
      }
      return check();
    },
    120_000,
    250,
  );
}

interface NodeObject {
  spec?: { taints?: { key: string }[] };
  status?: { conditions?: { type: string; status: string; message?: string }[] };
}

async function nodeReady(kc: KubeConfig): Promise<boolean> {
  const res = await rawRequest(kc, 'GET', `/api/v1/nodes/${NODE_NAME}`);
  if (res.status !== 200) return false;
  const node = JSON.parse(res.body) as NodeObject;
  return !!node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The kubelet renews its own Lease in kube-node-lease (kwok renews only the fake nodes'). */
async function leaseRenewedByKubelet(kc: KubeConfig, since: number): Promise<boolean> {
  const res = await rawRequest(
    kc,
    'GET',
    `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${NODE_NAME}`,
  );
  if (res.status !== 200) return false;
  const lease = JSON.parse(res.body) as { spec?: { holderIdentity?: string; renewTime?: string } };
  const renewed = lease.spec?.renewTime ? Date.parse(lease.spec.renewTime) : 0;
  return lease.spec?.holderIdentity === NODE_NAME && renewed >= since - 1000;
}

const DAEMONS: DaemonName[] = ['containerd', 'host-services', 'kube-proxy', 'kubelet'];

/** True when every node process runs and real-0 is Ready. */
export async function nodeRunning(): Promise<boolean> {
  if (DAEMONS.some((d) => daemonPid(d) === undefined)) return false;
  if (!(await isRunning())) return false;
  return nodeReady(loadKubeConfig());
}

export interface NodeStarted {
  /** Wall time of the start, binaries and images ready (built or reused). */
  seconds: number;
  reused: boolean;
  bins: NodeBinaryPaths;
}

/**
 * Adds real-0 to the running local control plane and waits until it is Ready and its kubelet
 * renews its node Lease. Reuses a node that already runs. Throws RealNodeUnavailableError when
 * this machine cannot run one.
 */
export async function startNode(log: Log = defaultLog): Promise<NodeStarted> {
  const why = whyNoRealNode();
  if (why) throw new RealNodeUnavailableError(why);
  if (!(await isRunning())) {
    throw new Error('the local control plane is not running: start it first (npm run cluster:up)');
  }
  if (!readyForRealNodes()) {
    throw new Error(
      'the running cluster was created before it could take a real node (kwok would manage ' +
        'real-0, or its API server could not reach a kubelet): recreate it ' +
        '(npm run cluster:down && npm run cluster:up)',
    );
  }
  const bins = await ensureNodeBinaries();
  const pause = await ensurePauseImage(log);
  const started = Date.now();
  if (await nodeRunning()) {
    log(`reusing the running node ${NODE_NAME}`);
    return { seconds: (Date.now() - started) / 1000, reused: true, bins };
  }
  // A node half up (a process died, or an earlier start failed) is torn down and started anew.
  if (existsSync(nodeDir())) await stopNode(log);
  // The bridge, kubelet's port and the cgroup root are the machine's: one real node per machine.
  if (bridgeExists()) {
    throw new Error(
      `another real node runs on this machine (the bridge ${NETWORK.bridge} exists, and not ` +
        `for ${nodeDir()}): stop it with npm run cluster:down in the checkout that started it`,
    );
  }
  const kc = loadKubeConfig();
  for (const dir of [paths.cniConf(), paths.cniIpam(), paths.podLogs(), paths.kubeletRoot()]) {
    mkdirSync(dir, { recursive: true });
  }
  try {
    prepareHost();
    await writeKubeletCredentials(kc);

    mkdirSync(dirname(paths.containerdConfig()), { recursive: true });
    writeFileSync(
      paths.containerdConfig(),
      containerdConfig({
        root: paths.containerdRoot(),
        state: paths.containerdState(),
        socket: paths.containerdSocket(),
        cniConfDir: paths.cniConf(),
        cniBinDir: CNI_BIN_DIR,
        runc: RUNC,
      }),
    );
    writeFileSync(join(paths.cniConf(), '10-accel-lease.conflist'), cniConfig(paths.cniIpam()));
    // containerd finds its shim on PATH.
    const env = { ...process.env, PATH: `${dirname(bins.containerd)}:${process.env.PATH ?? ''}` };
    startDaemon('containerd', bins.containerd, ['--config', paths.containerdConfig()], env);
    await waitForDaemon('containerd', 'containerd to answer', () =>
      shQuiet(bins.ctr, ['--address', paths.containerdSocket(), 'version']),
    );
    await importImage(pause, log);

    const api = await advertisedApiServer(kc);
    startDaemon('host-services', process.execPath, [
      join(import.meta.dirname, 'host-services.ts'),
      `--kubeconfig=${kubeconfigPath()}`,
      `--dns=${NETWORK.gateway}`,
      `--api=${api}`,
      `--pod-cidr=${NETWORK.podCidr}`,
    ]);

    writeFileSync(paths.kubeProxyConfig(), kubeProxyConfig(kubeconfigPath()));
    startDaemon('kube-proxy', bins['kube-proxy'], [`--config=${paths.kubeProxyConfig()}`]);

    writeFileSync(paths.resolvConf(), '# no upstream: the pods resolve cluster names only\n');
    writeFileSync(
      paths.kubeletConfig(),
      kubeletConfig({
        containerdSocket: paths.containerdSocket(),
        clientCaFile: clusterPki().caCert,
        podLogsDir: paths.podLogs(),
        resolvConf: paths.resolvConf(),
      }),
    );
    const kubeletStart = Date.now();
    startDaemon(
      'kubelet',
      bins.kubelet,
      kubeletArgs({
        config: paths.kubeletConfig(),
        kubeconfig: paths.kubeletKubeconfig(),
        rootDir: paths.kubeletRoot(),
      }),
    );
    await waitForDaemon('kubelet', `node ${NODE_NAME} Ready`, () => nodeReady(kc));
    await waitForDaemon('kubelet', `the kubelet to renew ${NODE_NAME}'s Lease`, () =>
      leaseRenewedByKubelet(kc, kubeletStart),
    );
    await waitForDaemon('host-services', 'the host services', () => true);
    await waitForDaemon('kube-proxy', 'kube-proxy', () => true);
  } catch (err) {
    log(`start failed, tearing the node down: ${(err as Error).message.split('\n')[0]}`);
    await stopNode(log);
    throw err;
  }
  const seconds = (Date.now() - started) / 1000;
  log(`node ${NODE_NAME} Ready in ${seconds.toFixed(1)}s`);
  return { seconds, reused: false, bins };
}

/** Imports an image tarball (docker-archive) into the node's containerd, namespace k8s.io. */
export async function importImage(tarball: string, log: Log = defaultLog): Promise<void> {
  const { ctr } = nodeBinaryPaths();
  await sh(ctr, [
    '--address',
    paths.containerdSocket(),
    '--namespace',
    'k8s.io',
    'images',
    'import',
    tarball,
  ]);
  log(`imported ${tarball.split('/').pop()}`);
}

/**
 * Stops real-0 and removes everything startNode made: the Node object, every pod sandbox (so
 * CNI frees its address and network namespace), the node's processes, kube-proxy's iptables
 * rules, the mounts, the bridge, the cgroups and .cluster/node/. Safe to call when nothing runs.
 */
export async function stopNode(log: Log = defaultLog): Promise<void> {
  if (!existsSync(nodeDir())) return;
  const bins = nodeBinaryPaths();
  if (await isRunning()) {
    await rawRequest(loadKubeConfig(), 'DELETE', `/api/v1/nodes/${NODE_NAME}`).catch(
      () => undefined,
    );
  }
  await stopDaemon('kubelet');
  // After a crash containerd may be gone with its pods' sandboxes still set up (network
  // namespaces, CNI addresses, shims): start it again, so CRI can take them down properly.
  if (
    daemonPid('containerd') === undefined &&
    existsSync(paths.containerdConfig()) &&
    existsSync(bins.containerd)
  ) {
    log('containerd is not running; starting it to remove the pod sandboxes');
    const env = { ...process.env, PATH: `${dirname(bins.containerd)}:${process.env.PATH ?? ''}` };
    startDaemon('containerd', bins.containerd, ['--config', paths.containerdConfig()], env);
    await waitForDaemon('containerd', 'containerd to answer', () =>
      shQuiet(bins.ctr, ['--address', paths.containerdSocket(), 'version']),
    ).catch((err: Error) => log(err.message));
  }
  if (daemonPid('containerd') !== undefined && existsSync(bins.crictl)) {
    const endpoint = `unix://${paths.containerdSocket()}`;
    const crictl = (args: string[]) =>
      sh(bins.crictl, ['--runtime-endpoint', endpoint, '--timeout', '30s', ...args]);
    try {
      await crictl(['stopp', ...(await crictl(['pods', '-q'])).split('\n').filter(Boolean)]).catch(
        () => undefined,
      );
      await crictl(['rmp', '--all', '--force']);
    } catch (err) {
      log(`removing the pod sandboxes: ${(err as Error).message}`);
    }
  }
  await stopDaemon('kube-proxy');
  if (existsSync(bins['kube-proxy'])) {
    // Removes the KUBE-* chains and the jumps to them that kube-proxy added.
    spawnSync(bins['kube-proxy'], ['--cleanup'], { stdio: 'ignore' });
  }
  await stopDaemon('host-services');
  await stopDaemon('containerd');
  for (const pid of shimPids()) {
    log(`shim ${pid} outlived containerd; killing it`);
    process.kill(pid, 'SIGKILL');
  }
  await restoreHost(log);
  rmSync(nodeDir(), { recursive: true, force: true });
  log(`node ${NODE_NAME} removed`);
}
