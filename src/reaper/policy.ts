// The operator's limits on the reaper: who may be evicted, how many, how fast, and what happens
// when a pod outlives its eviction deadline. Plain data; the runtime reads it from flags.
import type { AcceleratorLease } from '../crds/index.ts';

export type OnDeadline = 'Wait' | 'Delete' | 'ForceDelete';

export interface ReaperPolicy {
  /** Pods in these namespaces are never evicted; a pin they hold is Unresolvable. */
  readonly excludedNamespaces: readonly string[];
  /** Cap on pods evicted for one handoff, whatever the lease's own maxEvictions says. */
  readonly maxEvictionsPerHandoff: number;
  /** Cluster-wide cap on eviction calls (first attempts and retries) in any 60 s window. */
  readonly maxEvictionsPerMinute: number;
  /** How long an evicted pod may take to be gone, from the first eviction attempt. */
  readonly evictionDeadlineMs: number;
  /** After the deadline: keep waiting, delete the pod, or delete it with grace 0. */
  readonly onDeadline: OnDeadline;
  /** Plan and explain, but evict, delete and cordon nothing (records say DryRun). */
  readonly dryRun: boolean;
  /** Reap pins left on a device that nobody waits for (spec.owner names no lease). */
  readonly reapWhenIdle: boolean;
  /** With reapWhenIdle: how long idle pins may stay before evictions start. */
  readonly idleGracePeriodSeconds: number;
  /** Retry of a refused (429) or failed eviction: initial delay, doubled per attempt, capped. */
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
}

export const DEFAULT_REAPER_POLICY: ReaperPolicy = {
  excludedNamespaces: ['kube-system'],
  maxEvictionsPerHandoff: 10,
  maxEvictionsPerMinute: 60,
  evictionDeadlineMs: 5 * 60_000,
  onDeadline: 'Wait',
  dryRun: false,
  reapWhenIdle: false,
  idleGracePeriodSeconds: 30,
  retryInitialMs: 5_000,
  retryMaxMs: 5 * 60_000,
};

/**
 * Pods one handoff may evict in all: the lease's maxEvictions and the policy's cap, whichever is
 * lower; with no lease (an idle reap), the policy's cap alone.
 */
export function evictionBudget(policy: ReaperPolicy, lease: AcceleratorLease | undefined): number {
  const own = lease?.spec.revocation.maxEvictions ?? policy.maxEvictionsPerHandoff;
  return Math.max(0, Math.min(own, policy.maxEvictionsPerHandoff));
}

/**
 * Delay before attempt `attempt + 1` after `attempt` refused or unanswered ones: retryInitialMs,
 * doubled per attempt, never more than retryMaxMs.
 */
export function retryDelayMs(policy: ReaperPolicy, attempt: number): number {
  const doublings = Math.min(Math.max(attempt - 1, 0), 30);
  return Math.min(policy.retryInitialMs * 2 ** doublings, policy.retryMaxMs);
}
