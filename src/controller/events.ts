// Events on accelerators and leases go through the shared recorder (aggregated, never throwing).
import type { Accelerator, AcceleratorLease } from '../crds/index.ts';
import type { EventRecorder, ObjectReference } from '../kube/index.ts';
import type { EventSink } from './execute.ts';

export function referenceTo(obj: Accelerator | AcceleratorLease): ObjectReference {
  return {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    name: obj.metadata.name,
    ...(obj.metadata.namespace !== undefined && { namespace: obj.metadata.namespace }),
    uid: obj.metadata.uid,
  };
}

export function recorderSink(recorder: EventRecorder): EventSink {
  return {
    event: (regarding, type, reason, action, note) =>
      recorder.event(referenceTo(regarding), type, reason, action, note),
    eventRef: (regarding, type, reason, action, note) =>
      recorder.event(regarding, type, reason, action, note),
  };
}
