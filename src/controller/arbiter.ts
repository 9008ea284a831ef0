// The handoff as a pure function: one accelerator and the leases queued on it -> the writes to make.
import {
  deviceQueue,
  findCondition,
  LAST_HANDOFF_ANNOTATION,
  isFinished,
  leaseExpiry,
  leaseKey,
  setConditions,
  type Accelerator,
  type AcceleratorLease,
  type AcceleratorLeaseStatus,
  type AcceleratorOwner,
  blockersOf,
  stalePins,
  type Blocker,
  type ConditionInput,
  type LeaseRef,
  type Pin,
  MAX_EPOCH,
  MAX_TIME_MS,
  parseDuration,
  kubeTime,
  timeMsOrZero,
} from '../crds/index.ts';
import { countedUntil } from '../reaper/index.ts';

export const FINALIZER = 'accel.dmabuf.io/finalizer';

/**
 * A handoff that completes within this long writes no intermediate status on the next lease: it
 * goes from Queued straight to Granted. A handoff still running after this long (or Stuck) gets
 * HandoffInProgress written. Most handoffs take a fraction of this, so the common case costs
 * one write less.
 */
export const SETTLE_MS = 1000;

/**
 * A write the controller makes. Writes between two `wait`s run concurrently (writes to one lease
 * in order); a `wait` lets nothing after it start until everything before it succeeded.
 */
export type Action =
  | { type: 'wait' }
  | { type: 'addFinalizer'; lease: AcceleratorLease }
  | { type: 'removeFinalizer'; lease: AcceleratorLease }
  | { type: 'setOwner'; accelerator: Accelerator; owner: AcceleratorOwner }
  | { type: 'leaseStatus'; lease: AcceleratorLease; status: AcceleratorLeaseStatus }
  | {
      type: 'event';
      regarding: Accelerator | AcceleratorLease;
      eventType: 'Normal' | 'Warning';
      reason: string;
      note: string;
    };

export interface Decision {
  actions: Action[];
  /** Reconcile again after this long even if nothing changes (a lease expiring). */
  requeueAfterMs?: number;
}

const uidOf = (l: AcceleratorLease) => l.metadata.uid ?? '';

export const leaseRef = (l: AcceleratorLease): LeaseRef => ({
  namespace: l.metadata.namespace ?? '',
  name: l.metadata.name ?? '',
  uid: uidOf(l),
});

function describePin(p: Pin): string {
  const holder = p.pod ? `pod ${p.pod.namespace}/${p.pod.name}` : 'a process outside any pod';
  const what = p.kind === 'fd' ? 'an open fd' : `${p.kind} importer ${p.importer ?? '?'}`;
  const buf = p.export ?? p.buffer ?? `ino ${p.inode}`;
  return `${buf} is pinned by ${what} in ${holder} (pid ${p.pid})`;
}

interface Desired {
  phase: NonNullable<AcceleratorLeaseStatus['phase']>;
  epoch?: number;
  queuePosition?: number;
  grantedAt?: string;
  expiresAt?: string;
  blockedBy?: Blocker[];
  conditions: ConditionInput[];
}

function cond(
  lease: AcceleratorLease,
  type: string,
  status: 'True' | 'False',
  reason: string,
  message: string,
): ConditionInput {
  return { type, status, reason, message, observedGeneration: lease.metadata.generation ?? 0 };
}

/** Build the full status from the desired parts, keeping fields other controllers own (evictions). */
function statusFor(
  lease: AcceleratorLease,
  accelerator: string | undefined,
  want: Desired,
  nowIso: string,
): AcceleratorLeaseStatus {
  const prev = lease.status ?? {};
  const status: AcceleratorLeaseStatus = {
    phase: want.phase,
    ...(accelerator !== undefined && { accelerator }),
    ...(want.epoch !== undefined && { epoch: want.epoch }),
    ...(want.queuePosition !== undefined && { queuePosition: want.queuePosition }),
    ...(want.grantedAt !== undefined && { grantedAt: want.grantedAt }),
    ...(want.expiresAt !== undefined && { expiresAt: want.expiresAt }),
    ...(want.blockedBy !== undefined && want.blockedBy.length > 0 && { blockedBy: want.blockedBy }),
    ...(prev.evictions !== undefined && { evictions: prev.evictions }),
    conditions: setConditions(prev.conditions, want.conditions, nowIso),
    observedGeneration: lease.metadata.generation ?? 0,
  };
  return status;
}

