// Objects for the plugin's unit tests, shaped as the API server returns them (defaults applied).
import type {
  Accelerator,
  AcceleratorLease,
  AcceleratorLeaseStatus,
  AcceleratorStatus,
  DmaBufExport,
  ExporterProfile,
  Pin,
} from '../crds/index.ts';

export const T0 = Date.parse('2026-11-25T10:00:00Z');
/** T0 plus s seconds, as the API server writes times. */
export const at = (s: number): string => new Date(T0 + s * 1000).toISOString().replace('.000', '');

export interface AccelOptions {
  node?: string;
  index?: number;
  profile?: ExporterProfile;
  /** spec.owner: a lease (or null for "nobody") at an epoch. */
  owner?: { lease: AcceleratorLease | null; epoch: number };
  status?: AcceleratorStatus;
  annotations?: Record<string, string>;
}

export function accel(name: string, opts: AccelOptions = {}): Accelerator {
  const owner = opts.owner;
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'Accelerator',
    metadata: {
      name,
      uid: `uid-${name}`,
      ...(opts.annotations && { annotations: opts.annotations }),
    },
    spec: {
      node: opts.node ?? 'node-a',
      index: opts.index ?? 0,
      model: 'gaudi2',
      memoryBytes: 2 ** 34,
      exporterProfile: opts.profile ?? 'dynamic',
      ...(owner && {
        owner: { ...(owner.lease && { lease: ref(owner.lease) }), epoch: owner.epoch },
      }),
    },
    ...(opts.status && { status: opts.status }),
  };
}

export const ref = (l: AcceleratorLease) => ({
  namespace: l.metadata.namespace ?? '',
  name: l.metadata.name ?? '',
  uid: l.metadata.uid ?? '',
});

/** The status an agent reports for a device that enforces `lease` at `epoch`. */
export function owned(lease: AcceleratorLease, epoch: number): AcceleratorStatus {
  return {
    phase: 'Owned',
    owner: { lease: ref(lease), epoch },
    observedEpoch: epoch,
    heartbeatTime: at(115),
  };
}

export interface LeaseOptions {
  accelerator?: string;
  priority?: number;
  /** Seconds after T0. */
  created?: number;
  status?: AcceleratorLeaseStatus;
  gracePeriodSeconds?: number;
  deleting?: boolean;
}

export function lease(namespace: string, name: string, opts: LeaseOptions = {}): AcceleratorLease {
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'AcceleratorLease',
    metadata: {
      name,
      namespace,
      uid: `uid-${namespace}-${name}`,
      generation: 1,
      creationTimestamp: at(opts.created ?? 0),
      finalizers: ['accel.dmabuf.io/finalizer'],
      ...(opts.deleting && { deletionTimestamp: at(100) }),
    },
    spec: {
      accelerator: opts.accelerator ?? 'node-a-hl0',
      holder: { podSelector: { matchLabels: { app: name } } },
      priority: opts.priority ?? 0,
      revocation: { gracePeriodSeconds: opts.gracePeriodSeconds ?? 30, maxEvictions: 5 },
    },
    ...(opts.status && { status: opts.status }),
  };
}

export function pin(fields: Partial<Pin> & Pick<Pin, 'kind' | 'pid'>): Pin {
  return { inode: 7, epoch: 1, since: at(30), ...fields };
}

/** team-a/weights on node-a-hl0, with its attachments as the agent reports them. */
export function weights(
  attachments: NonNullable<DmaBufExport['status']>['attachments'],
): DmaBufExport {
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'DmaBufExport',
    metadata: { name: 'weights', namespace: 'team-a', uid: 'uid-weights' },
    spec: {
      accelerator: 'node-a-hl0',
      lease: 'tenant-a',
      exporter: { pod: 'trainer-0' },
      sizeBytes: 2 ** 30,
      offsetBytes: 0,
      importers: [],
      source: 'Declared',
    },
    status: { phase: 'Pinned', inode: 7, epoch: 1, ...(attachments && { attachments }) },
  };
}
