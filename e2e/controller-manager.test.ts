// kube-controller-manager really runs: the garbage collector deletes dependents of a deleted
// owner, and the namespace controller finishes deleting a namespace and everything in it.
import { randomBytes } from 'node:crypto';
import { ApiException, CoreV1Api } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { kubeConfig, TEST_NAMESPACE_LABEL, testNamespace } from './harness/index.ts';

const WAIT = { timeout: 60_000, interval: 250 };

function statusOf(promise: Promise<unknown>): Promise<number> {
  return promise.then(
    () => 200,
    (err: unknown) => (err instanceof ApiException ? err.code : 0),
  );
}

describe('kube-controller-manager', () => {
  it('garbage-collects the dependents of a deleted owner', async () => {
    const ns = await testNamespace('gc');
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const owner = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'owner' } },
    });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: {
        metadata: {
          name: 'dependent',
          ownerReferences: [
            { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! },
          ],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'owner' });
    await vi.waitFor(async () => {
      expect(
        await statusOf(core.readNamespacedConfigMap({ namespace: ns, name: 'dependent' })),
      ).toBe(404);
    }, WAIT);
  });

  it('finishes deleting a namespace and its contents', async () => {
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const name = `ns-delete-${randomBytes(4).toString('hex')}`;
    await core.createNamespace({
      body: { metadata: { name, labels: { [TEST_NAMESPACE_LABEL]: 'true' } } },
    });
    await core.createNamespacedConfigMap({
      namespace: name,
      body: { metadata: { name: 'content' } },
    });
    await core.deleteNamespace({ name });
    await vi.waitFor(async () => {
      expect(await statusOf(core.readNamespace({ name }))).toBe(404);
    }, WAIT);
  });
});