/** Compare two statuses as the API server would store them (key order and undefined ignored). */
export function sameStatus(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .filter(([, x]) => x !== undefined)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, x]) => [k, canonical(x)]),
    );
  }
  return v;
}

const EVENT_FOR_PHASE: Partial<Record<Desired['phase'], { reason: string; type: 'Normal' }>> = {
  Granted: { reason: 'Granted', type: 'Normal' },
  Expired: { reason: 'Expired', type: 'Normal' },
};

/** One device's handoff as the arbiter sees it in this round; fixed for the whole round. */
interface Round {
  readonly accelerator: Accelerator;
  readonly name: string;
  readonly now: number;
  readonly nowIso: string;
  readonly specOwner: AcceleratorOwner | undefined;
  /** The owner after this round: specOwner, or the next lease at epoch + 1. */
  readonly owner: AcceleratorOwner | undefined;
  readonly ownerChanged: boolean;
  readonly next: AcceleratorLease | undefined;
  readonly waiting: readonly AcceleratorLease[];
  /** status.observedEpoch, -1 before the device reports one. */
  readonly observed: number;
  /** The device reports that it enforces `owner`. */
  readonly enforced: boolean;
  readonly stale: readonly Pin[];
  readonly stuck: boolean;
  /** Until when a handoff in progress writes no transient lease states (see SETTLE_MS). */
  readonly settleUntil: number;
  readonly settling: boolean;
}

/** What the round wants for one lease: a status, nothing (deferred while settling), or to let go. */
type LeaseWant =
  /** `wakeAt`: when this want may change with nothing else happening (a hold running out). */
  { kind: 'status'; want: Desired; wakeAt?: number } | { kind: 'defer' } | { kind: 'release' };

/**
 * Decide the writes for one accelerator. `leases` are every lease that targets it (by name, or
 * placed on it by selector). Pure: the same inputs give the same actions.
 * I1: a lease is written Granted only once the device reports it enforces that lease's epoch, and
 * only after every other lease of the device has left Granted (see the `wait` in ordered()).
 */
export function decide(
  accelerator: Accelerator,
  leases: readonly AcceleratorLease[],
  now: number,
): Decision {
  const specOwner = accelerator.spec.owner;
  const { holder, next, waiting } = deviceQueue(accelerator, leases, now);
  // Step 2 of the handoff: the holder is gone (deleted, expired) -> the next in line, epoch + 1.
  const handsOver = !holder && (next !== undefined || specOwner?.lease !== undefined);
  if (handsOver && (specOwner?.epoch ?? 0) >= MAX_EPOCH) {
    return decideExhausted(accelerator, leases, now);
  }
  const round = roundOf(accelerator, now, handsOver, next, waiting);
  const perLease = leases.map((lease) => ({ lease, want: wantFor(round, lease) }));
  const finalizers = leases.flatMap((lease, i): Action[] => {
    const addFinalizer =
      !lease.metadata.deletionTimestamp && !lease.metadata.finalizers?.includes(FINALIZER);
    const release =
      perLease[i]?.want.kind === 'release' && lease.metadata.finalizers?.includes(FINALIZER);
    return [
      ...(addFinalizer ? [{ type: 'addFinalizer' as const, lease }] : []),
      ...(release ? [{ type: 'removeFinalizer' as const, lease }] : []),
    ];
  });
  const writes = perLease.flatMap(({ lease, want }) =>
    want.kind === 'status' ? statusWrite(round, lease, want.want) : [],
  );
  const actions = ordered(
    round,
    leases,
    finalizers,
    writes.flatMap((w) => w.status),
    writes.flatMap((w) => w.events),
  );
  // The holder's expiry (granted and with a duration) is the next moment anything changes.
  const expiry = next && round.enforced ? leaseExpiry(next) : undefined;
  const deferred = perLease.some((x) => x.want.kind === 'defer');
  const holds = perLease.map((x) => (x.want.kind === 'status' ? x.want.wakeAt : undefined));
  const wakeAt = [expiry, deferred ? round.settleUntil : undefined, ...holds].filter(
    (t): t is number => t !== undefined,
  );
  return wakeAt.length > 0
    ? { actions, requeueAfterMs: Math.max(0, Math.min(...wakeAt) - now) }
    : { actions };
}

