// The side effects the reaper asks for, as data: the runtime performs them and nothing else.
import type { Accelerator, AcceleratorLease, PodRef } from '../crds/index.ts';
import type { ObjectReference } from '../kube/index.ts';

export type ReaperEffect =
  /** policy/v1 Eviction of the pod, with a UID precondition so a replacement is never hit. */
  | {
      readonly type: 'evict';
      readonly pod: PodRef;
      readonly uid: string;
      readonly reason: string;
      /** 1 for the first request; more for a retry after a refusal or a lost answer. */
      readonly attempt: number;
    }
  /** DELETE of the pod (UID precondition); gracePeriodSeconds 0 only under ForceDelete. */
  | {
      readonly type: 'delete';
      readonly pod: PodRef;
      readonly uid: string;
      readonly gracePeriodSeconds?: number;
      readonly reason: string;
      readonly attempt: number;
    }
  /** Mark the accelerator so no new lease is placed on it (annotation CORDON_ANNOTATION). */
  | { readonly type: 'cordon'; readonly accelerator: string; readonly message: string }
  | {
      readonly type: 'event';
      readonly regarding: ObjectReference;
      readonly eventType: 'Normal' | 'Warning';
      readonly reason: string;
      readonly note: string;
    };

export function podReference(pod: PodRef, uid: string): ObjectReference {
  return { apiVersion: 'v1', kind: 'Pod', namespace: pod.namespace, name: pod.name, uid };
}

export function objectReference(obj: Accelerator | AcceleratorLease): ObjectReference {
  return {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    name: obj.metadata.name,
    ...(obj.metadata.namespace !== undefined && { namespace: obj.metadata.namespace }),
    uid: obj.metadata.uid,
  };
}

export function event(
  regarding: ObjectReference,
  eventType: 'Normal' | 'Warning',
  reason: string,
  note: string,
): ReaperEffect {
  return { type: 'event', regarding, eventType, reason, note: note.slice(0, 1024) };
}
