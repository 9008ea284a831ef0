// Applying spec.owner to a device, level-triggered: a pure decision from (desired owner, device
// state) and the few kernel calls that carry it out. The device never accepts a lower epoch.
import type { AcceleratorOwner, LeaseRef } from '../crds/index.ts';
import {
  KernelError,
  type DeviceInfo,
  type DropReport,
  type Kernel,
} from '../device-sim/kernel/index.ts';
import type { PendingRevoke } from './state.ts';

/** The kernel's owner string for a lease: `namespace/name/uid` (none of the three holds a '/'). */
export function ownerKey(lease: LeaseRef): string {
  return `${lease.namespace}/${lease.name}/${lease.uid}`;
}

export function leaseOfOwner(owner: string | null): LeaseRef | undefined {
  if (owner === null) return undefined;
  const [namespace = '', name = '', uid = ''] = owner.split('/');
  return { namespace, name, uid };
}

export type OwnerDecision =
  /** Nothing to do: no owner was ever asked for, or the device already is what spec.owner says. */
  | { readonly action: 'none' }
  /** The device is free at the desired epoch but old pins still block the new lease (Stuck). */
  | { readonly action: 'wait-pins'; readonly lease: LeaseRef; readonly epoch: number }
  /** spec.owner asks for something the fencing token forbids. */
  | {
      readonly action: 'refuse';
      readonly reason: 'StaleEpoch' | 'EpochConflict';
      readonly message: string;
    }
  /** A slow revoke starts now (or goes on): drop the owner once `deadline` has passed. */
  | { readonly action: 'revoke-later'; readonly revoke: PendingRevoke }
  /** Drop the current owner (if any) at `epoch`, then acquire for `lease` if there is one. */
  | { readonly action: 'drop'; readonly epoch: number; readonly lease: LeaseRef | undefined }
  /** The device is free at the desired epoch and nothing pins it: acquire. */
  | { readonly action: 'acquire'; readonly lease: LeaseRef; readonly epoch: number };

export interface OwnerInput {
  readonly desired: AcceleratorOwner | undefined;
  readonly device: DeviceInfo;
  /** Pins on the device now (all of an earlier epoch: a current owner is never pinned). */
  readonly pinCount: number;
  readonly slowRevokeMs: number;
  readonly pendingRevoke: PendingRevoke | undefined;
  readonly now: number;
}

function describeOwner(owner: string | null, epoch: number): string {
  const lease = leaseOfOwner(owner);
  return lease
    ? `lease ${lease.namespace}/${lease.name} at epoch ${epoch}`
    : `nobody at epoch ${epoch}`;
}

/** What to do about spec.owner on one device. Pure: the same input always gives the same decision. */
export function decideOwner(input: OwnerInput): OwnerDecision {
  const { desired, device } = input;
  if (!desired) return { action: 'none' };
  const wanted = desired.lease && ownerKey(desired.lease);
  if (desired.epoch < device.epoch) {
    return {
      action: 'refuse',
      reason: 'StaleEpoch',
      message:
        `spec.owner.epoch ${desired.epoch} is below the device's epoch ${device.epoch} ` +
        `(${describeOwner(device.owner, device.epoch)}): a device never accepts a lower epoch`,
    };
  }
  if (desired.lease && desired.epoch === 0) {
    return {
      action: 'refuse',
      reason: 'StaleEpoch',
      message:
        'spec.owner names a lease at epoch 0, the epoch every device starts at with no owner: a lease needs epoch 1 or higher',
    };
  }
  if (desired.epoch === device.epoch) {
    if (device.owner !== null) {
      if (wanted === device.owner) return { action: 'none' };
      return {
        action: 'refuse',
        reason: 'EpochConflict',
        message:
          `spec.owner names ${describeOwner(wanted ?? null, desired.epoch)}, but the device is ` +
          `owned by ${describeOwner(device.owner, device.epoch)}: a new owner needs a higher epoch`,
      };
    }
    if (!desired.lease) return { action: 'none' };
    if (input.pinCount > 0)
      return { action: 'wait-pins', lease: desired.lease, epoch: desired.epoch };
    return { action: 'acquire', lease: desired.lease, epoch: desired.epoch };
  }
  // A higher epoch: the current owner goes. Dropping a free device only records the epoch.
  if (device.owner !== null && input.slowRevokeMs > 0) {
    const revoke = input.pendingRevoke ?? {
      epoch: desired.epoch,
      deadline: input.now + input.slowRevokeMs,
    };
    if (input.now < revoke.deadline) {
      return {
        action: 'revoke-later',
        revoke: { epoch: desired.epoch, deadline: revoke.deadline },
      };
    }
  }
  return { action: 'drop', epoch: desired.epoch, lease: desired.lease };
}

export type OwnerOutcome =
  | { readonly kind: 'unchanged' }
  | {
      readonly kind: 'refused';
      readonly reason: 'StaleEpoch' | 'EpochConflict';
      readonly message: string;
    }
  | { readonly kind: 'revoking'; readonly revoke: PendingRevoke }
  | {
      readonly kind: 'applied';
      readonly drop: DropReport | undefined;
      /** True when the new lease now owns the device. */
      readonly acquired: boolean;
    }
  | { readonly kind: 'error'; readonly message: string };

/**
 * Carry out `decision` on the kernel. Synchronous, like the kernel: when it returns, the new
 * device state is in memory and the caller persists it before anything else can happen.
 */
export function applyOwnerDecision(
  kernel: Kernel,
  device: string,
  decision: OwnerDecision,
  revokes: Record<string, PendingRevoke>,
  /** Pins the kernel model does not hold (an observing backend's), counted after the drop. */
  backendPins: () => number = () => 0,
): OwnerOutcome {
  try {
    switch (decision.action) {
      case 'none':
      case 'wait-pins':
        return { kind: 'unchanged' };
      case 'refuse':
        return { kind: 'refused', reason: decision.reason, message: decision.message };
      case 'revoke-later':
        revokes[device] = decision.revoke;
        return { kind: 'revoking', revoke: decision.revoke };
      case 'drop': {
        delete revokes[device];
        const drop = kernel.drop(device, { epoch: decision.epoch });
        let acquired = false;
        if (decision.lease && drop.pins.length === 0 && backendPins() === 0) {
          kernel.acquire(device, ownerKey(decision.lease), decision.epoch);
          acquired = true;
        }
        return { kind: 'applied', drop, acquired };
      }
      case 'acquire':
        kernel.acquire(device, ownerKey(decision.lease), decision.epoch);
        return { kind: 'applied', drop: undefined, acquired: true };
    }
  } catch (err) {
    // The kernel refuses without changing anything, so the next sync simply tries again.
    if (err instanceof KernelError) return { kind: 'error', message: err.message };
    throw err;
  }
}
