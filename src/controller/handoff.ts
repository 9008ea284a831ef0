// One accelerator's reconcile as a pure function: the arbiter's writes, with the reaper's records
// and conditions folded into the waiting lease's status, and the reaper's effects to run after.
import type { Accelerator, AcceleratorLease, DmaBufExport, EvictionRecord } from '../crds/index.ts';
import {
  reap,
  withReaperStatus,
  type DisruptionLookup,
  type PodLookup,
  type ReaperEffect,
  type ReaperPolicy,
  type ReapSummary,
} from '../reaper/index.ts';
import { decide, sameStatus, type Action } from './arbiter.ts';

export interface HandoffInput {
  accelerator: Accelerator;
  /** Every lease that targets the accelerator. */
  leases: readonly AcceleratorLease[];
  exports: readonly DmaBufExport[];
  pods: PodLookup;
  disruptions: DisruptionLookup;
  policy: ReaperPolicy;
  evictionsInLastMinute: number;
  evictingElsewhere: ReadonlySet<string>;
  now: number;
}

export interface HandoffDecision {
  /** Writes, in order (the arbiter's, with the reaper's status merged in). */
  actions: Action[];
  /** Idle-mode reaper records to store in spec.owner.idleEvictions ([] clears them). */
  idleEvictions?: EvictionRecord[];
  /** Only after every write above succeeded. */
  effects: ReaperEffect[];
  requeueAfterMs?: number;
  reaper?: ReapSummary;
}

/**
 * Decide one accelerator's handoff and, when it is stuck, the reaper's step. The reaper sits
 * out a round in which the owner changes: its inputs describe the handoff that is ending.
 */
export function decideHandoff(input: HandoffInput): HandoffDecision {
  const { accelerator, leases, now } = input;
  const arbiter = decide(accelerator, leases, now);
  if (arbiter.actions.some((a) => a.type === 'setOwner') || !accelerator.spec.owner) {
    return withRequeue({ actions: arbiter.actions, effects: [] }, arbiter.requeueAfterMs);
  }
  const ownerUid = accelerator.spec.owner.lease?.uid;
  const lease = ownerUid ? leases.find((l) => l.metadata.uid === ownerUid) : undefined;
  const d = reap({
    accelerator,
    exports: input.exports,
    pods: input.pods,
    disruptions: input.disruptions,
    lease,
    policy: input.policy,
    evictionsInLastMinute: input.evictionsInLastMinute,
    evictingElsewhere: input.evictingElsewhere,
    now,
  });
  let actions = arbiter.actions;
  const patch = d.leaseStatus;
  if (lease && patch) {
    let merged = false;
    actions = actions.map((a) => {
      if (a.type !== 'leaseStatus' || a.lease.metadata.uid !== ownerUid) return a;
      merged = true;
      return { ...a, status: withReaperStatus(a.status, patch, now) };
    });
    if (!merged)
      actions = [
        ...actions,
        { type: 'leaseStatus', lease, status: withReaperStatus(lease.status, patch, now) },
      ];
    // The overlay may bring the status back to what is stored: then there is nothing to write.
    actions = actions.filter(
      (a) =>
        a.type !== 'leaseStatus' ||
        a.lease.metadata.uid !== ownerUid ||
        !sameStatus(a.status, a.lease.status),
    );
  }
  const requeue = [arbiter.requeueAfterMs, d.requeueAfterMs].filter(
    (x): x is number => x !== undefined,
  );
  return withRequeue(
    {
      actions,
      ...(d.idleEvictions && { idleEvictions: d.idleEvictions }),
      effects: d.effects,
      reaper: d.summary,
    },
    requeue.length > 0 ? Math.min(...requeue) : undefined,
  );
}

function withRequeue(d: HandoffDecision, ms: number | undefined): HandoffDecision {
  return ms === undefined ? d : { ...d, requeueAfterMs: ms };
}
