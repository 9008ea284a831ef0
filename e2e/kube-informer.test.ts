// The project's informer against a real kube-apiserver: it sees adds, updates and deletes, and
// a quiet watch stays open past a minute (client-node 2.0.x's own Watch gives up after 30 s).
import type { V1ConfigMap } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { Informer, KubeClient, requestStats, ResourceClient } from '../src/kube/index.ts';
import { kubeConfig, testNamespace } from './harness/index.ts';

const CONFIGMAPS = {
  group: '',
  version: 'v1',
  plural: 'configmaps',
  kind: 'ConfigMap',
  namespaced: true,
};
const WAIT = { timeout: 30_000, interval: 100 };

describe('Informer on a real API server', () => {
  it('delivers add, update and delete, and its cache follows', async () => {
    const ns = await testNamespace('kube-informer');
    const kc = kubeConfig();
    const cms = new ResourceClient<V1ConfigMap>(new KubeClient(kc), CONFIGMAPS);
    // The label keeps out kube-root-ca.crt, which kube-controller-manager puts in every namespace.
    const labels = { app: 'kube-informer-e2e' };
    await cms.create({ metadata: { name: 'before', namespace: ns, labels }, data: { v: '0' } });
    await cms.create({ metadata: { name: 'unlabelled', namespace: ns } });

    const informer = new Informer<V1ConfigMap>(kc, {
      path: `/api/v1/namespaces/${ns}/configmaps`,
      labelSelector: 'app=kube-informer-e2e',
      name: 'configmaps',
    });
    const events: string[] = [];
    informer.on('add', (o) => events.push(`add ${o.metadata?.name}`));
    informer.on('update', (o, old) =>
      events.push(`update ${o.metadata?.name} ${old.data?.v}->${o.data?.v}`),
    );
    informer.on('delete', (o) => events.push(`delete ${o.metadata?.name}`));
    try {
      await informer.start();
      expect(informer.hasSynced()).toBe(true);
      expect(informer.get(`${ns}/before`)?.kind).toBe('ConfigMap');

      await cms.create({ metadata: { name: 'x', namespace: ns, labels }, data: { v: '1' } });
      await vi.waitFor(() => expect(informer.get(`${ns}/x`)).toBeDefined(), WAIT);
      await cms.mergePatch('x', ns, { data: { v: '2' } });
      await vi.waitFor(() => expect(informer.get(`${ns}/x`)?.data?.v).toBe('2'), WAIT);
      await cms.delete('x', ns);
      await vi.waitFor(() => expect(informer.get(`${ns}/x`)).toBeUndefined(), WAIT);

      expect(events).toEqual(['add before', 'add x', 'update x 1->2', 'delete x']);
      // The API server sends managedFields; the default transform drops them on the way in.
      const raw = await cms.get('before', ns);
      expect(raw.metadata?.managedFields?.length).toBeGreaterThan(0);
      expect(informer.get(`${ns}/before`)?.metadata?.managedFields).toBeUndefined();
      expect(informer.get(`${ns}/unlabelled`)).toBeUndefined();
      expect(informer.stats()).toMatchObject({
        lists: 1,
        watches: 1,
        errors: 0,
        watchdogRestarts: 0,
      });
    } finally {
      informer.stop();
    }
  });

  it('applies its transform to listed and watched objects, deletions included', async () => {
    const ns = await testNamespace('kube-informer-transform');
    const kc = kubeConfig();
    const cms = new ResourceClient<V1ConfigMap>(new KubeClient(kc), CONFIGMAPS);
    const labels = { app: 'kube-informer-e2e' };
    await cms.create({
      metadata: { name: 'a', namespace: ns, labels },
      data: { v: '0', big: 'x' },
    });
    const informer = new Informer<V1ConfigMap>(kc, {
      path: `/api/v1/namespaces/${ns}/configmaps`,
      labelSelector: 'app=kube-informer-e2e',
      transform: (cm) => ({ metadata: cm.metadata, data: { v: cm.data?.v ?? '' } }),
    });
    const seen: string[] = [];
    const show = (o: V1ConfigMap) => JSON.stringify(o.data);
    informer.on('add', (o) => seen.push(`add ${show(o)}`));
    informer.on('update', (o, old) => seen.push(`update ${show(old)} ${show(o)}`));
    informer.on('delete', (o) => seen.push(`delete ${show(o)}`));
    try {
      await informer.start();
      await cms.mergePatch('a', ns, { data: { v: '1' } });
      await vi.waitFor(() => expect(informer.get(`${ns}/a`)?.data?.v).toBe('1'), WAIT);
      await cms.delete('a', ns);
      await vi.waitFor(() => expect(informer.get(`${ns}/a`)).toBeUndefined(), WAIT);
      expect(seen).toEqual(['add {"v":"0"}', 'update {"v":"0"} {"v":"1"}', 'delete {"v":"1"}']);
    } finally {
      informer.stop();
    }
  });

  it('keeps one quiet watch open for more than a minute, then still delivers', async () => {
    const ns = await testNamespace('kube-watch-long');
    const kc = kubeConfig();
    const informer = new Informer<V1ConfigMap>(kc, { path: `/api/v1/namespaces/${ns}/configmaps` });
    const added: string[] = [];
    informer.on('add', (o) => added.push(o.metadata?.name ?? ''));
    try {
      await informer.start();
      const rvAtStart = informer.lastResourceVersion();
      await new Promise((r) => setTimeout(r, 75_000));
      // One list, one watch: nothing restarted it in 75 s of silence (bookmarks aside).
      expect(informer.stats()).toMatchObject({
        lists: 1,
        watches: 1,
        errors: 0,
        watchdogRestarts: 0,
      });
      expect(requestStats(kc).byVerb.watch).toBe(1);
      // Bookmarks arrived meanwhile (about once a minute) and moved the resourceVersion on.
      expect(informer.lastResourceVersion()).not.toBe(rvAtStart);

      const cms = new ResourceClient<V1ConfigMap>(new KubeClient(kc), CONFIGMAPS);
      await cms.create({ metadata: { name: 'late', namespace: ns } });
      await vi.waitFor(() => expect(added).toContain('late'), WAIT);
      expect(informer.stats().watches).toBe(1);
    } finally {
      informer.stop();
    }
  }, 150_000);
});
