// The reaper step, one behaviour at a time: grace, the Planned-first write, waves, retries,
// deadlines, dry run, budgets and rates, unresolvable pins, and restarts that repeat nothing.
import { describe, expect, it } from 'vitest';
import {
  idleEvictionsOf,
  type Accelerator,
  type AcceleratorLease,
  type EvictionOutcome,
  type EvictionRecord,
  type Pin,
} from '../crds/index.ts';
import { reap, withReaperStatus, type ReapDecision, type ReapInput } from './decide.ts';
import { CORDON_ANNOTATION, kubeTime } from '../crds/index.ts';
import type { ReaperEffect } from './effects.ts';
import {
  ACCEL,
  exportOf,
  NO_BUDGETS,
  NODE,
  pin,
  podsOf,
  policy,
  stuckAccel,
  T0,
  waitingLease,
} from '../../test/fixtures/reaper.ts';
import type { PodState } from './pods.ts';
import {
  lastAttempt,
  podsBeingEvicted,
  recordOutcome,
  requestsAfter,
  type CallOutcome,
} from './records.ts';

const GRACE_END = T0 + 30_000;

/** loader-0 holds an rdma-mr, viewer-0 an fd, trainer-0 exported the buffer (static device). */
const PINS: Pin[] = [
  pin('rdma-mr', 'team-io/loader-0', { export: 'team-a/buf-1', importer: 'nic0', pid: 11 }),
  pin('fd', 'team-io/loader-0', { export: 'team-a/buf-1', pid: 11 }),
  pin('fd', 'team-a/viewer-0', { export: 'team-a/buf-1', pid: 12 }),
  pin('fd', 'team-a/trainer-0', { export: 'team-a/buf-1', pid: 13 }),
];
const EXPORTS = [exportOf('team-a/buf-1', 'trainer-0')];

function input(over: Partial<ReapInput> = {}): ReapInput {
  return {
    accelerator: stuckAccel(PINS),
    exports: EXPORTS,
    pods: podsOf('team-io/loader-0', 'team-a/viewer-0', 'team-a/trainer-0', 'team-a/bystander'),
    disruptions: NO_BUDGETS,
    lease: waitingLease({ blockedAt: T0 }),
    policy: policy(),
    evictionsInLastMinute: 0,
    evictingElsewhere: new Set(),
    now: GRACE_END,
    ...over,
  };
}

/** The lease as the API server holds it after the runtime wrote the decision's status. */
function written(lease: AcceleratorLease, d: ReapDecision, now: number): AcceleratorLease {
  if (!d.leaseStatus) return lease;
  return { ...lease, status: withReaperStatus(lease.status, d.leaseStatus, now) };
}

const ofType = <T extends ReaperEffect['type']>(d: ReapDecision, type: T) =>
  d.effects.filter((e): e is Extract<ReaperEffect, { type: T }> => e.type === type);
const evicted = (d: ReapDecision) => ofType(d, 'evict').map((e) => `${e.pod.name}#${e.attempt}`);
const results = (l: AcceleratorLease) =>
  (l.status?.evictions ?? []).map((r) => `${r.pod.name}:${r.result}`);
const condition = (l: AcceleratorLease, type: string) =>
  l.status?.conditions?.find((c) => c.type === type);