function roundOf(
  accelerator: Accelerator,
  now: number,
  handsOver: boolean,
  next: AcceleratorLease | undefined,
  waiting: readonly AcceleratorLease[],
): Round {
  const specOwner = accelerator.spec.owner;
  const owner: AcceleratorOwner | undefined = handsOver
    ? { ...(next && { lease: leaseRef(next) }), epoch: (specOwner?.epoch ?? 0) + 1 }
    : specOwner;
  const ownerChanged = owner !== specOwner;
  const status = accelerator.status;
  const observed = status?.observedEpoch ?? -1;
  const enforced =
    owner !== undefined &&
    !ownerChanged &&
    observed === owner.epoch &&
    status?.phase === 'Owned' &&
    status.owner?.lease?.uid === owner.lease?.uid;
  const stale = stalePins(accelerator, owner?.epoch ?? 0);
  const stuck =
    owner !== undefined &&
    status?.phase === 'Stuck' &&
    observed === owner.epoch &&
    stale.length > 0;
  const handoffAt = ownerChanged
    ? now
    : Date.parse(accelerator.metadata.annotations?.[LAST_HANDOFF_ANNOTATION] ?? '');
  const settleUntil = Number.isFinite(handoffAt) ? handoffAt + SETTLE_MS : -Infinity;
  return {
    accelerator,
    name: accelerator.metadata.name ?? '',
    now,
    nowIso: kubeTime(now),
    specOwner,
    owner,
    ownerChanged,
    next,
    waiting,
    observed,
    enforced,
    stale,
    stuck,
    settleUntil,
    settling: !stuck && now < settleUntil,
  };
}

/** What one lease's status should say: the next owner, releasing, finished, or queued. */
function wantFor(r: Round, lease: AcceleratorLease): LeaseWant {
  if (lease === r.next && r.owner?.lease) {
    if (r.enforced) return { kind: 'status', want: granted(r, lease, r.owner.epoch) };
    if (r.settling) return { kind: 'defer' };
    return { kind: 'status', want: handingOver(r, lease, r.owner.epoch) };
  }
  if (lease.metadata.deletionTimestamp) return releasing(r, lease);
  if (isFinished(lease, r.now)) return { kind: 'status', want: finished(r, lease) };
  const position = r.waiting.indexOf(lease) + 1;
  const held = r.next ? `held by ${leaseKey(r.next)}` : 'free';
  return {
    kind: 'status',
    want: {
      phase: 'Pending',
      queuePosition: position,
      conditions: [
        cond(
          lease,
          'Granted',
          'False',
          'Queued',
          `position ${position} in the queue for ${r.name} (${held})`,
        ),
      ],
    },
  };
}

function granted(r: Round, lease: AcceleratorLease, epoch: number): Desired {
  const grantedAt = lease.status?.grantedAt ?? r.nowIso;
  // Clamped: a grant late in year 9999 still gets an expiry the schema can hold.
  const exp = lease.spec.duration
    ? kubeTime(Math.min(timeMsOrZero(grantedAt) + parseDuration(lease.spec.duration), MAX_TIME_MS))
    : undefined;
  return {
    phase: 'Granted',
    epoch,
    queuePosition: 0,
    grantedAt,
    ...(exp !== undefined && { expiresAt: exp }),
    conditions: [
      cond(
        lease,
        'Granted',
        'True',
        'Granted',
        `${r.name} is owned by this lease at epoch ${epoch}`,
      ),
      cond(lease, 'Blocked', 'False', 'NotBlocked', 'nothing pins the device'),
    ],
  };
}

function handingOver(r: Round, lease: AcceleratorLease, epoch: number): Desired {
  return {
    phase: 'Pending',
    epoch,
    queuePosition: 0,
    ...(r.stuck && { blockedBy: blockersOf(r.name, r.stale) }),
    conditions: [
      cond(
        lease,
        'Granted',
        'False',
        'HandoffInProgress',
        `waiting for the agent on ${r.accelerator.spec.node} to hand ${r.name} over at epoch ${epoch}`,
      ),
      r.stuck
        ? cond(
            lease,
            'Blocked',
            'True',
            'Pinned',
            `${r.name} cannot be granted at epoch ${epoch}: ${r.stale.map(describePin).join('; ')}`,
          )
        : cond(lease, 'Blocked', 'False', 'NotBlocked', 'nothing pins the device'),
    ],
  };
}

