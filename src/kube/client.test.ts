import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadKubeConfig, resourceOf } from './client.ts';

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

describe('resourceOf', () => {
  it('names the resource and subresource of a path, namespaced or not', () => {
    expect(
      resourceOf('/apis/accel.dmabuf.io/v1alpha1/namespaces/t/acceleratorleases/a/status'),
    ).toBe('acceleratorleases/status');
    expect(resourceOf('/apis/accel.dmabuf.io/v1alpha1/accelerators/node-a-hl0')).toBe(
      'accelerators',
    );
    expect(resourceOf('/api/v1/namespaces/t/pods/p/eviction')).toBe('pods/eviction');
    expect(resourceOf('/apis/events.k8s.io/v1/namespaces/t/events')).toBe('events');
    expect(resourceOf('/api/v1/pods')).toBe('pods');
    expect(resourceOf('/api/v1/namespaces/t')).toBe('namespaces');
    expect(resourceOf('/api/v1/namespaces')).toBe('namespaces');
  });
});
