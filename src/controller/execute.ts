// Carries out the arbiter's actions against the API server, in order, and nothing else.
import type {
  Accelerator,
  AcceleratorLease,
  AcceleratorLeaseStatus,
  AcceleratorOwner,
} from '../crds/index.ts';
import type { ObjectReference } from '../kube/index.ts';
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
  /** Write spec.owner and the last-handoff annotation (merge patch with resourceVersion). */
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
 * Run `actions` in order. A failed write throws and the rest are not attempted (the next
 * reconcile re-decides from fresh state). Later writes to the same object use the
 * resourceVersion returned by earlier ones, so a reconcile never conflicts with itself.
 */
export async function execute(
  actions: readonly Action[],
  writes: Writes,
  events: EventSink,
  nowIso: string,
): Promise<{ ownerChanged?: AcceleratorOwner; leases: ReadonlyMap<string, AcceleratorLease> }> {
  const latest = new Map<string, AcceleratorLease>();
  const fresh = (l: AcceleratorLease) => latest.get(l.metadata.uid ?? '') ?? l;
  const remember = (l: AcceleratorLease) => latest.set(l.metadata.uid ?? '', l);
  let ownerChanged: AcceleratorOwner | undefined;
  for (const action of actions) {
    switch (action.type) {
      case 'addFinalizer': {
        const l = fresh(action.lease);
        remember(await writes.setLeaseFinalizers(l, [...(l.metadata.finalizers ?? []), FINALIZER]));
        break;
      }
      case 'removeFinalizer': {
        const l = fresh(action.lease);
        await writes.setLeaseFinalizers(
          l,
          (l.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
        );
        break;
      }
      case 'leaseStatus':
        remember(await writes.replaceLeaseStatus(fresh(action.lease), action.status));
        break;
      case 'setOwner':
        await writes.setOwner(action.accelerator, action.owner, nowIso);
        ownerChanged = action.owner;
        break;
      case 'event':
        events.event(action.regarding, action.eventType, action.reason, action.reason, action.note);
        break;
    }
  }
  return ownerChanged ? { ownerChanged, leases: latest } : { leases: latest };
}
