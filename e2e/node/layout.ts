// Where the real node keeps everything it makes, and the fixed names and addresses it uses:
// one directory in the checkout's .cluster/, so that `cluster:down` can remove it whole.
import { join } from 'node:path';
import { stateDir } from '../cluster/index.ts';

export const NODE_NAME = 'real-0';

/**
 * real-0's own taint: suites that bind pods to the simulated nodes never land here by accident;
 * what should run on the real node tolerates it.
 */
export const REAL_NODE_TAINT = {
  key: 'accel.dmabuf.io/real-node',
  value: 'true',
  effect: 'NoSchedule',
} as const;

/**
 * The pods' network: a bridge with the node's address on it. 10.244.0.0/24 is routed nowhere on
 * these machines, and the bridge masquerades nothing, so pods reach only this host.
 */
export const NETWORK = {
  bridge: 'accelreal0',
  podCidr: '10.244.0.0/24',
  /** The bridge's address: the pods' gateway, the node's InternalIP and the pods' DNS server. */
  gateway: '10.244.0.1',
  prefix: 24,
} as const;

/** The cgroup (in every v1 hierarchy) that holds all of the node's pods. */
export const CGROUP_ROOT = '/accel-lease-real-0';

export function nodeDir(): string {
  return join(stateDir(), 'node');
}

export const paths = {
  pids: () => join(nodeDir(), 'pids'),
  logs: () => join(nodeDir(), 'logs'),
  pki: () => join(nodeDir(), 'pki'),
  containerdRoot: () => join(nodeDir(), 'containerd', 'root'),
  containerdState: () => join(nodeDir(), 'containerd', 'state'),
  containerdConfig: () => join(nodeDir(), 'containerd', 'config.toml'),
  containerdSocket: () => join(nodeDir(), 'containerd', 'containerd.sock'),
  cniConf: () => join(nodeDir(), 'cni', 'net.d'),
  cniIpam: () => join(nodeDir(), 'cni', 'ipam'),
  kubeletRoot: () => join(nodeDir(), 'kubelet'),
  kubeletConfig: () => join(nodeDir(), 'kubelet-config.yaml'),
  kubeletKubeconfig: () => join(nodeDir(), 'kubelet.kubeconfig'),
  podLogs: () => join(nodeDir(), 'pod-logs'),
  resolvConf: () => join(nodeDir(), 'resolv.conf'),
  kubeProxyConfig: () => join(nodeDir(), 'kube-proxy-config.yaml'),
  /** What the host had before the node changed it, restored by stopNode. */
  hostBefore: () => join(nodeDir(), 'host-before.json'),
};
