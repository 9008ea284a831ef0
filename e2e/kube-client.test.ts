// The counted client on a real API server: requests counted per KubeConfig by verb and code,
// errors that name what failed, and lists that follow continue tokens.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  exposeRequestMetrics,
  isNotFound,
  KubeApiError,
  KubeClient,
  ResourceClient,
  type ResourceType,
} from '../src/kube/index.ts';
import { kubeConfig, testNamespace } from './harness/index.ts';

const CONFIGMAPS: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'configmaps',
  kind: 'ConfigMap',
  namespaced: true,
};

describe('KubeClient on a real API server', () => {
  it('counts requests per KubeConfig by verb and code, and exports them to Prometheus', async () => {
    const ns = await testNamespace('kube-client');
    const kc = kubeConfig();
    const registry = new Registry();
    exposeRequestMetrics(kc, registry);
    const a = new ResourceClient(new KubeClient(kc), CONFIGMAPS);
    const b = new ResourceClient(new KubeClient(kc), CONFIGMAPS);
    const before = a.client.requests.total;
    await a.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'one', namespace: ns },
    });
    await b.get('one', ns);
    await b
      .create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'one', namespace: ns } })
      .catch(() => undefined);
    expect(a.client.requests).toBe(b.client.requests);
    expect(a.client.requests.total - before).toBe(3);
    expect(a.client.requests.byCode.get(409)).toBeGreaterThanOrEqual(1);
    expect(await registry.metrics()).toMatch(
      /rest_client_requests_total\{verb="create",code="409",resource="configmaps"\} [1-9]/,
    );
  });

  it('reports a missing object as a KubeApiError with code, reason and the path', async () => {
    const ns = await testNamespace('kube-client');
    const client = new ResourceClient(new KubeClient(kubeConfig()), CONFIGMAPS);
    const err = await client.get('absent', ns).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(isNotFound(err)).toBe(true);
    expect((err as KubeApiError).reason).toBe('NotFound');
    expect((err as KubeApiError).message).toContain(`/api/v1/namespaces/${ns}/configmaps/absent`);
    expect(await client.find('absent', ns)).toBeUndefined();
  });

  it('lists across pages with continue tokens', async () => {
    const ns = await testNamespace('kube-client');
    const client = new ResourceClient(new KubeClient(kubeConfig()), CONFIGMAPS);
    for (let i = 0; i < 7; i++) {
      await client.create({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: `cm-${i}`, namespace: ns },
      });
    }
    const stats = client.client.requests;
    const lists = stats.byVerb.list;
    const { items } = await client.list({ namespace: ns, limit: 3 });
    expect(items.map((c) => c.metadata?.name).filter((n) => n?.startsWith('cm-'))).toHaveLength(7);
    expect(stats.byVerb.list - lists).toBeGreaterThanOrEqual(3);
  });
});
