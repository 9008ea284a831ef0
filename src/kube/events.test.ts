import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from './clock.ts';
import { KubeClient } from './client.ts';
import {
  eventNamespace,
  observeOccurrence,
  seriesKey,
  truncateNote,
  type Occurrence,
} from './event-series.ts';
import { EventRecorder } from './events.ts';
import { status, TestApiServer } from './test-api-server.ts';

const lease = {
  apiVersion: 'accel.dmabuf.io/v1alpha1',
  kind: 'AcceleratorLease',
  namespace: 'team-a',
  name: 'tenant-a',
  uid: 'u1',
};
const occ = (note = 'export team-a/buf-1 is pinned'): Occurrence => ({
  regarding: lease,
  type: 'Warning',
  reason: 'Blocked',
  action: 'Handoff',
  note,
});
const fresh = { name: 'tenant-a.1', namespace: 'team-a' };

describe('observeOccurrence', () => {
  it('starts a series, extends it within the window, and starts over after it', () => {
    const first = observeOccurrence(undefined, 0, 60_000, fresh);
    expect(first).toEqual({ ...fresh, count: 1, firstObserved: 0, lastObserved: 0 });
    const second = observeOccurrence(first, 59_000, 60_000, { name: 'other', namespace: 'team-a' });
    expect(second).toEqual({ ...fresh, count: 2, firstObserved: 0, lastObserved: 59_000 });
    // The window is measured from the latest occurrence, so a steady trickle stays one Event.
    const third = observeOccurrence(second, 118_000, 60_000, {
      name: 'other',
      namespace: 'team-a',
    });
    expect(third.count).toBe(3);
    const later = observeOccurrence(third, 178_001, 60_000, { name: 'next', namespace: 'team-a' });
    expect(later).toEqual({
      name: 'next',
      namespace: 'team-a',
      count: 1,
      firstObserved: 178_001,
      lastObserved: 178_001,
    });
  });

  it('keys by object, type, reason, action and note', () => {
    expect(seriesKey(occ())).toBe(seriesKey(occ()));
    expect(seriesKey(occ())).not.toBe(seriesKey(occ('another note')));
    expect(seriesKey(occ())).not.toBe(seriesKey({ ...occ(), regarding: { ...lease, uid: 'u2' } }));
    expect(seriesKey(occ())).not.toBe(seriesKey({ ...occ(), reason: 'Granted' }));
  });

  it('puts events about cluster-scoped objects in default, and cuts long notes to 1 KiB', () => {
    expect(eventNamespace({ kind: 'Accelerator', name: 'node-a-hl0' })).toBe('default');
    expect(eventNamespace(lease)).toBe('team-a');
    const cut = truncateNote('é'.repeat(2000));
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(1024);
    expect(cut.endsWith('...')).toBe(true);
    expect(truncateNote('short')).toBe('short');
  });
});

describe('EventRecorder (against a loopback fake API server)', () => {
  let server: TestApiServer;
  let clock: FakeClock;
  let recorder: EventRecorder;

  beforeEach(async () => {
    server = await new TestApiServer().start();
    server.handler = (req) => ({
      status: req.method === 'POST' ? 201 : 200,
      body: JSON.parse(req.body) as unknown,
    });
    clock = new FakeClock(Date.UTC(2026, 0, 1));
    recorder = new EventRecorder(new KubeClient(server.kubeConfig()), {
      reportingController: 'accel.dmabuf.io/controller',
      reportingInstance: 'controller-0',
      clock,
      windowMs: 60_000,
    });
  });
  afterEach(() => server.stop());

  it('creates one Event, then updates its series for repeats', async () => {
    recorder.event(lease, 'Warning', 'Blocked', 'Handoff', 'pinned by rdma-mr nic0');
    await recorder.flush();
    clock.advance(1000);
    recorder.event(lease, 'Warning', 'Blocked', 'Handoff', 'pinned by rdma-mr nic0');
    await recorder.flush();
    clock.advance(1000);
    recorder.event(lease, 'Warning', 'Blocked', 'Handoff', 'pinned by rdma-mr nic0');
    await recorder.flush();

    const [create, ...patches] = server.requests;
    expect(create?.method).toBe('POST');
    expect(create?.url.pathname).toBe('/apis/events.k8s.io/v1/namespaces/team-a/events');
    const body = JSON.parse(create!.body) as Record<string, unknown>;
    expect(body).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      eventTime: '2026-01-01T00:00:00.000000Z',
      reportingController: 'accel.dmabuf.io/controller',
      reportingInstance: 'controller-0',
      reason: 'Blocked',
      action: 'Handoff',
      type: 'Warning',
      note: 'pinned by rdma-mr nic0',
      regarding: lease,
    });
    expect(body.series).toBeUndefined();
    const name = (body.metadata as { name: string }).name;
    expect(name).toMatch(/^tenant-a\.[0-9a-f]{16}$/);
    expect(
      patches.map((p) => [p.method, p.url.pathname.split('/').at(-1), p.headers['content-type']]),
    ).toEqual([
      ['PATCH', name, 'application/merge-patch+json'],
      ['PATCH', name, 'application/merge-patch+json'],
    ]);
    expect(JSON.parse(patches[1]!.body)).toEqual({
      series: { count: 3, lastObservedTime: '2026-01-01T00:00:02.000000Z' },
    });
  });

  it('coalesces a burst into one create carrying the series', async () => {
    for (let i = 0; i < 5; i++) recorder.event(lease, 'Normal', 'Granted', 'Grant', 'granted');
    await recorder.flush();
    expect(server.requests).toHaveLength(1);
    expect(JSON.parse(server.requests[0]!.body)).toMatchObject({ series: { count: 5 } });
  });

  it('starts a new Event when the old one has expired on the server', async () => {
    recorder.event(lease, 'Normal', 'Granted', 'Grant', 'granted');
    await recorder.flush();
    server.handler = (req) =>
      req.method === 'PATCH'
        ? status(404, 'NotFound')
        : { status: 201, body: JSON.parse(req.body) as unknown };
    recorder.event(lease, 'Normal', 'Granted', 'Grant', 'granted');
    await recorder.flush();
    expect(server.requests.map((r) => r.method)).toEqual(['POST', 'PATCH', 'POST']);
    expect(JSON.parse(server.requests[2]!.body)).toMatchObject({ series: { count: 2 } });
  });

  it('never throws into the caller when the API server refuses', async () => {
    server.handler = () => status(403, 'Forbidden', 'events.events.k8s.io is forbidden');
    expect(() => recorder.event(lease, 'Warning', 'Blocked', 'Handoff', 'x')).not.toThrow();
    await expect(recorder.flush()).resolves.toBeUndefined();
    await server.stop();
    expect(() => recorder.event(lease, 'Warning', 'Blocked', 'Handoff', 'y')).not.toThrow();
    await expect(recorder.flush()).resolves.toBeUndefined();
  });
});
