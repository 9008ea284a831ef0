// reconcile and the executor, end to end on the simulation's in-memory API server: the writes
// clusterWrites makes, conditional on what the view read; crashes; pod calls and their answers.
import type { V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Accelerator, AcceleratorLease } from '../crds/index.ts';
import { LaggingCaches } from '../../test/simulation/caches.ts';
import { MemoryApi, ProcessDown, type Stored } from '../../test/simulation/memory-api.ts';
import { policy, T0 } from '../../test/fixtures/reaper.ts';
import { acceleratorKey, wakeKeys } from './keys.ts';
import { reconcile } from './reconcile.ts';
import { ControllerView } from './view.ts';
import { clusterPods, clusterReads, clusterWrites, type EventSink } from './writes.ts';

const ACCEL = 'node-a-hl0';

function cluster(opts: { refuse?: string } = {}) {
  let now = T0;
  const api = new MemoryApi(() => now, {
    refuseEviction: () => (opts.refuse === undefined ? undefined : { message: opts.refuse }),
    terminationMs: () => 1000,
  });
  api.put('accelerators', {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'Accelerator',
    metadata: { name: ACCEL },
    spec: {
      node: 'node-a',
      index: 0,
      model: 'gaudi2',
      memoryBytes: 2 ** 30,
      exporterProfile: 'static',
    },
  });
  const lease = (name: string): Stored => ({
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'AcceleratorLease',
    metadata: {
      name,
      namespace: 'team-a',
      uid: `uid-${name}`,
      generation: 1,
      creationTimestamp: new Date(now).toISOString(),
    },
    spec: {
      accelerator: ACCEL,
      holder: { podSelector: {} },
      priority: 0,
      revocation: { gracePeriodSeconds: 0, maxEvictions: 5 },
    },
  });
  const notes: string[] = [];
  const events: EventSink = {
    event: (_r, _t, reason) => notes.push(reason),
    eventRef: (r, _t, reason) => notes.push(`${reason} ${r.name}`),
  };
  /** A controller process: a fresh view over caches that read the API as it is now. */
  const controller = () => {
    const caches = new LaggingCaches(api);
    const view = new ControllerView(caches.asCaches(), {
      log: pino({ level: 'silent' }),
      onAdmissionChanged: () => undefined,
    });
    const client = api.controllerClient();
    const ports = {
      writes: view.recording(clusterWrites(client)),
      reads: clusterReads(client),
      pods: clusterPods(client),
      events,
      signal: new AbortController().signal,
      now: () => now,
    };
    const catchUp = () =>
      caches.deliver(Infinity, (e) => view.notice({ ...e } as Parameters<typeof view.notice>[0]));
    const run = (key = acceleratorKey(ACCEL)) =>
      reconcile(key, now, { view, policy: policy() }, ports);
    return { caches, view, run, catchUp };
  };
  /** The agent's report: the device enforces spec.owner, with these pins. */
  const agentReports = (pins: unknown[] = []) => {
    const a = api.get<Stored & Accelerator>('accelerators', ACCEL) as Stored & Accelerator;
    const owner = a.spec.owner;
    api.put('accelerators', {
      ...a,
      status: {
        phase: pins.length > 0 ? 'Stuck' : owner?.lease ? 'Owned' : 'Free',
        owner: pins.length > 0 ? { epoch: owner?.epoch ?? 0 } : owner,
        observedEpoch: owner?.epoch ?? 0,
        pins,
      },
    });
  };
  const tick = (ms: number) => (now += ms);
  return { api, lease, controller, agentReports, notes, tick };
}

const leaseOf = (api: MemoryApi, name: string) =>
  api.get<Stored & AcceleratorLease>('leases', `team-a/${name}`);
const ownerOf = (api: MemoryApi) =>
  api.get<Stored & Accelerator>('accelerators', ACCEL)?.spec.owner;

/**
 * team-a's lease is granted, then deleted while team-io/loader-0 still pins its memory, and
 * team-a/next waits: the device is handed to next and reported Stuck on that pin.
 */
async function stuckOnLoader(c: ReturnType<typeof cluster>) {
  c.api.put('pods', {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'loader-0', namespace: 'team-io', uid: 'uid-loader-0' },
    spec: { nodeName: 'node-a' },
  } as Stored & V1Pod);
  c.api.put('leases', c.lease('old'));
  const ctrl = c.controller();
  await ctrl.run();
  c.agentReports();
  ctrl.catchUp();
  await ctrl.run();
  c.api.put('leases', c.lease('next'));
  c.api.deleteObject('leases', 'team-a/old');
  ctrl.catchUp();
  await ctrl.run();
  expect(ownerOf(c.api)?.lease?.name).toBe('next');
  c.agentReports([
    {
      inode: 7,
      kind: 'rdma-mr',
      importer: 'imp0',
      pod: { namespace: 'team-io', name: 'loader-0' },
      podUID: 'uid-loader-0',
      pid: 4711,
      comm: 'loader',
      epoch: 1,
      since: new Date(T0).toISOString(),
    },
  ]);
  return ctrl;
}