describe('reap', () => {
  it('waits out the grace period, saying when evictions may start', () => {
    const d = reap(input({ now: T0 + 10_000 }));
    expect(d.effects).toEqual([]);
    expect(d.requeueAfterMs).toBe(20_000);
    expect(d.summary).toMatchObject({ state: 'GracePeriod', graceEndsAt: GRACE_END });
    expect(d.leaseStatus?.conditions).toEqual([
      expect.objectContaining({
        type: 'Reaping',
        status: 'False',
        reason: 'GracePeriod',
        message:
          'node-a-hl0 is pinned; evictions may start at 2026-11-25T10:00:30Z unless the pins go first',
      }),
    ]);
  });

  it('does not start the grace period before the lease is marked Blocked', () => {
    const d = reap(input({ lease: waitingLease(), now: T0 + 3_600_000 }));
    expect(d.effects).toEqual([]);
    expect(d.requeueAfterMs).toBe(30_000);
    expect(d.summary.graceEndsAt).toBeUndefined();
  });

  it('writes the first wave as Planned records before it sends anything', () => {
    const d = reap(input());
    expect(ofType(d, 'evict')).toEqual([]);
    expect(d.leaseStatus?.evictions).toEqual([
      {
        pod: { namespace: 'team-io', name: 'loader-0' },
        uid: 'uid-loader-0',
        reason:
          'holds rdma-mr importer nic0 of export team-a/buf-1; holds an fd of export team-a/buf-1',
        result: 'Planned',
      },
    ]);
    expect(d.summary).toMatchObject({
      state: 'Evicting',
      wave: 1,
      planSize: 3,
      graceEndsAt: GRACE_END,
    });
    expect(d.requeueAfterMs).toBe(0);
    expect(ofType(d, 'event').map((e) => [e.regarding.kind, e.reason])).toEqual([
      ['AcceleratorLease', 'Reaping'],
      ['Accelerator', 'Reaping'],
    ]);
  });

  it('then evicts the planned pods with their uid, and never again after a restart', () => {
    let lease = waitingLease({ blockedAt: T0 });
    let d = reap(input({ lease }));
    lease = written(lease, d, GRACE_END);
    d = reap(input({ lease, now: GRACE_END + 1000 }));
    expect(ofType(d, 'evict')).toEqual([
      expect.objectContaining({
        pod: { namespace: 'team-io', name: 'loader-0' },
        uid: 'uid-loader-0',
        attempt: 1,
      }),
    ]);
    lease = written(lease, d, GRACE_END + 1000);
    expect(lease.status?.evictions?.[0]).toMatchObject({
      result: 'Evicting',
      started: '2026-11-25T10:00:31Z',
      message: 'attempt 1 at 2026-11-25T10:00:31Z: eviction requested',
    });
    // The pod is terminating: a restarted controller only has the lease, and sends nothing.
    const pods = podsOf('team-a/viewer-0', 'team-a/trainer-0');
    pods.set('team-io/loader-0', {
      uid: 'uid-loader-0',
      nodeName: NODE,
      deletionTimestamp: kubeTime(GRACE_END),
    });
    for (const now of [GRACE_END + 2000, GRACE_END + 60_000]) {
      d = reap(input({ lease, pods, now }));
      expect(ofType(d, 'evict')).toEqual([]);
      expect(d.summary.state).toBe('Evicting');
    }
    expect(condition(written(lease, d, GRACE_END + 60_000), 'Reaping')).toMatchObject({
      status: 'True',
      reason: 'Evicting',
    });
  });

  it('marks a record Evicted only once the pod is gone, not while it terminates', () => {
    const rec: EvictionRecord = {
      pod: { namespace: 'team-io', name: 'loader-0' },
      uid: 'uid-loader-0',
      reason: 'r',
      result: 'Evicting',
      started: kubeTime(GRACE_END),
      attempts: 1,
      lastAttemptTime: kubeTime(GRACE_END),
      message: `attempt 1 at ${kubeTime(GRACE_END)}: eviction accepted`,
    };
    const lease = waitingLease({ blockedAt: T0, evictions: [rec] });
    const terminating = new Map<string, PodState>([
      [
        'team-io/loader-0',
        { uid: 'uid-loader-0', nodeName: NODE, deletionTimestamp: kubeTime(GRACE_END) },
      ],
    ]);
    expect(reap(input({ lease, pods: terminating })).leaseStatus?.evictions).toEqual([rec]);
    const gone = reap(input({ lease, pods: new Map(), now: GRACE_END + 5000 }));
    expect(gone.leaseStatus?.evictions).toEqual([
      { ...rec, result: 'Evicted', finished: '2026-11-25T10:00:35Z' },
    ]);
    // A replacement pod of the same name is another pod: the record is done, and the
    // replacement is not evicted even though the agent still reports the old pod's pins.
    const replaced = new Map<string, PodState>([
      ['team-io/loader-0', { uid: 'uid-new', nodeName: NODE }],
    ]);
    const d = reap(input({ lease, pods: replaced, now: GRACE_END + 5000 }));
    expect(d.leaseStatus?.evictions?.[0]?.result).toBe('Evicted');
    expect(d.leaseStatus?.evictions?.map((r) => r.uid)).not.toContain('uid-new');
    expect(ofType(d, 'evict')).toEqual([]);
    expect(d.summary.state).toBe('Waiting');
  });

  it('moves to the next rank only once the device reports fresh pins', () => {
    const rec: EvictionRecord = {
      pod: { namespace: 'team-io', name: 'loader-0' },
      uid: 'uid-loader-0',
      reason: 'r',
      result: 'Evicted',
      started: kubeTime(GRACE_END),
      finished: kubeTime(GRACE_END + 5000),
    };
    const lease = waitingLease({ blockedAt: T0, evictions: [rec] });
    const pods = podsOf('team-a/viewer-0', 'team-a/trainer-0');
    const stale = reap(input({ lease, pods, now: GRACE_END + 6000 }));
    expect(stale.leaseStatus?.evictions).toEqual([rec]);
    expect(stale.summary.state).toBe('Waiting');
    const fresh = reap(
      input({ lease, pods, now: GRACE_END + 7000, accelerator: stuckAccel(PINS.slice(2)) }),
    );
    expect(results(written(lease, fresh, 0))).toEqual(['loader-0:Evicted', 'viewer-0:Planned']);
    expect(fresh.summary.wave).toBe(2);
  });

  it('retries a PodDisruptionBudget refusal after a backoff that doubles', () => {
    const p = policy({ retryInitialMs: 5000, retryMaxMs: 60_000 });
    let lease = waitingLease({ blockedAt: T0 });
    lease = written(lease, reap(input({ lease, policy: p })), GRACE_END);
    let now = GRACE_END + 1000;
    let d = reap(input({ lease, policy: p, now }));
    lease = written(lease, d, now);
    const folded = recordOutcome(
      lease.status?.evictions ?? [],
      { type: 'evict', uid: 'uid-loader-0' },
      { kind: 'refused', message: 'Cannot evict pod as it would violate the disruption budget.' },
      now,
    );
    expect(folded.effects).toEqual([
      expect.objectContaining({ reason: 'EvictionRefused', eventType: 'Warning' }),
    ]);
    lease = { ...lease, status: { ...lease.status, evictions: folded.records } };
    expect(lease.status?.evictions?.[0]).toMatchObject({
      result: 'Refused',
      attempts: 1,
      lastOutcome: 'Refused',
      message:
        'attempt 1 at 2026-11-25T10:00:31Z: refused by a PodDisruptionBudget (429): Cannot evict pod as it would violate the disruption budget.',
    });
    d = reap(input({ lease, policy: p, now: now + 4000 }));
    expect(evicted(d)).toEqual([]);
    expect(d.requeueAfterMs).toBe(1000);
    now += 5000;
    d = reap(input({ lease, policy: p, now }));
    expect(evicted(d)).toEqual(['loader-0#2']);
    lease = written(lease, d, now);
    // The new attempt has no answer yet: the refusal belonged to the one before.
    expect(lease.status?.evictions?.[0]).toMatchObject({
      result: 'Evicting',
      attempts: 2,
      lastAttemptTime: kubeTime(now),
      message: `attempt 2 at ${kubeTime(now)}: eviction requested again: the last one was refused by a PodDisruptionBudget`,
    });
    expect(lease.status?.evictions?.[0]).not.toHaveProperty('lastOutcome');
    const again = recordOutcome(
      lease.status?.evictions ?? [],
      { type: 'evict', uid: 'uid-loader-0' },
      { kind: 'refused', message: 'still' },
      now,
    );
    lease = { ...lease, status: { ...lease.status, evictions: again.records } };
    expect(evicted(reap(input({ lease, policy: p, now: now + 9000 })))).toEqual([]);
    expect(evicted(reap(input({ lease, policy: p, now: now + 10_000 })))).toEqual(['loader-0#3']);
  });

  it('sends again an eviction whose answer was lost, but only once the pod shows no deletion', () => {
    const rec: EvictionRecord = {
      pod: { namespace: 'team-io', name: 'loader-0' },
      uid: 'uid-loader-0',
      reason: 'r',
      result: 'Evicting',
      started: kubeTime(GRACE_END),
      attempts: 1,
      lastAttemptTime: kubeTime(GRACE_END),
      message: `attempt 1 at ${kubeTime(GRACE_END)}: eviction requested`,
    };
    const lease = waitingLease({ blockedAt: T0, evictions: [rec] });
    expect(evicted(reap(input({ lease, now: GRACE_END + 4000 })))).toEqual([]);
    expect(evicted(reap(input({ lease, now: GRACE_END + 5000 })))).toEqual(['loader-0#2']);
  });

  describe('after the eviction deadline', () => {
    const rec: EvictionRecord = {
      pod: { namespace: 'team-io', name: 'loader-0' },
      uid: 'uid-loader-0',
      reason: 'r',
      result: 'Evicting',
      started: kubeTime(GRACE_END),
      attempts: 1,
      lastAttemptTime: kubeTime(GRACE_END),
      message: `attempt 1 at ${kubeTime(GRACE_END)}: eviction accepted`,
    };
    const lease = waitingLease({ blockedAt: T0, evictions: [rec] });
    const pods = podsOf('team-a/viewer-0', 'team-a/trainer-0');
    pods.set('team-io/loader-0', {
      uid: 'uid-loader-0',
      nodeName: NODE,
      deletionTimestamp: kubeTime(GRACE_END),
    });
    const at = (onDeadline: 'Wait' | 'Delete' | 'ForceDelete', now = GRACE_END + 60_000) =>
      reap(input({ lease, pods, now, policy: policy({ evictionDeadlineMs: 60_000, onDeadline }) }));

    it('asks to be woken at the deadline', () => {
      expect(at('Delete', GRACE_END + 20_000).requeueAfterMs).toBe(40_000);
    });

    it('deletes the pod under Delete, once', () => {
      const d = at('Delete');
      // The second request for this pod: the count goes on from its eviction.
      expect(ofType(d, 'delete')).toEqual([
        expect.objectContaining({ uid: 'uid-loader-0', attempt: 2 }),
      ]);
      expect(ofType(d, 'delete')[0]).not.toHaveProperty('gracePeriodSeconds');
      const after = written(lease, d, GRACE_END + 60_000);
      expect(after.status?.evictions?.[0]?.result).toBe('Deleted');
      const restarted = reap(
        input({
          lease: after,
          pods,
          now: GRACE_END + 120_000,
          policy: policy({ onDeadline: 'Delete' }),
        }),
      );
      expect(ofType(restarted, 'delete')).toEqual([]);
    });

    it('deletes with grace 0 only under ForceDelete', () => {
      expect(ofType(at('ForceDelete'), 'delete')[0]).toMatchObject({ gracePeriodSeconds: 0 });
    });

    it('only says so under Wait', () => {
      const d = at('Wait');
      expect(ofType(d, 'delete')).toEqual([]);
      expect(d.summary.state).toBe('DeadlineExceeded');
      expect(ofType(d, 'event').map((e) => e.reason)).toContain('EvictionDeadlineExceeded');
    });
  });

  it('in dry run records the whole plan as DryRun and sends, deletes and cordons nothing', () => {
    const d = reap(input({ policy: policy({ dryRun: true }) }));
    expect(d.effects.filter((e) => e.type !== 'event')).toEqual([]);
    expect(d.leaseStatus?.evictions?.map((r) => `${r.pod.name}:${r.result}`)).toEqual([
      'loader-0:DryRun',
      'viewer-0:DryRun',
      'trainer-0:DryRun',
    ]);
    expect(d.leaseStatus?.conditions[0]).toMatchObject({ reason: 'DryRun', status: 'False' });
    const hidden = reap(
      input({
        accelerator: stuckAccel([...PINS, pin('pinned', undefined)]),
        policy: policy({ dryRun: true }),
      }),
    );
    expect(hidden.effects.filter((e) => e.type !== 'event')).toEqual([]);
  });

  it('evicts nothing while a hidden holder pins the device, and says it is unresolvable', () => {
    const accelerator = stuckAccel([
      PINS[0] as Pin,
      pin('pinned', undefined, { pid: 4711, importer: 'hidden-4711', export: 'team-a/buf-1' }),
    ]);
    const d = reap(input({ accelerator }));
    expect(ofType(d, 'evict')).toEqual([]);
    expect(d.leaseStatus?.evictions).toEqual([]);
    expect(d.summary.state).toBe('Unresolvable');
    const blocked = d.leaseStatus?.conditions.find((c) => c.type === 'Blocked');
    expect(blocked).toMatchObject({ status: 'True', reason: 'Unresolvable' });
    expect(blocked?.message).toBe(
      'node-a-hl0 cannot be granted at epoch 2: ' +
        'pinned importer hidden-4711 of export team-a/buf-1 in pid 4711: hidden holder pid 4711 (comm rdma-agent) is in no pod; ' +
        'rdma-mr importer nic0 of export team-a/buf-1 in pod team-io/loader-0: pod team-io/loader-0 holds it, but no eviction can free node-a-hl0 while 1 pin(s) held outside any pod or in an excluded namespace remain',
    );
    expect(d.leaseStatus?.blockedBy?.[0]).toEqual({
      accelerator: ACCEL,
      export: 'team-a/buf-1',
      importer: 'hidden-4711',
      kind: 'pinned',
      pid: 4711,
      reason: 'hidden holder pid 4711 (comm rdma-agent) is in no pod',
    });
    expect(ofType(d, 'cordon')).toEqual([expect.objectContaining({ accelerator: ACCEL })]);
    expect(ofType(d, 'event').filter((e) => e.eventType === 'Warning').length).toBe(2);
    // Already cordoned and already Unresolvable: nothing new to say or do.
    const lease = written(waitingLease({ blockedAt: T0 }), d, GRACE_END);
    const again = reap(
      input({
        lease,
        accelerator: {
          ...accelerator,
          metadata: { ...accelerator.metadata, annotations: { [CORDON_ANNOTATION]: 'x' } },
        },
      }),
    );
    expect(again.effects).toEqual([]);
  });

  it('becomes unresolvable when the budget is spent and pins remain', () => {
    const rec: EvictionRecord = {
      pod: { namespace: 'team-io', name: 'loader-0' },
      uid: 'uid-loader-0',
      reason: 'r',
      result: 'Evicted',
      finished: kubeTime(GRACE_END),
    };
    const lease = waitingLease({ blockedAt: T0, evictions: [rec], maxEvictions: 1 });
    const d = reap(
      input({
        lease,
        accelerator: stuckAccel(PINS.slice(2)),
        pods: podsOf('team-a/viewer-0', 'team-a/trainer-0'),
      }),
    );
    expect(d.summary.state).toBe('Unresolvable');
    expect(d.leaseStatus?.blockedBy?.map((b) => b.reason)).toEqual([
      'the eviction budget of 1 for this handoff is spent',
      'the eviction budget of 1 for this handoff is spent',
    ]);
  });

  it('holds planned evictions back while the cluster-wide rate is used up', () => {
    let lease = waitingLease({ blockedAt: T0 });
    const p = policy({ maxEvictionsPerMinute: 6 });
    lease = written(lease, reap(input({ lease, policy: p })), GRACE_END);
    const d = reap(input({ lease, policy: p, evictionsInLastMinute: 6, now: GRACE_END + 1000 }));
    expect(evicted(d)).toEqual([]);
    expect(d.summary.state).toBe('RateLimited');
    expect(d.requeueAfterMs).toBe(10_000);
    expect(results(written(lease, d, 0))).toEqual(['loader-0:Planned']);
  });

  it('withdraws a planned eviction another handoff has already sent for the same pod', () => {
    let lease = waitingLease({ blockedAt: T0 });
    lease = written(lease, reap(input({ lease })), GRACE_END);
    const d = reap(
      input({ lease, evictingElsewhere: new Set(['uid-loader-0']), now: GRACE_END + 1 }),
    );
    expect(d.leaseStatus?.evictions).toEqual([]);
    expect(evicted(d)).toEqual([]);
    expect(d.summary.state).toBe('Waiting');
  });

  it('withdraws what was only planned once the device is free, and says it is resolved', () => {
    let lease = waitingLease({ blockedAt: T0 });
    lease = written(lease, reap(input({ lease })), GRACE_END);
    const free = stuckAccel([]);
    const d = reap(input({ lease, accelerator: free }));
    expect(d.leaseStatus?.evictions).toEqual([]);
    expect(d.leaseStatus?.conditions).toEqual([
      expect.objectContaining({ type: 'Reaping', status: 'False', reason: 'Resolved' }),
    ]);
    expect(d.effects).toEqual([]);
  });

  it('does nothing when no lease waits, unless reapWhenIdle', () => {
    const idle = stuckAccel(PINS, { lease: false });
    const off = reap(input({ accelerator: idle, lease: undefined }));
    expect(off.effects).toEqual([]);
    expect(off.summary.state).toBe('Off');
    expect(off.idleEvictions).toBeUndefined();
    const d = reap(
      input({ accelerator: idle, lease: undefined, policy: policy({ reapWhenIdle: true }) }),
    );
    expect(d.leaseStatus).toBeUndefined();
    expect(d.idleEvictions?.map((r) => r.result)).toEqual(['Planned']);
    const stored: Accelerator = stuckAccel(PINS, {
      lease: false,
      idleEvictions: d.idleEvictions ?? [],
    });
    expect(idleEvictionsOf(stored)).toEqual(d.idleEvictions);
    const next = reap(
      input({
        accelerator: stored,
        lease: undefined,
        policy: policy({ reapWhenIdle: true }),
        now: GRACE_END + 1,
      }),
    );
    expect(evicted(next)).toEqual(['loader-0#1']);
    expect(next.idleEvictions?.map((r) => `${r.pod.name}:${r.result}:${r.attempts}`)).toEqual([
      'loader-0:Evicting:1',
    ]);
  });

  it('writes nothing for an idle reap whose stored records are already right', () => {
    const idle = policy({ reapWhenIdle: true });
    const first = reap(
      input({ accelerator: stuckAccel(PINS, { lease: false }), lease: undefined, policy: idle }),
    );
    // The same records, stored with their keys in another order.
    const reordered = (first.idleEvictions ?? []).map(
      (r) => Object.fromEntries(Object.entries(r).reverse()) as EvictionRecord,
    );
    const accelerator = stuckAccel(PINS, { lease: false, idleEvictions: reordered });
    const again = reap(input({ accelerator, lease: undefined, policy: idle, now: T0 + 1000 }));
    expect(again.idleEvictions).toBeUndefined();
  });
});

