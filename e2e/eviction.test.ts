// Eviction against a real PodDisruptionBudget: the disruption controller in
// kube-controller-manager computes the budget, the API server enforces it, kwok runs the pod.
import { ApiException, CoreV1Api, PolicyV1Api } from '@kubernetes/client-node';
import type { V1Pod, V1PodDisruptionBudget } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { clusterInfo, kubeConfig, rawRequest, testNamespace } from './harness/index.ts';

const WAIT = { timeout: 60_000, interval: 250 };

function isReady(pod: V1Pod): boolean {
  return !!pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
}

function budgetSettled(pdb: V1PodDisruptionBudget): boolean {
  return pdb.status?.observedGeneration === pdb.metadata?.generation;
}

describe('pods, PodDisruptionBudgets and the Eviction API', () => {
  it('a pod becomes Ready; eviction fails with 429 under minAvailable 1 and succeeds once the budget allows it', async () => {
    const ns = await testNamespace('evict');
    const kc = kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const policy = kc.makeApiClient(PolicyV1Api);
    // On the local control plane the pod goes to a kwok node; elsewhere the scheduler places it.
    const node = clusterInfo().simulatedNodes[0];

    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'worker', labels: { app: 'worker' } },
        spec: {
          ...(node ? { nodeName: node } : {}),
          containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10' }],
        },
      },
    });
    await vi.waitFor(async () => {
      const pod = await core.readNamespacedPod({ namespace: ns, name: 'worker' });
      expect(pod.status?.phase).toBe('Running');
      expect(isReady(pod)).toBe(true);
      if (node) expect(pod.spec?.nodeName).toBe(node);
    }, WAIT);

    await policy.createNamespacedPodDisruptionBudget({
      namespace: ns,
      body: {
        metadata: { name: 'worker' },
        spec: { minAvailable: 1, selector: { matchLabels: { app: 'worker' } } },
      },
    });
    await vi.waitFor(async () => {
      const pdb = await policy.readNamespacedPodDisruptionBudget({ namespace: ns, name: 'worker' });
      expect(budgetSettled(pdb)).toBe(true);
      expect(pdb.status?.currentHealthy).toBe(1);
      expect(pdb.status?.disruptionsAllowed).toBe(0);
    }, WAIT);

    const evictionPath = `/api/v1/namespaces/${ns}/pods/worker/eviction`;
    const eviction = {
      apiVersion: 'policy/v1',
      kind: 'Eviction',
      metadata: { name: 'worker', namespace: ns },
    };
    const refused = await rawRequest(kc, 'POST', evictionPath, eviction);
    expect(refused.status, refused.body).toBe(429);
    expect((JSON.parse(refused.body) as { message: string }).message).toContain(
      'disruption budget',
    );

    const pdb = await policy.readNamespacedPodDisruptionBudget({ namespace: ns, name: 'worker' });
    pdb.spec = { ...pdb.spec, minAvailable: 0 };
    await policy.replaceNamespacedPodDisruptionBudget({ namespace: ns, name: 'worker', body: pdb });
    await vi.waitFor(async () => {
      const current = await policy.readNamespacedPodDisruptionBudget({
        namespace: ns,
        name: 'worker',
      });
      expect(budgetSettled(current)).toBe(true);
      expect(current.status?.disruptionsAllowed).toBe(1);
    }, WAIT);

    const allowed = await rawRequest(kc, 'POST', evictionPath, eviction);
    expect(allowed.status, allowed.body).toBe(201);

    // Really gone, not left terminating: a read returns 404.
    await vi.waitFor(async () => {
      const gone = await core.readNamespacedPod({ namespace: ns, name: 'worker' }).then(
        () => 200,
        (err: unknown) => (err instanceof ApiException ? err.code : 0),
      );
      expect(gone).toBe(404);
    }, WAIT);
  });
});
