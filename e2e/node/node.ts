// Starts and stops real-0: containerd with runc, kubelet and kube-proxy as host processes beside
// the local control plane, the bridge the pods live on, and the host services (DNS, a way to the
// API server) that a cluster's add-ons would give them. stopNode undoes every change startNode
// makes to the host.
import { execFile, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
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
import { ensurePauseImage } from './image.ts';
import { CGROUP_ROOT, NETWORK, NODE_NAME, nodeDir, paths } from './layout.ts';
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

interface HostBefore {
  ipForward: string;
  /** KUBE-* chains that existed before the node started (per iptables command and table). */
  kubeChains: string[];
  /** Which of HOST_PATHS existed before the node started: those are left alone. */
  existed: string[];
}

/**
 * Paths outside .cluster/node that the node's programs use whatever they are told: containerd's
 * shims put their sockets in /run/containerd/s, CRI its network namespaces in /run/netns, libcni
 * its cache in /var/lib/cni, kubelet its device-plugin and pod-resources sockets in
 * /var/lib/kubelet and its log symlinks in /var/log/containers. The first two must be empty once
 * the pods are gone; the others hold only what the node put there.
 */
const HOST_PATHS = {
  '/run/containerd': 'empty',
  '/run/netns': 'empty',
  '/var/lib/cni': 'ours',
  '/var/lib/kubelet': 'ours',
  '/var/log/containers': 'ours',
} as const;

/** Both backends, both families: kubelet probes with each, and leaves chains in each. */
const IPTABLES = ['iptables', 'ip6tables', 'iptables-legacy', 'ip6tables-legacy'];
const TABLES = ['filter', 'nat', 'mangle'];

/** `command/table/chain` for every KUBE-* chain there is now. */
function kubeChains(): string[] {
  const chains: string[] = [];
  for (const command of IPTABLES) {
    for (const table of TABLES) {
      const rules = spawnSync(command, ['-t', table, '-S'], { encoding: 'utf8' });
      if (rules.status !== 0) continue;
      for (const match of rules.stdout.matchAll(/^-N (KUBE-\S+)$/gm)) {
        chains.push(`${command}/${table}/${match[1]}`);
      }
    }
  }
  return chains;
}

/**
 * Removes the KUBE-* chains kubelet and kube-proxy made (kube-proxy --cleanup leaves kubelet's
 * KUBE-FIREWALL and canaries), and the rules that jump to them; chains there before are kept.
 */
function removeKubeChains(keep: string[]): void {
  const ours = kubeChains().filter((c) => !keep.includes(c));
  const byTable = new Map<string, string[]>();
  for (const entry of ours) {
    const [command, table, chain] = entry.split('/') as [string, string, string];
    byTable.set(`${command}/${table}`, [...(byTable.get(`${command}/${table}`) ?? []), chain]);
  }
  for (const [where, chains] of byTable) {
    const [command, table] = where.split('/') as [string, string];
    const rules = spawnSync(command, ['-t', table, '-S'], { encoding: 'utf8' }).stdout;
    for (const line of rules.split('\n')) {
      const jump = / -j (\S+)/.exec(line)?.[1];
      if (line.startsWith('-A ') && jump && chains.includes(jump)) {
        spawnSync(command, ['-t', table, '-D', ...splitRule(line.slice(3))]);
      }
    }
    for (const chain of chains) spawnSync(command, ['-t', table, '-F', chain]);
    for (const chain of chains) spawnSync(command, ['-t', table, '-X', chain]);
  }
}

/** An `iptables -S` rule split into argv, honouring the double quotes around comments. */
function splitRule(rule: string): string[] {
  return [...rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

/** Turns on forwarding (pods reach Services through the host) and makes the pods' bridge. */
function prepareHost(): void {
  if (!existsSync(paths.hostBefore())) {
    const before: HostBefore = {
      ipForward: readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(),
      kubeChains: kubeChains(),
      existed: Object.keys(HOST_PATHS).filter((p) => existsSync(p)),
    };
    writeFileSync(paths.hostBefore(), JSON.stringify(before));
  }
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  if (!shQuiet('ip', ['link', 'show', NETWORK.bridge])) {
    const add = spawnSync('ip', ['link', 'add', NETWORK.bridge, 'type', 'bridge'], {
      encoding: 'utf8',
    });
    if (add.status !== 0)
      throw new Error(`creating the bridge ${NETWORK.bridge}: ${add.stderr.trim()}`);
  }
  // The bridge carries the node's address from the start: kubelet serves on it.
  spawnSync('ip', [
    'addr',
    'replace',
    `${NETWORK.gateway}/${NETWORK.prefix}`,
    'dev',
    NETWORK.bridge,
  ]);
  spawnSync('ip', ['link', 'set', NETWORK.bridge, 'up']);
}

/** The cgroup v1 hierarchies mounted under /sys/fs/cgroup (and the v2 one, if any). */
function cgroupHierarchies(): string[] {
  if (!existsSync('/sys/fs/cgroup')) return [];
  return readdirSync('/sys/fs/cgroup')
    .map((h) => join('/sys/fs/cgroup', h))
    .filter((dir) => existsSync(join(dir, 'cgroup.procs')));
}

/** kubelet wants its cgroup root to exist in every hierarchy before it starts. */
function makeCgroupRoot(): void {
  for (const hierarchy of cgroupHierarchies()) {
    const dir = join(hierarchy, CGROUP_ROOT);
    mkdirSync(dir, { recursive: true });
    // A new cpuset cgroup has no cpus or mems until given its parent's.
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      if (existsSync(join(hierarchy, file)) && !readFileSync(join(dir, file), 'utf8').trim()) {
        writeFileSync(join(dir, file), readFileSync(join(hierarchy, file), 'utf8'));
      }
    }
  }
}

/** Removes the node's cgroup tree, deepest first; every process in it must be gone already. */
function removeCgroupRoot(log: Log): void {
  const rmTree = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) rmTree(join(dir, entry.name));
    }
    try {
      rmdirSync(dir);
    } catch (err) {
      log(`cannot remove cgroup ${dir}: ${(err as Error).message}`);
    }
  };
  for (const hierarchy of cgroupHierarchies()) {
    const dir = join(hierarchy, CGROUP_ROOT);
    if (existsSync(dir)) rmTree(dir);
  }
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
  if (shQuiet('ip', ['link', 'show', NETWORK.bridge])) {
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
    makeCgroupRoot();
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

/** Pids of processes whose command line names our containerd socket: its runc shims. */
function shimPids(): number[] {
  const socket = paths.containerdSocket();
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('containerd-shim-runc-v2') && argv.includes(socket)) {
        pids.push(Number(entry));
      }
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
    .map((m) => m.replace(/\\040/g, ' '))
    .sort((a, b) => b.length - a.length);
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
  for (const mount of mountsUnder(nodeDir())) {
    if (!shQuiet('umount', [mount])) shQuiet('umount', ['-l', mount]);
  }
  if (shQuiet('ip', ['link', 'show', NETWORK.bridge])) {
    shQuiet('ip', ['link', 'delete', NETWORK.bridge]);
  }
  if (existsSync(paths.hostBefore())) {
    const before = JSON.parse(readFileSync(paths.hostBefore(), 'utf8')) as HostBefore;
    writeFileSync('/proc/sys/net/ipv4/ip_forward', before.ipForward);
    removeKubeChains(before.kubeChains);
    for (const [path, kind] of Object.entries(HOST_PATHS)) {
      if (before.existed.includes(path)) continue;
      if (kind === 'empty') rmEmptyTree(path, log);
      else rmSync(path, { recursive: true, force: true });
    }
  }
  // Processes in the node's cgroups take a moment to leave them after SIGKILL.
  await waitFor('the node cgroups to empty', () => cgroupsEmpty(), 10_000).catch(() => undefined);
  removeCgroupRoot(log);
  rmSync(nodeDir(), { recursive: true, force: true });
  log(`node ${NODE_NAME} removed`);
}

/** Removes `dir` if it holds nothing but empty directories; says so otherwise. */
function rmEmptyTree(dir: string, log: Log): void {
  if (!existsSync(dir)) return;
  const files = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? files(join(d, e.name)) : [join(d, e.name)],
    );
  const left = files(dir);
  if (left.length > 0) log(`leaving ${dir}: it still holds ${left.join(', ')}`);
  else rmSync(dir, { recursive: true });
}

function cgroupsEmpty(): boolean {
  const busy = (dir: string): boolean => {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) return false;
    if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim()) return true;
    return readdirSync(dir, { withFileTypes: true }).some(
      (e) => e.isDirectory() && busy(join(dir, e.name)),
    );
  };
  return !cgroupHierarchies().some((h) => busy(join(h, CGROUP_ROOT)));
}
