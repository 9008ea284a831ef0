// `kubectl dmabuf status`: one row per device (owner, epoch, pins, queue), as data and as a table.
import type { Accelerator, AcceleratorLease, Pin } from '../crds/index.ts';
import { CORDON_ANNOTATION } from '../crds/index.ts';
import { deviceQueue, leaseKey } from '../crds/index.ts';

export interface StatusModel {
  readonly accelerators: readonly Accelerator[];
  /** Every lease in the cluster: the queue of a device may span namespaces. */
  readonly leases: readonly AcceleratorLease[];
  readonly now: number;
}

/** One device, as `-o json` prints it and the table shows it. */
export interface DeviceStatus {
  node: string;
  device: string;
  model: string;
  profile: string;
  /** status.phase; Unknown until the agent reports. */
  phase: string;
  /** The accel.dmabuf.io/cordoned message, when the device is cordoned. */
  cordoned: string | null;
  /** The desired owner (spec.owner), namespace/name. */
  owner: string | null;
  /** Whether the device reports that it enforces that owner at that epoch. */
  ownerEnforced: boolean;
  epoch: number;
  /** The epoch the device reports (status.observedEpoch). */
  observedEpoch: number | null;
  pins: { count: number; holders: string[] };
  /** Leases waiting for the device, first in line first (the owner's lease excluded). */
  queue: string[];
}

/** Who holds a pin: its pod, or its pid when no pod does. */
export const pinHolder = (p: Pin): string =>
  p.pod ? `${p.pod.namespace}/${p.pod.name}` : `pid ${p.pid}`;

/** The rows, ordered by node, then device index. Pure. */
export function status(model: StatusModel): DeviceStatus[] {
  return [...model.accelerators]
    .sort(
      (a, b) =>
        a.spec.node.localeCompare(b.spec.node) ||
        a.spec.index - b.spec.index ||
        (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''),
    )
    .map((a) => {
      const owner = a.spec.owner;
      const st = a.status;
      const q = deviceQueue(a, model.leases, model.now);
      const queue = q.holder ? q.waiting : [...(q.next ? [q.next] : []), ...q.waiting];
      const pins = st?.pins ?? [];
      return {
        node: a.spec.node,
        device: a.metadata.name ?? '',
        model: a.spec.model,
        profile: a.spec.exporterProfile,
        phase: st?.phase ?? 'Unknown',
        cordoned: a.metadata.annotations?.[CORDON_ANNOTATION] ?? null,
        owner: owner?.lease ? `${owner.lease.namespace}/${owner.lease.name}` : null,
        ownerEnforced:
          owner?.lease !== undefined &&
          st?.phase === 'Owned' &&
          st.observedEpoch === owner.epoch &&
          st.owner?.lease?.uid === owner.lease.uid,
        epoch: owner?.epoch ?? 0,
        observedEpoch: st?.observedEpoch ?? null,
        pins: { count: pins.length, holders: [...new Set(pins.map(pinHolder))] },
        queue: queue.map(leaseKey),
      };
    });
}

const COLUMNS = ['NODE', 'DEVICE', 'PROFILE', 'PHASE', 'OWNER', 'EPOCH', 'PINS', 'QUEUE'] as const;
/** Queue entries shown before "+N more"; -o json has them all. */
const QUEUE_SHOWN = 3;

function cells(row: DeviceStatus): string[] {
  const epoch =
    row.observedEpoch !== null && row.observedEpoch !== row.epoch
      ? `${row.epoch} (device at ${row.observedEpoch})`
      : String(row.epoch);
  const pins = row.pins.count === 0 ? '0' : `${row.pins.count} (${row.pins.holders.join(', ')})`;
  const shown = row.queue.slice(0, QUEUE_SHOWN).join(', ');
  const more = row.queue.length > QUEUE_SHOWN ? ` +${row.queue.length - QUEUE_SHOWN} more` : '';
  return [
    row.node,
    row.device,
    row.profile,
    row.cordoned !== null ? `${row.phase},Cordoned` : row.phase,
    row.owner ?? '<none>',
    epoch,
    pins,
    row.queue.length === 0 ? '<none>' : shown + more,
  ];
}

/** kubectl's table layout: upper-case headers, columns three spaces apart, no trailing blanks. */
export function statusTable(rows: readonly DeviceStatus[]): string {
  const table = [[...COLUMNS], ...rows.map(cells)];
  const widths = COLUMNS.map((_, i) => Math.max(...table.map((r) => (r[i] ?? '').length)));
  return table
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3)))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}
