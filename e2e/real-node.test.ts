// The chart for real: installed with its defaults on real-0, a node with a real kubelet,
// containerd and runc (e2e/node/), running the project's image built here from its Dockerfile.
// Its pods must pass their own probes, `helm test` must pass, the seed's story must play with the
// agent pod on real-0, the controller must roll and upgrade, and uninstall must leave nothing.
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import type { Accelerator, AcceleratorLease } from '../src/crds/index.ts';
import { KubeApiError } from '../src/kube/index.ts';
import {
  clusterInfo,
  helm,
  kubectl,
  TEST_NAMESPACE_LABEL,
  testNamespace,
} from './harness/index.ts';
import {
  ensureAppImage,
  importImage,
  NODE_NAME,
  REAL_NODE_TAINT,
  startNode,
  stopNode,
  whyNoRealNode,
} from './node/index.ts';
import type { NodeStarted } from './node/index.ts';
import { api, GROUP, waitFor } from './stack/index.ts';

const CHART = join(import.meta.dirname, '..', 'charts', 'accel-lease');
const RELEASE = 'al-real';
const MERGE = 'application/merge-patch+json';
/** The chart's default agent.state.hostPath, where the agent keeps its kernel state on the node. */
const STATE_FILE = `/var/lib/accel-lease/agent-${NODE_NAME}.json`;
const ACCEL = `${NODE_NAME}-hl0`;
const PAUSE = 'registry.k8s.io/pause:3.10.1';

const tolerateRealNode = { ...REAL_NODE_TAINT, operator: 'Equal' };
/**
 * Every value this test overrides, none of them a behaviour: where the pods run (real-0, and
 * nothing on the kwok nodes), and that the image is never pulled (it exists only in real-0's
 * containerd). The story needs agent.profile=dynamic, as the README's does: with the chart's
 * static profile every reference pins, the trainer's own too.
 */
const VALUES = {
  image: { pullPolicy: 'Never' },
  controller: {
    nodeSelector: { 'kubernetes.io/hostname': NODE_NAME },
    tolerations: [tolerateRealNode],
  },
  agent: {
    profile: 'dynamic',
    nodeSelector: { 'kubernetes.io/hostname': NODE_NAME },
    tolerations: [
      { key: 'accel.dmabuf.io/accelerator', operator: 'Exists', effect: 'NoSchedule' },
      tolerateRealNode,
    ],
  },
  tests: {
    nodeSelector: { 'kubernetes.io/hostname': NODE_NAME },
    tolerations: [tolerateRealNode],
  },
};

/** Why this run has no real node: not our control plane, or a machine that cannot run one. */
function whyNot(): string | undefined {
  const { kind } = clusterInfo();
  if (kind !== 'local') return `the cluster under test is ${kind}; real-0 joins only the local one`;
  return whyNoRealNode();
}
const skipped = whyNot();
if (skipped) process.stderr.write(`[real-node] chart on a real kubelet skipped: ${skipped}\n`);

interface PodList {
  items: {
    metadata: {
      name: string;
      deletionTimestamp?: string;
      deletionGracePeriodSeconds?: number;
      labels?: Record<string, string>;
    };
    spec: { nodeName?: string };
    status: {
      phase?: string;
      conditions?: { type: string; status: string }[];
      containerStatuses?: { ready: boolean; restartCount: number }[];
    };
  }[];
}

const pods = (ns: string, selector: string) =>
  api<PodList>(
    'GET',
    `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`,
  );
const isReady = (p: PodList['items'][number]) =>
  !p.metadata.deletionTimestamp &&
  !!p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
const controllerSelector = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=controller`;
const agentSelector = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=agent`;

async function gone(path: string): Promise<boolean> {
  try {
    await api('GET', path);
    return false;
  } catch (err) {
    if (err instanceof KubeApiError && err.code === 404) return true;
    throw err;
  }
}

