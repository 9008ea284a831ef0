import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { exposeRequestMetrics, KubeClient, loadKubeConfig, requestStats } from './client.ts';
import { TestApiServer } from './test-api-server.ts';

function kubeconfigFile(server: string, context = 'main'): string {
  const dir = mkdtempSync(join(tmpdir(), 'kc-'));
  const file = join(dir, 'config');
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [
        { name: 'main', context: { cluster: 'c', user: 'u' } },
        { name: 'other', context: { cluster: 'c', user: 'u', namespace: 'x' } },
      ],
      'current-context': context,
    }),
  );
  return file;
}

describe('loadKubeConfig', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it('prefers --kubeconfig over KUBECONFIG', () => {
    process.env.KUBECONFIG = kubeconfigFile('https://from-env:6443');
    const kc = loadKubeConfig({ kubeconfig: kubeconfigFile('https://from-flag:6443') });
    expect(kc.getCurrentCluster()?.server).toBe('https://from-flag:6443');
  });

  it('falls back to KUBECONFIG, and honours --context', () => {
    process.env.KUBECONFIG = kubeconfigFile('https://from-env:6443');
    expect(loadKubeConfig().getCurrentCluster()?.server).toBe('https://from-env:6443');
    expect(loadKubeConfig({ context: 'other' }).getCurrentContext()).toBe('other');
  });

  it('names a missing file', () => {
    expect(() => loadKubeConfig({ kubeconfig: '/nonexistent/kubeconfig' })).toThrow(
      'kubeconfig /nonexistent/kubeconfig does not exist',
    );
  });
});

describe('request counting', () => {
  let server: TestApiServer | undefined;
  afterEach(() => server?.stop());

  it('counts per KubeConfig across clients, by verb and code, and feeds Prometheus', async () => {
    server = await new TestApiServer().start();
    server.handler = (req) =>
      req.method === 'GET' ? { body: {} } : { status: 409, body: { code: 409 } };
    const kc = server.kubeConfig();
    const registry = new Registry();
    exposeRequestMetrics(kc, registry);
    const a = new KubeClient(kc);
    const b = new KubeClient(kc);
    await a.request({ method: 'GET', path: '/api/v1/namespaces/x' });
    await b.request({ method: 'GET', path: '/api/v1/pods', verb: 'list' });
    await b
      .request({ method: 'PUT', path: '/api/v1/namespaces/x', body: {} })
      .catch(() => undefined);
    expect(a.requests).toBe(requestStats(kc));
    expect(a.requests.total).toBe(3);
    expect(a.requests.byVerb).toMatchObject({ get: 1, list: 1, update: 1 });
    expect(a.requests.writes()).toBe(1);
    expect(a.requests.byCode.get(409)).toBe(1);
    const text = await registry.metrics();
    expect(text).toContain('rest_client_requests_total{verb="update",code="409"} 1');
    expect(text).toContain('rest_client_requests_total{verb="get",code="200"} 1');
  });
});
