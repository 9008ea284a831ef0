// The owner decision: every branch of decideOwner, and the fencing rule (never a lower epoch)
// checked by property over random epochs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Kernel, type DeviceInfo } from '../device-sim/kernel/index.ts';
import {
  applyOwnerDecision,
  decideOwner,
  leaseOfOwner,
  ownerKey,
  type OwnerInput,
} from './ownership.ts';

const A = { namespace: 'team-a', name: 'tenant-a', uid: 'ua' };
const B = { namespace: 'team-b', name: 'tenant-b', uid: 'ub' };

function device(owner: string | null, epoch: number): DeviceInfo {
  return { name: 'n-hl0', memoryBytes: 100, profile: 'dynamic', owner, epoch, since: 0 };
}

function input(over: Partial<OwnerInput>): OwnerInput {
  return {
    desired: undefined,
    device: device(null, 0),
    pinCount: 0,
    slowRevokeMs: 0,
    pendingRevoke: undefined,
    now: 1000,
    ...over,
  };
}

describe('decideOwner', () => {
  it('round-trips a lease through the kernel owner string', () => {
    expect(ownerKey(A)).toBe('team-a/tenant-a/ua');
    expect(leaseOfOwner(ownerKey(A))).toEqual(A);
    expect(leaseOfOwner(null)).toBeUndefined();
  });

  it('does nothing without a spec.owner, or when the device already enforces it', () => {
    expect(decideOwner(input({}))).toEqual({ action: 'none' });
    expect(
      decideOwner(input({ desired: { lease: A, epoch: 3 }, device: device(ownerKey(A), 3) })),
    ).toEqual({ action: 'none' });
    expect(
      decideOwner(input({ desired: { epoch: 3 }, device: device(null, 3), pinCount: 2 })),
    ).toEqual({
      action: 'none',
    });
  });

  it('refuses a lower epoch, naming both epochs', () => {
    const d = decideOwner(
      input({ desired: { lease: B, epoch: 2 }, device: device(ownerKey(A), 5) }),
    );
    expect(d).toMatchObject({ action: 'refuse', reason: 'StaleEpoch' });
    expect(d.action === 'refuse' && d.message).toMatch(
      /spec.owner.epoch 2 is below the device's epoch 5 \(lease team-a\/tenant-a at epoch 5\)/,
    );
  });

  it('refuses a different owner at the same epoch', () => {
    expect(
      decideOwner(input({ desired: { lease: B, epoch: 5 }, device: device(ownerKey(A), 5) })),
    ).toMatchObject({ action: 'refuse', reason: 'EpochConflict' });
    expect(
      decideOwner(input({ desired: { epoch: 5 }, device: device(ownerKey(A), 5) })),
    ).toMatchObject({
      action: 'refuse',
      reason: 'EpochConflict',
    });
  });

  it('drops then acquires on a higher epoch, and only records the epoch on a free device', () => {
    expect(
      decideOwner(input({ desired: { lease: B, epoch: 6 }, device: device(ownerKey(A), 5) })),
    ).toEqual({ action: 'drop', epoch: 6, lease: B });
    expect(decideOwner(input({ desired: { epoch: 6 }, device: device(null, 5) }))).toEqual({
      action: 'drop',
      epoch: 6,
      lease: undefined,
    });
  });

  it('retries the acquire at the same epoch once pins are gone (Stuck -> Owned)', () => {
    const stuck = input({ desired: { lease: B, epoch: 6 }, device: device(null, 6), pinCount: 1 });
    expect(decideOwner(stuck)).toEqual({ action: 'wait-pins', lease: B, epoch: 6 });
    expect(decideOwner({ ...stuck, pinCount: 0 })).toEqual({
      action: 'acquire',
      lease: B,
      epoch: 6,
    });
  });

  it('a slow revoke waits for its deadline, even as the epoch rises again', () => {
    const base = input({
      desired: { lease: B, epoch: 6 },
      device: device(ownerKey(A), 5),
      slowRevokeMs: 5000,
    });
    expect(decideOwner(base)).toEqual({
      action: 'revoke-later',
      revoke: { epoch: 6, deadline: 6000 },
    });
    const pending = { epoch: 6, deadline: 6000 };
    expect(
      decideOwner({ ...base, desired: { epoch: 7 }, pendingRevoke: pending, now: 5999 }),
    ).toEqual({ action: 'revoke-later', revoke: { epoch: 7, deadline: 6000 } });
    expect(decideOwner({ ...base, pendingRevoke: pending, now: 6000 })).toEqual({
      action: 'drop',
      epoch: 6,
      lease: B,
    });
    // Turning the fault off ends a revoke in progress at once.
    expect(decideOwner({ ...base, pendingRevoke: pending, slowRevokeMs: 0 })).toMatchObject({
      action: 'drop',
    });
  });

  it('never lowers the device epoch, whatever spec.owner says (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ epoch: fc.nat(20), lease: fc.constantFrom(A, B, undefined) }), {
          maxLength: 30,
        }),
        (owners) => {
          const k = new Kernel({ now: () => 0 });
          k.addDevice({ name: 'n-hl0', memoryBytes: 100, profile: 'dynamic' });
          const revokes = {};
          let highest = 0;
          for (const o of owners) {
            const desired = o.lease ? { lease: o.lease, epoch: o.epoch } : { epoch: o.epoch };
            const before = k.device('n-hl0') as DeviceInfo;
            const decision = decideOwner(input({ desired, device: before }));
            applyOwnerDecision(k, 'n-hl0', decision, revokes);
            const after = k.device('n-hl0') as DeviceInfo;
            expect(after.epoch).toBeGreaterThanOrEqual(before.epoch);
            if (o.epoch < before.epoch) {
              expect(decision.action).toBe('refuse');
              expect(after).toEqual(before);
            }
            expect(after.epoch).toBeGreaterThanOrEqual(highest);
            highest = after.epoch;
            // No pins here (no buffers), so an accepted lease always ends up owning the device.
            if (o.epoch >= before.epoch && decision.action !== 'refuse' && o.lease) {
              expect(after.owner).toBe(ownerKey(o.lease));
            }
          }
        },
      ),
    );
  });
});
