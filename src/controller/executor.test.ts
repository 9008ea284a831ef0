// execute: concurrency between waits, order within one lease, and what a failure stops.
import { describe, expect, it } from 'vitest';
import type { Accelerator, AcceleratorLease } from '../crds/index.ts';
import type { Action } from './arbiter.ts';
import { runActions } from './executor.ts';
import type { EventSink, Writes } from './writes.ts';
import { KubeApiError } from '../kube/index.ts';

const lease = (name: string, rv = '1'): AcceleratorLease => ({
  apiVersion: 'accel.dmabuf.io/v1alpha1',
  kind: 'AcceleratorLease',
  metadata: { name, namespace: 't', uid: `uid-${name}`, resourceVersion: rv, finalizers: [] },
  spec: {
    accelerator: 'a',
    holder: { podSelector: {} },
    priority: 0,
    revocation: { gracePeriodSeconds: 30, maxEvictions: 5 },
  },
});
const accel = { metadata: { name: 'a' } } as Accelerator;

/** Writes that log when each starts and ends, resolving when the test says so. */
function recorder(fail?: string) {
  const log: string[] = [];
  const open = new Map<string, () => void>();
  const op = <T>(what: string, result: T): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      log.push(`start ${what}`);
      open.set(what, () => {
        log.push(`end ${what}`);
        if (what === fail) reject(new Error(`${what} failed`));
        else resolve(result);
      });
    });
  const writes: Writes = {
    setLeaseFinalizers: (l, f) =>
      op(`finalizers ${l.metadata.name}@${l.metadata.resourceVersion}`, {
        ...l,
        metadata: { ...l.metadata, finalizers: f, resourceVersion: '2' },
      }),
    replaceLeaseStatus: (l, status) =>
      op(`status ${l.metadata.name}@${l.metadata.resourceVersion}`, { ...l, status }),
    annotate: (a) => op('annotate', a),
    setIdleEvictions: (a) => op('idle evictions', a),
    setOwner: (a) => op('owner', a),
    createLease: (l) => op(`create ${l.metadata.name}`, l),
    deleteLease: (l) => op(`delete ${l.metadata.name}`, undefined),
    setClaimDeviceConditions: (c) => op(`claim ${c.metadata?.name}`, c),
    ungatePod: (p, node) => op(`ungate ${p.metadata?.name} ${node}`, undefined),
  };
  const events: EventSink = {
    event: (_r, _t, reason) => log.push(`event ${reason}`),
    eventRef: () => undefined,
  };
  /** Let every write started so far finish, in the order they started. */
  const finishAll = async () => {
    await new Promise((r) => setTimeout(r, 0));
    for (const [k, done] of [...open]) {
      open.delete(k);
      done();
    }
    await new Promise((r) => setTimeout(r, 0));
  };
  return { log, writes, events, finishAll };
}

const actions: Action[] = [
  { type: 'addFinalizer', lease: lease('b') },
  { type: 'leaseStatus', lease: lease('b'), status: { phase: 'Pending' } },
  { type: 'leaseStatus', lease: lease('a'), status: { phase: 'Releasing' } },
  { type: 'wait' },
  { type: 'setOwner', accelerator: accel, owner: { epoch: 2 } },
  { type: 'event', regarding: accel, eventType: 'Normal', reason: 'HandoffStarted', note: '' },
];

describe('runActions', () => {
  it('runs writes to different leases at once, one lease in order, and waits at a wait', async () => {
    const r = recorder();
    const done = runActions(actions, r.writes, r.events, '2026-11-25T10:00:00.000Z');
    await new Promise((res) => setTimeout(res, 0));
    expect(r.log).toEqual(['start finalizers b@1', 'start status a@1']);
    await r.finishAll();
    // b's status goes out with the resourceVersion its finalizer write returned.
    expect(r.log.slice(4)).toEqual(['start status b@2']);
    await r.finishAll();
    expect(r.log.at(-1)).toBe('start owner');
    await r.finishAll();
    await done;
    expect(r.log.at(-1)).toBe('event HandoffStarted');
  });

  it('starts nothing after the wait and records no Event when a write fails', async () => {
    const r = recorder('status a@1');
    const done = runActions(actions, r.writes, r.events, '2026-11-25T10:00:00.000Z');
    const outcome = expect(done).rejects.toThrow('status a@1 failed');
    await r.finishAll();
    await r.finishAll();
    await outcome;
    expect(r.log).toContain('end status b@2');
    expect(r.log.some((l) => l.includes('owner') || l.startsWith('event'))).toBe(false);
  });

  it('tells a claim why the API server refused its lease, and still fails the reconcile', async () => {
    const r = recorder();
    const refused: string[] = [];
    const claimLease = {
      ...lease('train'),
      metadata: {
        ...lease('train').metadata,
        ownerReferences: [{ kind: 'ResourceClaim', name: 'train', uid: 'claim-uid' }],
      },
    };
    const writes: Writes = {
      ...r.writes,
      createLease: () =>
        Promise.reject(
          new KubeApiError(
            'POST',
            '/apis/accel.dmabuf.io/v1alpha1/namespaces/b/acceleratorleases',
            422,
            {
              message: 'spec.revocation.gracePeriodSeconds: below 10',
            },
          ),
        ),
    };
    const events: EventSink = {
      event: () => undefined,
      eventRef: (ref, type, reason, _action, note) =>
        refused.push(`${ref.kind} ${ref.name} ${ref.uid} ${type} ${reason}: ${note}`),
    };
    await expect(
      runActions([{ type: 'createLease', lease: claimLease }], writes, events, 'now'),
    ).rejects.toThrow('below 10');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(/^ResourceClaim train claim-uid Warning LeaseRefused: .*below 10/);
  });
});
