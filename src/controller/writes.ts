// The ports through which the controller changes the cluster (writes, pod calls, Events), and
// their implementations on the real API server. The executor talks only to these, so the same
// code runs against the API server and against the simulation's in-memory API.
import type { V1Pod } from '@kubernetes/client-node';
import {
  ACCELERATOR_LEASES,
  RESOURCE_CLAIMS,
  type Condition,
  ACCELERATORS,
  idleEvictionsPatch,
  LAST_HANDOFF_ANNOTATION,
  type Accelerator,
  type EvictionRecord,
  type AcceleratorLease,
  type AcceleratorLeaseStatus,
  type AcceleratorOwner,
} from '../crds/index.ts';
import {
  isAlreadyExists,
  isConflict,
  ResourceClient,
  type EventRecorder,
  type KubeClient,
  type ObjectReference,
} from '../kube/index.ts';
import { callPod, objectReference, type CallOutcome, type ReaperEffect } from '../reaper/index.ts';
import type { ClaimDevice, ResourceClaim } from './claims.ts';
import { ungatePatch } from './holder-gates.ts';

export const FIELD_MANAGER = 'accel-lease-controller';

const POD = { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true };

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
  /** DRA: create the lease a claim's allocation asks for; an existing one of that name is kept. */
  createLease(lease: AcceleratorLease): Promise<AcceleratorLease | undefined>;
  /** DRA: delete the claim's lease (uid precondition); its finalizer then releases the device. */
  deleteLease(lease: AcceleratorLease): Promise<void>;
  /** DRA: server-side apply our conditions to the claim's status.devices[] entry of `device`. */
  setClaimDeviceConditions(
    claim: ResourceClaim,
    device: ClaimDevice,
    conditions: readonly Condition[],
  ): Promise<ResourceClaim>;
  /**
   * Holder gates: remove our scheduling gate and require `node` (merge patch with
   * resourceVersion). A pod changed since it was read is left: its update wakes the decision.
   */
  ungatePod(pod: V1Pod, node: string): Promise<void>;
}

/** An evict or delete the reaper decided. */
export type PodCall = Extract<ReaperEffect, { type: 'evict' | 'delete' }>;

/** Pod evictions and deletions; never throws: every answer becomes an outcome. */
export interface PodCalls {
  call(effect: PodCall, signal: AbortSignal): Promise<CallOutcome>;
}

