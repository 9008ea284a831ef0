// One step of the reaper for one accelerator, as a pure function: from the caches and `now` to
// the records and conditions to write and the evictions to make. All memory is in the records.
import {
  CORDON_ANNOTATION,
  type EvictionRecord,
  type EvictionOutcome,
  MAX_BLOCKERS,
  blockersOf,
  findCondition,
  idleEvictionsOf,
  stalePins,
  setConditions,
  type Accelerator,
  type AcceleratorLease,
  type AcceleratorLeaseStatus,
  type Blocker,
  type ConditionInput,
  type DmaBufExport,
  type Pin,
  compareText,
  kubeTime,
  podKey,
  timeMs,
} from '../crds/index.ts';
import { event, objectReference, podReference, type ReaperEffect } from './effects.ts';
import {
  RANK_MEANING,
  pinLabel,
  planEvictions,
  type Plan,
  type PlannedEviction,
  type Rank,
} from './plan.ts';
import type { PodLookup } from './pods.ts';
import { evictionBudget, retryDelayMs, type ReaperPolicy } from './policy.ts';
import { attempted, isActive, lastAttempt, settleRecords } from './records.ts';

export interface ReapInput {
  readonly accelerator: Accelerator;
  /** DmaBufExports on this accelerator (others are ignored): they name each buffer's exporter. */
  readonly exports: readonly DmaBufExport[];
  /** Every pod a pin or a record may name, by `namespace/name`. */
  readonly pods: PodLookup;
  /** The lease spec.owner names, as the cache holds it; undefined when it names none. */
  readonly lease: AcceleratorLease | undefined;
  readonly policy: ReaperPolicy;
  /** Eviction calls the whole controller made in the last 60 s (for maxEvictionsPerMinute). */
  readonly evictionsInLastMinute: number;
  /** Pod uids another handoff already asked to evict or delete (its active, sent records). */
  readonly evictingElsewhere: ReadonlySet<string>;
  readonly now: number;
}

/** The lease status fields the reaper owns; merge with withReaperStatus. */
export interface LeaseStatusPatch {
  readonly evictions: EvictionRecord[];
  /** undefined: keep the arbiter's blockedBy. */
  readonly blockedBy?: Blocker[];
  /** Reaping, and Blocked only when it must say Unresolvable. */
  readonly conditions: ConditionInput[];
}

export type ReapState =
  | 'Off'
  | 'NotStuck'
  | 'Resolved'
  | 'GracePeriod'
  | 'DryRun'
  | 'Evicting'
  | 'RateLimited'
  | 'DeadlineExceeded'
  | 'Waiting'
  | 'Unresolvable';

/** Counts for the runtime's metrics. */
export interface ReapSummary {
  readonly state: ReapState;
  /** Pods the plan would evict (all ranks, within budget). */
  readonly planSize: number;
  /** Rank of the wave planned in this step, if one was. */
  readonly wave?: Rank;
  readonly unresolvable: number;
  readonly inProgress: number;
  readonly evictionsRequested: number;
  readonly deletionsRequested: number;
  /** When the grace period of a stuck handoff ends (ms since the epoch), once it has started. */
  readonly graceEndsAt?: number;
}

export interface ReapDecision {
  /** Lease mode: write first (merged into the status), before any effect. */
  readonly leaseStatus?: LeaseStatusPatch;
  /**
   * Idle mode: write these as spec.owner.idleEvictions first (idleEvictionsPatch; [] clears
   * them). Absent when what is stored is already right.
   */
  readonly idleEvictions?: EvictionRecord[];
  /** Perform in order, only after the writes above succeeded. */
  readonly effects: ReaperEffect[];
  readonly requeueAfterMs?: number;
  readonly plan?: Plan;
  readonly summary: ReapSummary;
}

const SUMMARY_ZERO = {
  planSize: 0,
  unresolvable: 0,
  inProgress: 0,
  evictionsRequested: 0,
  deletionsRequested: 0,
};

