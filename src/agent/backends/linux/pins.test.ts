import { describe, expect, it } from 'vitest';
import type { DeviceInfo } from '../../../device-sim/kernel/index.ts';
import type { NodeObservation, ObservedBuffer, ProcessRef } from './observe.ts';
import {
  devicePins,
  emptyLedger,
  recordObservation,
  type Ledger,
  type LinuxDevice,
} from './pins.ts';

const UID = '0c6c3f5c-1a2b-4c3d-8e9f-0123456789ab';
const DEVICES: LinuxDevice[] = [
  { name: 'n-hl0', paths: ['/dev/accel/accel0'], exporter: 'habanalabs' },
];
const trainer: ProcessRef = {
  pid: 100,
  comm: 'trainer',
  startTime: 7,
  pod: { uid: UID, containerID: 'c' },
};
const host: ProcessRef = { pid: 200, comm: 'hl-smi', startTime: 8, pod: null };

const device = (epoch: number, owner: string | null): DeviceInfo => ({
  name: 'n-hl0',
  memoryBytes: 1,
  profile: 'static',
  owner,
  epoch,
  since: 0,
});
const buffer = (over: Partial<ObservedBuffer> = {}): ObservedBuffer => ({
  inode: 5,
  exporter: 'habanalabs',
  name: 'weights',
  sizeBytes: 4096,
  count: 2,
  attachedDevices: [],
  unaccountedReferences: 0,
  holders: [{ ...trainer, fds: [4], mappings: 1 }],
  ...over,
});
const observation = (over: Partial<NodeObservation> = {}): NodeObservation => ({
  buffers: [buffer()],
  deviceHolders: [{ ...trainer, device: '/dev/accel/accel0', fds: [3] }],
  mrHolders: [],
  problems: [],
  vanished: 0,
  ...over,
});
const podOf = (uid: string) =>
  uid === UID ? { namespace: 'team-a', name: 'trainer-0' } : undefined;

function pinsAfter(ledger: Ledger, obs: NodeObservation, now: DeviceInfo) {
  return devicePins({ ledger, observation: obs, devices: DEVICES, podOf }, 'n-hl0', now);
}

describe('linux pins', () => {
  const owned = recordObservation(
    emptyLedger(),
    observation(),
    DEVICES,
    () => device(1, 'team-a/a/u1'),
    10,
  );

  it('pins nothing of the current owner', () => {
    expect(pinsAfter(owned, observation(), device(1, 'team-a/a/u1'))).toEqual({
      pins: [],
      blocked: undefined,
    });
  });

  it("after an owner drop pins every holder of the earlier buffer and the old owner's device fd", () => {
    const { pins, blocked } = pinsAfter(owned, observation(), device(2, null));
    expect(blocked).toBeUndefined();
    expect(pins.map((p) => [p.kind, p.ino, p.fd, p.pid, p.epoch, p.holder])).toEqual([
      ['fd', 0, 3, 100, 1, { namespace: 'team-a', name: 'trainer-0' }],
      ['fd', 5, 4, 100, 1, { namespace: 'team-a', name: 'trainer-0' }],
    ]);
    expect(pins.find((p) => p.ino === 0)?.buffer).toBe('/dev/accel/accel0');
  });

  it('pins a mapping-only holder as mmap, and a holder in no pod with no pod', () => {
    const obs = observation({
      buffers: [buffer({ holders: [{ ...host, fds: [], mappings: 1 }] })],
      deviceHolders: [],
    });
    const { pins } = pinsAfter(owned, obs, device(2, null));
    expect(pins.map((p) => [p.kind, p.attachment, p.pid, p.holder])).toEqual([
      ['mmap', 'cpu-mapping', 200, null],
    ]);
  });

  it('keeps pinning a former holder through its RDMA MR after it closed the fd', () => {
    const obs = observation({
      buffers: [buffer({ holders: [], count: 1, unaccountedReferences: 1 })],
      deviceHolders: [],
      mrHolders: [{ ...trainer, mrs: 1 }],
    });
    const { pins, blocked } = pinsAfter(owned, obs, device(2, null));
    expect(pins.map((p) => [p.kind, p.pid])).toEqual([['rdma-mr', 100]]);
    expect(blocked).toBeUndefined();
    // An MR of a process that never held the buffer is not evidence against it.
    const stranger = observation({ ...obs, mrHolders: [{ ...host, mrs: 1 }] });
    expect(pinsAfter(owned, stranger, device(2, null)).pins).toEqual([]);
  });

  it('blocks the device when an earlier buffer lives on with no holder it can see', () => {
    const obs = observation({ buffers: [buffer({ holders: [], count: 1 })], deviceHolders: [] });
    const { pins, blocked } = pinsAfter(owned, obs, device(2, null));
    expect(pins).toEqual([]);
    expect(blocked?.reason).toBe('UnaccountedReferences');
    expect(blocked?.message).toMatch(/inode 5 \(weights\) of epoch 1 has 1 reference/);
  });

  it('blocks the device when the pass was incomplete, whatever it found', () => {
    const obs = observation({
      problems: [{ kind: 'permission-denied', message: 'cannot read pid 9' }],
    });
    expect(pinsAfter(owned, obs, device(1, 'team-a/a/u1')).blocked).toEqual({
      reason: 'ObservationIncomplete',
      message: 'cannot read pid 9',
    });
  });

  it('counts a buffer seen while nobody owned the device against the next owner', () => {
    const free = recordObservation(
      emptyLedger(),
      observation(),
      DEVICES,
      () => device(0, null),
      10,
    );
    expect(pinsAfter(free, observation(), device(0, null)).pins.map((p) => p.ino)).toEqual([5]);
    // A device holder seen while free (a monitoring tool) is not the old owner's: no pin.
    expect(pinsAfter(free, observation(), device(1, 'team-b/b/u2')).pins.map((p) => p.ino)).toEqual(
      [5],
    );
  });

  it('remembers the first epoch of a buffer across passes, and forgets it once bufinfo drops it', () => {
    const later = recordObservation(
      owned,
      observation(),
      DEVICES,
      () => device(2, 'team-b/b/u2'),
      20,
    );
    expect(later.buffers['5']?.devices['n-hl0']).toEqual({
      epoch: 1,
      owner: 'team-a/a/u1',
      since: 10,
    });
    const gone = recordObservation(
      later,
      observation({ buffers: [] }),
      DEVICES,
      () => device(2, null),
      30,
    );
    expect(gone.buffers).toEqual({});
    const blind = recordObservation(
      later,
      observation({ buffers: [], problems: [{ kind: 'debugfs-unreadable', message: 'x' }] }),
      DEVICES,
      () => device(2, null),
      30,
    );
    expect(blind.buffers['5']).toBeDefined();
  });

  it('gives a buffer to the device whose node its holders have open when an exporter drives several', () => {
    const two: LinuxDevice[] = [
      ...DEVICES,
      { name: 'n-hl1', paths: ['/dev/accel/accel1'], exporter: 'habanalabs' },
    ];
    const obs = observation({
      deviceHolders: [{ ...trainer, device: '/dev/accel/accel1', fds: [3] }],
    });
    expect(
      Object.keys(
        recordObservation(emptyLedger(), obs, two, () => device(1, 'x'), 1).buffers['5']?.devices ??
          {},
      ),
    ).toEqual(['n-hl1']);
    const unknown = observation({ deviceHolders: [] });
    expect(
      Object.keys(
        recordObservation(emptyLedger(), unknown, two, () => device(1, 'x'), 1).buffers['5']
          ?.devices ?? {},
      ),
    ).toEqual(['n-hl0', 'n-hl1']);
  });
});
