// The node's configuration files, as pure functions of where things are: containerd's, the CNI
// network's, kubelet's and kube-proxy's. Nothing here touches the host.
import { NETWORK, NODE_NAME, REAL_NODE_TAINT, CGROUP_ROOT } from './layout.ts';

/** The pause image every pod sandbox starts from; built here (image.ts), never pulled. */
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10.1';

export interface ContainerdLayout {
  root: string;
  state: string;
  socket: string;
  cniConfDir: string;
  cniBinDir: string;
  runc: string;
}

/** containerd 2.x (config version 3): CRI with runc under cgroupfs, overlayfs, our CNI dirs. */
export function containerdConfig(l: ContainerdLayout): string {
  const q = JSON.stringify;
  return `# Written by e2e/node (npm run cluster:node); removed by npm run cluster:down.
version = 3
root = ${q(l.root)}
state = ${q(l.state)}
# NRI would listen on /var/run/nri; the node needs none of it.
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = ${q(l.socket)}

[ttrpc]
  address = ${q(`${l.socket}.ttrpc`)}

[plugins."io.containerd.internal.v1.opt"]
  path = ${q(`${l.root}/opt`)}

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = ${q(PAUSE_IMAGE)}

[plugins."io.containerd.cri.v1.runtime"]
  # Processes here may not lower their oom_score_adj (runc's write of the sandbox's -998 is
  # refused, and the sandbox never starts): keep each container's at or above containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = ${q(l.runc)}
        Root = ${q(`${l.state}/runc`)}
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [${q(l.cniBinDir)}]
    conf_dir = ${q(l.cniConfDir)}
    max_conf_num = 1
`;
}

/**
 * The pods' network: a bridge whose address is their gateway, host-local addresses from the
 * node's pod CIDR, no masquerade (nothing leaves the machine), hairpin so a pod reaches itself
 * through a Service.
 */
export function cniConfig(ipamDataDir: string): string {
  return `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'accel-lease-real-node',
      plugins: [
        {
          type: 'bridge',
          bridge: NETWORK.bridge,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            dataDir: ipamDataDir,
            ranges: [[{ subnet: NETWORK.podCidr, gateway: NETWORK.gateway }]],
            routes: [{ dst: '0.0.0.0/0' }],
          },
        },
      ],
    },
    null,
    2,
  )}\n`;
}

export interface KubeletLayout {
  containerdSocket: string;
  clientCaFile: string;
  podLogsDir: string;
  resolvConf: string;
}

/**
 * kubelet for this host: cgroupfs on cgroup v1 (which kubelet 1.35+ refuses unless
 * failCgroupV1 is false), no swap check, its own cgroup root, the bridge's address for serving
 * and DNS, its own taint. Image GC never runs: nothing it removed could be pulled back.
 */
export function kubeletConfig(l: KubeletLayout): string {
  const config = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: NETWORK.gateway,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: l.clientCaFile },
    },
    authorization: { mode: 'Webhook' },
    containerRuntimeEndpoint: `unix://${l.containerdSocket}`,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: CGROUP_ROOT,
    failCgroupV1: false,
    failSwapOn: false,
    podCIDR: NETWORK.podCidr,
    clusterDNS: [NETWORK.gateway],
    clusterDomain: 'cluster.local',
    resolvConf: l.resolvConf,
    podLogsDir: l.podLogsDir,
    maxPods: 40,
    registerWithTaints: [REAL_NODE_TAINT],
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // A busy shared machine: evict nothing short of a machine that is really out of room.
    evictionHard: {
      'memory.available': '100Mi',
      'nodefs.available': '1%',
      'imagefs.available': '1%',
    },
    // Pods' status reaches the API server promptly, which the tests wait on.
    nodeStatusUpdateFrequency: '5s',
    serializeImagePulls: false,
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** The kubelet's flags beside its config file. */
export function kubeletArgs(p: { config: string; kubeconfig: string; rootDir: string }): string[] {
  return [
    `--config=${p.config}`,
    `--kubeconfig=${p.kubeconfig}`,
    `--root-dir=${p.rootDir}`,
    // Its serving certificate, which would go to /var/lib/kubelet/pki whatever --root-dir says.
    `--cert-dir=${p.rootDir}/pki`,
    `--hostname-override=${NODE_NAME}`,
    `--node-ip=${NETWORK.gateway}`,
    `--node-labels=${Object.entries(REAL_NODE_LABELS)
      .map(([k, v]) => `${k}=${v}`)
      .join(',')}`,
    '--v=1',
  ];
}

/** real-0's labels: the chart's agent selects accelerator nodes, and tests select it by type. */
export const REAL_NODE_LABELS = {
  'accel.dmabuf.io/accelerator': 'true',
  type: 'real',
} as const;

/**
 * kube-proxy in iptables mode for the pods of this node only: Services reach their endpoints,
 * masqueraded so that replies between two pods on the bridge come back through the host. It
 * leaves the host's sysctls alone (no conntrack sizing, no localhost NodePorts).
 */
export function kubeProxyConfig(kubeconfig: string): string {
  const config = {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig },
    hostnameOverride: NODE_NAME,
    mode: 'iptables',
    clusterCIDR: NETWORK.podCidr,
    bindAddress: '127.0.0.1',
    healthzBindAddress: '127.0.0.1:10256',
    metricsBindAddress: '127.0.0.1:10249',
    nodePortAddresses: [`${NETWORK.gateway}/32`],
    iptables: { masqueradeAll: true, localhostNodePorts: false },
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}