describe('reap, when the blocking set changes under it', () => {
  const sent = (result: EvictionRecord['result'], pod = 'loader-0'): EvictionRecord => ({
    pod: { namespace: pod === 'loader-0' ? 'team-io' : 'team-a', name: pod },
    uid: `uid-${pod}`,
    reason: 'r',
    result,
    started: kubeTime(GRACE_END),
    attempts: 1,
    lastAttemptTime: kubeTime(GRACE_END),
    message: `attempt 1 at ${kubeTime(GRACE_END)}: refused by a PodDisruptionBudget (429): no`,
  });

  it('never asks again once an eviction was accepted, though a lagging cache shows the pod running', () => {
    const accepted: EvictionRecord = { ...sent('Evicting'), lastOutcome: 'Accepted' };
    const lease = waitingLease({ blockedAt: T0, evictions: [accepted] });
    const d = reap(
      input({ lease, now: GRACE_END + 20_000, policy: policy({ onDeadline: 'Wait' }) }),
    );
    expect(d.effects.filter((e) => e.type === 'evict' && e.uid === 'uid-loader-0')).toEqual([]);
    // The same record without an answer (the answer was lost) is retried after its backoff.
    const unanswered = waitingLease({ blockedAt: T0, evictions: [sent('Evicting')] });
    const retried = reap(
      input({ lease: unanswered, now: GRACE_END + 20_000, policy: policy({ onDeadline: 'Wait' }) }),
    );
    expect(
      retried.effects.filter((e) => e.type === 'evict' && e.uid === 'uid-loader-0'),
    ).toHaveLength(1);
  });

  it('abandons what it asked once the device is free, so other handoffs may ask that pod', () => {
    const lease = waitingLease({ blockedAt: T0, evictions: [sent('Refused')] });
    const d = reap(input({ lease, accelerator: stuckAccel([]), now: GRACE_END + 60_000 }));
    expect(d.summary.state).toBe('Resolved');
    const [record] = d.leaseStatus?.evictions ?? [];
    expect(record).toMatchObject({ result: 'Refused', attempts: 1 });
    expect(record?.finished).toBe(kubeTime(GRACE_END + 60_000));
    expect(podsBeingEvicted(d.leaseStatus?.evictions ?? []).size).toBe(0);
  });

  it('abandons a refused eviction once the pod let go of its pins by itself', () => {
    const lease = waitingLease({ blockedAt: T0, evictions: [sent('Refused')] });
    const d = reap(
      input({ lease, accelerator: stuckAccel(PINS.slice(2)), now: GRACE_END + 60_000 }),
    );
    expect(evicted(d)).toEqual([]);
    expect(d.leaseStatus?.evictions?.[0]).toMatchObject({
      result: 'Refused',
      finished: kubeTime(GRACE_END + 60_000),
      message: `abandoned at ${kubeTime(GRACE_END + 60_000)}: the pod no longer holds a pin of an earlier epoch`,
    });
    // It still counts against the budget: a request was made.
    expect(d.plan?.budget.used).toBe(1);
  });

  it('keeps the attempts of an eviction it abandons: only the message is rewritten', () => {
    const third: EvictionRecord = {
      ...sent('Refused'),
      attempts: 3,
      lastAttemptTime: kubeTime(GRACE_END + 30_000),
      lastOutcome: 'Refused',
    };
    const lease = waitingLease({ blockedAt: T0, evictions: [third] });
    const now = GRACE_END + 60_000;
    const d = reap(input({ lease, accelerator: stuckAccel(PINS.slice(2)), now }));
    const [abandoned] = d.leaseStatus?.evictions ?? [];
    expect(abandoned).toMatchObject({
      attempts: 3,
      lastAttemptTime: kubeTime(GRACE_END + 30_000),
      lastOutcome: 'Refused',
      message: expect.stringMatching(/^abandoned at /) as unknown,
    });
    expect(abandoned && lastAttempt(abandoned)).toEqual({
      n: 3,
      at: GRACE_END + 30_000,
      outcome: 'Refused',
    });
    // Attempts 2 and 3 may both lie after the window starts: the count bounds from above.
    expect(requestsAfter(d.leaseStatus?.evictions ?? [], GRACE_END + 30_000)).toBe(2);
  });

  it('withdraws a planned eviction of a pod someone else started deleting', () => {
    const planned: EvictionRecord = { ...sent('Planned'), message: undefined, started: undefined };
    const lease = waitingLease({ blockedAt: T0, evictions: [planned] });
    const pods = podsOf('team-a/viewer-0', 'team-a/trainer-0');
    pods.set('team-io/loader-0', {
      uid: 'uid-loader-0',
      nodeName: NODE,
      deletionTimestamp: kubeTime(GRACE_END),
    });
    const d = reap(input({ lease, pods, now: GRACE_END + 1000 }));
    expect(d.leaseStatus?.evictions).toEqual([]);
    expect(evicted(d)).toEqual([]);
    expect(d.summary.state).toBe('Waiting');
  });

  it('drops DryRun records once dry run is switched off, and plans for real', () => {
    const dry = reap(input({ policy: policy({ dryRun: true }) }));
    const lease = written(waitingLease({ blockedAt: T0 }), dry, GRACE_END);
    const real = reap(input({ lease, now: GRACE_END + 1000 }));
    expect(results(written(lease, real, GRACE_END + 1000))).toEqual(['loader-0:Planned']);
  });

  it('clears idle records left on a device a lease now waits for', () => {
    const accelerator = stuckAccel(PINS, { idleEvictions: [sent('Evicting')] });
    const d = reap(input({ accelerator }));
    expect(d.idleEvictions).toEqual([]);
    // They are not the lease's: nothing of them is carried into its records.
    expect(d.leaseStatus?.evictions?.map((r) => r.result)).toEqual(['Planned']);
  });

  it('says Resolved once the device is free, counting only pods actually evicted', () => {
    const done: EvictionRecord = { ...sent('Evicted'), finished: kubeTime(GRACE_END + 9000) };
    const abandoned: EvictionRecord = {
      ...sent('Refused', 'viewer-0'),
      finished: kubeTime(GRACE_END + 9000),
    };
    const lease = waitingLease({ blockedAt: T0, evictions: [done, abandoned] });
    const d = reap(input({ lease, accelerator: stuckAccel([]), now: GRACE_END + 10_000 }));
    expect(d.leaseStatus?.conditions[0]?.message).toBe(
      'no pin of an earlier epoch is left on node-a-hl0; 1 pod(s) were evicted or deleted for it',
    );
  });
});