/**
 * Merge the reaper's fields into a lease status (the stored one, or the one the arbiter is about
 * to write). Conditions keep their lastTransitionTime unless their status changes.
 */
export function withReaperStatus(
  base: AcceleratorLeaseStatus | undefined,
  patch: LeaseStatusPatch,
  now: number,
): AcceleratorLeaseStatus {
  const out: AcceleratorLeaseStatus = { ...base };
  if (patch.evictions.length > 0) out.evictions = patch.evictions;
  else delete out.evictions;
  if (patch.blockedBy !== undefined) {
    if (patch.blockedBy.length > 0) out.blockedBy = patch.blockedBy.slice(0, MAX_BLOCKERS);
    else delete out.blockedBy;
  }
  if (patch.conditions.length > 0) {
    out.conditions = setConditions(base?.conditions, patch.conditions, kubeTime(now));
  }
  return out;
}

function describeRecord(r: EvictionRecord): string {
  const att = lastAttempt(r);
  const detail = r.result === 'Refused' ? ' by a PodDisruptionBudget' : '';
  return `${podKey(r.pod)} ${r.result}${detail}${att ? ` (attempt ${att.n})` : ''}`;
}

const list = (items: readonly string[]) => items.join(', ');

/** Equal as stored: the same records in the same order, field for field. */
function sameRecords(a: readonly EvictionRecord[], b: readonly EvictionRecord[]): boolean {
  return a.length === b.length && a.every((r, i) => canonicalJson(r) === canonicalJson(b[i]));
}

const canonicalJson = (r: EvictionRecord | undefined): string =>
  r === undefined
    ? ''
    : JSON.stringify(
        Object.entries({ ...r, pod: podKey(r.pod) })
          .filter(([, v]) => v !== undefined)
          .sort(([x], [y]) => compareText(x, y)),
      );

/** Why an eviction is sent again, from the answer recorded for the one before. */
const RETRIED_AFTER: Readonly<Record<EvictionOutcome | 'None', string>> = {
  Refused: 'the last one was refused by a PodDisruptionBudget',
  Failed: 'the last one failed',
  Gone: 'the last one found the pod gone',
  Accepted: 'the pod is still there after the last one was accepted',
  None: 'no answer to the last one was recorded',
};

/**
 * One reaper step for one accelerator: plan from the device's fresh pins, advance the records,
 * say what to write and what to do. Pure: the same input always gives the same decision, and a
 * step repeated after a restart sends nothing that the records say was already sent.
 */
