// DRA mode as pure functions: a ResourceClaim allocated one of our devices becomes an
// AcceleratorLease (same namespace and name, owned by the claim), and the lease's progress
// becomes the claim's device conditions, which the scheduler's PreBind waits on.
import type { ResourceV1ResourceClaim } from '@kubernetes/client-node';
import {
  ACCELERATOR_LEASES,
  acceleratorOfDevice,
  API_VERSION,
  CLAIM_UID_LABEL,
  DRA_DRIVER,
  findCondition,
  HANDOFF_COMPLETE,
  LeaseParameters,
  setConditions,
  UNRESOLVABLE,
  type AcceleratorLease,
  type Condition,
  type ConditionInput,
  type EvictionRecord,
} from '../crds/index.ts';
import type { Action } from './arbiter.ts';

/** A write DRA mode decides: the claim's lease, the claim's device status, or an Event. */
export type ClaimAction =
  | Extract<Action, { type: 'event' }>
  | { type: 'createLease'; lease: AcceleratorLease }
  | { type: 'deleteLease'; lease: AcceleratorLease }
  | {
      type: 'claimDeviceStatus';
      claim: ResourceClaim;
      device: ClaimDevice;
      conditions: Condition[];
    };

export type ResourceClaim = ResourceV1ResourceClaim;

/** One allocated device of our driver: the claim's status.devices[] entry is keyed by these. */
export interface ClaimDevice {
  readonly driver: string;
  readonly pool: string;
  readonly device: string;
}

export interface ClaimInput {
  readonly claim: ResourceClaim;
  /** The lease with the claim's namespace and name, whoever owns it. */
  readonly lease?: AcceleratorLease;
  /** Is the slice device tainted NoSchedule (cordoned), so a reallocation will not pick it again? */
  readonly tainted: (device: ClaimDevice) => boolean;
  /** This reconcile's time, for lastTransitionTime (RFC 3339). */
  readonly now: string;
}

/** The devices of driver accel.dmabuf.io the scheduler allocated to `claim`, in result order. */
export function allocatedDevices(claim: ResourceClaim): ClaimDevice[] {
  return (claim.status?.allocation?.devices?.results ?? [])
    .filter((r) => r.driver === DRA_DRIVER)
    .map((r) => ({ driver: r.driver, pool: r.pool, device: r.device }));
}

const ownedBy = (lease: AcceleratorLease, claim: ResourceClaim): boolean =>
  ((lease.metadata.ownerReferences ?? []) as { uid?: string }[]).some(
    (o) => o.uid !== undefined && o.uid === claim.metadata?.uid,
  );

/**
 * The opaque config for our driver, the claim's over the class's (later entries win). A config
 * that does not parse is ignored: the lease gets the defaults, and the Event says why.
 */
export function leaseParameters(claim: ResourceClaim): {
  params: Omit<LeaseParameters, 'apiVersion' | 'kind'>;
  invalid?: string;
} {
  let params: Omit<LeaseParameters, 'apiVersion' | 'kind'> = {};
  let invalid: string | undefined;
  for (const c of claim.status?.allocation?.devices?.config ?? []) {
    if (c.opaque?.driver !== DRA_DRIVER) continue;
    const parsed = LeaseParameters.safeParse(c.opaque.parameters);
    if (!parsed.success) {
      invalid = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      continue;
    }
    const { priority, duration, revocation } = parsed.data;
    const rest = {
      ...(priority !== undefined && { priority }),
      ...(duration !== undefined && { duration }),
      ...(revocation !== undefined && { revocation }),
    };
    params = {
      ...params,
      ...rest,
      ...(rest.revocation && { revocation: { ...params.revocation, ...rest.revocation } }),
    };
  }
  return { params, ...(invalid !== undefined && { invalid }) };
}

