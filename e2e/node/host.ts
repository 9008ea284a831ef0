// What the real node changes on the host outside .cluster/node, and how stopNode puts it back:
// forwarding, the pods' bridge, the node's cgroups, the iptables chains kubelet and kube-proxy
// make, the paths their programs use whatever they are told, and the mounts under the node's dir.
import { spawnSync } from 'node:child_process';
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
import { join } from 'node:path';
import type { Log } from '../cluster/index.ts';
import { waitFor } from '../stack/wait.ts';
import { CGROUP_ROOT, NETWORK, nodeDir, paths } from './layout.ts';

function shQuiet(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}

export function bridgeExists(): boolean {
  return shQuiet('ip', ['link', 'show', NETWORK.bridge]);
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

/**
 * Records what the host had (once per node), turns on forwarding (pods reach Services through
 * the host), makes the pods' bridge and the node's cgroup root.
 */
export function prepareHost(): void {
  if (!existsSync(paths.hostBefore())) {
    const before: HostBefore = {
      ipForward: readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(),
      kubeChains: kubeChains(),
      existed: Object.keys(HOST_PATHS).filter((p) => existsSync(p)),
    };
    writeFileSync(paths.hostBefore(), JSON.stringify(before));
  }
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  if (!bridgeExists()) {
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
  makeCgroupRoot();
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

/** Pids of processes whose command line names our containerd socket: its runc shims. */
export function shimPids(): number[] {
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
 * Puts the host back as prepareHost found it. Every process of the node must be stopped: it
 * unmounts what is left under the node's dir, deletes the bridge, restores forwarding, removes
 * the KUBE-* chains and host paths the node made and its cgroups.
 */
export async function restoreHost(log: Log): Promise<void> {
  for (const mount of mountsUnder(nodeDir())) {
    if (!shQuiet('umount', [mount])) shQuiet('umount', ['-l', mount]);
  }
  if (bridgeExists()) {
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
