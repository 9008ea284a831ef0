// Selector leases: choose a free matching accelerator, least recently handed off first.
import {
  CORDON_ANNOTATION,
  LAST_HANDOFF_ANNOTATION,
  matchesSelector,
  queueOrder,
  setConditions,
  type Accelerator,
  type AcceleratorLease,
  type AcceleratorLeaseStatus,
} from '../crds/index.ts';

export interface Placement {
  lease: AcceleratorLease;
  status: AcceleratorLeaseStatus;
}

const lastHandoff = (a: Accelerator) =>
  Date.parse(a.metadata.annotations?.[LAST_HANDOFF_ANNOTATION] ?? '') || 0;

/** Nobody holds it or waits for it, the agent reports it Free, and nobody cordoned it. */
function isFree(a: Accelerator, queued: ReadonlySet<string>): boolean {
  return (
    !queued.has(a.metadata.name ?? '') &&
    !a.spec.owner?.lease &&
    a.status?.phase === 'Free' &&
    a.metadata.annotations?.[CORDON_ANNOTATION] === undefined
  );
}

/**
 * Place unplaced selector leases, in queue order, each on a distinct free device.
 * `queued` names the devices that already have a live lease. Leases that cannot be placed get a
 * condition saying why, and are placed later when a device frees up (the caller re-runs this).
 */
export function place(
  unplaced: readonly AcceleratorLease[],
  accelerators: readonly Accelerator[],
  queued: ReadonlySet<string>,
  nowIso: string,
): Placement[] {
  const taken = new Set(queued);
  const out: Placement[] = [];
  for (const lease of [...unplaced].sort(queueOrder)) {
    const selector = lease.spec.selector ?? {};
    const matching = accelerators.filter((a) => matchesSelector(selector, a.metadata.labels));
    const free = matching
      .filter((a) => isFree(a, taken))
      .sort(
        (a, b) =>
          lastHandoff(a) - lastHandoff(b) ||
          (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''),
      );
    const chosen = free[0];
    const generation = lease.metadata.generation ?? 0;
    let status: AcceleratorLeaseStatus;
    if (chosen?.metadata.name) {
      taken.add(chosen.metadata.name);
      status = {
        ...lease.status,
        phase: 'Pending',
        accelerator: chosen.metadata.name,
        conditions: setConditions(
          lease.status?.conditions,
          [
            {
              type: 'Granted',
              status: 'False',
              reason: 'Placed',
              message: `placed on ${chosen.metadata.name}, the free matching accelerator idle longest`,
              observedGeneration: generation,
            },
          ],
          nowIso,
        ),
        observedGeneration: generation,
      };
    } else {
      const [reason, message] =
        matching.length === 0
          ? [
              'NoMatchingAccelerator',
              'no accelerator matches spec.selector (kubectl get accel --show-labels)',
            ]
          : [
              'NoFreeAccelerator',
              `all ${matching.length} matching accelerators are held or queued; waiting for one to free up`,
            ];
      status = {
        ...lease.status,
        phase: 'Pending',
        conditions: setConditions(
          lease.status?.conditions,
          [{ type: 'Granted', status: 'False', reason, message, observedGeneration: generation }],
          nowIso,
        ),
        observedGeneration: generation,
      };
    }
    out.push({ lease, status });
  }
  return out;
}
