// Events on accelerators and leases go through the shared recorder (aggregated, never throwing).
import type { EventRecorder } from '../kube/index.ts';
import { objectReference } from '../reaper/index.ts';
import type { EventSink } from './execute.ts';

export function recorderSink(recorder: EventRecorder): EventSink {
  return {
    event: (regarding, type, reason, action, note) =>
      recorder.event(objectReference(regarding), type, reason, action, note),
    eventRef: (regarding, type, reason, action, note) =>
      recorder.event(regarding, type, reason, action, note),
  };
}
