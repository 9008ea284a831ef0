// The controller's writes as the API server receives them: what each merge patch carries.
import { describe, expect, it } from 'vitest';
import type { Accelerator, EvictionRecord } from '../crds/index.ts';
import type { KubeClient } from '../kube/index.ts';
import { clusterPods, clusterWrites, fenced, type EventSink } from './writes.ts';

const record: EvictionRecord = {
  pod: { namespace: 'team-io', name: 'loader-0' },
  uid: 'uid-loader-0',
  reason: 'holds rdma-mr importer nic0',
  result: 'Evicting',
  started: '2026-11-25T10:00:31Z',
  attempts: 1,
  lastAttemptTime: '2026-11-25T10:00:31Z',
};

const accel: Accelerator = {
  apiVersion: 'accel.dmabuf.io/v1alpha1',
  kind: 'Accelerator',
  metadata: { name: 'node-a-hl0', resourceVersion: '7' },
  spec: {
    node: 'node-a',
    index: 0,
    model: 'gaudi2',
    memoryBytes: 1,
    exporterProfile: 'static',
    owner: { epoch: 3, idleEvictions: [record] },
  },
};

function recorded() {
  const calls: { method: string; path: string; body: unknown; contentType?: string }[] = [];
  const client = {
    request: (req: { method: string; path: string; body: unknown; contentType?: string }) => {
      calls.push(req);
      return Promise.resolve(accel);
    },
  } as unknown as KubeClient;
  return { calls, writes: clusterWrites(client) };
}

describe('clusterWrites', () => {
  it('drops the idle records with every owner change: they belong to the epoch they were made in', async () => {
    const { calls, writes } = recorded();
    const lease = { namespace: 'team-b', name: 'next', uid: 'uid-next' };
    await writes.setOwner(accel, { lease, epoch: 4 }, '2026-11-25T10:01:00.000Z');
    expect(calls[0]?.body).toEqual({
      metadata: {
        resourceVersion: '7',
        annotations: { 'accel.dmabuf.io/last-handoff': '2026-11-25T10:01:00.000Z' },
      },
      spec: { owner: { lease, epoch: 4, idleEvictions: null } },
    });
  });

  it('stores idle records as a merge patch of spec.owner, conditional on the version read', async () => {
    const { calls, writes } = recorded();
    await writes.setIdleEvictions(accel, [record]);
    await writes.setIdleEvictions(accel, []);
    expect(calls.map((c) => [c.method, c.path, c.contentType])).toEqual([
      [
        'PATCH',
        '/apis/accel.dmabuf.io/v1alpha1/accelerators/node-a-hl0',
        expect.stringContaining('merge-patch'),
      ],
      [
        'PATCH',
        '/apis/accel.dmabuf.io/v1alpha1/accelerators/node-a-hl0',
        expect.stringContaining('merge-patch'),
      ],
    ]);
    expect(calls.map((c) => c.body)).toEqual([
      { metadata: { resourceVersion: '7' }, spec: { owner: { idleEvictions: [record] } } },
      { metadata: { resourceVersion: '7' }, spec: { owner: { idleEvictions: null } } },
    ]);
  });
});

describe('fenced', () => {
  it('sends nothing once the fence says this replica no longer leads, and the write before it goes out', async () => {
    const calls: string[] = [];
    const client = {
      request: (req: { method: string; path: string }) => {
        calls.push(`${req.method} ${req.path}`);
        return Promise.resolve(accel);
      },
    } as unknown as KubeClient;
    const events: string[] = [];
    const sink: EventSink = {
      event: (_r, _t, reason) => events.push(reason),
      eventRef: (_r, _t, reason) => events.push(reason),
    };
    const leadership = new AbortController();
    let leading = true;
    const fence = () => {
      if (!leading) leadership.abort(new Error('leadership lost: not renewed'));
      return leading;
    };
    const ports = fenced(
      { writes: clusterWrites(client), pods: clusterPods(client), events: sink },
      fence,
      leadership.signal,
    );
    await ports.writes.annotate(accel, { a: 'b' });
    ports.events.event(accel, 'Normal', 'Before', 'Test', 'sent');
    leading = false;
    await expect(ports.writes.setIdleEvictions(accel, [])).rejects.toThrow(/leadership lost/);
    // Every write the port has, not only those listed when the fence was written.
    for (const [name, write] of Object.entries(ports.writes)) {
      await expect(
        (write as (...a: unknown[]) => Promise<unknown>)(accel, {}),
        name,
      ).rejects.toThrow(/leadership lost/);
    }
    const evict = { type: 'evict', pod: record.pod, uid: record.uid } as const;
    expect(await ports.pods.call(evict as never, leadership.signal)).toEqual({
      kind: 'failed',
      message: 'not sent: leadership lost: not renewed',
    });
    ports.events.event(accel, 'Normal', 'After', 'Test', 'dropped');
    expect(calls).toEqual(['PATCH /apis/accel.dmabuf.io/v1alpha1/accelerators/node-a-hl0']);
    expect(events).toEqual(['Before']);
    expect(leadership.signal.aborted).toBe(true);
  });
});