/** The lease a claim's allocation asks for: it targets the device, and selects no pod by label. */
export function leaseForClaim(claim: ResourceClaim, device: ClaimDevice): AcceleratorLease {
  const { params } = leaseParameters(claim);
  const uid = claim.metadata?.uid ?? '';
  return {
    apiVersion: API_VERSION,
    kind: ACCELERATOR_LEASES.kind,
    metadata: {
      name: claim.metadata?.name ?? '',
      namespace: claim.metadata?.namespace ?? '',
      ownerReferences: [
        {
          apiVersion: 'resource.k8s.io/v1',
          kind: 'ResourceClaim',
          name: claim.metadata?.name,
          uid,
          controller: true,
        },
      ],
    },
    spec: {
      accelerator: acceleratorOfDevice(device.pool, device.device),
      // The claim gates its pods through binding conditions; no pod carries this label.
      holder: { podSelector: { matchLabels: { [CLAIM_UID_LABEL]: uid } } },
      priority: params.priority ?? 0,
      ...(params.duration !== undefined && { duration: params.duration }),
      revocation: { gracePeriodSeconds: 30, maxEvictions: 5, ...params.revocation },
    },
  };
}

const describeEvictions = (records: readonly EvictionRecord[]): string => {
  const done = records.filter((r) => r.result === 'Evicted' || r.result === 'Deleted');
  if (done.length === 0) return 'nothing was evicted';
  return `evicted ${done
    .map((r) => `${r.pod.namespace}/${r.pod.name}${r.reason ? ` (${r.reason})` : ''}`)
    .join(', ')}`;
};

/**
 * The claim's device conditions, from its lease alone (level-triggered: a restarted controller
 * computes the same). handoff-complete is True only while the lease is Granted on the allocated
 * device; unresolvable is True only once the lease says Unresolvable and the device is tainted,
 * so the scheduler's reallocation cannot pick the same device again.
 */
export function claimConditions(
  lease: AcceleratorLease,
  accelerator: string,
  tainted: boolean,
): ConditionInput[] {
  const st = lease.status;
  const granted =
    st?.phase === 'Granted' && st.accelerator === accelerator && !lease.metadata.deletionTimestamp;
  const blocked = findCondition(st?.conditions, 'Blocked');
  const unresolvable = blocked?.status === 'True' && blocked.reason === 'Unresolvable';
  const complete: ConditionInput = granted
    ? {
        type: HANDOFF_COMPLETE,
        status: 'True',
        reason: 'Owned',
        message: `${accelerator} is owned by lease ${lease.metadata.name} at epoch ${st.epoch ?? 0}; ${describeEvictions(st.evictions ?? [])}`,
      }
    : {
        type: HANDOFF_COMPLETE,
        status: 'False',
        reason: unresolvable ? 'Unresolvable' : (st?.phase ?? 'Pending'),
        message: pendingMessage(lease, accelerator),
      };
  const failed: ConditionInput =
    unresolvable && tainted && !granted
      ? {
          type: UNRESOLVABLE,
          status: 'True',
          reason: 'Unresolvable',
          message: blocked.message,
        }
      : {
          type: UNRESOLVABLE,
          status: 'False',
          reason: unresolvable ? 'AwaitingCordon' : 'Resolvable',
          message: unresolvable
            ? `${accelerator} is unresolvable; waiting for its slice device to be tainted`
            : 'the handoff can still complete',
        };
  return [complete, failed];
}

function pendingMessage(lease: AcceleratorLease, accelerator: string): string {
  const st = lease.status;
  const phase = st?.phase ?? 'Pending';
  // The lease's own condition says why in its words (queue, pins, reaping); else the position.
  const why = ['Blocked', 'Reaping', 'Granted']
    .map((t) => findCondition(st?.conditions, t))
    .find(
      (c) => c !== undefined && c.message !== '' && (c.status === 'True' || c.type === 'Granted'),
    );
  const detail = why
    ? why.message
    : st?.queuePosition !== undefined
      ? `queue position ${st.queuePosition} for ${accelerator}`
      : `waiting for ${accelerator}`;
  return `lease ${lease.metadata.name} is ${phase}: ${detail}`;
}