/** A deleted lease: Releasing while the device still references it, else its finalizer goes. */
function releasing(r: Round, lease: AcceleratorLease): LeaseWant {
  const status = r.accelerator.status;
  const epoch = lease.status?.epoch;
  const stillReferenced =
    r.owner?.lease?.uid === uidOf(lease) ||
    status?.owner?.lease?.uid === uidOf(lease) ||
    (epoch !== undefined &&
      (r.observed < (r.owner?.epoch ?? 0) || (status?.pins ?? []).some((p) => p.epoch === epoch)));
  // Its eviction records still count toward the per-minute cap: they go with the lease.
  const counted = countedUntil(lease.status?.evictions ?? []);
  const holdsRecords = counted !== undefined && counted > r.now;
  if (!stillReferenced && !holdsRecords) return { kind: 'release' };
  const why = stillReferenced
    ? `waiting for ${r.name} to drop epoch ${epoch ?? '?'}`
    : `kept until ${kubeTime(counted ?? r.now)}, while its evictions count toward the per-minute cap`;
  return {
    kind: 'status',
    want: {
      phase: 'Releasing',
      ...(epoch !== undefined && { epoch }),
      conditions: [cond(lease, 'Granted', 'False', 'Releasing', why)],
    },
    ...(holdsRecords && { wakeAt: counted }),
  };
}

function finished(r: Round, lease: AcceleratorLease): Desired {
  const st = lease.status;
  return {
    phase: st?.phase === 'Failed' ? 'Failed' : 'Expired',
    ...(st?.epoch !== undefined && { epoch: st.epoch }),
    ...(st?.grantedAt !== undefined && { grantedAt: st.grantedAt }),
    ...(st?.expiresAt !== undefined && { expiresAt: st.expiresAt }),
    conditions: [
      cond(
        lease,
        'Granted',
        'False',
        'Expired',
        `held ${r.name} for its full duration ${lease.spec.duration ?? ''}`,
      ),
    ],
  };
}

/** The status write a lease needs (none when it already says `want`), and the events it brings. */
function statusWrite(
  r: Round,
  lease: AcceleratorLease,
  want: Desired,
): { status: Action[]; events: Action[] }[] {
  const desired = statusFor(lease, r.name, want, r.nowIso);
  if (sameStatus(desired, lease.status)) return [];
  const ev = (eventType: 'Normal' | 'Warning', reason: string, note: string): Action => ({
    type: 'event',
    regarding: lease,
    eventType,
    reason,
    note,
  });
  const phaseEvent = EVENT_FOR_PHASE[want.phase];
  const blocked = want.conditions.find((c) => c.type === 'Blocked');
  const events: Action[] = [
    ...(phaseEvent && lease.status?.phase !== want.phase
      ? [
          ev(
            phaseEvent.type,
            phaseEvent.reason,
            want.phase === 'Granted'
              ? `granted ${r.name} at epoch ${want.epoch ?? '?'}`
              : `expired after ${lease.spec.duration ?? ''} on ${r.name}`,
          ),
        ]
      : []),
    ...(blocked?.status === 'True' &&
    findCondition(lease.status?.conditions, 'Blocked')?.status !== 'True'
      ? [ev('Warning', 'Pinned', blocked.message)]
      : []),
    ...(want.phase === 'Pending' && lease.status?.phase === undefined
      ? [ev('Normal', 'Queued', `queued for ${r.name} at position ${want.queuePosition ?? 0}`)]
      : []),
  ];
  return [{ status: [{ type: 'leaseStatus', lease, status: desired }], events }];
}

/**
 * Everything runs at once, except in two cases, where the lease leaving Granted is written
 * first, behind a wait: the owner moves away from a lease that is not deleted (its tenant may
 * still act on Granted), or a lease is granted while another still shows Granted (that
 * lease's way out is its status, or its finalizer when it is deleted).
 */