describe('recordOutcome', () => {
  const rec: EvictionRecord = {
    pod: { namespace: 'a', name: 'x' },
    uid: 'u',
    reason: 'r',
    result: 'Evicting',
    started: kubeTime(T0),
    attempts: 2,
    lastAttemptTime: kubeTime(T0 + 5000),
    message: `attempt 2 at ${kubeTime(T0 + 5000)}: eviction requested`,
  };

  it('keeps the attempt number and time the request was sent with', () => {
    const ok = recordOutcome([rec], { type: 'evict', uid: 'u' }, { kind: 'accepted' }, T0 + 6000);
    expect(ok.records[0]?.message).toBe(`attempt 2 at ${kubeTime(T0 + 5000)}: eviction accepted`);
    expect(ok.records[0]).toMatchObject({ attempts: 2, lastAttemptTime: kubeTime(T0 + 5000) });
    expect(ok.effects).toEqual([]);
  });

  it('reads the attempt from its fields, whatever the message says', () => {
    const rewritten = { ...rec, message: 'abandoned at 2026-11-25T10:09:00Z: no pin left' };
    const out = recordOutcome([rewritten], { type: 'evict', uid: 'u' }, { kind: 'gone' }, T0);
    expect(out.records[0]).toMatchObject({
      attempts: 2,
      lastAttemptTime: kubeTime(T0 + 5000),
      message: `attempt 2 at ${kubeTime(T0 + 5000)}: the pod was already gone`,
    });
    expect(requestsAfter([rewritten], T0 + 5000)).toBe(1);
  });

  it('marks other errors Failed, to be retried like a refusal', () => {
    const out = recordOutcome(
      [rec],
      { type: 'evict', uid: 'u' },
      { kind: 'failed', message: 'etcdserver: request timed out' },
      T0 + 6000,
    );
    expect(out.records[0]).toMatchObject({
      result: 'Failed',
      message: `attempt 2 at ${kubeTime(T0 + 5000)}: eviction failed: etcdserver: request timed out`,
    });
    expect(out.effects[0]).toMatchObject({ reason: 'EvictionFailed', eventType: 'Warning' });
  });

  it('records each answer as a field, keeping the attempt it answers', () => {
    const kinds: [CallOutcome, EvictionOutcome][] = [
      [{ kind: 'accepted' }, 'Accepted'],
      [{ kind: 'refused', message: 'pdb' }, 'Refused'],
      [{ kind: 'gone' }, 'Gone'],
      [{ kind: 'failed', message: 'timeout' }, 'Failed'],
    ];
    for (const [outcome, field] of kinds) {
      const out = recordOutcome([rec], { type: 'evict', uid: 'u' }, outcome, T0 + 6000);
      expect(out.records[0]).toMatchObject({ attempts: 2, lastOutcome: field });
      expect(out.records[0] && lastAttempt(out.records[0])).toEqual({
        n: 2,
        at: T0 + 5000,
        outcome: field,
      });
    }
  });

  it('reads a record written before the attempt fields as one request at started', () => {
    const old: EvictionRecord = {
      pod: { namespace: 'a', name: 'x' },
      uid: 'u',
      reason: 'r',
      result: 'Evicting',
      started: kubeTime(T0),
      message: 'attempt 7 at 2026-11-25T10:09:00Z: eviction requested',
    };
    expect(lastAttempt(old)).toEqual({ n: 1, at: T0, outcome: undefined });
    const out = recordOutcome([old], { type: 'evict', uid: 'u' }, { kind: 'accepted' }, T0 + 1);
    expect(out.records[0]).toMatchObject({
      attempts: 1,
      lastAttemptTime: kubeTime(T0),
      lastOutcome: 'Accepted',
    });
  });

  it('leaves records of other pods, and finished ones, alone', () => {
    const done: EvictionRecord = { ...rec, uid: 'v', result: 'Evicted', finished: kubeTime(T0) };
    const out = recordOutcome([rec, done], { type: 'evict', uid: 'v' }, { kind: 'gone' }, T0);
    expect(out.records).toEqual([rec, done]);
  });
});