/** The same conditions, whatever the key order or time format the server answers with. */
const sameConditions = (a: readonly Condition[], b: readonly Condition[]): boolean =>
  a.length === b.length &&
  a.every((c) => {
    const d = b.find((x) => x.type === c.type);
    return (
      d !== undefined &&
      d.status === c.status &&
      d.reason === c.reason &&
      d.message === c.message &&
      Date.parse(d.lastTransitionTime) === Date.parse(c.lastTransitionTime)
    );
  });

/** The conditions now on the claim's status.devices[] entry for `device`. */
export function currentDeviceConditions(claim: ResourceClaim, d: ClaimDevice): Condition[] {
  const entry = (claim.status?.devices ?? []).find(
    (e) => e.driver === d.driver && e.pool === d.pool && e.device === d.device,
  );
  return (entry?.conditions ?? []) as unknown as Condition[];
}

/**
 * One claim's writes. Allocated one of our devices: its lease exists (created if missing,
 * deleted first if it targets another device) and its device conditions follow the lease.
 * Not allocated any more (the scheduler failed over): its lease goes. A lease of the same name
 * that the claim does not own is never touched: the Event says so.
 */
export function decideClaim(input: ClaimInput): ClaimAction[] {
  const { claim, lease, now } = input;
  const [device, ...more] = allocatedDevices(claim);
  const mine = lease && ownedBy(lease, claim) ? lease : undefined;
  if (lease && !mine) {
    if (!device) return [];
    return [
      {
        type: 'event',
        regarding: lease,
        eventType: 'Warning',
        reason: 'ClaimConflict',
        note: `ResourceClaim ${claim.metadata?.namespace}/${claim.metadata?.name} was allocated ${acceleratorOfDevice(device.pool, device.device)}, but this lease of the same name is not the claim's; the claim's pod will not bind until it is deleted`,
      },
    ];
  }
  if (!device) {
    // Deallocated (failover, or its pods are gone): the lease's device is not the claim's now.
    // A claim being deleted keeps its lease while it is allocated: its pod may still run.
    return mine && !mine.metadata.deletionTimestamp ? [{ type: 'deleteLease', lease: mine }] : [];
  }
  if (claim.metadata?.deletionTimestamp && !mine) return [];
  const accelerator = acceleratorOfDevice(device.pool, device.device);
  if (!mine) {
    const created = leaseForClaim(claim, device);
    const { invalid } = leaseParameters(claim);
    const notes: ClaimAction[] = [];
    if (more.length > 0 || invalid !== undefined) {
      notes.push({
        type: 'event',
        regarding: created,
        eventType: 'Warning',
        reason: 'ClaimParameters',
        note: [
          more.length > 0 &&
            `the claim was allocated ${more.length + 1} accel.dmabuf.io devices; the lease holds only ${accelerator}`,
          invalid !== undefined && `its LeaseParameters are ignored: ${invalid}`,
        ]
          .filter(Boolean)
          .join('; '),
      });
    }
    return [{ type: 'createLease', lease: created }, ...notes];
  }
  if (mine.spec.accelerator !== accelerator) {
    return mine.metadata.deletionTimestamp ? [] : [{ type: 'deleteLease', lease: mine }];
  }
  const current = currentDeviceConditions(claim, device);
  const next = setConditions(
    current,
    claimConditions(mine, accelerator, input.tainted(device)),
    now,
  ).filter((c) => c.type === HANDOFF_COMPLETE || c.type === UNRESOLVABLE);
  const ours = current.filter((c) => c.type === HANDOFF_COMPLETE || c.type === UNRESOLVABLE);
  if (sameConditions(ours, next)) return [];
  return [{ type: 'claimDeviceStatus', claim, device, conditions: next }];
}
