// Eviction records are the reaper's only memory (I5): what each result means, where an attempt's
// number, time and answer live (fields of their own), and how an API call's answer is folded in.
import { kubeTime, podKey, timeMs } from '../crds/index.ts';
import type { EvictionOutcome, EvictionRecord } from '../crds/index.ts';
import { event, podReference, type ReaperEffect } from './effects.ts';
import type { PodLookup } from './pods.ts';

/** Still under way: not finished, and neither Evicted nor DryRun (see EvictionResult). */
export function isActive(r: EvictionRecord): boolean {
  return (
    r.finished === undefined &&
    (r.result === 'Planned' ||
      r.result === 'Evicting' ||
      r.result === 'Refused' ||
      r.result === 'Failed' ||
      r.result === 'Deleted')
  );
}

/**
 * Pod uids an eviction or deletion was requested for and that are not gone yet. The runtime
 * unions this over every other handoff's records to build ReapInput.evictingElsewhere.
 */
export function podsBeingEvicted(records: readonly EvictionRecord[]): Set<string> {
  const out = new Set<string>();
  for (const r of records) if (isActive(r) && r.result !== 'Planned') out.add(r.uid);
  return out;
}

/**
 * Requests (evictions and deletions) the records say may have been sent after `since`: what
 * ReapInput.evictionsInLastMinute counts. Every request is written into its record before it is
 * sent, so the records alone bound the count, across restarts. A bound from above: a record whose
 * first request is older than `since` counts every later one; stored times are whole seconds,
 * so a time within a second of `since` counts as after it.
 */
export function requestsAfter(records: readonly EvictionRecord[], since: number): number {
  let n = 0;
  for (const r of records) {
    const last = lastAttempt(r);
    if (!last || last.at + 1000 <= since) continue;
    const first = timeMs(r.started) ?? last.at;
    n += first + 1000 > since ? last.n : Math.max(1, last.n - 1);
  }
  return n;
}

/**
 * Until when these records count toward the per-minute cap (requestsAfter over the last 60 s):
 * the last request's time plus a minute and the second stored times lose; undefined if none.
 * The lease that holds them keeps its finalizer until then, so a deleted lease's requests are
 * still counted after a restart.
 */
export function countedUntil(records: readonly EvictionRecord[]): number | undefined {
  const last = records.map((r) => lastAttempt(r)?.at ?? -Infinity);
  const at = Math.max(-Infinity, ...last);
  return Number.isFinite(at) ? at + 61_000 : undefined;
}

export interface Attempt {
  readonly n: number;
  readonly at: number;
  /** The answer recorded for it; undefined while none is (in flight, or the answer was lost). */
  readonly outcome: EvictionOutcome | undefined;
}

/**
 * The record after attempt `n` was sent at `at`: its number and time as fields, no answer yet,
 * and a message for people ("attempt 3 at 2026-11-25T10:00:05Z: eviction requested again ...").
 */
export function attempted(r: EvictionRecord, n: number, at: number, text: string): EvictionRecord {
  const when = kubeTime(at);
  const out = { ...r, attempts: n, lastAttemptTime: when, message: attemptMessage(n, when, text) };
  delete out.lastOutcome;
  delete out.retryAfterSeconds;
  return out;
}

/** The record with the answer to its last attempt, which it keeps, and a message saying so. */
function answered(
  r: EvictionRecord,
  sent: Attempt,
  outcome: EvictionOutcome,
  text: string,
): EvictionRecord {
  // A Retry-After belongs to the refusal it came with; the caller adds the new one's.
  const out: EvictionRecord = {
    ...r,
    attempts: sent.n,
    lastAttemptTime: kubeTime(sent.at),
    lastOutcome: outcome,
    message: attemptMessage(sent.n, kubeTime(sent.at), text),
  };
  delete out.retryAfterSeconds;
  return out;
}

const attemptMessage = (n: number, at: string, text: string) =>
  `attempt ${n} at ${at}: ${text}`.slice(0, 1024);

/**
 * The last request a record made, from its fields alone; a record without them (written before
 * they existed) counts as one request at `started`, its answer unknown.
 */
export function lastAttempt(r: EvictionRecord): Attempt | undefined {
  if (r.attempts !== undefined && r.lastAttemptTime !== undefined) {
    return { n: r.attempts, at: Date.parse(r.lastAttemptTime), outcome: r.lastOutcome };
  }
  if (r.started === undefined) return undefined;
  return { n: 1, at: Date.parse(r.started), outcome: r.lastOutcome };
}

