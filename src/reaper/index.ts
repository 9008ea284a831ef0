// Public face of the reaper: resolves stuck handoffs by evicting exactly the pods that pin an
// earlier owner's memory. `reap` is the entry point; everything here is pure and cluster-free.
export {
  reap,
  withReaperStatus,
  type ReapInput,
  type ReapDecision,
  type ReapState,
  type ReapSummary,
  type LeaseStatusPatch,
} from './decide.ts';
export {
  planEvictions,
  RANK_MEANING,
  type Plan,
  type PlanInput,
  type PlannedEviction,
  type HolderInProgress,
  type UnresolvablePin,
  type Rank,
} from './plan.ts';
export type { DisruptionLookup, PodLookup, PodState } from './pods.ts';
export {
  DEFAULT_REAPER_POLICY,
  evictionBudget,
  retryDelayMs,
  type OnDeadline,
  type ReaperPolicy,
} from './policy.ts';
export {
  recordOutcome,
  isActive,
  podsBeingEvicted,
  requestsAfter,
  countedUntil,
  type CallOutcome,
} from './records.ts';
export { objectReference, type ReaperEffect } from './effects.ts';
export { callPod } from './api.ts';
