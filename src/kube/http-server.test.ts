import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  parseBindAddress,
  ReadinessChecks,
  startHttpServer,
  type RunningHttpServer,
} from './http-server.ts';

describe('parseBindAddress', () => {
  it.each([
    [':8080', { host: undefined, port: 8080 }],
    ['127.0.0.1:9090', { host: '127.0.0.1', port: 9090 }],
    ['[::1]:0', { host: '::1', port: 0 }],
    ['8081', { host: undefined, port: 8081 }],
  ])('%s', (addr, want) => expect(parseBindAddress(addr)).toEqual(want));

  it('rejects nonsense with a message naming the input', () => {
    expect(() => parseBindAddress('localhost')).toThrow('got "localhost"');
    expect(() => parseBindAddress(':99999')).toThrow();
  });
});

describe('startHttpServer', () => {
  let running: RunningHttpServer | undefined;
  afterEach(async () => {
    await running?.close();
    running = undefined;
  });

  it('serves healthz, readyz with failing check names and reasons, and metrics', async () => {
    const registry = new Registry();
    new Counter({ name: 'demo_total', help: 'demo', registers: [registry] }).inc();
    let synced = false;
    const readiness = new ReadinessChecks()
      .add('informer/acceleratorleases', () => synced)
      .add('leader-election', () => 'standby: lease not readable')
      .add('broken', () => {
        throw new Error('boom');
      });
    running = await startHttpServer({ bindAddress: '127.0.0.1:0', registry, readiness });
    const base = `http://127.0.0.1:${running.port}`;

    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);

    let ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toBe(
      [
        '[-]informer/acceleratorleases failed: not ready',
        '[-]leader-election failed: standby: lease not readable',
        '[-]broken failed: boom',
        'not ready: informer/acceleratorleases, leader-election, broken\n',
      ].join('\n'),
    );

    synced = true;
    readiness.remove('broken');
    readiness.add('leader-election', () => true);
    ready = await fetch(`${base}/readyz?verbose`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe(
      '[+]informer/acceleratorleases ok\n[+]leader-election ok\nok\n',
    );

    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toContain('demo_total 1');

    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/healthz`, { method: 'POST' })).status).toBe(405);
  });
});
