// Builders for the reaper's tests: a stuck accelerator, its pins, exports, pods and a lease.
import { kubeTime } from '../crds/index.ts';
import type {
  Accelerator,
  AcceleratorLease,
  Condition,
  DmaBufExport,
  EvictionRecord,
  Pin,
} from '../crds/index.ts';
import type { PodState } from './pods.ts';
import { DEFAULT_REAPER_POLICY, type ReaperPolicy } from './policy.ts';

export const T0 = Date.parse('2026-11-25T10:00:00Z');
export const ACCEL = 'node-a-hl0';

/** A pin of epoch 1 (the device is handed to epoch 2), held by `pod` (`ns/name`) or hidden. */
export function pin(
  kind: Pin['kind'],
  pod: string | undefined,
  opts: {
    export?: string;
    importer?: string;
    pid?: number;
    inode?: number;
    epoch?: number;
    podUID?: string;
  } = {},
): Pin {
  const [namespace = '', name = ''] = pod?.split('/') ?? [];
  return {
    ...(opts.export !== undefined && { export: opts.export }),
    inode: opts.inode ?? 7,
    ...(kind !== 'fd' && { importer: opts.importer ?? `${kind}-imp` }),
    kind,
    ...(pod !== undefined && { pod: { namespace, name }, podUID: opts.podUID ?? `uid-${name}` }),
    pid: opts.pid ?? 4711,
    comm: pod === undefined ? 'rdma-agent' : name,
    epoch: opts.epoch ?? 1,
    since: kubeTime(T0 - 60_000),
  };
}

export function stuckAccel(
  pins: Pin[],
  opts: {
    epoch?: number;
    lease?: boolean;
    annotations?: Record<string, string>;
    idleEvictions?: EvictionRecord[];
  } = {},
): Accelerator {
  const epoch = opts.epoch ?? 2;
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'Accelerator',
    metadata: {
      name: ACCEL,
      uid: 'accel-uid',
      ...(opts.annotations && { annotations: opts.annotations }),
    },
    spec: {
      node: NODE,
      index: 0,
      model: 'gaudi2',
      memoryBytes: 2 ** 30,
      exporterProfile: 'static',
      owner: {
        ...(opts.lease !== false && {
          lease: { namespace: 'team-b', name: 'next', uid: 'uid-next' },
        }),
        epoch,
        ...(opts.idleEvictions && { idleEvictions: opts.idleEvictions }),
      },
    },
    status: {
      phase: pins.length > 0 ? 'Stuck' : 'Free',
      owner: { epoch },
      observedEpoch: epoch,
      pins,
      conditions: [
        {
          type: 'Pinned',
          status: pins.length > 0 ? 'True' : 'False',
          reason: pins.length > 0 ? 'EarlierEpochPinned' : 'NoPins',
          message: '',
          lastTransitionTime: kubeTime(T0),
        },
      ],
    },
  };
}

export function exportOf(key: string, exporter: string, inode = 7): DmaBufExport {
  const [namespace = '', name = ''] = key.split('/');
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'DmaBufExport',
    metadata: { name, namespace, uid: `dbx-${name}` },
    spec: {
      accelerator: ACCEL,
      lease: 'prev',
      exporter: { pod: exporter },
      sizeBytes: 1024,
      offsetBytes: 0,
      importers: [],
      source: 'Declared',
    },
    status: { phase: 'Pinned', inode },
  };
}

/** The accelerator's node, where every pod of podsOf runs. */
export const NODE = 'node-a';

/** Pods by `ns/name`, uid `uid-<name>`, bound to NODE. */
export function podsOf(...keys: string[]): Map<string, PodState> {
  return new Map(keys.map((k) => [k, { uid: `uid-${k.split('/')[1] ?? k}`, nodeName: NODE }]));
}

/** The owner-elect lease, Blocked since `blockedAt` (undefined: not marked Blocked yet). */
export function waitingLease(
  opts: {
    blockedAt?: number;
    evictions?: EvictionRecord[];
    conditions?: Condition[];
    grace?: number;
    maxEvictions?: number;
  } = {},
): AcceleratorLease {
  const conditions: Condition[] = [...(opts.conditions ?? [])];
  if (opts.blockedAt !== undefined) {
    conditions.push({
      type: 'Blocked',
      status: 'True',
      reason: 'Pinned',
      message: 'pinned',
      lastTransitionTime: kubeTime(opts.blockedAt),
    });
  }
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'AcceleratorLease',
    metadata: { name: 'next', namespace: 'team-b', uid: 'uid-next', generation: 1 },
    spec: {
      accelerator: ACCEL,
      holder: { podSelector: {} },
      priority: 0,
      revocation: { gracePeriodSeconds: opts.grace ?? 30, maxEvictions: opts.maxEvictions ?? 5 },
    },
    status: {
      phase: 'Pending',
      epoch: 2,
      ...(opts.evictions && { evictions: opts.evictions }),
      conditions,
    },
  };
}

export const policy = (over: Partial<ReaperPolicy> = {}): ReaperPolicy => ({
  ...DEFAULT_REAPER_POLICY,
  ...over,
});