function ordered(
  r: Round,
  leases: readonly AcceleratorLease[],
  finalizers: readonly Action[],
  statusWrites: readonly Action[],
  events: readonly Action[],
): Action[] {
  const isGrant = (a: Action) => a.type === 'leaseStatus' && a.status.phase === 'Granted';
  const grants = statusWrites.filter(isGrant);
  const shownGranted = (l: AcceleratorLease) => l.status?.phase === 'Granted';
  const ownerWrites: Action[] = [];
  const ownerEvents: Action[] = [];
  if (r.ownerChanged && r.owner) {
    if (leases.some((l) => shownGranted(l) && !l.metadata.deletionTimestamp))
      ownerWrites.push({ type: 'wait' });
    ownerWrites.push({ type: 'setOwner', accelerator: r.accelerator, owner: r.owner });
    const who = (l: LeaseRef | undefined) => (l ? `${l.namespace}/${l.name}` : 'nobody');
    ownerEvents.push({
      type: 'event',
      regarding: r.accelerator,
      eventType: 'Normal',
      reason: 'HandoffStarted',
      note: `ownership moves from ${who(r.specOwner?.lease)} to ${who(r.owner.lease)} at epoch ${r.owner.epoch}`,
    });
  }
  const grantee = new Set(grants.map((a) => (a.type === 'leaseStatus' ? uidOf(a.lease) : '')));
  const grantWait =
    grants.length > 0 && leases.some((l) => shownGranted(l) && !grantee.has(uidOf(l)))
      ? [{ type: 'wait' as const }]
      : [];
  return [
    ...finalizers,
    ...statusWrites.filter((a) => !isGrant(a)),
    ...ownerWrites,
    ...grantWait,
    ...grants,
    ...events,
    ...ownerEvents,
  ];
}

/**
 * A device whose fencing epoch cannot rise any more (it would leave the integers a JavaScript
 * number holds exactly, and the schema's bound): no lease can be handed the device, so every
 * live lease waits saying why, and nothing is granted. Deleted leases the device no longer
 * references are let go as usual.
 */
function decideExhausted(
  accelerator: Accelerator,
  leases: readonly AcceleratorLease[],
  now: number,
): Decision {
  const nowIso = kubeTime(now);
  const name = accelerator.metadata.name ?? '';
  const referenced = new Set(
    [accelerator.spec.owner?.lease?.uid, accelerator.status?.owner?.lease?.uid].filter(
      (u): u is string => u !== undefined,
    ),
  );
  const message =
    `${name} is at the highest fencing epoch (${MAX_EPOCH}) and cannot change owner again: ` +
    'an administrator must retire the device (delete the Accelerator and its node agent state)';
  const actions: Action[] = [];
  const events: Action[] = [];
  for (const lease of leases) {
    if (lease.metadata.deletionTimestamp) {
      if (!referenced.has(uidOf(lease)) && lease.metadata.finalizers?.includes(FINALIZER))
        actions.push({ type: 'removeFinalizer', lease });
      continue;
    }
    if (!lease.metadata.finalizers?.includes(FINALIZER))
      actions.push({ type: 'addFinalizer', lease });
    if (isFinished(lease, now)) continue;
    const desired = statusFor(
      lease,
      name,
      {
        phase: 'Pending',
        conditions: [cond(lease, 'Granted', 'False', 'EpochExhausted', message)],
      },
      nowIso,
    );
    if (sameStatus(desired, lease.status)) continue;
    actions.push({ type: 'leaseStatus', lease, status: desired });
    events.push({
      type: 'event',
      regarding: lease,
      eventType: 'Warning',
      reason: 'EpochExhausted',
      note: message,
    });
  }
  return { actions: [...actions, ...events] };
}

/**
 * Leases that name an accelerator that does not exist: they wait, saying so, and never block
 * their own deletion.
 */
export function decideMissing(
  name: string,
  leases: readonly AcceleratorLease[],
  now: number,
): Decision {
  const nowIso = kubeTime(now);
  const actions: Action[] = [];
  for (const lease of leases) {
    if (lease.metadata.deletionTimestamp) {
      if (lease.metadata.finalizers?.includes(FINALIZER))
        actions.push({ type: 'removeFinalizer', lease });
      continue;
    }
    if (!lease.metadata.finalizers?.includes(FINALIZER))
      actions.push({ type: 'addFinalizer', lease });
    const desired = statusFor(
      lease,
      undefined,
      {
        phase: 'Pending',
        conditions: [
          cond(
            lease,
            'Granted',
            'False',
            'AcceleratorNotFound',
            `accelerator ${name} does not exist; the lease waits until a node agent publishes it (kubectl get accel)`,
          ),
        ],
      },
      nowIso,
    );
    if (!sameStatus(desired, lease.status))
      actions.push({ type: 'leaseStatus', lease, status: desired });
  }
  return { actions };
}
