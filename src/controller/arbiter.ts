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

/**
 * Decide the writes for one accelerator. `leases` are every lease that targets it (by name, or
 * placed on it by selector). Pure: the same inputs give the same actions.
 * I1: a lease is written Granted only once the device reports it enforces that lease's epoch, and
 * only after every other lease of the device has left Granted (see the `wait` below).
 */
export function decide(
  accelerator: Accelerator,
  leases: readonly AcceleratorLease[],
  now: number,
): Decision {
  const nowIso = kubeTime(now);
  const name = accelerator.metadata.name ?? '';
  const actions: Action[] = [];
  const statusWrites: Action[] = [];
  const events: Action[] = [];

  const specOwner = accelerator.spec.owner;
  const currentEpoch = specOwner?.epoch ?? 0;
  const { holder, next, waiting } = deviceQueue(accelerator, leases, now);

  // Step 2 of the handoff: the holder is gone (deleted, expired) -> the next in line, epoch + 1.
  if (!holder && (next || specOwner?.lease) && currentEpoch >= MAX_EPOCH) {
    return decideExhausted(accelerator, leases, now);
  }
  let owner: AcceleratorOwner | undefined = specOwner;
  if (!holder && (next || specOwner?.lease)) {
    owner = { ...(next && { lease: leaseRef(next) }), epoch: currentEpoch + 1 };
  }
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
  // While a handoff settles, its transient lease states are not written (see SETTLE_MS).
  const handoffAt = ownerChanged
    ? now
    : Date.parse(accelerator.metadata.annotations?.[LAST_HANDOFF_ANNOTATION] ?? '');
  const settleUntil = Number.isFinite(handoffAt) ? handoffAt + SETTLE_MS : -Infinity;
  const settling = !stuck && now < settleUntil;
  let deferred = false;

  for (const lease of leases) {
    if (!lease.metadata.deletionTimestamp && !lease.metadata.finalizers?.includes(FINALIZER)) {
      actions.push({ type: 'addFinalizer', lease });
    }
    let want: Desired;
    if (lease === next && owner?.lease) {
      if (enforced) {
        const grantedAt = lease.status?.grantedAt ?? nowIso;
        // Clamped: a grant late in year 9999 still gets an expiry the schema can hold.
        const exp = lease.spec.duration
          ? kubeTime(
              Math.min(timeMsOrZero(grantedAt) + parseDuration(lease.spec.duration), MAX_TIME_MS),
            )
          : undefined;
        want = {
          phase: 'Granted',
          epoch: owner.epoch,
          queuePosition: 0,
          grantedAt,
          ...(exp !== undefined && { expiresAt: exp }),
          conditions: [
            cond(
              lease,
              'Granted',
              'True',
              'Granted',
              `${name} is owned by this lease at epoch ${owner.epoch}`,
            ),
            cond(lease, 'Blocked', 'False', 'NotBlocked', 'nothing pins the device'),
          ],
        };
      } else if (settling) {
        deferred = true;
        continue;
      } else {
        want = {
          phase: 'Pending',
          epoch: owner.epoch,
          queuePosition: 0,
          ...(stuck && { blockedBy: blockersOf(name, stale) }),
          conditions: [
            cond(
              lease,
              'Granted',
              'False',
              'HandoffInProgress',
              `waiting for the agent on ${accelerator.spec.node} to hand ${name} over at epoch ${owner.epoch}`,
            ),
            stuck
              ? cond(
                  lease,
                  'Blocked',
                  'True',
                  'Pinned',
                  `${name} cannot be granted at epoch ${owner.epoch}: ${stale.map(describePin).join('; ')}`,
                )
              : cond(lease, 'Blocked', 'False', 'NotBlocked', 'nothing pins the device'),
          ],
        };
      }
    } else if (lease.metadata.deletionTimestamp) {
      const epoch = lease.status?.epoch;
      const stillReferenced =
        owner?.lease?.uid === uidOf(lease) ||
        status?.owner?.lease?.uid === uidOf(lease) ||
        (epoch !== undefined &&
          (observed < (owner?.epoch ?? 0) || (status?.pins ?? []).some((p) => p.epoch === epoch)));
      if (!stillReferenced) {
        if (lease.metadata.finalizers?.includes(FINALIZER)) {
          actions.push({ type: 'removeFinalizer', lease });
        }
        continue;
      }
      want = {
        phase: 'Releasing',
        ...(epoch !== undefined && { epoch }),
        conditions: [
          cond(
            lease,
            'Granted',
            'False',
            'Releasing',
            `waiting for ${name} to drop epoch ${epoch ?? '?'}`,
          ),
        ],
      };
    } else if (isFinished(lease, now)) {
      want = {
        phase: lease.status?.phase === 'Failed' ? 'Failed' : 'Expired',
        ...(lease.status?.epoch !== undefined && { epoch: lease.status.epoch }),
        ...(lease.status?.grantedAt !== undefined && { grantedAt: lease.status.grantedAt }),
        ...(lease.status?.expiresAt !== undefined && { expiresAt: lease.status.expiresAt }),
        conditions: [
          cond(
            lease,
            'Granted',
            'False',
            'Expired',
            `held ${name} for its full duration ${lease.spec.duration ?? ''}`,
          ),
        ],
      };
    } else {
      const position = waiting.indexOf(lease) + 1;
      const held = next ? `held by ${leaseKey(next)}` : 'free';
      want = {
        phase: 'Pending',
        queuePosition: position,
        conditions: [
          cond(
            lease,
            'Granted',
            'False',
            'Queued',
            `position ${position} in the queue for ${name} (${held})`,
          ),
        ],
      };
    }
    const desired = statusFor(lease, name, want, nowIso);
    if (!sameStatus(desired, lease.status)) {
      statusWrites.push({ type: 'leaseStatus', lease, status: desired });
      const ev = EVENT_FOR_PHASE[want.phase];
      if (ev && lease.status?.phase !== want.phase) {
        const note =
          want.phase === 'Granted'
            ? `granted ${name} at epoch ${want.epoch ?? '?'}`
            : `expired after ${lease.spec.duration ?? ''} on ${name}`;
        events.push({
          type: 'event',
          regarding: lease,
          eventType: ev.type,
          reason: ev.reason,
          note,
        });
      }
      const blocked = want.conditions.find((c) => c.type === 'Blocked');
      if (
        blocked?.status === 'True' &&
        findCondition(lease.status?.conditions, 'Blocked')?.status !== 'True'
      ) {
        events.push({
          type: 'event',
          regarding: lease,
          eventType: 'Warning',
          reason: 'Pinned',
          note: blocked.message,
        });
      }
      if (want.phase === 'Pending' && lease.status?.phase === undefined) {
        events.push({
          type: 'event',
          regarding: lease,
          eventType: 'Normal',
          reason: 'Queued',
          note: `queued for ${name} at position ${want.queuePosition ?? 0}`,
        });
      }
    }
  }

  // Everything runs at once, except in two cases, where the lease leaving Granted is written
  // first, behind a wait: the owner moves away from a lease that is not deleted (its tenant may
  // still act on Granted), or a lease is granted while another still shows Granted (that
  // lease's way out is its status, or its finalizer when it is deleted).
  const isGrant = (a: Action) => a.type === 'leaseStatus' && a.status.phase === 'Granted';
  const grants = statusWrites.filter(isGrant);
  actions.push(...statusWrites.filter((a) => !isGrant(a)));
  if (ownerChanged && owner) {
    if (leases.some((l) => l.status?.phase === 'Granted' && !l.metadata.deletionTimestamp))
      actions.push({ type: 'wait' });
    actions.push({ type: 'setOwner', accelerator, owner });
    const who = (l: LeaseRef | undefined) => (l ? `${l.namespace}/${l.name}` : 'nobody');
    events.push({
      type: 'event',
      regarding: accelerator,
      eventType: 'Normal',
      reason: 'HandoffStarted',
      note: `ownership moves from ${who(specOwner?.lease)} to ${who(owner.lease)} at epoch ${owner.epoch}`,
    });
  }
  if (grants.length > 0) {
    const grantee = new Set(grants.map((a) => (a.type === 'leaseStatus' ? uidOf(a.lease) : '')));
    if (leases.some((l) => l.status?.phase === 'Granted' && !grantee.has(uidOf(l))))
      actions.push({ type: 'wait' });
    actions.push(...grants);
  }
  actions.push(...events);

  // The holder's expiry (granted and with a duration) is the next moment anything changes.
  const expiry = next && enforced ? leaseExpiry(next) : undefined;
  const wakeAt = [expiry, deferred ? settleUntil : undefined].filter(
    (t): t is number => t !== undefined,
  );
  const decision: Decision = { actions };
  if (wakeAt.length > 0) decision.requeueAfterMs = Math.max(0, Math.min(...wakeAt) - now);
  return decision;
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
