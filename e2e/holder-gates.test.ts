// Holder pods without DRA, on a real API server and scheduler: the chart's MutatingAdmissionPolicy
// gates pods labelled accel.dmabuf.io/lease, and the controller (--holder-gates) releases each onto
// its device's node once a Granted lease selects it, and no other pod.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { helm, kubectl, testNamespace } from './harness/index.ts';
import { CHART } from './stack/chart.ts';
import {
  api,
  createLease,
  getLease,
  GROUP,
  leaseGone,
  phaseIs,
  ready,
  sleep,
  startAgent,
  startController,
  testNode,
  waitFor,
} from './stack/index.ts';

const GATE = 'accel.dmabuf.io/lease';

interface Pod {
  metadata: { resourceVersion: string };
  spec: {
    nodeName?: string;
    schedulingGates?: { name: string }[];
    affinity?: unknown;
  };
  status?: { phase?: string };
}

const getPod = (ns: string, name: string) =>
  api<Pod>('GET', `/api/v1/namespaces/${ns}/pods/${name}`);

/** A pod the scheduler places, labelled to ask for the gate (no gate of its own). */
function holderPod(ns: string, name: string, app: string) {
  return api('POST', `/api/v1/namespaces/${ns}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { app, [GATE]: 'true' } },
    spec: {
      containers: [{ name: 'train', image: 'registry.example/workload:1' }],
      tolerations: [{ operator: 'Exists' }],
    },
  });
}

/** The chart's opt-in policy, rendered as an operator would enable it, for `ns` only. */
async function installGatePolicy(ns: string): Promise<void> {
  const release = `hg-${ns.slice(-8)}`;
  const rendered = await helm([
    'template',
    release,
    CHART,
    '--show-only',
    'templates/holder-gates.yaml',
    '--set',
    'holderGates.admissionPolicy.enabled=true',
    '--set-json',
    `holderGates.admissionPolicy.namespaceSelector=${JSON.stringify({ matchLabels: { 'kubernetes.io/metadata.name': ns } })}`,
  ]);
  expect(rendered.code, rendered.stderr).toBe(0);
  const file = join(mkdtempSync(join(tmpdir(), 'accel-gate-')), 'policy.yaml');
  writeFileSync(file, rendered.stdout);
  onTestFinished(async () => {
    await kubectl(['delete', '-f', file, '--ignore-not-found']);
  });
  const applied = await kubectl(['apply', '-f', file]);
  expect(applied.code, applied.stderr).toBe(0);
  // Admission policies take effect once the API server has loaded them.
  await waitFor('the gate policy in effect', async () => {
    const probe = `probe-${Date.now()}`;
    await holderPod(ns, probe, 'probe');
    const gated = (await getPod(ns, probe)).spec.schedulingGates?.some((g) => g.name === GATE);
    await api('DELETE', `/api/v1/namespaces/${ns}/pods/${probe}?gracePeriodSeconds=0`);
    return gated;
  });
}

const gated = async (ns: string, name: string) =>
  (await getPod(ns, name)).spec.schedulingGates?.some((g) => g.name === GATE) ?? false;

describe('holder gates', () => {
  it("run a lease's holder pods only once it is Granted, on the device's node, and only theirs", async () => {
    const node = await testNode('gates');
    const accel = `${node}-hl0`;
    const ns = await testNamespace('gates');
    await startAgent({ node });
    await ready(await startController({ extraArgs: ['--holder-gates'] }));
    await installGatePolicy(ns);

    // The device is someone else's first: train queues behind it.
    await createLease(ns, 'first', { accelerator: accel });
    await phaseIs(ns, 'first', 'Granted');
    await createLease(ns, 'train', {
      accelerator: accel,
      revocation: { gracePeriodSeconds: 1, maxEvictions: 0 },
    });
    await holderPod(ns, 'train-0', 'train');
    await holderPod(ns, 'other-0', 'other');
    expect(await gated(ns, 'train-0')).toBe(true);
    expect(await gated(ns, 'other-0')).toBe(true);
    await sleep(3000);
    expect((await getLease(ns, 'train')).status?.phase).toBe('Pending');
    expect(await gated(ns, 'train-0')).toBe(true);

    await api('DELETE', `${GROUP}/namespaces/${ns}/acceleratorleases/first`);
    await phaseIs(ns, 'train', 'Granted');
    const running = await waitFor('train-0 Running on the device node', async () => {
      const p = await getPod(ns, 'train-0');
      return p.status?.phase === 'Running' ? p : undefined;
    });
    expect(running.spec.nodeName).toBe(node);
    expect(running.spec.schedulingGates ?? []).toEqual([]);
    expect(running.spec.affinity).toEqual({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] },
          ],
        },
      },
    });
    // A pod the lease does not select stays gated.
    expect(await gated(ns, 'other-0')).toBe(true);

    // Released: its running pod is left as it is, and a new holder pod is never released.
    await api('DELETE', `${GROUP}/namespaces/${ns}/acceleratorleases/train`);
    await waitFor('train released', () => leaseGone(ns, 'train'));
    await holderPod(ns, 'train-1', 'train');
    await sleep(3000);
    const after = await getPod(ns, 'train-0');
    expect(after.spec).toEqual(running.spec);
    expect(await gated(ns, 'train-1')).toBe(true);
    expect(await gated(ns, 'other-0')).toBe(true);
  });
});