describe('withReaperStatus', () => {
  it('keeps what the arbiter wrote and the Blocked lastTransitionTime', () => {
    const lease = waitingLease({ blockedAt: T0 });
    const merged = withReaperStatus(
      { ...lease.status, queuePosition: 0 },
      {
        evictions: [],
        conditions: [
          { type: 'Blocked', status: 'True', reason: 'Unresolvable', message: 'm' },
          { type: 'Reaping', status: 'False', reason: 'Unresolvable', message: 'm' },
        ],
      },
      GRACE_END,
    );
    expect(merged.queuePosition).toBe(0);
    expect(merged.phase).toBe('Pending');
    expect(merged.conditions?.find((c) => c.type === 'Blocked')?.lastTransitionTime).toBe(
      kubeTime(T0),
    );
    expect(merged.conditions?.find((c) => c.type === 'Reaping')?.lastTransitionTime).toBe(
      kubeTime(GRACE_END),
    );
    expect(merged).not.toHaveProperty('evictions');
  });
});

describe('what the runtime derives from records', () => {
  const at = (t: number) => `attempt 1 at ${kubeTime(t)}: eviction accepted`;
  const records: EvictionRecord[] = [
    { pod: { namespace: 'a', name: 'p' }, uid: 'planned', reason: 'r', result: 'Planned' },
    {
      pod: { namespace: 'a', name: 'e' },
      uid: 'evicting',
      reason: 'r',
      result: 'Evicting',
      started: kubeTime(T0),
      attempts: 1,
      lastAttemptTime: kubeTime(T0 + 50_000),
      message: at(T0 + 50_000),
    },
    {
      pod: { namespace: 'a', name: 'g' },
      uid: 'gone',
      reason: 'r',
      result: 'Evicted',
      started: kubeTime(T0),
      finished: kubeTime(T0 + 70_000),
      attempts: 1,
      lastAttemptTime: kubeTime(T0),
      message: at(T0),
    },
    { pod: { namespace: 'a', name: 'd' }, uid: 'dry', reason: 'r', result: 'DryRun' },
  ];

  it('names the pods whose eviction was sent and that are not gone yet', () => {
    expect([...podsBeingEvicted(records)]).toEqual(['evicting']);
  });

  it('counts the requests sent since a time, from the attempts the records keep', () => {
    expect(requestsAfter(records, T0)).toBe(2);
    expect(requestsAfter(records, T0 + 10_000)).toBe(1);
  });

  it('counts every retry of a record whose first request is in the window, all but one after', () => {
    const retried: EvictionRecord = {
      pod: { namespace: 'a', name: 'r' },
      uid: 'retried',
      reason: 'r',
      result: 'Refused',
      started: kubeTime(T0),
      attempts: 4,
      lastAttemptTime: kubeTime(T0 + 30_000),
    };
    expect(requestsAfter([retried], T0 - 1)).toBe(4);
    // Stored times are whole seconds: a first request within a second of the window counts.
    expect(requestsAfter([retried], T0 + 500)).toBe(4);
    expect(requestsAfter([retried], T0 + 10_000)).toBe(3);
    expect(requestsAfter([retried], T0 + 31_000)).toBe(0);
  });
});

