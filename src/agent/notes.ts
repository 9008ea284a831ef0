// A sync's notes, reported: each logged (a repeatable warning once, until its device recovers)
// and the Events they carry recorded against the agent's Accelerators and DmaBufExports.
import type { Logger } from 'pino';
import { API_VERSION } from '../crds/index.ts';
import { EventRecorder, type KubeClient } from '../kube/index.ts';
import { FIELD_MANAGER } from './accelerator-specs.ts';
import type { Note, NoteEvent, SyncResult } from './sync.ts';
import type { AgentWatches } from './watches.ts';

/** reportingController of the agent's Events. */
export const EVENT_CONTROLLER = 'accel.dmabuf.io/agent';

/** Notes a sync repeats on every pass while the device stays in the same trouble. */
const REPEATABLE = new Set([
  'spec.owner refused',
  'applying spec.owner failed',
  'slow revoke in progress',
]);

export class NoteReporter {
  private readonly recorder: EventRecorder;
  /** The last repeatable note logged per device. */
  private readonly lastWarning = new Map<string, string>();

  private readonly watches: AgentWatches;
  private readonly log: Logger;

  constructor(client: KubeClient, node: string, watches: AgentWatches, log: Logger) {
    this.watches = watches;
    this.log = log;
    this.recorder = new EventRecorder(client, {
      reportingController: EVENT_CONTROLLER,
      reportingInstance: `${FIELD_MANAGER}-${node}`.slice(0, 128),
      logger: log,
    });
  }

  report(notes: readonly Note[], devices: SyncResult['devices']): void {
    for (const note of notes) {
      const device = typeof note.fields.device === 'string' ? note.fields.device : undefined;
      if (device && REPEATABLE.has(note.msg)) {
        const key = `${note.msg}/${JSON.stringify(note.fields)}`;
        if (this.lastWarning.get(device) === key) continue;
        this.lastWarning.set(device, key);
      }
      this.log[note.level](note.fields, note.msg);
      if (note.event) this.record(note.event);
    }
    for (const [device, r] of devices) {
      if (r.outcome.kind === 'unchanged' || r.outcome.kind === 'applied')
        this.lastWarning.delete(device);
    }
  }

  /** Resolves when every Event queued so far has been attempted. */
  flush(): Promise<void> {
    return this.recorder.flush();
  }

  private record(e: NoteEvent): void {
    const cached =
      e.kind === 'Accelerator'
        ? this.watches.accelerators.get(e.name)
        : this.watches.exports.get(`${e.namespace ?? ''}/${e.name}`);
    this.recorder.event(
      {
        apiVersion: API_VERSION,
        kind: e.kind,
        name: e.name,
        ...(e.namespace !== undefined && { namespace: e.namespace }),
        ...(cached?.metadata?.uid !== undefined && { uid: cached.metadata.uid }),
      },
      e.type,
      e.reason,
      e.kind === 'Accelerator' ? 'ApplyOwner' : 'Realize',
      e.note,
    );
  }
}
