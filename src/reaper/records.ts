// Eviction records are the reaper's only memory (I5): what each result means, how an attempt's
// number and time live in the message, and how the outcome of an API call is folded back in.
import type { EvictionRecord, PodRef } from '../crds/index.ts';
import { event, podReference, type ReaperEffect } from './effects.ts';
import type { PodLookup } from './plan.ts';

/**
 * Planned: chosen, nothing sent. Evicting: an eviction was requested (message: which attempt).
 * Refused / Failed: the last request got a 429 / another error and is retried after a backoff.
 * Deleted: deleted after the deadline. Evicted / Deleted with `finished`: the pod is gone.
 * DryRun: what would be evicted; nothing is ever sent.
 */
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
 * Requests (evictions and deletions) the records say were sent at or after `since`: a lower
 * bound for ReapInput.evictionsInLastMinute when a restarted runtime has no count of its own.
 */
export function requestsSince(records: readonly EvictionRecord[], since: number): number {
  return records.filter((r) => (lastAttempt(r)?.at ?? -Infinity) >= since).length;
}

export const iso = (t: number): string => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
const key = (p: PodRef) => `${p.namespace}/${p.name}`;

export interface Attempt {
  readonly n: number;
  readonly at: number;
  readonly text: string;
}

const ATTEMPT = /^attempt (\d+) at (\S+?): ([\s\S]*)$/;

/** "attempt 3 at 2026-11-25T10:00:05Z: refused by a PodDisruptionBudget (429): ..." */
export function attemptMessage(n: number, at: number, text: string): string {
  return `attempt ${n} at ${iso(at)}: ${text}`.slice(0, 1024);
}

/** The last request a record made, from its message; a bare record counts as one at `started`. */
export function lastAttempt(r: EvictionRecord): Attempt | undefined {
  const m = ATTEMPT.exec(r.message ?? '');
  const at = m ? Date.parse(m[2] ?? '') : NaN;
  if (m && Number.isFinite(at)) return { n: Number(m[1]), at, text: m[3] ?? '' };
  if (r.started === undefined) return undefined;
  return { n: 1, at: Date.parse(r.started), text: r.message ?? '' };
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
    const gone = pods.get(key(r.pod))?.uid !== r.uid;
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
      finished: iso(now),
    };
    out.push(done);
    finished.push(done);
  }
  return { records: out, finished, withdrawn };
}

/** What the API server answered to an evict or delete effect. */
export type CallOutcome =
  | { readonly kind: 'accepted' }
  /** 429: a PodDisruptionBudget refused the eviction. */
  | { readonly kind: 'refused'; readonly message: string }
  /** 404, or 409 on the UID precondition: the pod the record names no longer exists. */
  | { readonly kind: 'gone' }
  | { readonly kind: 'failed'; readonly message: string };

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
    const sent = lastAttempt(r) ?? { n: 1, at: now, text: '' };
    const msg = (text: string) => attemptMessage(sent.n, sent.at, text);
    const verb = effect.type === 'evict' ? 'eviction' : 'deletion';
    switch (outcome.kind) {
      case 'accepted':
        return { ...r, message: msg(`${verb} accepted`) };
      case 'gone':
        return { ...r, message: msg(`the pod was already gone`) };
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
          ...r,
          ...(effect.type === 'evict' && { result: 'Refused' as const }),
          message: msg(`refused by a PodDisruptionBudget (429): ${outcome.message}`),
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
          ...r,
          ...(effect.type === 'evict' && { result: 'Failed' as const }),
          message: msg(`${verb} failed: ${outcome.message}`),
        };
    }
  });
  return { records: out, effects };
}
