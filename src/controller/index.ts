// Public face of the controller. `main.ts` runs it as a process; `LeaseController` (wiring.ts)
// ties informers and the work queue to one pipeline: the view (view.ts), the pure decisions
// (arbiter.ts, handoff.ts, placement.ts, namespace-limit.ts), reconcile.ts, and the one
// executor (executor.ts) of what they decide, through the ports in writes.ts.
export { LeaseController, type LeaseControllerOptions } from './wiring.ts';
export { ControllerView, type Caches, type Store, type Admitted } from './view.ts';
export { trimPod } from './pod-cache.ts';
export { reconcile, type ReconcileContext, type ReconcileOutcome } from './reconcile.ts';
export {
  acceleratorKey,
  acceleratorOfKey,
  leaseKeyOf,
  LIMITS_KEY,
  PLACEMENT_KEY,
  wakeKeys,
  type Change,
  type RefusalSources,
} from './keys.ts';
export { type PodDisruptionBudget } from './disruption-budgets.ts';
export { execute, runActions, type ExecutorPorts, type Plan } from './executor.ts';
export {
  clusterPods,
  clusterReads,
  clusterWrites,
  recorderSink,
  FIELD_MANAGER,
  type EventSink,
  type PodCall,
  type PodCalls,
  type Reads,
  type Writes,
} from './writes.ts';
export { ControllerMetrics, type ReconcileObserver } from './metrics.ts';
export { decide, decideMissing, sameStatus, FINALIZER, type Action } from './arbiter.ts';
export { decideHandoff, type HandoffDecision, type HandoffInput } from './handoff.ts';