export interface Settled {
  readonly records: EvictionRecord[];
  /** Pod uids whose records turned final in this pass (the pod left the pod list). */
  readonly finished: readonly EvictionRecord[];
  /** Planned records withdrawn before anything was sent. */
  readonly withdrawn: readonly EvictionRecord[];
}

/**
 * Bring records in line with the pod list. A pod is gone when no pod has its name or the pod
 * with its name has another uid; only then is a record Evicted. Planned records are withdrawn
 * when `withdraw` says so or their pod went first: nothing was sent, so nothing is counted.
 */
export function settleRecords(
  records: readonly EvictionRecord[],
  pods: PodLookup,
  now: number,
  withdraw: (r: EvictionRecord) => boolean,
): Settled {
  const out: EvictionRecord[] = [];
  const finished: EvictionRecord[] = [];
  const withdrawn: EvictionRecord[] = [];
  for (const r of records) {
    if (!isActive(r)) {
      out.push(r);
      continue;
    }
    const gone = pods.get(podKey(r.pod))?.uid !== r.uid;
    if (r.result === 'Planned') {
      if (gone || withdraw(r)) withdrawn.push(r);
      else out.push(r);
      continue;
    }
    if (!gone) {
      out.push(r);
      continue;
    }
    const done: EvictionRecord = {
      ...r,
      result: r.result === 'Deleted' ? 'Deleted' : 'Evicted',
      finished: kubeTime(now),
    };
    out.push(done);
    finished.push(done);
  }
  return { records: out, finished, withdrawn };
}

/** What the API server answered to an evict or delete effect. */
export type CallOutcome =
  | { readonly kind: 'accepted' }
  /**
   * 429: a PodDisruptionBudget refused the eviction; retryAfterSeconds when the server named
   * one (the Status's details.retryAfterSeconds: kube-apiserver names 10 s while the budget's
   * status lags its spec, none when the budget is exhausted).
   */
  | { readonly kind: 'refused'; readonly message: string; readonly retryAfterSeconds?: number }
  /** 404, or 409 on the UID precondition: the pod the record names no longer exists. */
  | { readonly kind: 'gone' }
  | { readonly kind: 'failed'; readonly message: string };

/** A usable Retry-After: whole seconds, at least 1, at most a day (the record's bounds). */
function retryAfterOf(outcome: { readonly retryAfterSeconds?: number }): number | undefined {
  const s = outcome.retryAfterSeconds;
  if (s === undefined || !Number.isFinite(s) || s <= 0) return undefined;
  return Math.min(Math.max(1, Math.ceil(s)), 86400);
}

/**
 * Fold the answer to one evict/delete effect into the records, keeping the attempt number and
 * time written when it was sent. Returns the records to write and events to record on the pod.
 */
export function recordOutcome(
  records: readonly EvictionRecord[],
  effect: { readonly type: 'evict' | 'delete'; readonly uid: string },
  outcome: CallOutcome,
  now: number,
): { records: EvictionRecord[]; effects: ReaperEffect[] } {
  const effects: ReaperEffect[] = [];
  const out = records.map((r) => {
    if (r.uid !== effect.uid || !isActive(r)) return r;
    const sent = lastAttempt(r) ?? { n: 1, at: now, outcome: undefined };
    const verb = effect.type === 'evict' ? 'eviction' : 'deletion';
    switch (outcome.kind) {
      case 'accepted':
        return answered(r, sent, 'Accepted', `${verb} accepted`);
      case 'gone':
        return answered(r, sent, 'Gone', 'the pod was already gone');
      case 'refused':
        effects.push(
          event(
            podReference(r.pod, r.uid),
            'Warning',
            'EvictionRefused',
            `eviction refused by a PodDisruptionBudget (attempt ${sent.n}): ${outcome.message}`,
          ),
        );
        return {
          ...answered(
            r,
            sent,
            'Refused',
            `refused by a PodDisruptionBudget (429): ${outcome.message}`,
          ),
          ...(effect.type === 'evict' && { result: 'Refused' as const }),
          ...(retryAfterOf(outcome) !== undefined && { retryAfterSeconds: retryAfterOf(outcome) }),
        };
      case 'failed':
        effects.push(
          event(
            podReference(r.pod, r.uid),
            'Warning',
            effect.type === 'evict' ? 'EvictionFailed' : 'DeletionFailed',
            `${verb} failed (attempt ${sent.n}): ${outcome.message}`,
          ),
        );
        return {
          ...answered(r, sent, 'Failed', `${verb} failed: ${outcome.message}`),
          ...(effect.type === 'evict' && { result: 'Failed' as const }),
        };
    }
  });
  return { records: out, effects };
}
