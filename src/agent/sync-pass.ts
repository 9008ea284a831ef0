// One pass of the agent over its node, in order: Accelerator specs (and, with --dra, the
// ResourceSlice) re-applied where they drifted, the cluster observed, the kernel synced and persisted, notes reported, statuses written.
import type { AcceleratorSpecs } from './accelerator-specs.ts';
import type { NoteReporter } from './notes.ts';
import type { NodeObserver } from './observe-cluster.ts';
import { cordoned, type SlicePublisher } from './resource-slice.ts';
import type { StateStore } from './state-store.ts';
import type { StatusWriter } from './status-writes.ts';
import { syncNode } from './sync.ts';
import type { SyncPass } from './sync-loop.ts';
import type { AgentWatches } from './watches.ts';

export interface PassParts {
  readonly watches: AgentWatches;
  readonly specs: AcceleratorSpecs;
  readonly observer: NodeObserver;
  readonly store: StateStore;
  readonly notes: NoteReporter;
  readonly statuses: StatusWriter;
  /** --dra: this node's ResourceSlice, kept in step with the Accelerators. */
  readonly slices?: SlicePublisher;
  /** Where the pass says when to run again for a deadline (a slow revoke's). */
  readonly wakeAt: (at: number | undefined) => void;
}

/** The pass; it fails (to be retried) when a spec or status write failed, after doing the rest. */
export function syncPass(parts: PassParts): SyncPass {
  const { watches, specs, observer, store, notes, statuses } = parts;
  return async () => {
    let ok = await specs.ensure(watches.accelerators);
    if (parts.slices) {
      const devices = specs
        .devices()
        .map((d) => ({ ...d, cordoned: cordoned(watches.accelerators, d.accelerator) }));
      if (!(await parts.slices.ensure(devices))) ok = false;
    }
    const observed = await observer.observe();
    // Crashed while observing: a killed process would not act on what it saw.
    if (store.crashed) return true;
    const result = syncNode(store.state, observed);
    store.persist();
    notes.report(result.notes, result.devices);
    parts.wakeAt(result.wakeAt);
    if (!(await statuses.write(result))) ok = false;
    return ok;
  };
}
