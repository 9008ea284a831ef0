// Who waits for which device, and in what order (docs/design.md section 4): priority, then age.
// The controller arbitrates by these rules and the plugin explains them, from one definition.
import { timeMsOrZero } from './time.ts';
import type { Accelerator } from './accelerator.ts';
import { parseDuration } from './common.ts';
import type { AcceleratorLease } from './lease.ts';

export const leaseKey = (l: AcceleratorLease): string =>
  `${l.metadata.namespace ?? ''}/${l.metadata.name ?? ''}`;

/** The device a lease waits for: named in its spec, or chosen by placement (status). */
export function targetOf(lease: AcceleratorLease): string | undefined {
  return lease.spec.accelerator ?? lease.status?.accelerator;
}

/** When a granted lease runs out: status.expiresAt, else grantedAt + duration. */
export function leaseExpiry(lease: AcceleratorLease): number | undefined {
  if (lease.status?.expiresAt) return timeMsOrZero(lease.status.expiresAt);
  if (!lease.spec.duration || !lease.status?.grantedAt) return undefined;
  return timeMsOrZero(lease.status.grantedAt) + parseDuration(lease.spec.duration);
}

/** Released, expired or failed: it neither holds nor waits for a device any more. */
export function isFinished(lease: AcceleratorLease, now: number): boolean {
  const phase = lease.status?.phase;
  if (phase === 'Expired' || phase === 'Released' || phase === 'Failed') return true;
  const end = leaseExpiry(lease);
  return end !== undefined && now >= end;
}

/** May this lease hold or wait for its device? (Not deleted, not finished.) */
export const isLive = (lease: AcceleratorLease, now: number): boolean =>
  !lease.metadata.deletionTimestamp && !isFinished(lease, now);

/** Priority first, then age, then namespace/name: the arbiter's total order. */
export function queueOrder(a: AcceleratorLease, b: AcceleratorLease): number {
  return (
    b.spec.priority - a.spec.priority ||
    timeMsOrZero(a.metadata.creationTimestamp) - timeMsOrZero(b.metadata.creationTimestamp) ||
    leaseKey(a).localeCompare(leaseKey(b))
  );
}

export interface DeviceQueue {
  /** The lease spec.owner names, while it is live. */
  readonly holder: AcceleratorLease | undefined;
  /** The holder, else the first in line: the lease the device is (or is about to be) handed to. */
  readonly next: AcceleratorLease | undefined;
  /** Everyone else, in order: queuePosition 1, 2, ... */
  readonly waiting: readonly AcceleratorLease[];
}

/** The queue for one device, from every lease (leases of other devices are ignored). */
export function deviceQueue(
  accelerator: Accelerator,
  leases: readonly AcceleratorLease[],
  now: number,
): DeviceQueue {
  const name = accelerator.metadata.name;
  const ownerUid = accelerator.spec.owner?.lease?.uid;
  const queue = leases.filter((l) => targetOf(l) === name && isLive(l, now)).sort(queueOrder);
  const holder =
    ownerUid === undefined ? undefined : queue.find((l) => l.metadata.uid === ownerUid);
  const next = holder ?? queue[0];
  return { holder, next, waiting: queue.filter((l) => l !== next) };
}