export function reap(input: ReapInput): ReapDecision {
  const { accelerator: accel, policy, pods, now } = input;
  const name = accel.metadata.name ?? '';
  const owner = accel.spec.owner;
  const off = (): ReapDecision => ({ effects: [], summary: { state: 'Off', ...SUMMARY_ZERO } });
  if (!owner) return off();
  const lease =
    owner.lease && input.lease?.metadata.uid === owner.lease.uid ? input.lease : undefined;
  if (owner.lease ? !lease : !policy.reapWhenIdle) return off();
  const stored = idleEvictionsOf(accel);
  const records0 = lease ? (lease.status?.evictions ?? []) : stored;

  const accelRef = objectReference(accel);
  const leaseRef = lease && objectReference(lease);
  const leaseName = lease ? `${lease.metadata.namespace ?? ''}/${lease.metadata.name ?? ''}` : '';
  const forWhom = lease ? `lease ${leaseName}` : `epoch ${owner.epoch} (no lease waits)`;
  const generation = lease?.metadata.generation ?? 0;
  const cond = (
    type: string,
    status: 'True' | 'False',
    reason: string,
    message: string,
  ): ConditionInput => ({
    type,
    status,
    reason,
    message: message.slice(0, 32768),
    observedGeneration: generation,
  });
  const effects: ReaperEffect[] = [];
  /** An event about the handoff: on the lease when there is one, and on the accelerator. */
  const handoffEvent = (type: 'Normal' | 'Warning', reason: string, note: string) => {
    if (leaseRef) effects.push(event(leaseRef, type, reason, note));
    effects.push(event(accelRef, type, reason, note));
  };

  const pins = stalePins(accel);
  const st = accel.status;
  const current = st?.observedEpoch === owner.epoch;
  const stuck = current && st?.phase === 'Stuck' && pins.length > 0;
  const excluded = new Set(policy.excludedNamespaces);
  const outside = pins.filter((p) => !p.pod || excluded.has(p.pod.namespace));
  const holding = outside.length > 0;
  const deleting = lease?.metadata.deletionTimestamp !== undefined;

  const settled = settleRecords(
    records0,
    pods,
    now,
    (r) =>
      !stuck ||
      holding ||
      policy.dryRun ||
      deleting ||
      input.evictingElsewhere.has(r.uid) ||
      pods.get(podKey(r.pod))?.deletionTimestamp !== undefined,
  );
  let records = settled.records;
  for (const r of settled.finished) {
    const how = r.result === 'Deleted' ? 'deleted' : 'evicted';
    if (leaseRef) {
      effects.push(
        event(leaseRef, 'Normal', 'PodGone', `pod ${podKey(r.pod)} is gone (${how} for ${name})`),
      );
    }
  }
  if (!policy.dryRun) records = records.filter((r) => r.result !== 'DryRun');

  let requeue: number | undefined;
  const wakeAt = (t: number) => {
    const after = Math.max(0, t - now);
    requeue = requeue === undefined ? after : Math.min(requeue, after);
  };
  const decision = (
    state: ReapState,
    conditions: ConditionInput[],
    blockedBy: Blocker[] | undefined,
    plan?: Plan,
    extra: Partial<ReapSummary> = {},
  ): ReapDecision => {
    const evictionsRequested = effects.filter((e) => e.type === 'evict').length;
    const deletionsRequested = effects.filter((e) => e.type === 'delete').length;
    const out: {
      -readonly [K in keyof ReapDecision]: ReapDecision[K];
    } = {
      effects,
      summary: {
        state,
        planSize: plan?.evict.length ?? 0,
        unresolvable: plan?.unresolvable.length ?? 0,
        inProgress: plan?.inProgress.length ?? 0,
        evictionsRequested,
        deletionsRequested,
        ...extra,
      },
    };
    if (plan) out.plan = plan;
    if (requeue !== undefined) out.requeueAfterMs = requeue;
    if (lease) {
      out.leaseStatus = {
        evictions: records,
        ...(blockedBy !== undefined && { blockedBy }),
        conditions,
      };
      // An owner change drops idle records; any left belong to no handoff the lease is part of.
      if (stored.length > 0) out.idleEvictions = [];
    } else if (!sameRecords(records, stored)) {
      out.idleEvictions = records;
    }
    return out;
  };

  const hadReaping = findCondition(lease?.status?.conditions, 'Reaping') !== undefined;
  if (!stuck) {
    const resolved = current && pins.length === 0 && st?.phase !== 'Revoking';
    if (!resolved) return decision('NotStuck', [], undefined);
    const sent = records.filter((r) => r.result === 'Evicted' || r.result === 'Deleted').length;
    const conditions =
      hadReaping || records.length > 0
        ? [
            cond(
              'Reaping',
              'False',
              'Resolved',
              `no pin of an earlier epoch is left on ${name}` +
                (sent > 0 ? `; ${sent} pod(s) were evicted or deleted for it` : ''),
            ),
          ]
        : [];
    return decision('Resolved', conditions, undefined);
  }

  const planFrom = (recs: readonly EvictionRecord[]) =>
    planEvictions({
      accelerator: accel,
      exports: input.exports,
      pods,
      excludedNamespaces: policy.excludedNamespaces,
      budget: evictionBudget(policy, lease),
      records: recs,
      evictingElsewhere: input.evictingElsewhere,
    });
  let plan = planFrom(records);
  // A pod that let go of its pins by itself is no longer in the blocking set: what was only
  // planned for it is withdrawn, and a request it has not yet honoured is abandoned.
  const stillBlocking = new Set(plan.inProgress.filter((h) => h.kind === 'ours').map((h) => h.uid));
  const kept: EvictionRecord[] = [];
  let dropped = false;
  for (const r of records) {
    const pod = pods.get(podKey(r.pod));
    if (!isActive(r) || stillBlocking.has(r.uid) || pod?.deletionTimestamp !== undefined) {
      kept.push(r);
    } else if (r.result === 'Planned') {
      dropped = true;
    } else {
      dropped = true;
      kept.push({
        ...r,
        finished: kubeTime(now),
        message: `abandoned at ${kubeTime(now)}: the pod no longer holds a pin of an earlier epoch`,
      });
    }
  }
  if (dropped) {
    records = kept;
    plan = planFrom(records);
  }
  const heldBack = holding
    ? `no eviction can free ${name} while ${outside.length} pin(s) held outside any pod or in an excluded namespace remain`
    : undefined;
  const reasons = new Map<Pin, string>();
  for (const u of plan.unresolvable) reasons.set(u.pin, u.reason);
  if (heldBack) {
    for (const e of plan.evict) {
      for (const pin of e.pins) reasons.set(pin, `pod ${podKey(e.pod)} holds it, but ${heldBack}`);
    }
  }
  const blockedBy: Blocker[] | undefined = lease
    ? blockersOf(name, plan.pins, (p) => reasons.get(p))
    : undefined;

  // Grace: the pins may still go by themselves. Measured from when the handoff became stuck.
  const blocked = findCondition(lease?.status?.conditions, 'Blocked');
  const pinned = findCondition(st?.conditions, 'Pinned');
  const since = lease
    ? blocked?.status === 'True'
      ? timeMs(blocked.lastTransitionTime)
      : undefined
    : pinned?.status === 'True'
      ? timeMs(pinned.lastTransitionTime)
      : undefined;
  const graceMs =
    (lease ? lease.spec.revocation.gracePeriodSeconds : policy.idleGracePeriodSeconds) * 1000;
  const graceEnds = since === undefined ? undefined : since + graceMs;
  /** Every decision from here on is about a stuck handoff, and says when its grace ends. */
  const stuckDecision = (
    state: ReapState,
    conditions: ConditionInput[],
    extra: Partial<ReapSummary> = {},
  ): ReapDecision =>
    decision(state, conditions, blockedBy, plan, {
      ...extra,
      ...(graceEnds !== undefined && { graceEndsAt: graceEnds }),
    });
  if (graceEnds === undefined || now < graceEnds) {
    wakeAt(graceEnds ?? now + graceMs);
    const message =
      graceEnds === undefined
        ? `${name} is pinned; the grace period of ${graceMs / 1000}s starts once ${forWhom} is marked Blocked`
        : `${name} is pinned; evictions may start at ${kubeTime(graceEnds)} unless the pins go first`;
    return stuckDecision('GracePeriod', [cond('Reaping', 'False', 'GracePeriod', message)]);
  }
  if (deleting) return decision('Off', [], blockedBy, plan);

  if (policy.dryRun) {
    const previous = new Set(records0.filter((r) => r.result === 'DryRun').map((r) => r.uid));
    const dry: EvictionRecord[] = heldBack
      ? []
      : plan.evict.map((e) => ({
          pod: e.pod,
          uid: e.uid,
          reason: e.reason,
          result: 'DryRun',
          message: `dry run: would be evicted with rank ${e.rank} (${RANK_MEANING[e.rank]})`,
        }));
    records = [...records.filter((r) => r.result !== 'DryRun'), ...dry];
    const would =
      dry.length > 0 ? `would evict ${list(dry.map((r) => podKey(r.pod)))}` : 'would evict nobody';
    const message = `dry run: ${would}${heldBack ? `: ${heldBack}` : ''}; ${plan.unresolvable.length} pin(s) no eviction in budget can clear`;
    if (dry.length !== previous.size || dry.some((r) => !previous.has(r.uid))) {
      handoffEvent('Normal', 'DryRun', `${message} (for ${forWhom})`);
    }
    return stuckDecision('DryRun', [cond('Reaping', 'False', 'DryRun', message)]);
  }

  // Advance what is under way: retries after refusals, deletion after the deadline.
  const retries: { r: EvictionRecord; n: number; after: EvictionOutcome | undefined }[] = [];
  const overdue: EvictionRecord[] = [];
  const reasonOf = (r: EvictionRecord) =>
    `to free accelerator ${name} for ${forWhom}: ${r.reason}`.slice(0, 1024);
  records = records.map((r) => {
    if (!isActive(r) || r.result === 'Planned') return r;
    const pod = pods.get(podKey(r.pod));
    const terminating = pod?.deletionTimestamp !== undefined;
    const att = lastAttempt(r) ?? { n: 1, at: now, outcome: undefined };
    const retryAt = att.at + retryDelayMs(policy, att.n);
    if (r.result === 'Deleted') {
      // A deletion that did not take (no deletionTimestamp after the backoff) is sent again.
      if (terminating) return r;
      if (now < retryAt) {
        wakeAt(retryAt);
        return r;
      }
      effects.push({
        type: 'delete',
        pod: r.pod,
        uid: r.uid,
        ...(policy.onDeadline === 'ForceDelete' && { gracePeriodSeconds: 0 }),
        reason: reasonOf(r),
        attempt: att.n + 1,
      });
      return attempted(r, att.n + 1, now, 'deletion requested again');
    }
    const deadline = (timeMs(r.started) ?? now) + policy.evictionDeadlineMs;
    if (now >= deadline && policy.onDeadline !== 'Wait') {
      const force = policy.onDeadline === 'ForceDelete';
      const note = `still present ${policy.evictionDeadlineMs / 1000}s after its eviction started; deleting${force ? ' with grace 0' : ''} (onDeadline: ${policy.onDeadline})`;
      effects.push({
        type: 'delete',
        pod: r.pod,
        uid: r.uid,
        ...(force && { gracePeriodSeconds: 0 }),
        reason: reasonOf(r),
        attempt: 1,
      });
      effects.push(event(podReference(r.pod, r.uid), 'Warning', 'Deleting', note));
      if (leaseRef) {
        effects.push(event(leaseRef, 'Warning', 'Deleting', `pod ${podKey(r.pod)} ${note}`));
      }
      return { ...attempted(r, 1, now, note), result: 'Deleted' };
    }
    if (now >= deadline) overdue.push(r);
    else wakeAt(deadline);
    if (!terminating) {
      if (now >= retryAt) retries.push({ r, n: att.n + 1, after: att.outcome });
      else wakeAt(retryAt);
    }
    return r;
  });

  // Send what is due, within the cluster-wide rate: retries first, then the planned wave.
  const due = [
    ...retries.sort((a, b) => compareText(podKey(a.r.pod), podKey(b.r.pod))),
    ...records
      .filter((r) => r.result === 'Planned')
      .sort((a, b) => compareText(podKey(a.pod), podKey(b.pod)))
      .map((r) => ({ r, n: 1, after: undefined })),
  ];
  const allowance = Math.max(0, policy.maxEvictionsPerMinute - input.evictionsInLastMinute);
  const deferred = due.slice(allowance);
  if (deferred.length > 0)
    wakeAt(now + Math.ceil(60_000 / Math.max(1, policy.maxEvictionsPerMinute)));
  const sending = new Map(due.slice(0, allowance).map((d) => [d.r, d]));
  records = records.map((r) => {
    const send = sending.get(r);
    if (!send) return r;
    effects.push({ type: 'evict', pod: r.pod, uid: r.uid, reason: reasonOf(r), attempt: send.n });
    if (send.n === 1) {
      effects.push(
        event(podReference(r.pod, r.uid), 'Normal', 'Evicting', `evicting ${reasonOf(r)}`),
      );
    }
    const text =
      send.n === 1
        ? 'eviction requested'
        : `eviction requested again: ${RETRIED_AFTER[send.after ?? 'None']}`;
    return {
      ...attempted(r, send.n, now, text),
      result: 'Evicting',
      started: r.started ?? kubeTime(now),
    };
  });

  // A new wave: every plannable holder of the lowest rank that still holds pins.
  let wave: PlannedEviction[] = [];
  let waveRank: Rank | undefined;
  if (!heldBack) {
    const ranks = [...plan.evict, ...plan.inProgress].map((e) => e.rank);
    waveRank = ranks.length > 0 ? (Math.min(...ranks) as Rank) : undefined;
    wave = plan.evict.filter((e) => e.rank === waveRank);
  }
  if (wave.length > 0 && waveRank !== undefined) {
    records = [
      ...records,
      ...wave.map((e): EvictionRecord => ({
        pod: e.pod,
        uid: e.uid,
        reason: e.reason,
        result: 'Planned',
      })),
    ];
    handoffEvent(
      'Normal',
      'Reaping',
      `${name} is stuck for ${forWhom}: evicting ${RANK_MEANING[waveRank]}: ${list(wave.map((e) => `${podKey(e.pod)} (${e.reason})`))}`,
    );
    wakeAt(now);
  }

  const ours = records.filter(isActive);
  const others = plan.inProgress.filter((h) => h.kind !== 'ours');
  if (ours.length === 0 && others.length === 0) {
    // Nothing under way and pins remain: no eviction can clear them.
    const what = plan.pins.map((p) => {
      const holder = p.pod ? `pod ${podKey(p.pod)}` : `pid ${p.pid}`;
      return `${pinLabel(p)} in ${holder}: ${reasons.get(p) ?? 'no eviction planned'}`;
    });
    const message = `${name} cannot be granted at epoch ${owner.epoch}: ${what.join('; ')}`;
    const done = records.filter((r) => r.result === 'Evicted' || r.result === 'Deleted').length;
    const cordoned = accel.metadata.annotations?.[CORDON_ANNOTATION] !== undefined;
    if (lease ? blocked?.reason !== 'Unresolvable' : !cordoned) {
      handoffEvent('Warning', 'Unresolvable', message);
    }
    if (!cordoned) {
      effects.push({ type: 'cordon', accelerator: name, message: message.slice(0, 1024) });
    }
    wakeAt(now + policy.retryMaxMs);
    return stuckDecision('Unresolvable', [
      cond('Blocked', 'True', 'Unresolvable', message),
      cond(
        'Reaping',
        'False',
        'Unresolvable',
        `${done} pod(s) evicted or deleted; ${plan.pins.length} pin(s) remain that no eviction can clear`,
      ),
    ]);
  }

  let state: ReapState;
  let message: string;
  if (overdue.length > 0) {
    state = 'DeadlineExceeded';
    message = `still present after the eviction deadline of ${policy.evictionDeadlineMs / 1000}s (onDeadline: Wait): ${list(overdue.map(describeRecord))}`;
    const prev = findCondition(lease?.status?.conditions, 'Reaping');
    if (prev?.reason !== 'DeadlineExceeded')
      handoffEvent('Warning', 'EvictionDeadlineExceeded', message);
  } else if (deferred.length > 0) {
    state = 'RateLimited';
    message = `maxEvictionsPerMinute (${policy.maxEvictionsPerMinute}) reached; waiting to evict ${list(deferred.map((d) => podKey(d.r.pod)))}`;
  } else if (ours.length > 0) {
    state = 'Evicting';
    message = `evicting to free ${name}: ${list(ours.map(describeRecord))}`;
  } else {
    state = 'Waiting';
    message = `waiting for ${list(others.map((h) => `${podKey(h.pod)} (${h.reason})`))}`;
  }
  if (others.length > 0 && state !== 'Waiting') {
    message += `; also waiting for ${list(others.map((h) => podKey(h.pod)))}`;
  }
  return stuckDecision(state, [cond('Reaping', 'True', state, message)], {
    ...(wave.length > 0 && waveRank !== undefined && { wave: waveRank }),
  });
}