describe('reap, retrying a refusal when its PodDisruptionBudget allows or the server says when', () => {
  const p = policy({ retryInitialMs: 5000, retryMaxMs: 60_000, maxEvictionsPerMinute: 60 });
  const AT = GRACE_END + 10_000;
  const refused = (extra: Partial<EvictionRecord> = {}): EvictionRecord => ({
    pod: { namespace: 'team-io', name: 'loader-0' },
    uid: 'uid-loader-0',
    reason: 'r',
    result: 'Refused',
    started: kubeTime(AT),
    attempts: 1,
    lastAttemptTime: kubeTime(AT),
    lastOutcome: 'Refused',
    message: `attempt 1 at ${kubeTime(AT)}: refused by a PodDisruptionBudget (429): no`,
    ...extra,
  });
  const allowing = (since: number | undefined) => ({
    allowedSince: (key: string) => (key === 'team-io/loader-0' ? since : undefined),
  });
  const step = (record: EvictionRecord, now: number, over: Partial<ReapInput> = {}) =>
    reap(
      input({
        lease: waitingLease({ blockedAt: T0, evictions: [record] }),
        policy: p,
        now,
        ...over,
      }),
    );

  it('retries at once when the budget began to allow a disruption after the refusal', () => {
    const d = step(refused(), AT + 2000, { disruptions: allowing(AT + 2000) });
    expect(evicted(d)).toEqual(['loader-0#2']);
    expect(d.leaseStatus?.evictions?.[0]).toMatchObject({
      result: 'Evicting',
      attempts: 2,
      message: `attempt 2 at ${kubeTime(AT + 2000)}: eviction requested again: its PodDisruptionBudget allows a disruption since ${kubeTime(AT + 2000)}`,
    });
  });

  it('waits out the backoff while the budget allows none, or allowed already when it refused', () => {
    for (const since of [undefined, AT - 1000, AT]) {
      const d = step(refused(), AT + 2000, { disruptions: allowing(since) });
      expect(evicted(d), `allowed since ${since}`).toEqual([]);
      expect(d.requeueAfterMs).toBe(3000);
      expect(evicted(step(refused(), AT + 5000, { disruptions: allowing(since) }))).toEqual([
        'loader-0#2',
      ]);
    }
  });

  it('sends an early retry refused again only after its backoff, which counts every attempt', () => {
    // Attempt 2 was the early one, refused at AT + 2 s; the budget has not changed since.
    const second = refused({ attempts: 2, lastAttemptTime: kubeTime(AT + 2000) });
    const disruptions = allowing(AT + 2000);
    for (const now of [AT + 2000, AT + 3000, AT + 11_000])
      expect(evicted(step(second, now, { disruptions })), `at +${now - AT}`).toEqual([]);
    expect(step(second, AT + 3000, { disruptions }).requeueAfterMs).toBe(9000);
    expect(evicted(step(second, AT + 12_000, { disruptions }))).toEqual(['loader-0#3']);
    // The budget allowing again, after that refusal: early again.
    expect(evicted(step(second, AT + 4000, { disruptions: allowing(AT + 4000) }))).toEqual([
      'loader-0#3',
    ]);
  });

  it('never retries early what failed for another reason than a budget', () => {
    const failed = refused({ result: 'Failed', lastOutcome: 'Failed' });
    const d = step(failed, AT + 2000, { disruptions: allowing(AT + 2000) });
    expect(evicted(d)).toEqual([]);
  });

  it('retries after the Retry-After the refusal named when that is sooner than the backoff', () => {
    const told = refused({ attempts: 3, retryAfterSeconds: 2 });
    // Backoff after attempt 3: 20 s. Retry-After 2 s, plus the second the stored time may lose.
    expect(evicted(step(told, AT + 2000))).toEqual([]);
    expect(step(told, AT + 2000).requeueAfterMs).toBe(1000);
    expect(evicted(step(told, AT + 3000))).toEqual(['loader-0#4']);
    // A Retry-After longer than the backoff does not lengthen it.
    const later = refused({ retryAfterSeconds: 30 });
    expect(evicted(step(later, AT + 4000))).toEqual([]);
    expect(evicted(step(later, AT + 5000))).toEqual(['loader-0#2']);
  });

  it('counts an early retry toward maxEvictionsPerMinute: at the cap it waits', () => {
    const d = step(refused(), AT + 2000, {
      disruptions: allowing(AT + 2000),
      evictionsInLastMinute: p.maxEvictionsPerMinute,
    });
    expect(evicted(d)).toEqual([]);
    expect(d.summary.state).toBe('RateLimited');
  });

  it("keeps a refusal's Retry-After in the record until the next attempt is sent", () => {
    const sentRecord: EvictionRecord = {
      ...refused(),
      result: 'Evicting',
      attempts: 2,
      lastAttemptTime: kubeTime(AT + 5000),
    };
    delete sentRecord.lastOutcome;
    const folded = recordOutcome(
      [sentRecord],
      { type: 'evict', uid: 'uid-loader-0' },
      { kind: 'refused', message: 'lagging', retryAfterSeconds: 10 },
      AT + 5000,
    );
    expect(folded.records[0]).toMatchObject({
      result: 'Refused',
      lastOutcome: 'Refused',
      retryAfterSeconds: 10,
    });
    const d = step(folded.records[0] as EvictionRecord, AT + 16_000);
    expect(evicted(d)).toEqual(['loader-0#3']);
    expect(d.leaseStatus?.evictions?.[0]).not.toHaveProperty('retryAfterSeconds');
    // A later refusal without one leaves none behind.
    const plain = recordOutcome(
      folded.records,
      { type: 'evict', uid: 'uid-loader-0' },
      { kind: 'refused', message: 'exhausted' },
      AT + 5000,
    );
    expect(plain.records[0]).not.toHaveProperty('retryAfterSeconds');
  });
});
