// Carries out the arbiter's actions against the API server, in order, and nothing else.
import type {
  Accelerator,
  AcceleratorLease,
  AcceleratorLeaseStatus,
  AcceleratorOwner,
  EvictionRecord,
} from '../crds/index.ts';
import { isNotFound, type ObjectReference } from '../kube/index.ts';
import { FINALIZER, type Action } from './arbiter.ts';

/** The writes the controller makes; each is optimistic (carries the resourceVersion it read). */
export interface Writes {
  /** Replace the lease's finalizer list (merge patch with resourceVersion). */
  setLeaseFinalizers(lease: AcceleratorLease, finalizers: string[]): Promise<AcceleratorLease>;
  /** Replace the lease's status through the status subresource (PUT with resourceVersion). */
  replaceLeaseStatus(
    lease: AcceleratorLease,
    status: AcceleratorLeaseStatus,
  ): Promise<AcceleratorLease>;
  /** Merge-patch annotations onto the accelerator (null removes one). */
  annotate(
    accelerator: Accelerator,
    annotations: Readonly<Record<string, string | null>>,
  ): Promise<Accelerator>;
  /** Store the idle reap's records in spec.owner.idleEvictions ([] removes them; merge patch with resourceVersion). */
  setIdleEvictions(
    accelerator: Accelerator,
    records: readonly EvictionRecord[],
  ): Promise<Accelerator>;
  /**
   * Write spec.owner and the last-handoff annotation (merge patch with resourceVersion). The idle
   * records go with the owner they were made for.
   */
  setOwner(
    accelerator: Accelerator,
    owner: AcceleratorOwner,
    handoffAt: string,
  ): Promise<Accelerator>;
}

export interface EventSink {
  event(
    regarding: Accelerator | AcceleratorLease,
    type: 'Normal' | 'Warning',
    reason: string,
    action: string,
    note: string,
  ): void;
  /** The same, about any object (a pod the reaper evicts). */
  eventRef(
    regarding: ObjectReference,
    type: 'Normal' | 'Warning',
    reason: string,
    action: string,
    note: string,
  ): void;
}

/**
 * Run `actions`: the writes between two `wait`s concurrently, except that writes to one lease go
 * in order, each with the resourceVersion the one before returned (a reconcile never conflicts
 * with itself). If a write fails, the writes already started finish, nothing after the next
 * `wait` starts, and the first error is thrown (the next reconcile re-decides from fresh state).
 * Events are recorded once every write succeeded; they are never waited for.
 */
export async function execute(
  actions: readonly Action[],
  writes: Writes,
  events: EventSink,
  /** This reconcile's time (ISO 8601 with milliseconds): the last-handoff annotation of an owner change. */
  handoffAt: string,
): Promise<{ ownerChanged?: AcceleratorOwner; leases: ReadonlyMap<string, AcceleratorLease> }> {
  const latest = new Map<string, AcceleratorLease>();
  const fresh = (l: AcceleratorLease) => latest.get(l.metadata.uid ?? '') ?? l;
  const remember = (l: AcceleratorLease) => latest.set(l.metadata.uid ?? '', l);
  let ownerChanged: AcceleratorOwner | undefined;

  const write = async (action: Exclude<Action, { type: 'wait' | 'event' }>): Promise<void> => {
    switch (action.type) {
      case 'addFinalizer': {
        const l = fresh(action.lease);
        remember(await writes.setLeaseFinalizers(l, [...(l.metadata.finalizers ?? []), FINALIZER]));
        break;
      }
      case 'removeFinalizer': {
        const l = fresh(action.lease);
        await writes
          .setLeaseFinalizers(
            l,
            (l.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
          )
          .catch((err: unknown) => {
            if (!isNotFound(err)) throw err; // already gone: what removing it was for
          });
        break;
      }
      case 'leaseStatus':
        remember(await writes.replaceLeaseStatus(fresh(action.lease), action.status));
        break;
      case 'setOwner':
        await writes.setOwner(action.accelerator, action.owner, handoffAt);
        ownerChanged = action.owner;
        break;
    }
  };

  // One chain per object: writes to one lease in order, different objects at once.
  let chains = new Map<string, Promise<void>>();
  const settle = async () => {
    const results = await Promise.allSettled(chains.values());
    chains = new Map();
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  const notes: Extract<Action, { type: 'event' }>[] = [];
  for (const action of actions) {
    if (action.type === 'wait') {
      await settle();
      continue;
    }
    if (action.type === 'event') {
      notes.push(action);
      continue;
    }
    const key = action.type === 'setOwner' ? 'accelerator' : (action.lease.metadata.uid ?? '');
    chains.set(
      key,
      (chains.get(key) ?? Promise.resolve()).then(() => write(action)),
    );
  }
  await settle();
  for (const e of notes) events.event(e.regarding, e.eventType, e.reason, e.reason, e.note);
  return ownerChanged ? { ownerChanged, leases: latest } : { leases: latest };
}
