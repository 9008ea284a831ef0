// The leader-election state machine as a pure function: from the Lease as last observed and
// our own clock, decide whether to create, acquire, renew, wait, or give up leadership.
import { toMicroTime } from './clock.ts';
import type { LeaseSpec } from './event-types.ts';

export interface ElectionState {
  identity: string;
  /** Local clock, ms. */
  now: number;
  /** Used when the record does not say (it normally carries leaseDurationSeconds). */
  leaseDurationMs: number;
  renewDeadlineMs: number;
  /** The Lease spec as last read; undefined when no Lease object exists. */
  observed: LeaseSpec | undefined;
  /**
   * Local time at which `observed` last changed. Expiry is judged from this, never from the
   * holder's renewTime, so clock skew between replicas cannot shorten a lease.
   */
  observedAt: number;
  leading: boolean;
  /** Local time of our last successful acquire or renew (meaningful while leading). */
  lastRenewAt: number | undefined;
}

export type ElectionDecision =
  | { action: 'create' }
  | { action: 'acquire'; previousHolder: string }
  | { action: 'renew' }
  | { action: 'wait'; holder: string; expiresInMs: number }
  | { action: 'lost'; reason: string };

export function decideLeadership(s: ElectionState): ElectionDecision {
  if (s.leading && s.lastRenewAt !== undefined && s.now - s.lastRenewAt > s.renewDeadlineMs) {
    return {
      action: 'lost',
      reason: `not renewed within the renew deadline (${s.renewDeadlineMs} ms)`,
    };
  }
  if (!s.observed) return { action: 'create' };
  const holder = s.observed.holderIdentity ?? '';
  if (holder === s.identity) return { action: 'renew' };
  if (s.leading) return { action: 'lost', reason: `lease is held by ${holder || 'nobody'}` };
  if (!holder) return { action: 'acquire', previousHolder: '' };
  const durationMs = (s.observed.leaseDurationSeconds ?? 0) * 1000 || s.leaseDurationMs;
  const expiresInMs = s.observedAt + durationMs - s.now;
  if (expiresInMs <= 0) return { action: 'acquire', previousHolder: holder };
  return { action: 'wait', holder, expiresInMs };
}

/** The Lease spec to write for a create/acquire/renew decision. */
export function nextLeaseSpec(
  decision: Extract<ElectionDecision, { action: 'create' | 'acquire' | 'renew' }>,
  observed: LeaseSpec | undefined,
  identity: string,
  now: number,
  leaseDurationMs: number,
): LeaseSpec {
  const time = toMicroTime(now);
  const base = {
    holderIdentity: identity,
    leaseDurationSeconds: Math.max(1, Math.round(leaseDurationMs / 1000)),
    renewTime: time,
  };
  switch (decision.action) {
    case 'create':
      return { ...base, acquireTime: time, leaseTransitions: 0 };
    case 'acquire':
      return {
        ...base,
        acquireTime: time,
        leaseTransitions: (observed?.leaseTransitions ?? 0) + (decision.previousHolder ? 1 : 0),
      };
    case 'renew':
      return {
        ...base,
        acquireTime: observed?.acquireTime ?? time,
        leaseTransitions: observed?.leaseTransitions ?? 0,
      };
  }
}

/** The spec a leader leaves behind when it steps down: no holder, expiring at once. */
export function releasedLeaseSpec(observed: LeaseSpec | undefined, now: number): LeaseSpec {
  const time = toMicroTime(now);
  return {
    leaseDurationSeconds: 1,
    acquireTime: time,
    renewTime: time,
    leaseTransitions: observed?.leaseTransitions ?? 0,
  };
}

/** A Lease request leader election makes, by its RBAC verb. */
export type LeaseVerb = 'get' | 'create' | 'update';

/** A failed Lease request, as far as leader election needs to know. */
export interface LeaseFailure {
  verb: LeaseVerb;
  /** HTTP status; 0 or undefined when no response came. */
  code: number | undefined;
  namespace: string;
  name: string;
  /** The API server's own words (who was refused, say), quoted after ours. */
  detail?: string;
}

/** A failure that retrying alone will not fix, with what the operator has to do about it. */
export interface ElectionProblem {
  /** The same for every retry of one failure, so it is logged once. */
  cause: string;
  message: string;
}

/**
 * A missing election namespace (the create of the Lease is refused with 404) or a refused verb
 * (403) as an ElectionProblem; undefined for failures that retrying may fix (conflicts, an
 * unreachable or overloaded server).
 */
export function electionProblem(f: LeaseFailure): ElectionProblem | undefined {
  const { namespace: ns, name } = f;
  if (f.code === 404 && f.verb === 'create') {
    return {
      cause: `namespace ${ns} missing`,
      message:
        `leader election: namespace ${ns} does not exist: create it ` +
        `(kubectl create namespace ${ns}) or pass --leader-election-namespace`,
    };
  }
  if (f.code === 403) {
    return {
      cause: `${f.verb} forbidden in ${ns}`,
      message:
        `leader election: forbidden to ${f.verb} leases.coordination.k8s.io ${name} in namespace ${ns}: ` +
        `grant this controller's ServiceAccount a Role and RoleBinding in ${ns} allowing create on ` +
        `leases and get, update on leases named ${name} (apiGroups: coordination.k8s.io)` +
        (f.detail ? ` (the API server said: ${f.detail})` : ''),
    };
  }
  return undefined;
}
