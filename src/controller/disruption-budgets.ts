// PodDisruptionBudgets as the reaper reads them: which budget selects a pod, and since when it
// allows a disruption. A refused eviction is retried as soon as its budget allows one again.
import type { V1LabelSelector, V1Pod, V1PodDisruptionBudget } from '@kubernetes/client-node';
import { matchesSelector, timeMs, type LabelSelector } from '../crds/index.ts';
import type { DisruptionLookup } from '../reaper/index.ts';
import type { Store } from './view.ts';

export type PodDisruptionBudget = V1PodDisruptionBudget;

const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

/**
 * Does `pdb` select `pod`? Same namespace and the selector matches the pod's labels. As in
 * policy/v1: an empty selector selects every pod of the namespace, an absent one none; a
 * selector with an operator the API server would not have admitted selects none.
 */
export function selectsPod(pdb: PodDisruptionBudget, pod: V1Pod): boolean {
  const selector: V1LabelSelector | undefined = pdb.spec?.selector;
  if (!selector || pdb.metadata?.namespace !== pod.metadata?.namespace) return false;
  if ((selector.matchExpressions ?? []).some((e) => !OPERATORS.has(e.operator))) return false;
  return matchesSelector(selector as LabelSelector, pod.metadata?.labels);
}

/**
 * Since when (ms since the epoch) `pdb` has allowed a disruption: its DisruptionAllowed
 * condition's lastTransitionTime, while status.disruptionsAllowed > 0 and the status is of the
 * current spec (observedGeneration). Undefined while it allows none, its status lags its spec
 * (the API server refuses then), or it says nothing of when it began to allow.
 */
export function allowedSince(pdb: PodDisruptionBudget): number | undefined {
  const st = pdb.status;
  if (!st || (st.disruptionsAllowed ?? 0) <= 0) return undefined;
  if ((st.observedGeneration ?? 0) < (pdb.metadata?.generation ?? 0)) return undefined;
  const c = (st.conditions ?? []).find((x) => x.type === 'DisruptionAllowed');
  return c?.status === 'True' ? timeMs(c.lastTransitionTime) : undefined;
}

/**
 * The reaper's lookup over the PDB and pod caches. A pod selected by no budget or by several
 * (the API server answers an eviction of it with 500, not 429) is never retried early.
 */
export function disruptionLookup(
  pdbs: Store<PodDisruptionBudget>,
  pods: Store<V1Pod>,
): DisruptionLookup {
  return {
    allowedSince: (key) => {
      const pod = pods.get(key);
      if (!pod) return undefined;
      const selecting = pdbs.list().filter((b) => selectsPod(b, pod));
      return selecting.length === 1 ? allowedSince(selecting[0] as PodDisruptionBudget) : undefined;
    },
  };
}