/** The one read the executor makes itself: the device as it is now, before a pod is evicted. */
export interface Reads {
  /** The Accelerator from the API server, not a cache; undefined if it is gone. */
  accelerator(name: string, signal: AbortSignal): Promise<Accelerator | undefined>;
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

/** The controller's writes on the real API server, each conditional on the resourceVersion read. */
export function clusterWrites(client: KubeClient, signal?: AbortSignal): Writes {
  const leases = new ResourceClient<AcceleratorLease>(client, ACCELERATOR_LEASES);
  const accels = new ResourceClient<Accelerator>(client, ACCELERATORS);
  const claims = new ResourceClient<ResourceClaim>(client, RESOURCE_CLAIMS);
  const pods = new ResourceClient<V1Pod>(client, POD);
  const opts = { fieldManager: FIELD_MANAGER, ...(signal && { signal }) };
  return {
    createLease: (lease) =>
      leases.create(lease, opts).catch((err: unknown) => {
        if (isAlreadyExists(err)) return undefined; // the cache will show it
        throw err;
      }),
    deleteLease: async (lease) => {
      await leases.delete(lease.metadata.name ?? '', lease.metadata.namespace, {
        preconditions: { uid: lease.metadata.uid ?? '' },
        ...(signal && { signal }),
      });
    },
    setClaimDeviceConditions: (claim, device, conditions) =>
      claims.applyStatus(
        {
          apiVersion: 'resource.k8s.io/v1',
          kind: 'ResourceClaim',
          metadata: {
            name: claim.metadata?.name ?? '',
            namespace: claim.metadata?.namespace ?? '',
          },
          status: { devices: [{ ...device, conditions }] },
        },
        { fieldManager: FIELD_MANAGER, force: true, ...(signal && { signal }) },
      ),
    ungatePod: async (pod, node) => {
      await pods
        .mergePatch(pod.metadata?.name ?? '', pod.metadata?.namespace, ungatePatch(pod, node), opts)
        .catch((err: unknown) => {
          if (!isConflict(err)) throw err;
        });
    },
    setLeaseFinalizers: (lease, finalizers) =>
      leases.mergePatch(
        lease.metadata.name ?? '',
        lease.metadata.namespace,
        { metadata: { resourceVersion: lease.metadata.resourceVersion, finalizers } },
        opts,
      ),
    replaceLeaseStatus: (lease, status) =>
      leases.replace({ ...lease, status }, { ...opts, subresource: 'status' }),
    annotate: (accel, annotations) =>
      accels.mergePatch(accel.metadata.name ?? '', undefined, { metadata: { annotations } }, opts),
    setIdleEvictions: (accel, records) =>
      accels.mergePatch(
        accel.metadata.name ?? '',
        undefined,
        idleEvictionsPatch(accel, records),
        opts,
      ),
    setOwner: (accel, owner, handoffAt) =>
      accels.mergePatch(
        accel.metadata.name ?? '',
        undefined,
        {
          metadata: {
            resourceVersion: accel.metadata.resourceVersion,
            annotations: { [LAST_HANDOFF_ANNOTATION]: handoffAt },
          },
          // Idle records belong to the owner epoch they were stored with: a new owner drops them.
          spec: { owner: { lease: owner.lease ?? null, epoch: owner.epoch, idleEvictions: null } },
        },
        opts,
      ),
  };
}

/** Live reads on the real API server. */
export function clusterReads(client: KubeClient): Reads {
  const accels = new ResourceClient<Accelerator>(client, ACCELERATORS);
  return { accelerator: (name, signal) => accels.find(name, undefined, signal) };
}

/** Evictions (policy/v1) and deletions on the real API server, each with a UID precondition. */
export function clusterPods(client: KubeClient): PodCalls {
  return { call: (effect, signal) => callPod(client, effect, signal) };
}

/** Events on accelerators, leases and pods go through the shared recorder (aggregated, never throwing). */
export function recorderSink(recorder: EventRecorder): EventSink {
  return {
    event: (regarding, type, reason, action, note) =>
      recorder.event(objectReference(regarding), type, reason, action, note),
    eventRef: (regarding, type, reason, action, note) =>
      recorder.event(regarding, type, reason, action, note),
  };
}

/**
 * The same ports, asking `fence` before each write, pod call and Event whether this replica may
 * still lead. Once it says no (it has aborted `signal`), nothing more is sent: writes reject
 * with the signal's reason, a pod call is answered `failed` unsent, an Event is dropped.
 */
export function fenced(
  ports: { writes: Writes; pods: PodCalls; events: EventSink },
  fence: () => boolean,
  signal: AbortSignal,
): { writes: Writes; pods: PodCalls; events: EventSink } {
  const unsent = (): Error =>
    signal.reason instanceof Error ? signal.reason : new Error('no longer leading');
  const guard =
    <A extends unknown[], R>(write: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> =>
      fence() ? write(...args) : Promise.reject(unsent());
  const { writes, pods, events } = ports;
  // Every method, so that a write added to the port later is fenced without a second thought.
  const fencedWrites = Object.fromEntries(
    Object.entries(writes).map(([name, write]) => [
      name,
      guard((write as (...args: unknown[]) => Promise<unknown>).bind(writes)),
    ]),
  ) as unknown as Writes;
  return {
    writes: fencedWrites,
    pods: {
      call: (effect, s) =>
        fence()
          ? pods.call(effect, s)
          : Promise.resolve({ kind: 'failed', message: `not sent: ${unsent().message}` }),
    },
    events: {
      event: (...args) => void (fence() && events.event(...args)),
      eventRef: (...args) => void (fence() && events.eventRef(...args)),
    },
  };
}
