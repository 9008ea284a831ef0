import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpMethod } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FencedError, KubeClient, loadKubeConfig, resourceOf } from './client.ts';

function kubeconfigFile(server: string, context = 'main', ca?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kc-'));
  const file = join(dir, 'config');
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server, ...(ca && { 'certificate-authority': ca }) } }],
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

describe('a fenced client', () => {
  let server: Server;
  let received: string[] = [];
  let client: KubeClient;
  beforeAll(async () => {
    // The client refuses plain HTTP: a self-signed certificate for 127.0.0.1, as the CA.
    const dir = mkdtempSync(join(tmpdir(), 'tls-'));
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
        ...['-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'],
        ...['-addext', 'subjectAltName=IP:127.0.0.1'],
      ],
      { stdio: 'ignore' },
    );
    const tls = { key: readFileSync(key), cert: readFileSync(cert) };
    server = createServer(tls, (req, res) => {
      received.push(`${req.method} ${req.url}`);
      res.setHeader('Content-Type', 'application/json');
      res.end('{"kind":"Status"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const kubeconfig = kubeconfigFile(`https://127.0.0.1:${port}`, 'main', cert);
    client = new KubeClient(loadKubeConfig({ kubeconfig }));
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));
  afterEach(() => {
    received = [];
  });
  const post = (c: KubeClient) =>
    c.request({ method: HttpMethod.POST, path: '/api/v1/namespaces/t/pods/p/eviction', body: {} });

  it('sends while the fence says yes', async () => {
    await post(client.withFence(() => true));
    expect(received).toEqual(['POST /api/v1/namespaces/t/pods/p/eviction']);
  });

  it('sends nothing once the fence says no, and counts no request', async () => {
    const before = client.requests.total;
    await expect(post(client.withFence(() => false))).rejects.toBeInstanceOf(FencedError);
    expect(received).toEqual([]);
    expect(client.requests.total).toBe(before);
  });

  it('asks at the moment of writing, not when the request was begun', async () => {
    let leading = true;
    const asked: boolean[] = [];
    const sent = post(
      client.withFence(() => {
        asked.push(leading);
        return leading;
      }),
    );
    leading = false; // lost while the request waited for its credentials and connection
    await expect(sent).rejects.toBeInstanceOf(FencedError);
    expect(asked).toEqual([false]);
    expect(received).toEqual([]);
    // The connection it would have used still serves the unfenced client.
    await post(client);
    expect(received).toHaveLength(1);
  });
});
