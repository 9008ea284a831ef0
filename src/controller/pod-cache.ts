// What the controller keeps of a pod in its cache: the fields its readers use, nothing else.
// Pods are the largest objects it watches (specs, statuses, managedFields) and the most numerous;
// the readers are the reaper's pod lookup (uid, node, deletion: src/reaper/pods.ts), the wake
// rule (pins name pods by namespace/name) and holder gates (labels, gates, version, affinity).
import type { V1Pod } from '@kubernetes/client-node';

/** `pod` with only what the controller reads; a gated pod keeps its affinity, which ungating extends. */
export function trimPod(pod: V1Pod): V1Pod {
  const m = pod.metadata ?? {};
  const gates = pod.spec?.schedulingGates;
  const gated = gates !== undefined && gates.length > 0;
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      ...(m.labels && { labels: m.labels }),
      ...(m.deletionTimestamp && { deletionTimestamp: m.deletionTimestamp }),
    },
    spec: {
      containers: [],
      ...(pod.spec?.nodeName !== undefined && { nodeName: pod.spec.nodeName }),
      ...(gated && { schedulingGates: gates }),
      ...(gated && pod.spec?.affinity && { affinity: pod.spec.affinity }),
    },
  };
}
