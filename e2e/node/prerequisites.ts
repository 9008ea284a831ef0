// What this machine must have for a real node, checked up front so that a machine without it
// is told in one line which part is missing, rather than failing somewhere inside kubelet.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/** The Debian packages the node and its images need; .ci/run installs the same list. */
export const NODE_HOST_PACKAGES = {
  runc: '/usr/sbin/runc',
  'containernetworking-plugins': '/usr/lib/cni/bridge',
  iptables: '/usr/sbin/iptables',
  iproute2: '/usr/sbin/ip',
  openssl: '/usr/bin/openssl',
  buildah: '/usr/bin/buildah',
  debootstrap: '/usr/sbin/debootstrap',
} as const;

export const CNI_BIN_DIR = '/usr/lib/cni';
export const RUNC = NODE_HOST_PACKAGES.runc;

/** The cgroup v1 controllers kubelet and runc need mounted under /sys/fs/cgroup. */
const CGROUP_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'devices', 'freezer'];

/**
 * Why this machine cannot run the real node, in one line, or undefined when it can. Checks only
 * what is cheap to check: root, the packages, cgroup v1 controllers, overlayfs, netfilter.
 */
export function whyNoRealNode(): string | undefined {
  if (process.platform !== 'linux') return `a real node needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0)
    return 'a real node needs root (containerd, runc, bridge, iptables)';
  const missing = Object.entries(NODE_HOST_PACKAGES)
    .filter(([, path]) => !existsSync(path))
    .map(([pkg]) => pkg);
  if (missing.length > 0) return `a real node needs the Debian packages ${missing.join(' ')}`;
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  const unified = /^\S+ \/sys\/fs\/cgroup cgroup2 /m.test(mounts);
  if (!unified) {
    const absent = CGROUP_CONTROLLERS.filter(
      (c) => !existsSync(`/sys/fs/cgroup/${c}/cgroup.procs`),
    );
    if (absent.length > 0) return `cgroup v1 controllers not mounted: ${absent.join(' ')}`;
  }
  if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) {
    const probe = spawnSync('modprobe', ['overlay'], { stdio: 'ignore' });
    if (probe.status !== 0) return 'the kernel has no overlayfs (containerd and buildah need it)';
  }
  const nat = spawnSync(NODE_HOST_PACKAGES.iptables, ['-t', 'nat', '-S'], { encoding: 'utf8' });
  if (nat.status !== 0)
    return `iptables cannot use the nat table: ${nat.stderr.trim().split('\n')[0]}`;
  return undefined;
}
