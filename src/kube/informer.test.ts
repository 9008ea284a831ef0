import type { V1ConfigMap } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { requestStats } from './client.ts';
import { Informer } from './informer.ts';
import { diffRelist, objectKey, splitKey } from './relist-diff.ts';
import { TestApiServer } from './test-api-server.ts';

const PATH = '/api/v1/namespaces/ns/configmaps';
const cm = (name: string, rv: string, data: Record<string, string> = {}): V1ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'ns', resourceVersion: rv },
  data,
});

describe('diffRelist', () => {
  it('deletes what vanished, adds what is new, updates the rest', () => {
    const old = new Map([
      ['ns/a', cm('a', '1')],
      ['ns/b', cm('b', '2')],
      ['ns/c', cm('c', '3')],
    ]);
    const diff = diffRelist(old, [cm('b', '2'), cm('c', '7'), cm('d', '8')]);
    expect(diff.deleted.map((o) => o.metadata?.name)).toEqual(['a']);
    expect(diff.added.map((o) => o.metadata?.name)).toEqual(['d']);
    expect(
      diff.updated.map((u) => [u.old.metadata?.resourceVersion, u.obj.metadata?.resourceVersion]),
    ).toEqual([
      ['2', '2'],
      ['3', '7'],
    ]);
    expect([...diff.cache.keys()]).toEqual(['ns/b', 'ns/c', 'ns/d']);
    expect(old.size).toBe(3); // the old cache is not touched
  });

  it('an empty list deletes everything; an empty cache adds everything', () => {
    const old = new Map([['ns/a', cm('a', '1')]]);
    expect(diffRelist(old, []).deleted).toHaveLength(1);
    expect(diffRelist(new Map(), [cm('a', '1')]).added).toHaveLength(1);
  });

  it('keys namespaced objects as ns/name and cluster-scoped ones as name', () => {
    expect(objectKey(cm('a', '1'))).toBe('ns/a');
    expect(objectKey({ metadata: { name: 'node-a-hl0' } })).toBe('node-a-hl0');
    expect(splitKey('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(splitKey('node-a-hl0')).toEqual({ namespace: undefined, name: 'node-a-hl0' });
  });
});

describe('Informer (against a loopback fake API server)', () => {
  let server: TestApiServer;
  let items: V1ConfigMap[];
  let listRv: string;
  let informer: Informer<V1ConfigMap> | undefined;

  beforeEach(async () => {
    server = await new TestApiServer().start();
    items = [cm('a', '10'), cm('b', '11')];
    listRv = '11';
    server.handler = (req) => {
      if (req.url.searchParams.get('watch') === 'true') return 'watch';
      return {
        body: {
          apiVersion: 'v1',
          kind: 'ConfigMapList',
          metadata: { resourceVersion: listRv },
          items,
        },
      };
    };
  });

  afterEach(async () => {
    informer?.stop();
    informer = undefined;
    await server.stop();
  });

  let kc: ReturnType<TestApiServer['kubeConfig']>;

  function start(opts: Partial<ConstructorParameters<typeof Informer>[1]> = {}) {
    kc = server.kubeConfig();
    informer = new Informer<V1ConfigMap>(kc, {
      path: PATH,
      labelSelector: 'app=x',
      backoff: { initialMs: 20, maxMs: 100 },
      ...opts,
    });
    const events: string[] = [];
    informer.on('add', (o) => events.push(`add ${o.metadata?.name}`));
    informer.on('update', (o, old) =>
      events.push(
        `update ${o.metadata?.name} ${old.metadata?.resourceVersion}->${o.metadata?.resourceVersion}`,
      ),
    );
    informer.on('delete', (o) => events.push(`delete ${o.metadata?.name}`));
    informer.on('resync', (o) => events.push(`resync ${o.metadata?.name}`));
    return { informer, events, started: informer.start() };
  }

  it('lists, then watches from the list resourceVersion with bookmarks, and applies events', async () => {
    const { informer, events, started } = start();
    await started;
    expect(informer.hasSynced()).toBe(true);
    expect(informer.list().map((o) => o.kind)).toEqual(['ConfigMap', 'ConfigMap']);
    await vi.waitFor(() => expect(server.openWatches()).toHaveLength(1));
    const watch = server.openWatches()[0]!;
    expect(watch.url.searchParams.get('resourceVersion')).toBe('11');
    expect(watch.url.searchParams.get('allowWatchBookmarks')).toBe('true');
    expect(watch.url.searchParams.get('labelSelector')).toBe('app=x');
    expect(Number(watch.url.searchParams.get('timeoutSeconds'))).toBeGreaterThanOrEqual(300);

    watch.send('ADDED', cm('c', '12'));
    watch.send('MODIFIED', cm('a', '13', { k: 'v' }));
    watch.send('DELETED', cm('b', '14'));
    watch.send('BOOKMARK', { kind: 'ConfigMap', metadata: { resourceVersion: '20' } });
    await vi.waitFor(() => expect(informer.lastResourceVersion()).toBe('20'));
    expect(events).toEqual(['add a', 'add b', 'add c', 'update a 10->13', 'delete b']);
    expect(informer.get('ns/a')?.data).toEqual({ k: 'v' });
    expect(informer.get('ns/b')).toBeUndefined();
    expect(requestStats(kc).byVerb).toMatchObject({ list: 1, watch: 1 });
    expect(requestStats(server.kubeConfig()).total).toBe(0); // counted per KubeConfig
  });

  it('resumes from the last resourceVersion when the server ends the watch, without relisting', async () => {
    const { informer, started } = start();
    await started;
    await vi.waitFor(() => expect(server.openWatches()).toHaveLength(1));
    const first = server.openWatches()[0]!;
    first.send('MODIFIED', cm('a', '15'));
    await vi.waitFor(() => expect(informer.lastResourceVersion()).toBe('15'));
    first.close();
    await vi.waitFor(() => expect(server.openWatches()).toHaveLength(1));
    expect(server.openWatches()[0]!.url.searchParams.get('resourceVersion')).toBe('15');
    expect(informer.stats()).toMatchObject({ lists: 1, watches: 2, errors: 0 });
  });

  it('relists on 410 Gone and delivers deletes for objects that vanished meanwhile', async () => {
    const { informer, events, started } = start();
    await started;
    await vi.waitFor(() => expect(server.openWatches()).toHaveLength(1));
    items = [cm('b', '30', { changed: 'yes' }), cm('z', '31')];
    listRv = '31';
    server.openWatches()[0]!.send('ERROR', {
      kind: 'Status',
      code: 410,
      reason: 'Expired',
      message: 'too old resource version',
    });
    await vi.waitFor(() => expect(informer.stats().lists).toBe(2));
    expect(events.slice(2)).toEqual(['delete a', 'add z', 'update b 11->30']);
    await vi.waitFor(() => expect(server.openWatches()).toHaveLength(1));
    expect(server.openWatches()[0]!.url.searchParams.get('resourceVersion')).toBe('31');
    expect(informer.stats().expired).toBe(1);
  });

  it('keeps retrying the first list with backoff until it succeeds', async () => {
    let failures = 3;
    const ok = server.handler;
    server.handler = (req) =>
      failures-- > 0
        ? { status: 500, body: { kind: 'Status', code: 500, message: 'etcd down' } }
        : ok(req);
    const { informer, started } = start();
    await started;
    expect(informer.stats()).toMatchObject({ lists: 1, errors: 3 });
  });

  it('reconnects after a watch error without losing the cache', async () => {
    const { informer, started } = start();
    await started;
    await vi.waitFor(() => expect(server.openWatches()).toHaveLength(1));
    server
      .openWatches()[0]!
      .send('ERROR', { kind: 'Status', code: 500, message: 'internal error' });
    await vi.waitFor(() => expect(informer.stats().watches).toBe(2));
    expect(informer.stats()).toMatchObject({ lists: 1, errors: 1 });
    expect(informer.list()).toHaveLength(2);
  });

  it('restarts a silent watch, but not one that gets bookmarks', async () => {
    const { informer, started } = start({ watchdogMs: 300 });
    await started;
    await vi.waitFor(() => expect(server.openWatches()).toHaveLength(1));
    const bookmarks = setInterval(() => {
      for (const w of server.openWatches())
        w.send('BOOKMARK', { metadata: { resourceVersion: '11' } });
    }, 50);
    await new Promise((r) => setTimeout(r, 1000));
    clearInterval(bookmarks);
    expect(informer.stats()).toMatchObject({ watches: 1, watchdogRestarts: 0 });
    // Now the connection goes quiet without closing: a half-open connection.
    await vi.waitFor(() => expect(informer.stats().watchdogRestarts).toBeGreaterThanOrEqual(1), {
      timeout: 2000,
    });
    await vi.waitFor(() => expect(informer.stats().watches).toBeGreaterThanOrEqual(2));
    expect(informer.stats().lists).toBe(1);
  });

  it('re-delivers the cache as resync events on the resync period', async () => {
    const { events, started } = start({ resyncPeriodMs: 100 });
    await started;
    await vi.waitFor(() => expect(events.filter((e) => e.startsWith('resync'))).toHaveLength(4));
    expect(events).toContain('resync a');
    expect(events).toContain('resync b');
  });

  it('keeps going when a handler throws', async () => {
    const { informer, started } = start();
    informer.on('add', () => {
      throw new Error('handler bug');
    });
    await started;
    await vi.waitFor(() => expect(server.openWatches()).toHaveLength(1));
    server.openWatches()[0]!.send('ADDED', cm('c', '12'));
    await vi.waitFor(() => expect(informer.get('ns/c')).toBeDefined());
  });

  it('stop() before the first list rejects start()', async () => {
    server.handler = () => ({ status: 503, body: { kind: 'Status', code: 503 } });
    const { informer, started } = start();
    informer.stop();
    await expect(started).rejects.toThrow(/stopped before its cache synced/);
  });
});
