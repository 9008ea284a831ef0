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
import type { ObjectReference } from '../kube/index.ts';
import { RANK_MEANING, pinLabel, planEvictions, type Plan, type Rank } from './plan.ts';
import type { DisruptionLookup, PodLookup } from './pods.ts';
import { evictionBudget, retryDelayMs, type ReaperPolicy } from './policy.ts';
import { attempted, isActive, lastAttempt, settleRecords, type Attempt } from './records.ts';

export interface ReapInput {
  readonly accelerator: Accelerator;
  /** DmaBufExports on this accelerator (others are ignored): they name each buffer's exporter. */
  readonly exports: readonly DmaBufExport[];
  /** Every pod a pin or a record may name, by `namespace/name`. */
  readonly pods: PodLookup;
  /** Since when each pod's PodDisruptionBudget allows a disruption: a refusal is retried then. */
  readonly disruptions: DisruptionLookup;
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

/** What one step knows of the handoff it works for; fixed for the whole step. */
interface Handoff {
  readonly input: ReapInput;
  readonly accel: Accelerator;
  readonly name: string;
  readonly epoch: number;
  /** The lease spec.owner names; undefined in an idle reap. */
  readonly lease: AcceleratorLease | undefined;
  readonly leaseRef: ObjectReference | undefined;
  readonly accelRef: ObjectReference;
  readonly forWhom: string;
  /** The idle records stored with spec.owner (any, even in lease mode: then they are cleared). */
  readonly stored: readonly EvictionRecord[];
  /** The records this step starts from: the lease's, or the idle ones. */
  readonly records: readonly EvictionRecord[];
  readonly pins: readonly Pin[];
  /** The device reports the owner's epoch. */
  readonly current: boolean;
  readonly stuck: boolean;
  /** Stale pins held outside any pod or in an excluded namespace: no eviction frees the device. */
  readonly outside: readonly Pin[];
  readonly deleting: boolean;
}

/** What the steps so far produced: the records to write, the effects to run, when to wake. */
interface Progress {
  readonly records: readonly EvictionRecord[];
  readonly effects: readonly ReaperEffect[];
  readonly wakes: readonly number[];
}

/** Why the blocking set cannot be cleared, pin by pin, and the blockers to write for the lease. */
interface Blocking {
  readonly heldBack: string | undefined;
  readonly reasons: ReadonlyMap<Pin, string>;
  readonly blockedBy: Blocker[] | undefined;
}

interface Grace {
  readonly ms: number;
  /** When evictions may start; undefined until the handoff is marked stuck. */
  readonly endsAt: number | undefined;
}

const OFF: ReapDecision = { effects: [], summary: { state: 'Off', ...SUMMARY_ZERO } };

/**
 * One reaper step for one accelerator: plan from the device's fresh pins, advance the records,
 * say what to write and what to do. Pure: the same input always gives the same decision, and a
 * step repeated after a restart sends nothing that the records say was already sent.
 */
export function reap(input: ReapInput): ReapDecision {
  const h = handoffOf(input);
  if (!h) return OFF;
  const settled = settle(h);
  if (!h.stuck) return notStuck(h, settled);
  const { progress, plan } = withdrawReleased(h, settled);
  const blocking = blockingOf(h, plan);
  const grace = graceOf(h);
  if (grace.endsAt === undefined || input.now < grace.endsAt) {
    return inGrace(h, progress, plan, blocking, grace);
  }
  if (h.deleting) return decision(h, progress, 'Off', [], blocking.blockedBy, plan);
  if (input.policy.dryRun) return dryRun(h, progress, plan, blocking, grace);
  const advanced = advance(h, progress);
  const sent = sendDue(h, advanced.progress, advanced.retries);
  const wave = newWave(h, sent.progress, plan, blocking);
  const steps = { overdue: advanced.overdue, deferred: sent.deferred, wave: wave.rank };
  return conclude(h, wave.progress, plan, blocking, grace, steps);
}

/** The handoff the reaper works for, or undefined when it has none (Off). */
function handoffOf(input: ReapInput): Handoff | undefined {
  const { accelerator: accel, policy } = input;
  const owner = accel.spec.owner;
  if (!owner) return undefined;
  const lease =
    owner.lease && input.lease?.metadata.uid === owner.lease.uid ? input.lease : undefined;
  if (owner.lease ? !lease : !policy.reapWhenIdle) return undefined;
  const stored = idleEvictionsOf(accel);
  const pins = stalePins(accel);
  const st = accel.status;
  const current = st?.observedEpoch === owner.epoch;
  const excluded = new Set(policy.excludedNamespaces);
  const leaseName = lease ? `${lease.metadata.namespace ?? ''}/${lease.metadata.name ?? ''}` : '';
  return {
    input,
    accel,
    name: accel.metadata.name ?? '',
    epoch: owner.epoch,
    lease,
    leaseRef: lease && objectReference(lease),
    accelRef: objectReference(accel),
    forWhom: lease ? `lease ${leaseName}` : `epoch ${owner.epoch} (no lease waits)`,
    stored,
    records: lease ? (lease.status?.evictions ?? []) : stored,
    pins,
    current,
    stuck: current && st?.phase === 'Stuck' && pins.length > 0,
    outside: pins.filter((p) => !p.pod || excluded.has(p.pod.namespace)),
    deleting: lease?.metadata.deletionTimestamp !== undefined,
  };
}

function cond(
  h: Handoff,
  type: string,
  status: 'True' | 'False',
  reason: string,
  message: string,
): ConditionInput {
  return {
    type,
    status,
    reason,
    message: message.slice(0, 32768),
    observedGeneration: h.lease?.metadata.generation ?? 0,
  };
}

/** An event about the handoff: on the lease when there is one, and on the accelerator. */
function handoffEvent(
  h: Handoff,
  type: 'Normal' | 'Warning',
  reason: string,
  note: string,
): ReaperEffect[] {
  return [
    ...(h.leaseRef ? [event(h.leaseRef, type, reason, note)] : []),
    event(h.accelRef, type, reason, note),
  ];
}

/** `p` with more effects and wake-up times. */
function also(p: Progress, effects: readonly ReaperEffect[], wakes: readonly number[] = []) {
  return { ...p, effects: [...p.effects, ...effects], wakes: [...p.wakes, ...wakes] };
}

/** The decision from what the steps produced, its records going where this handoff keeps them. */
function decision(
  h: Handoff,
  p: Progress,
  state: ReapState,
  conditions: ConditionInput[],
  blockedBy: Blocker[] | undefined,
  plan?: Plan,
  extra: Partial<ReapSummary> = {},
): ReapDecision {
  const { now } = h.input;
  const effects = [...p.effects];
  const records = [...p.records];
  const stored = (): Pick<ReapDecision, 'leaseStatus' | 'idleEvictions'> => {
    if (h.lease) {
      return {
        leaseStatus: {
          evictions: records,
          ...(blockedBy !== undefined && { blockedBy }),
          conditions,
        },
        // An owner change drops idle records; any left belong to no handoff of this lease.
        ...(h.stored.length > 0 && { idleEvictions: [] }),
      };
    }
    return sameRecords(records, h.stored) ? {} : { idleEvictions: records };
  };
  return {
    ...stored(),
    effects,
    ...(p.wakes.length > 0 && { requeueAfterMs: Math.max(0, Math.min(...p.wakes) - now) }),
    ...(plan && { plan }),
    summary: {
      state,
      planSize: plan?.evict.length ?? 0,
      unresolvable: plan?.unresolvable.length ?? 0,
      inProgress: plan?.inProgress.length ?? 0,
      evictionsRequested: effects.filter((e) => e.type === 'evict').length,
      deletionsRequested: effects.filter((e) => e.type === 'delete').length,
      ...extra,
    },
  };
}

/** Every decision about a stuck handoff names its blockers and says when its grace ends. */
function stuckDecision(
  h: Handoff,
  p: Progress,
  plan: Plan,
  blocking: Blocking,
  grace: Grace,
  state: ReapState,
  conditions: ConditionInput[],
  extra: Partial<ReapSummary> = {},
): ReapDecision {
  return decision(h, p, state, conditions, blocking.blockedBy, plan, {
    ...extra,
    ...(grace.endsAt !== undefined && { graceEndsAt: grace.endsAt }),
  });
}

/** Records brought in line with the pod list; what is not to be sent any more is withdrawn. */
function settle(h: Handoff): Progress {
  const { policy, pods, now, evictingElsewhere } = h.input;
  const settled = settleRecords(
    h.records,
    pods,
    now,
    (r) =>
      !h.stuck ||
      h.outside.length > 0 ||
      policy.dryRun ||
      h.deleting ||
      evictingElsewhere.has(r.uid) ||
      pods.get(podKey(r.pod))?.deletionTimestamp !== undefined,
  );
  const leaseRef = h.leaseRef;
  const effects = leaseRef
    ? settled.finished.map((r) => {
        const how = r.result === 'Deleted' ? 'deleted' : 'evicted';
        const note = `pod ${podKey(r.pod)} is gone (${how} for ${h.name})`;
        return event(leaseRef, 'Normal', 'PodGone', note);
      })
    : [];
  const records = policy.dryRun
    ? settled.records
    : settled.records.filter((r) => r.result !== 'DryRun');
  return { records, effects, wakes: [] };
}

/** Not stuck: Resolved once the device reports the epoch free of stale pins. */
function notStuck(h: Handoff, p: Progress): ReapDecision {
  const resolved = h.current && h.pins.length === 0 && h.accel.status?.phase !== 'Revoking';
  if (!resolved) return decision(h, p, 'NotStuck', [], undefined);
  p = { ...p, records: p.records.map((r) => abandonedOnceFree(h, r)) };
  const hadReaping = findCondition(h.lease?.status?.conditions, 'Reaping') !== undefined;
  const sent = p.records.filter((r) => r.result === 'Evicted' || r.result === 'Deleted').length;
  const message =
    `no pin of an earlier epoch is left on ${h.name}` +
    (sent > 0 ? `; ${sent} pod(s) were evicted or deleted for it` : '');
  const conditions =
    hadReaping || p.records.length > 0 ? [cond(h, 'Reaping', 'False', 'Resolved', message)] : [];
  return decision(h, p, 'Resolved', conditions, undefined);
}

/**
 * A request the handoff no longer needs once the device is free: abandoned (attempts kept), so
 * that it no longer reads as an eviction in progress to the other handoffs. One whose pod is
 * terminating stays, and turns Evicted when the pod goes.
 */
function abandonedOnceFree(h: Handoff, r: EvictionRecord): EvictionRecord {
  const { pods, now } = h.input;
  if (!isActive(r) || r.result === 'Planned') return r;
  if (pods.get(podKey(r.pod))?.deletionTimestamp !== undefined) return r;
  return {
    ...r,
    finished: kubeTime(now),
    message: `abandoned at ${kubeTime(now)}: ${h.name} holds no pin of an earlier epoch any more`,
  };
}

function planFor(h: Handoff, records: readonly EvictionRecord[]): Plan {
  const { policy } = h.input;
  return planEvictions({
    accelerator: h.accel,
    exports: h.input.exports,
    pods: h.input.pods,
    excludedNamespaces: policy.excludedNamespaces,
    budget: evictionBudget(policy, h.lease),
    records,
    evictingElsewhere: h.input.evictingElsewhere,
  });
}

/**
 * A pod that let go of its pins by itself is no longer in the blocking set: what was only
 * planned for it is withdrawn, and a request it has not yet honoured is abandoned (its attempts
 * kept: only the message says so).
 */
function withdrawReleased(h: Handoff, p: Progress): { progress: Progress; plan: Plan } {
  const { pods, now } = h.input;
  const first = planFor(h, p.records);
  const blocking = new Set(first.inProgress.filter((x) => x.kind === 'ours').map((x) => x.uid));
  const released = (r: EvictionRecord) =>
    isActive(r) && !blocking.has(r.uid) && pods.get(podKey(r.pod))?.deletionTimestamp === undefined;
  if (!p.records.some(released)) return { progress: p, plan: first };
  const records = p.records
    .filter((r) => !(released(r) && r.result === 'Planned'))
    .map((r): EvictionRecord =>
      released(r)
        ? {
            ...r,
            finished: kubeTime(now),
            message: `abandoned at ${kubeTime(now)}: the pod no longer holds a pin of an earlier epoch`,
          }
        : r,
    );
  return { progress: { ...p, records }, plan: planFor(h, records) };
}

function blockingOf(h: Handoff, plan: Plan): Blocking {
  const heldBack =
    h.outside.length > 0
      ? `no eviction can free ${h.name} while ${h.outside.length} pin(s) held outside any pod or in an excluded namespace remain`
      : undefined;
  const reasons = new Map<Pin, string>(plan.unresolvable.map((u) => [u.pin, u.reason]));
  if (heldBack) {
    for (const e of plan.evict) {
      for (const pin of e.pins) reasons.set(pin, `pod ${podKey(e.pod)} holds it, but ${heldBack}`);
    }
  }
  const blockedBy = h.lease ? blockersOf(h.name, plan.pins, (p) => reasons.get(p)) : undefined;
  return { heldBack, reasons, blockedBy };
}

/** Grace: the pins may still go by themselves. Measured from when the handoff became stuck. */
function graceOf(h: Handoff): Grace {
  const { lease } = h;
  const since = lease
    ? trueSince(findCondition(lease.status?.conditions, 'Blocked'))
    : trueSince(findCondition(h.accel.status?.conditions, 'Pinned'));
  const ms =
    (lease ? lease.spec.revocation.gracePeriodSeconds : h.input.policy.idleGracePeriodSeconds) *
    1000;
  return { ms, endsAt: since === undefined ? undefined : since + ms };
}

const trueSince = (c: { status: string; lastTransitionTime: string | Date } | undefined) =>
  c?.status === 'True' ? timeMs(c.lastTransitionTime) : undefined;

function inGrace(
  h: Handoff,
  p: Progress,
  plan: Plan,
  blocking: Blocking,
  grace: Grace,
): ReapDecision {
  const message =
    grace.endsAt === undefined
      ? `${h.name} is pinned; the grace period of ${grace.ms / 1000}s starts once ${h.forWhom} is marked Blocked`
      : `${h.name} is pinned; evictions may start at ${kubeTime(grace.endsAt)} unless the pins go first`;
  const woken = also(p, [], [grace.endsAt ?? h.input.now + grace.ms]);
  return stuckDecision(h, woken, plan, blocking, grace, 'GracePeriod', [
    cond(h, 'Reaping', 'False', 'GracePeriod', message),
  ]);
}

/** Dry run: the records say who would be evicted; an event says so when that changes. */
function dryRun(
  h: Handoff,
  p: Progress,
  plan: Plan,
  blocking: Blocking,
  grace: Grace,
): ReapDecision {
  const { heldBack } = blocking;
  const previous = new Set(h.records.filter((r) => r.result === 'DryRun').map((r) => r.uid));
  const dry: EvictionRecord[] = heldBack
    ? []
    : plan.evict.map((e) => ({
        pod: e.pod,
        uid: e.uid,
        reason: e.reason,
        result: 'DryRun',
        message: `dry run: would be evicted with rank ${e.rank} (${RANK_MEANING[e.rank]})`,
      }));
  const records = [...p.records.filter((r) => r.result !== 'DryRun'), ...dry];
  const would =
    dry.length > 0 ? `would evict ${list(dry.map((r) => podKey(r.pod)))}` : 'would evict nobody';
  const message = `dry run: ${would}${heldBack ? `: ${heldBack}` : ''}; ${plan.unresolvable.length} pin(s) no eviction in budget can clear`;
  const changed = dry.length !== previous.size || dry.some((r) => !previous.has(r.uid));
  const events = changed
    ? handoffEvent(h, 'Normal', 'DryRun', `${message} (for ${h.forWhom})`)
    : [];
  return stuckDecision(h, also({ ...p, records }, events), plan, blocking, grace, 'DryRun', [
    cond(h, 'Reaping', 'False', 'DryRun', message),
  ]);
}

const reasonOf = (h: Handoff, r: EvictionRecord) =>
  `to free accelerator ${h.name} for ${h.forWhom}: ${r.reason}`.slice(0, 1024);

interface Retry {
  readonly r: EvictionRecord;
  readonly n: number;
  readonly after: EvictionOutcome | undefined;
  /** Sent before its backoff because the pod's budget allows a disruption since this time. */
  readonly allowedSince?: number;
}

/**
 * When the next attempt after `att` is due, and why if sooner than the backoff. The backoff
 * after attempt n is retryInitialMs·2^(n-1), at most retryMaxMs, from attempt n's time; every
 * attempt counts, early or not, so a retry refused again waits a longer one. After a refusal
 * (429) it may come sooner: after the Retry-After the refusal named (plus the second a stored
 * time may lose), or at once when the pod's budget began to allow a disruption after the refused
 * attempt was sent. "After" in whole seconds, as the times are stored: a budget that allowed
 * again in the same second as the refusal cannot be told from one that allowed before it, and
 * that retry waits. So a budget allowing once yields at most one early retry; a cache that
 * still shows it allowing after the retry was refused yields none (no hot loop).
 */
function retryAt(h: Handoff, r: EvictionRecord, att: Attempt): { at: number; since?: number } {
  const { policy, disruptions, now } = h.input;
  const backoff = att.at + retryDelayMs(policy, att.n);
  if (att.outcome !== 'Refused') return { at: backoff };
  const told =
    r.retryAfterSeconds !== undefined ? att.at + 1000 + r.retryAfterSeconds * 1000 : Infinity;
  const since = disruptions.allowedSince(podKey(r.pod));
  if (since !== undefined && since > att.at && now < Math.min(backoff, told))
    return { at: now, since };
  return { at: Math.min(backoff, told) };
}

/**
 * Advance what is under way: a deletion that did not take is sent again, an eviction past its
 * deadline turns into a deletion (unless onDeadline is Wait), and evictions refused, failed or
 * unanswered become due for a retry once their backoff has passed.
 */
function advance(
  h: Handoff,
  p: Progress,
): { progress: Progress; retries: Retry[]; overdue: EvictionRecord[] } {
  const steps = p.records.map((r) =>
    isActive(r) && r.result !== 'Planned' ? advanceOne(h, r) : { record: r },
  );
  return {
    progress: also(
      { ...p, records: steps.map((s) => s.record) },
      steps.flatMap((s) => s.effects ?? []),
      steps.flatMap((s) => s.wakes ?? []),
    ),
    retries: steps.flatMap((s) => (s.retry ? [s.retry] : [])),
    overdue: steps.flatMap((s) => (s.overdue ? [s.record] : [])),
  };
}

function advanceOne(
  h: Handoff,
  r: EvictionRecord,
): {
  record: EvictionRecord;
  effects?: ReaperEffect[];
  wakes?: number[];
  retry?: Retry;
  overdue?: boolean;
} {
  const { policy, pods, now } = h.input;
  const terminating = pods.get(podKey(r.pod))?.deletionTimestamp !== undefined;
  const att = lastAttempt(r) ?? { n: 1, at: now, outcome: undefined };
  if (r.result === 'Deleted') {
    // A deletion that did not take (no deletionTimestamp after the backoff) is sent again.
    if (terminating) return { record: r };
    const due = att.at + retryDelayMs(policy, att.n);
    if (now < due) return { record: r, wakes: [due] };
    const again: ReaperEffect = {
      type: 'delete',
      pod: r.pod,
      uid: r.uid,
      ...(policy.onDeadline === 'ForceDelete' && { gracePeriodSeconds: 0 }),
      reason: reasonOf(h, r),
      attempt: att.n + 1,
    };
    return { record: attempted(r, att.n + 1, now, 'deletion requested again'), effects: [again] };
  }
  const deadline = (timeMs(r.started) ?? now) + policy.evictionDeadlineMs;
  if (now >= deadline && policy.onDeadline !== 'Wait') return deleteOverdue(h, r);
  const wakes = now >= deadline ? [] : [deadline];
  // Accepted: the pod is going, whatever a lagging pod cache still says; never ask again.
  if (terminating || att.outcome === 'Accepted')
    return { record: r, wakes, overdue: now >= deadline };
  const next = retryAt(h, r, att);
  if (now < next.at) return { record: r, wakes: [...wakes, next.at], overdue: now >= deadline };
  return {
    record: r,
    wakes,
    overdue: now >= deadline,
    retry: {
      r,
      n: att.n + 1,
      after: att.outcome,
      ...(next.since !== undefined && { allowedSince: next.since }),
    },
  };
}

/** Past its deadline under Delete or ForceDelete: the pod is deleted, and both sides are told. */
function deleteOverdue(h: Handoff, r: EvictionRecord) {
  const { policy, now } = h.input;
  const force = policy.onDeadline === 'ForceDelete';
  // The count goes on from the evictions: the per-minute cap reads every request from it.
  const n = (lastAttempt(r)?.n ?? 0) + 1;
  const note = `still present ${policy.evictionDeadlineMs / 1000}s after its eviction started; deleting${force ? ' with grace 0' : ''} (onDeadline: ${policy.onDeadline})`;
  const effects: ReaperEffect[] = [
    {
      type: 'delete',
      pod: r.pod,
      uid: r.uid,
      ...(force && { gracePeriodSeconds: 0 }),
      reason: reasonOf(h, r),
      attempt: n,
    },
    event(podReference(r.pod, r.uid), 'Warning', 'Deleting', note),
    ...(h.leaseRef
      ? [event(h.leaseRef, 'Warning', 'Deleting', `pod ${podKey(r.pod)} ${note}`)]
      : []),
  ];
  return { record: { ...attempted(r, n, now, note), result: 'Deleted' as const }, effects };
}

/** Send what is due, within the cluster-wide rate: retries first, then the planned wave. */
function sendDue(
  h: Handoff,
  p: Progress,
  retries: readonly Retry[],
): { progress: Progress; deferred: readonly Retry[] } {
  const { policy, now } = h.input;
  const due: Retry[] = [
    ...[...retries].sort((a, b) => compareText(podKey(a.r.pod), podKey(b.r.pod))),
    ...p.records
      .filter((r) => r.result === 'Planned')
      .sort((a, b) => compareText(podKey(a.pod), podKey(b.pod)))
      .map((r) => ({ r, n: 1, after: undefined })),
  ];
  const allowance = Math.max(0, policy.maxEvictionsPerMinute - h.input.evictionsInLastMinute);
  const deferred = due.slice(allowance);
  const wakes =
    deferred.length > 0
      ? [now + Math.ceil(60_000 / Math.max(1, policy.maxEvictionsPerMinute))]
      : [];
  const sending = new Map(due.slice(0, allowance).map((d) => [d.r, d]));
  const sent = p.records.map((r) => {
    const send = sending.get(r);
    return send ? sendOne(h, r, send) : { record: r, effects: [] };
  });
  return {
    progress: also(
      { ...p, records: sent.map((s) => s.record) },
      sent.flatMap((s) => s.effects),
      wakes,
    ),
    deferred,
  };
}

function sendOne(h: Handoff, r: EvictionRecord, send: Retry) {
  const reason = reasonOf(h, r);
  const effects: ReaperEffect[] = [
    { type: 'evict', pod: r.pod, uid: r.uid, reason, attempt: send.n },
    ...(send.n === 1
      ? [event(podReference(r.pod, r.uid), 'Normal', 'Evicting', `evicting ${reason}`)]
      : []),
  ];
  const text =
    send.n === 1
      ? 'eviction requested'
      : send.allowedSince !== undefined
        ? `eviction requested again: its PodDisruptionBudget allows a disruption since ${kubeTime(send.allowedSince)}`
        : `eviction requested again: ${RETRIED_AFTER[send.after ?? 'None']}`;
  const record: EvictionRecord = {
    ...attempted(r, send.n, h.input.now, text),
    result: 'Evicting',
    started: r.started ?? kubeTime(h.input.now),
  };
  return { record, effects };
}

/** A new wave: every plannable holder of the lowest rank that still holds pins. */
function newWave(
  h: Handoff,
  p: Progress,
  plan: Plan,
  blocking: Blocking,
): { progress: Progress; rank?: Rank } {
  if (blocking.heldBack) return { progress: p };
  const ranks = [...plan.evict, ...plan.inProgress].map((e) => e.rank);
  if (ranks.length === 0) return { progress: p };
  const rank = Math.min(...ranks) as Rank;
  const wave = plan.evict.filter((e) => e.rank === rank);
  if (wave.length === 0) return { progress: p };
  const planned = wave.map((e): EvictionRecord => ({
    pod: e.pod,
    uid: e.uid,
    reason: e.reason,
    result: 'Planned',
  }));
  const note = `${h.name} is stuck for ${h.forWhom}: evicting ${RANK_MEANING[rank]}: ${list(wave.map((e) => `${podKey(e.pod)} (${e.reason})`))}`;
  return {
    progress: also(
      { ...p, records: [...p.records, ...planned] },
      handoffEvent(h, 'Normal', 'Reaping', note),
      [h.input.now],
    ),
    rank,
  };
}

/** The step's state: Unresolvable when nothing is under way, else what holds the handoff up. */
function conclude(
  h: Handoff,
  p: Progress,
  plan: Plan,
  blocking: Blocking,
  grace: Grace,
  steps: {
    overdue: readonly EvictionRecord[];
    deferred: readonly Retry[];
    wave?: Rank | undefined;
  },
): ReapDecision {
  const ours = p.records.filter(isActive);
  const others = plan.inProgress.filter((x) => x.kind !== 'ours');
  if (ours.length === 0 && others.length === 0) return unresolvable(h, p, plan, blocking, grace);
  const { policy } = h.input;
  const { overdue, deferred } = steps;
  const withOthers = (m: string, state: ReapState) =>
    others.length > 0 && state !== 'Waiting'
      ? `${m}; also waiting for ${list(others.map((x) => podKey(x.pod)))}`
      : m;
  const [state, text, events]: [ReapState, string, ReaperEffect[]] =
    overdue.length > 0
      ? deadlineExceeded(h, overdue)
      : deferred.length > 0
        ? [
            'RateLimited',
            `maxEvictionsPerMinute (${policy.maxEvictionsPerMinute}) reached; waiting to evict ${list(deferred.map((d) => podKey(d.r.pod)))}`,
            [],
          ]
        : ours.length > 0
          ? ['Evicting', `evicting to free ${h.name}: ${list(ours.map(describeRecord))}`, []]
          : [
              'Waiting',
              `waiting for ${list(others.map((x) => `${podKey(x.pod)} (${x.reason})`))}`,
              [],
            ];
  return stuckDecision(
    h,
    also(p, events),
    plan,
    blocking,
    grace,
    state,
    [cond(h, 'Reaping', 'True', state, withOthers(text, state))],
    steps.wave !== undefined ? { wave: steps.wave } : {},
  );
}

function deadlineExceeded(
  h: Handoff,
  overdue: readonly EvictionRecord[],
): [ReapState, string, ReaperEffect[]] {
  const message = `still present after the eviction deadline of ${h.input.policy.evictionDeadlineMs / 1000}s (onDeadline: Wait): ${list(overdue.map(describeRecord))}`;
  const prev = findCondition(h.lease?.status?.conditions, 'Reaping');
  const events =
    prev?.reason !== 'DeadlineExceeded'
      ? handoffEvent(h, 'Warning', 'EvictionDeadlineExceeded', message)
      : [];
  return ['DeadlineExceeded', message, events];
}

/** Nothing under way and pins remain: no eviction can clear them. Say so, and cordon. */
function unresolvable(
  h: Handoff,
  p: Progress,
  plan: Plan,
  blocking: Blocking,
  grace: Grace,
): ReapDecision {
  const what = plan.pins.map((pin) => {
    const holder = pin.pod ? `pod ${podKey(pin.pod)}` : `pid ${pin.pid}`;
    return `${pinLabel(pin)} in ${holder}: ${blocking.reasons.get(pin) ?? 'no eviction planned'}`;
  });
  const message = `${h.name} cannot be granted at epoch ${h.epoch}: ${what.join('; ')}`;
  const done = p.records.filter((r) => r.result === 'Evicted' || r.result === 'Deleted').length;
  const cordoned = h.accel.metadata.annotations?.[CORDON_ANNOTATION] !== undefined;
  const blocked = findCondition(h.lease?.status?.conditions, 'Blocked');
  const effects: ReaperEffect[] = [
    ...((h.lease ? blocked?.reason !== 'Unresolvable' : !cordoned)
      ? handoffEvent(h, 'Warning', 'Unresolvable', message)
      : []),
    ...(cordoned
      ? []
      : [{ type: 'cordon' as const, accelerator: h.name, message: message.slice(0, 1024) }]),
  ];
  const remain = `${done} pod(s) evicted or deleted; ${plan.pins.length} pin(s) remain that no eviction can clear`;
  return stuckDecision(
    h,
    also(p, effects, [h.input.now + h.input.policy.retryMaxMs]),
    plan,
    blocking,
    grace,
    'Unresolvable',
    [
      cond(h, 'Blocked', 'True', 'Unresolvable', message),
      cond(h, 'Reaping', 'False', 'Unresolvable', remain),
    ],
  );
}