/** A pod of the pause image on real-0, so its containers really run (and really stop). */
function podOnRealNode(ns: string, name: string, labels: Record<string, string> = {}) {
  return api('POST', `/api/v1/namespaces/${ns}/pods`, {
    metadata: { name, labels },
    spec: {
      nodeName: NODE_NAME,
      tolerations: [tolerateRealNode],
      terminationGracePeriodSeconds: 5,
      containers: [{ name: 'main', image: PAUSE, imagePullPolicy: 'Never' }],
    },
  });
}

describe.skipIf(skipped)('the chart on a real node', () => {
  let node: NodeStarted | undefined;
  let namespace = '';
  const agentNamespace = () => `${namespace}-agent`;

  beforeAll(async () => {
    // A cold machine builds kubelet, containerd and both images here: 15 minutes after the
    // control plane's build, 50 from an empty Go cache on a busy machine (both measured).
    node = await startNode();
    await importImage(await ensureAppImage());
    namespace = `accel-real-${Date.now().toString(36)}`;
    await api('POST', '/api/v1/namespaces', {
      metadata: { name: namespace, labels: { [TEST_NAMESPACE_LABEL]: 'true' } },
    });
  }, 80 * 60_000);

  afterAll(async () => {
    if (namespace) {
      await helm(['uninstall', RELEASE, '--namespace', namespace, '--wait']).catch(() => undefined);
      await api('DELETE', `/api/v1/namespaces/${namespace}`).catch(() => undefined);
    }
    rmSync(STATE_FILE, { force: true });
    // The agent's Accelerator outlives its agent, as a Node outlives its kubelet; real-0 goes.
    await api(
      'PATCH',
      `${GROUP}/accelerators/${ACCEL}`,
      { metadata: { finalizers: null } },
      MERGE,
    ).catch(() => undefined);
    await api('DELETE', `${GROUP}/accelerators/${ACCEL}`).catch(() => undefined);
    // A node this run started is this run's to stop; one started by hand stays.
    if (node && !node.reused) await stopNode();
  }, 120_000);

  it('installs with its defaults and its pods become Ready through their own probes', async () => {
    const install = await helm([
      'install',
      RELEASE,
      CHART,
      '--namespace',
      namespace,
      '--skip-crds',
      '--set-json',
      `image=${JSON.stringify(VALUES.image)}`,
      '--set-json',
      `controller.nodeSelector=${JSON.stringify(VALUES.controller.nodeSelector)}`,
      '--set-json',
      `controller.tolerations=${JSON.stringify(VALUES.controller.tolerations)}`,
      '--set',
      `agent.profile=${VALUES.agent.profile}`,
      '--set-json',
      `agent.nodeSelector=${JSON.stringify(VALUES.agent.nodeSelector)}`,
      '--set-json',
      `agent.tolerations=${JSON.stringify(VALUES.agent.tolerations)}`,
      '--set-json',
      `tests.nodeSelector=${JSON.stringify(VALUES.tests.nodeSelector)}`,
      '--set-json',
      `tests.tolerations=${JSON.stringify(VALUES.tests.tolerations)}`,
      '--wait',
      '--timeout',
      '5m',
    ]);
    onTestFailed(async () => {
      const described = await kubectl([
        'describe',
        'pods',
        '-A',
        '-l',
        `app.kubernetes.io/instance=${RELEASE}`,
      ]);
      console.log(described.stdout.slice(-6000));
    });
    expect(install.code, install.stderr).toBe(0);

    // As shipped: two controller replicas, one agent on the accelerator node, both from the image.
    const controllers = await waitFor(
      'both controller replicas Ready',
      async () => {
        const list = await pods(namespace, controllerSelector);
        return list.items.filter(isReady).length === 2 ? list.items : undefined;
      },
      120_000,
    );
    for (const pod of controllers) expect(pod.spec.nodeName).toBe(NODE_NAME);
    // No probe restarted a replica that was still starting.
    for (const pod of controllers) {
      expect(pod.status.containerStatuses?.[0]?.restartCount, pod.metadata.name).toBe(0);
    }
    const agents = await waitFor(
      'the agent Ready on real-0',
      async () => {
        const list = await pods(agentNamespace(), agentSelector);
        return list.items.some(isReady) ? list.items : undefined;
      },
      120_000,
    );
    expect(agents.map((p) => p.spec.nodeName)).toEqual([NODE_NAME]);
    expect(agents[0]!.status.containerStatuses?.[0]?.restartCount).toBe(0);
    // real-0 is its kubelet's, not kwok's: the kubelet reports it Ready and holds its Lease.
    const realNode = await api<{
      status: {
        conditions: { type: string; reason: string }[];
        nodeInfo: { kubeletVersion: string };
      };
    }>('GET', `/api/v1/nodes/${NODE_NAME}`);
    expect(realNode.status.conditions.find((c) => c.type === 'Ready')?.reason).toBe('KubeletReady');
    expect(realNode.status.nodeInfo.kubeletVersion).toBe('v1.36.3');
    const nodeLease = await api<{ spec: { holderIdentity: string } }>(
      'GET',
      `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${NODE_NAME}`,
    );
    expect(nodeLease.spec.holderIdentity).toBe(NODE_NAME);

    // Exactly one replica leads.
    const lease = await waitFor(
      'a leader elected',
      async () => {
        const l = await api<{ spec: { holderIdentity?: string } }>(
          'GET',
          `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/accel-lease-controller`,
        );
        return l.spec.holderIdentity ? l : undefined;
      },
      60_000,
    );
    // The identity is the pod's name, then _ and random digits.
    const leader = lease.spec.holderIdentity!.replace(/_[0-9a-f]+$/, '');
    expect(controllers.map((p) => p.metadata.name)).toContain(leader);

    // The agent wrote its state through the hostPath as its own user, after the root init
    // container handed the directory over.
    await waitFor('the agent state on the node', () => existsSync(STATE_FILE), 60_000);
    expect(statSync(STATE_FILE).uid).toBe(65532);
    const accel = await waitFor(`${ACCEL} published by the agent pod`, () =>
      api<Accelerator>('GET', `${GROUP}/accelerators/${ACCEL}`),
    );
    expect(accel.status?.phase).toBe('Free');
  });

  it('passes helm test: the controller answers /readyz through its Service', async () => {
    const test = await helm(['test', RELEASE, '--namespace', namespace, '--timeout', '3m']);
    expect(test.code, test.stdout + test.stderr).toBe(0);
    expect(test.stdout).toMatch(/Phase:\s+Succeeded/);
  });

  it("plays the seed's story with the agent pod on real-0", async () => {
    // A failed story shows where the device and its leases stood, and what both sides said.
    onTestFailed(async () => {
      const state = await kubectl(['get', 'accelerators,acceleratorleases', '-A', '-o', 'yaml']);
      console.log(state.stdout.slice(-8000));
      for (const [ns, selector] of [
        [namespace, controllerSelector],
        [agentNamespace(), agentSelector],
      ] as const) {
        const logs = await kubectl(['logs', '-n', ns, '-l', selector, '--tail', '60']);
        console.log(`logs of ${selector}:\n${(logs.stdout + logs.stderr).slice(-8000)}`);
      }
    });
    // Each wait of the story, timed from its start, printed as its timeline.
    const started = Date.now();
    const timeline: string[] = [];
    const step = async <T>(
      what: string,
      check: () => Promise<T | undefined | false>,
      timeoutMs: number,
    ): Promise<T> => {
      const value = await waitFor(what, check, timeoutMs);
      timeline.push(`+${((Date.now() - started) / 1000).toFixed(1)}s ${what}`);
      return value;
    };
    const [teamA, teamIo, teamB] = [
      await testNamespace('real-team-a'),
      await testNamespace('real-team-io'),
      await testNamespace('real-team-b'),
    ];
    const leasePath = (ns: string, name: string) =>
      `${GROUP}/namespaces/${ns}/acceleratorleases/${name}`;
    const getLease = (ns: string, name: string) =>
      api<AcceleratorLease>('GET', leasePath(ns, name));

    const holder = { podSelector: { matchLabels: { app: 'train' } } };
    await api('POST', `${GROUP}/namespaces/${teamA}/acceleratorleases`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'AcceleratorLease',
      metadata: { name: 'tenant-a' },
      spec: { accelerator: ACCEL, holder },
    });
    await podOnRealNode(teamA, 'trainer-0', { app: 'train' });
    await api('POST', `${GROUP}/namespaces/${teamIo}/dmabufimportgrants`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufImportGrant',
      metadata: { name: 'from-team-a' },
      spec: { from: [{ namespace: teamA }], podSelector: { matchLabels: { app: 'loader' } } },
    });
    await podOnRealNode(teamIo, 'loader-0', { app: 'loader' });
    await podOnRealNode(teamIo, 'bystander-0');
    await step(
      'lease A granted',
      async () => {
        return (await getLease(teamA, 'tenant-a')).status?.phase === 'Granted';
      },
      60_000,
    );
    await api('POST', `${GROUP}/namespaces/${teamA}/dmabufexports`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufExport',
      metadata: { name: 'weights' },
      spec: {
        accelerator: ACCEL,
        lease: 'tenant-a',
        exporter: { pod: 'trainer-0' },
        sizeBytes: 1 << 30,
        importers: [
          { name: 'nic0', kind: 'rdma-mr', pod: { namespace: teamIo, name: 'loader-0' } },
        ],
      },
    });
    await api('POST', `${GROUP}/namespaces/${teamB}/acceleratorleases`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'AcceleratorLease',
      metadata: { name: 'tenant-b' },
      spec: {
        accelerator: ACCEL,
        holder,
        revocation: { gracePeriodSeconds: 10, maxEvictions: 5 },
      },
    });
    await step(
      'the export Active',
      async () => {
        const x = await api<{ status?: { phase?: string } }>(
          'GET',
          `${GROUP}/namespaces/${teamA}/dmabufexports/weights`,
        );
        return x.status?.phase === 'Active';
      },
      60_000,
    );
    for (const [ns, name] of [
      [teamA, 'trainer-0'],
      [teamIo, 'loader-0'],
      [teamIo, 'bystander-0'],
    ] as const) {
      await step(
        `${ns}/${name} Running on real-0`,
        async () => {
          const p = await api<PodList['items'][number]>(
            'GET',
            `/api/v1/namespaces/${ns}/pods/${name}`,
          );
          return p.status.phase === 'Running';
        },
        60_000,
      );
    }

    // A lets go; the loader's RDMA MR pins the device until the reaper evicts the loader, and
    // the kubelet on real-0 really stops it.
    await api('DELETE', leasePath(teamA, 'tenant-a'));
    await step(
      'the device Stuck, pinned by the loader',
      async () => {
        const a = await api<Accelerator>('GET', `${GROUP}/accelerators/${ACCEL}`);
        return a.status?.phase === 'Stuck';
      },
      60_000,
    );
    const granted = await step(
      'lease B granted',
      async () => {
        const l = await getLease(teamB, 'tenant-b');
        return l.status?.phase === 'Granted' ? l : undefined;
      },
      120_000,
    );
    expect(granted.status).toMatchObject({ accelerator: ACCEL, epoch: 2 });
    await step(
      'loader-0 evicted and gone',
      () => gone(`/api/v1/namespaces/${teamIo}/pods/loader-0`),
      60_000,
    );
    const events = await api<{ items: { reason: string; involvedObject: { name: string } }[] }>(
      'GET',
      `/api/v1/namespaces/${teamIo}/events`,
    );
    expect(
      events.items.some((e) => e.reason === 'Evicting' && e.involvedObject.name === 'loader-0'),
    ).toBe(true);
    // The bystander and the trainer are untouched: still running, never restarted.
    for (const [ns, name] of [
      [teamA, 'trainer-0'],
      [teamIo, 'bystander-0'],
    ] as const) {
      const p = await api<PodList['items'][number]>('GET', `/api/v1/namespaces/${ns}/pods/${name}`);
      expect(p.status.phase, `${ns}/${name}`).toBe('Running');
      expect(p.metadata.deletionTimestamp).toBeUndefined();
    }
    const device = await api<Accelerator>('GET', `${GROUP}/accelerators/${ACCEL}`);
    expect(device.status?.phase).toBe('Owned');
    expect(device.status?.owner?.lease?.namespace).toBe(teamB);

    // B lets go: the device is free at once, but the lease stays (Releasing) while its eviction
    // of the loader counts toward the per-minute cap, since its records are that count's only
    // memory; then its finalizer goes.
    await api('DELETE', leasePath(teamB, 'tenant-b'));
    const kept = await step(
      'the device Free, lease B kept for its eviction',
      async () => {
        const a = await api<Accelerator>('GET', `${GROUP}/accelerators/${ACCEL}`);
        const l = await getLease(teamB, 'tenant-b');
        const why = l.status?.conditions?.find((c) => c.type === 'Granted')?.message;
        const until = why?.match(/^kept until (\S+), while its evictions count/)?.[1];
        const free = a.status?.phase === 'Free' && !a.spec.owner?.lease;
        return free && l.status?.phase === 'Releasing' && until ? { l, until } : undefined;
      },
      60_000,
    );
    // Kept a minute past its last eviction request, and no longer.
    const lastAttempt = kept.l.status?.evictions?.[0]?.lastAttemptTime;
    expect(lastAttempt).toBeDefined();
    const keptUntil = Date.parse(kept.until);
    expect(keptUntil - Date.parse(lastAttempt!)).toBeGreaterThanOrEqual(60_000);
    await step(
      'lease B released and gone once its eviction ages out',
      () => gone(leasePath(teamB, 'tenant-b')),
      Math.max(keptUntil - Date.now(), 0) + 30_000,
    );
    process.stderr.write(`[real-node] the seed's story:\n  ${timeline.join('\n  ')}\n`);
  });

  it('rolls the controller Deployment: both old replicas stop promptly on SIGTERM', async () => {
    const before = (await pods(namespace, controllerSelector)).items.map((p) => p.metadata.name);
    expect(before).toHaveLength(2);
    const rollout = await kubectl([
      'rollout',
      'restart',
      `deployment/${RELEASE}-accel-lease-controller`,
      '--namespace',
      namespace,
    ]);
    expect(rollout.code, rollout.stderr).toBe(0);
    // Each old pod, once deleted, must be gone well within its 30 s grace period: a replica
    // that ignored SIGTERM would hold its slot (and the rollout) for the whole of it.
    const stopSeconds = await Promise.all(
      before.map(async (name) => {
        const path = `/api/v1/namespaces/${namespace}/pods/${name}`;
        const deleted = await waitFor(
          `${name} told to stop`,
          async () => {
            // Gone between two polls: it stopped within 100 ms.
            if (await gone(path)) return Date.now();
            const p = await api<PodList['items'][number]>('GET', path);
            const { deletionTimestamp: until, deletionGracePeriodSeconds: grace } = p.metadata;
            // The API server sets deletionTimestamp to the end of the grace period.
            return until ? Date.parse(until) - (grace ?? 0) * 1000 : undefined;
          },
          120_000,
          100,
        );
        await waitFor(`${name} gone`, () => gone(path), 30_000, 100);
        // From the deletion (deletionTimestamp has whole seconds) to gone.
        return (Date.now() - deleted) / 1000;
      }),
    );
    process.stderr.write(
      `[real-node] old controller replicas stopped in ${stopSeconds.map((s) => s.toFixed(1)).join(' s, ')} s\n`,
    );
    for (const s of stopSeconds) expect(s).toBeLessThan(15);
    const status = await kubectl([
      'rollout',
      'status',
      `deployment/${RELEASE}-accel-lease-controller`,
      '--namespace',
      namespace,
      '--timeout=120s',
    ]);
    expect(status.code, status.stderr).toBe(0);
    const after = (await pods(namespace, controllerSelector)).items.filter(isReady);
    expect(after).toHaveLength(2);
    expect(after.map((p) => p.metadata.name).some((n) => before.includes(n))).toBe(false);
  });

  it('upgrades the release, and its pods come back Ready', async () => {
    const upgrade = await helm([
      'upgrade',
      RELEASE,
      CHART,
      '--namespace',
      namespace,
      '--reuse-values',
      '--set',
      'controller.logLevel=debug',
      '--set',
      'agent.heartbeat=5s',
      '--wait',
      '--timeout',
      '5m',
    ]);
    expect(upgrade.code, upgrade.stderr).toBe(0);
    const history = await helm(['history', RELEASE, '--namespace', namespace, '--output', 'json']);
    const revisions = JSON.parse(history.stdout) as { revision: number; status: string }[];
    expect(revisions.at(-1)).toMatchObject({ revision: 2, status: 'deployed' });
    const deployment = await api<{
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    }>(
      'GET',
      `/apis/apps/v1/namespaces/${namespace}/deployments/${RELEASE}-accel-lease-controller`,
    );
    expect(deployment.spec.template.spec.containers[0]!.args).toContain('--log-level=debug');
    await waitFor(
      'both controller replicas Ready after the upgrade',
      async () => {
        const list = await pods(namespace, controllerSelector);
        return list.items.length === 2 && list.items.every(isReady);
      },
      120_000,
    );
    await waitFor(
      'the upgraded agent Ready',
      async () => {
        const list = await pods(agentNamespace(), agentSelector);
        return list.items.length === 1 && list.items.every(isReady);
      },
      120_000,
    );
    const test = await helm(['test', RELEASE, '--namespace', namespace, '--timeout', '3m']);
    expect(test.code, test.stdout + test.stderr).toBe(0);
  });

  it('uninstalls and leaves nothing of the release behind', async () => {
    const uninstall = await helm([
      'uninstall',
      RELEASE,
      '--namespace',
      namespace,
      '--wait',
      '--timeout',
      '3m',
    ]);
    expect(uninstall.code, uninstall.stderr).toBe(0);
    await waitFor(
      'the release pods gone',
      async () => {
        const [c, a] = [
          await pods(namespace, controllerSelector),
          await pods(agentNamespace(), agentSelector).catch(() => ({ items: [] })),
        ];
        return c.items.length === 0 && a.items.length === 0;
      },
      120_000,
    );
    await waitFor(
      'the agent namespace gone',
      () => gone(`/api/v1/namespaces/${agentNamespace()}`),
      120_000,
    );
    const left = await kubectl([
      'get',
      [
        'all',
        'serviceaccounts',
        'roles',
        'rolebindings',
        'poddisruptionbudgets',
        'configmaps',
        'leases.coordination.k8s.io',
        'clusterroles',
        'clusterrolebindings',
        'validatingadmissionpolicies',
        'validatingadmissionpolicybindings',
        'acceleratorleasepolicies',
        'namespaces',
      ].join(','),
      '--all-namespaces',
      '-l',
      `app.kubernetes.io/instance=${RELEASE}`,
      '-o',
      'name',
    ]);
    expect(left.code, left.stderr).toBe(0);
    expect(left.stdout.trim()).toBe('');
    // The agent's state on the node outlives the release by design (a reinstalled agent
    // resumes); afterAll removes it.
    expect(existsSync(STATE_FILE)).toBe(true);
  });
});