describe('reconcile through the executor', () => {
  it('grants a free device in rounds, never conflicting with its own writes before the watch catches up', async () => {
    const c = cluster();
    c.api.put('leases', c.lease('a'));
    const ctrl = c.controller();
    // The caches never hear of our writes here: the view must read them back itself.
    await ctrl.run();
    expect(leaseOf(c.api, 'a')?.metadata.finalizers).toEqual(['accel.dmabuf.io/finalizer']);
    expect(ownerOf(c.api)).toEqual({
      lease: { namespace: 'team-a', name: 'a', uid: 'uid-a' },
      epoch: 1,
    });
    c.agentReports();
    ctrl.catchUp();
    await ctrl.run();
    expect(leaseOf(c.api, 'a')?.status?.phase).toBe('Granted');
    expect(leaseOf(c.api, 'a')?.status?.epoch).toBe(1);
  });

  it('raises the epoch exactly once when it crashes right after the owner change', async () => {
    const c = cluster();
    c.api.put('leases', c.lease('a'));
    let crashed = false;
    c.api.afterControllerWrite = (what) => {
      if (!crashed && what.startsWith('PATCH /apis/accel.dmabuf.io/v1alpha1/accelerators/')) {
        crashed = true;
        c.api.controllerDown = true;
        throw new ProcessDown(what);
      }
    };
    await expect(c.controller().run()).rejects.toThrow(ProcessDown);
    c.api.controllerDown = false;
    expect(ownerOf(c.api)?.epoch).toBe(1);
    // A new process, from fresh caches: it sees the owner it wrote and does not write it again.
    const restarted = c.controller();
    await restarted.run();
    expect(ownerOf(c.api)?.epoch).toBe(1);
    c.agentReports();
    restarted.catchUp();
    await restarted.run();
    expect(leaseOf(c.api, 'a')?.status?.phase).toBe('Granted');
  });

  it('folds a refused eviction back into the record, and says so in an Event on the pod', async () => {
    const c = cluster({
      refuse: 'Cannot evict pod as it would violate the pod disruption budget.',
    });
    const ctrl = await stuckOnLoader(c);
    for (let i = 0; i < 3; i++) {
      ctrl.catchUp();
      await ctrl.run();
      c.tick(1000);
    }
    const record = leaseOf(c.api, 'next')?.status?.evictions?.[0];
    expect(record).toMatchObject({ uid: 'uid-loader-0', result: 'Refused', attempts: 1 });
    expect(c.notes).toContain('EvictionRefused loader-0');
    expect(c.api.get('pods', 'team-io/loader-0')).toBeDefined();
  });

  it('does not evict a pod the device, read live, no longer reports pinning', async () => {
    const c = cluster();
    const ctrl = await stuckOnLoader(c);
    const record = () => leaseOf(c.api, 'next')?.status?.evictions?.[0];
    for (let i = 0; i < 5 && record()?.result !== 'Planned'; i++) {
      ctrl.catchUp();
      await ctrl.run();
      c.tick(1000);
    }
    expect(record()?.result).toBe('Planned');
    // The pod lets go; the agent reports it, but the controller's watch has not delivered it.
    c.agentReports([]);
    await ctrl.run();
    expect(record()).toMatchObject({ result: 'Evicting', attempts: 1 });
    expect(
      c.api.get<Stored & V1Pod>('pods', 'team-io/loader-0')?.metadata?.deletionTimestamp,
    ).toBeUndefined();
  });

  it('wakes the stuck devices whose pins name a pod that went away', () => {
    const stuck = {
      metadata: { name: ACCEL },
      status: { phase: 'Stuck', pins: [{ pod: { namespace: 'team-io', name: 'loader-0' } }] },
    } as unknown as Accelerator;
    const pod = { metadata: { namespace: 'team-io', name: 'loader-0' } } as V1Pod;
    expect(wakeKeys({ resource: 'pods', type: 'delete', obj: pod }, () => [stuck])).toEqual([
      acceleratorKey(ACCEL),
    ]);
    expect(wakeKeys({ resource: 'pods', type: 'add', obj: pod }, () => [stuck])).toEqual([]);
  });

  it("wakes the stuck devices when another handoff's eviction records change", () => {
    const stuck = { metadata: { name: 'node-a-hl1' }, status: { phase: 'Stuck' } } as Accelerator;
    const lease = (evictions: unknown[]) =>
      ({
        metadata: { name: 'b', namespace: 't' },
        spec: { accelerator: ACCEL },
        status: { evictions },
      }) as unknown as AcceleratorLease;
    const record = {
      pod: { namespace: 'io', name: 'p' },
      uid: 'u',
      reason: 'r',
      result: 'Refused',
    };
    const finished = { ...record, finished: '2026-11-25T10:01:00Z' };
    const change = (before: unknown[], after: unknown[]) =>
      wakeKeys(
        { resource: 'leases', type: 'update', obj: lease(after), old: lease(before) },
        () => [stuck],
      );
    expect(change([record], [finished])).toContain(acceleratorKey('node-a-hl1'));
    expect(change([record], [record])).not.toContain(acceleratorKey('node-a-hl1'));
  });
});
