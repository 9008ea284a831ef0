// What the reaper reads of pods: the few fields of the pod cache its plan and records depend on.

/** What the reaper needs of a pod (from the pod cache). */
export interface PodState {
  readonly uid: string;
  /** spec.nodeName: a pin is only believed of a pod bound to the accelerator's own node. */
  readonly nodeName: string | undefined;
  readonly deletionTimestamp?: string | Date | undefined;
}

/** Pods by `namespace/name`: a Map, or a view over the runtime's pod cache. */
export interface PodLookup {
  get(key: string): PodState | undefined;
}

/**
 * What the reaper reads of PodDisruptionBudgets: since when (ms since the epoch) the one budget
 * that selects the pod `namespace/name` allows a disruption; undefined while none does (no budget
 * selects it, several do, or it allows none, or its status lags its spec). A refusal sent before
 * that time is retried at once (decide.ts).
 */
export interface DisruptionLookup {
  allowedSince(key: string): number | undefined;
}
