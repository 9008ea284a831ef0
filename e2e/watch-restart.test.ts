// The project's informer keeps its cache right across a kube-apiserver restart: after the server
// comes back it relists and sees what changed while it was down.
import { CoreV1Api } from '@kubernetes/client-node';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { Informer } from '../src/kube/index.ts';
import {
  kubeConfig,
  localControlPlane,
  NEEDS_LOCAL_CONTROL_PLANE,
  testNamespace,
} from './harness/index.ts';

const controlPlane = localControlPlane();
const WAIT = { timeout: 90_000, interval: 250 };

function names(informer: Informer<V1ConfigMap>): string[] {
  return informer
    .list()
    .map((cm) => cm.metadata?.name ?? '')
    .sort();
}

describe('informer across an API server restart', () => {
  it.skipIf(!controlPlane)(
    `relists after kube-apiserver restarts and sees objects created while it was down${controlPlane ? '' : ` (skipped: ${NEEDS_LOCAL_CONTROL_PLANE})`}`,
    async () => {
      const ns = await testNamespace('watch-restart');
      const core = kubeConfig().makeApiClient(CoreV1Api);
      const create = (name: string) =>
        core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name } } });

      // The informer talks to an API server of its own, so only this test sees the restart.
      const apiserver = await controlPlane!.startApiServerReplica();
      const informer = new Informer<V1ConfigMap>(apiserver.kubeConfig, {
        path: `/api/v1/namespaces/${ns}/configmaps`,
      });
      const added: string[] = [];
      const deleted: string[] = [];
      informer.on('add', (cm) => added.push(cm.metadata?.name ?? ''));
      informer.on('delete', (cm) => deleted.push(cm.metadata?.name ?? ''));
      try {
        await create('before');
        await informer.start();
        expect(informer.hasSynced()).toBe(true);
        await create('watched');
        await vi.waitFor(() => expect(names(informer)).toContain('watched'), WAIT);

        await apiserver.stop();
        await create('while-down');
        await core.deleteNamespacedConfigMap({ namespace: ns, name: 'before' });
        await apiserver.start();

        await vi.waitFor(() => {
          expect(names(informer)).toEqual(
            expect.arrayContaining(['watched', 'while-down']) as string[],
          );
          expect(names(informer)).not.toContain('before');
        }, WAIT);
        expect(added).toContain('while-down');
        expect(deleted).toContain('before');

        // And the watch is live again, not just the one relist.
        await create('after');
        await vi.waitFor(() => expect(names(informer)).toContain('after'), WAIT);
      } finally {
        informer.stop();
      }
    },
  );
});
