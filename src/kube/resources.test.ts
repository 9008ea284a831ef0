import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeClient } from './client.ts';
import { isConflict, isNotFound, KubeApiError } from './errors.ts';
import { ACCELERATORS, ACCELERATOR_LEASES, ResourceClient, resourcePath } from './resources.ts';
import { status, TestApiServer } from './test-api-server.ts';

describe('resourcePath', () => {
  it('builds core, group, namespaced, cluster-scoped and subresource paths', () => {
    expect(resourcePath(ACCELERATORS, undefined, 'node-a-hl0', 'status')).toBe(
      '/apis/accel.dmabuf.io/v1alpha1/accelerators/node-a-hl0/status',
    );
    expect(resourcePath(ACCELERATOR_LEASES, 'team-a', 'tenant-a')).toBe(
      '/apis/accel.dmabuf.io/v1alpha1/namespaces/team-a/acceleratorleases/tenant-a',
    );
    expect(resourcePath(ACCELERATOR_LEASES)).toBe(
      '/apis/accel.dmabuf.io/v1alpha1/acceleratorleases',
    );
    expect(
      resourcePath(
        { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true },
        'ns',
      ),
    ).toBe('/api/v1/namespaces/ns/pods');
  });
});

describe('ResourceClient (against a loopback fake API server)', () => {
  let server: TestApiServer;
  let client: KubeClient;
  let leases: ResourceClient<{
    apiVersion?: string;
    kind?: string;
    metadata?: { name?: string; namespace?: string; resourceVersion?: string };
    spec?: { priority?: number };
  }>;

  beforeEach(async () => {
    server = await new TestApiServer().start();
    client = new KubeClient(server.kubeConfig());
    leases = new ResourceClient(client, ACCELERATOR_LEASES);
  });
  afterEach(() => server.stop());

  const last = () => server.requests.at(-1)!;

  it('merge-patches status with an explicit merge-patch content type', async () => {
    server.handler = (req) => ({ body: JSON.parse(req.body) as unknown });
    await leases.patchStatus('tenant-a', 'team-a', { phase: 'Granted' }, { resourceVersion: '7' });
    expect(last().method).toBe('PATCH');
    expect(last().url.pathname).toBe(
      '/apis/accel.dmabuf.io/v1alpha1/namespaces/team-a/acceleratorleases/tenant-a/status',
    );
    expect(last().headers['content-type']).toBe('application/merge-patch+json');
    expect(JSON.parse(last().body)).toEqual({
      status: { phase: 'Granted' },
      metadata: { resourceVersion: '7' },
    });
    expect(last().headers.authorization).toBe('Bearer test-token');
  });

  it('server-side applies with fieldManager and force', async () => {
    server.handler = (req) => ({ body: JSON.parse(req.body) as unknown });
    const obj = {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'AcceleratorLease',
      metadata: { name: 'tenant-a', namespace: 'team-a' },
      spec: { priority: 1 },
    };
    await leases.apply(obj, { fieldManager: 'accel-lease-controller', force: true });
    expect(last().headers['content-type']).toBe('application/apply-patch+yaml');
    expect(last().url.searchParams.get('fieldManager')).toBe('accel-lease-controller');
    expect(last().url.searchParams.get('force')).toBe('true');
    await leases.applyStatus(obj, { fieldManager: 'agent' });
    expect(last().url.pathname.endsWith('/tenant-a/status')).toBe(true);
    expect(last().url.searchParams.has('force')).toBe(false);
  });

  it('mutate re-reads and retries on 409 Conflict, then succeeds', async () => {
    let rv = 1;
    let puts = 0;
    server.handler = (req) => {
      if (req.method === 'GET') {
        return {
          body: {
            metadata: { name: 'x', namespace: 'ns', resourceVersion: String(rv) },
            spec: { priority: 0 },
          },
        };
      }
      puts++;
      const sent = JSON.parse(req.body) as { metadata: { resourceVersion: string } };
      if (puts <= 2) {
        rv++; // someone else wrote in between
        return status(409, 'Conflict', 'the object has been modified');
      }
      expect(sent.metadata.resourceVersion).toBe(String(rv));
      return { body: sent };
    };
    const out = await leases.mutate(
      'x',
      'ns',
      (o) => {
        o.spec = { priority: 5 };
      },
      { baseDelayMs: 1 },
    );
    expect(out.spec?.priority).toBe(5);
    expect(puts).toBe(3);
    expect(server.requests.filter((r) => r.method === 'GET')).toHaveLength(3);
    expect(client.requests.byVerb).toMatchObject({ get: 3, update: 3 });
    expect(client.requests.writes()).toBe(3);
  });

  it('mutate gives up after the attempt limit with the Conflict error', async () => {
    server.handler = (req) =>
      req.method === 'GET'
        ? { body: { metadata: { name: 'x', namespace: 'ns', resourceVersion: '1' } } }
        : status(409, 'Conflict');
    const err = await leases
      .mutate('x', 'ns', (o) => void (o.spec = { priority: 1 }), { attempts: 3, baseDelayMs: 1 })
      .catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);
    expect(server.requests.filter((r) => r.method === 'PUT')).toHaveLength(3);
  });

  it('mutate sends nothing when the change is a no-op, and starts from a cached copy', async () => {
    const cached = {
      metadata: { name: 'x', namespace: 'ns', resourceVersion: '1' },
      spec: { priority: 2 },
    };
    const out = await leases.mutate('x', 'ns', (o) => void (o.spec = { priority: 2 }), {
      current: cached,
    });
    expect(out).toBe(cached);
    expect(server.requests).toHaveLength(0);
  });

  it('turns failures into KubeApiError with code, reason and an actionable message', async () => {
    server.handler = () => status(404, 'NotFound', 'acceleratorleases "x" not found');
    const err = await leases.get('x', 'ns').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(isNotFound(err)).toBe(true);
    expect((err as Error).message).toBe(
      'GET /apis/accel.dmabuf.io/v1alpha1/namespaces/ns/acceleratorleases/x: 404 NotFound: acceleratorleases "x" not found',
    );
    expect(await leases.find('x', 'ns')).toBeUndefined();
    expect(await leases.delete('x', 'ns')).toBe(false);
    expect(() => leases.path(undefined, 'x')).toThrow(/namespace is required/);
  });

  it('lists across pages and fills in apiVersion and kind', async () => {
    server.handler = (req) =>
      req.url.searchParams.get('continue') === 'page2'
        ? { body: { metadata: { resourceVersion: '9' }, items: [{ metadata: { name: 'b' } }] } }
        : {
            body: {
              metadata: { resourceVersion: '8', continue: 'page2' },
              items: [{ metadata: { name: 'a' } }],
            },
          };
    const { items, resourceVersion } = await leases.list({ namespace: 'ns' });
    expect(items.map((i) => [i.kind, i.metadata?.name])).toEqual([
      ['AcceleratorLease', 'a'],
      ['AcceleratorLease', 'b'],
    ]);
    expect(resourceVersion).toBe('9');
    expect(client.requests.byVerb.list).toBe(2);
  });

  it('reports an unreachable server as code 0', async () => {
    await server.stop();
    const err = await leases.get('x', 'ns').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).code).toBe(0);
  });
});
