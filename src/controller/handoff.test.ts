// decideHandoff: the arbiter's writes with the reaper's step merged in, one example per rule.
import { describe, expect, it } from 'vitest';
import type { AcceleratorLease } from '../crds/index.ts';
import { FINALIZER } from './arbiter.ts';
import { decideHandoff, type HandoffInput } from './handoff.ts';
import {
  NO_BUDGETS,
  pin,
  podsOf,
  policy,
  stuckAccel,
  T0,
  waitingLease,
} from '../../test/fixtures/reaper.ts';

const withFinalizer = (l: AcceleratorLease): AcceleratorLease => ({
  ...l,
  metadata: { ...l.metadata, finalizers: [FINALIZER] },
});

const input = (over: Partial<HandoffInput> = {}): HandoffInput => ({
  accelerator: stuckAccel([pin('rdma-mr', 'team-io/loader-0')]),
  leases: [withFinalizer(waitingLease({ blockedAt: T0, grace: 30 }))],
  exports: [],
  pods: podsOf('team-io/loader-0'),
  disruptions: NO_BUDGETS,
  policy: policy(),
  evictionsInLastMinute: 0,
  evictingElsewhere: new Set(),
  now: T0 + 60_000,
  ...over,
});

const statusWrites = (d: ReturnType<typeof decideHandoff>, uid: string) =>
  d.actions.filter((a) => a.type === 'leaseStatus' && a.lease.metadata.uid === uid);

describe('decideHandoff', () => {
  it("merges the reaper's plan into the owner-elect lease's one status write", () => {
    const d = decideHandoff(input());
    const writes = statusWrites(d, 'uid-next');
    expect(writes).toHaveLength(1);
    const status = writes[0]?.type === 'leaseStatus' ? writes[0].status : undefined;
    expect(status?.evictions?.map((r) => [r.pod.name, r.result])).toEqual([
      ['loader-0', 'Planned'],
    ]);
    expect(status?.conditions?.find((c) => c.type === 'Reaping')?.status).toBe('True');
    // Planned first: nothing is sent in the round that writes the plan.
    expect(d.effects.filter((e) => e.type === 'evict')).toEqual([]);
    expect(d.reaper?.state).toBe('Evicting');
  });

  it('sends the eviction once the plan is stored, after the write that records the attempt', () => {
    const planned = decideHandoff(input());
    const stored = statusWrites(planned, 'uid-next')[0];
    const lease =
      stored?.type === 'leaseStatus' ? { ...stored.lease, status: stored.status } : undefined;
    const d = decideHandoff(input({ leases: [lease as AcceleratorLease], now: T0 + 61_000 }));
    expect(d.effects.filter((e) => e.type === 'evict').map((e) => e.pod.name)).toEqual([
      'loader-0',
    ]);
    const write = statusWrites(d, 'uid-next')[0];
    const records = write?.type === 'leaseStatus' ? write.status.evictions : undefined;
    expect(records?.[0]).toMatchObject({ result: 'Evicting', attempts: 1 });
  });

  it('leaves the reaper out of a round that changes the owner', () => {
    const accelerator = stuckAccel([pin('rdma-mr', 'team-io/loader-0')], { lease: false });
    const d = decideHandoff(input({ accelerator }));
    expect(d.actions.some((a) => a.type === 'setOwner')).toBe(true);
    expect(d.effects).toEqual([]);
    expect(d.reaper).toBeUndefined();
  });

  it('writes nothing for the lease when the overlay gives back what is stored', () => {
    const first = decideHandoff(input({ policy: policy({ dryRun: true }) }));
    const write = statusWrites(first, 'uid-next')[0];
    const lease =
      write?.type === 'leaseStatus' ? { ...write.lease, status: write.status } : undefined;
    const again = decideHandoff(
      input({ leases: [lease as AcceleratorLease], policy: policy({ dryRun: true }) }),
    );
    expect(statusWrites(again, 'uid-next')).toEqual([]);
    expect(again.effects.filter((e) => e.type === 'evict')).toEqual([]);
  });

  it("requeues at the earlier of the arbiter's and the reaper's times", () => {
    // Inside the grace period: the reaper wakes at its end.
    const d = decideHandoff(input({ now: T0 + 10_000 }));
    expect(d.requeueAfterMs).toBe(20_000);
    expect(d.reaper?.state).toBe('GracePeriod');
  });
});
