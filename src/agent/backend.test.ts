// The agent's shared sync and publishing with pins from a backend other than the kernel model:
// they gate the next owner exactly like the kernel's own, and what cannot be shown free is never Free.
import { describe, expect, it } from 'vitest';
import type { AcceleratorOwner } from '../crds/index.ts';
import { publish } from './publish.ts';
import { newState, type AgentState } from './state.ts';
import { syncNode, type Observed } from './sync.ts';
import type { Pin as KernelPin } from '../device-sim/kernel/index.ts';
import { allPins, type NodePinSource } from './backend.ts';

const lease = (name: string, uid: string) => ({ namespace: 'team-a', name, uid });
const DEVICE = 'n-hl0';

/** Grant lease a at epoch 1, then ask for `owner`; the backend's pins may read the live state. */
function run(owner: AcceleratorOwner, backendPins?: (state: AgentState) => NodePinSource) {
  const state = newState(
    'n',
    { count: 1, memoryBytes: 2 ** 30, profile: 'static' },
    { now: () => 0 },
  );
  const nodePins = backendPins?.(state);
  const status = (o: AcceleratorOwner) => {
    const observed: Observed = {
      owners: new Map([[DEVICE, o]]),
      pods: new Map(),
      exports: [],
      remote: new Map(),
      grants: [],
      now: 0,
      ...(nodePins && { nodePins }),
    };
    const sync = syncNode(state, observed);
    const pub = publish(state, {
      sync,
      previousConditions: { accelerators: new Map(), exports: new Map() },
      now: 0,
      ...(nodePins && { nodePins }),
    });
    return pub.acceleratorStatuses.get(DEVICE);
  };
  return { state, first: status({ lease: lease('a', 'u1'), epoch: 1 }), next: status(owner) };
}

const basePin: KernelPin = {
  device: DEVICE,
  owner: 'team-a/a/u1',
  epoch: 1,
  ino: 5,
  buffer: 'weights',
  kind: 'fd',
  attachment: null,
  attachmentId: null,
  fd: 4,
  pid: 4711,
  comm: 'trainer',
  holder: { namespace: 'team-a', name: 'trainer-0' },
  since: 0,
};

/** What the linux backend reports for a buffer of epoch 1: a pin once the device is past it. */
const heldSinceEpoch1 =
  (state: AgentState): NodePinSource =>
  (device) =>
    (state.kernel.device(device)?.epoch ?? 0) > 1 ? { pins: [basePin] } : { pins: [] };

describe('pins from a backend', () => {
  it('leave the sim agent as it was when there are none', () => {
    const { next } = run({ lease: lease('b', 'u2'), epoch: 2 }, undefined);
    expect(next?.phase).toBe('Owned');
    expect(next?.conditions?.map((c) => c.type)).toEqual(['OwnerApplied', 'Pinned']);
  });

  it('hold the next owner off after a drop and show the device Stuck with them', () => {
    const { state, first, next } = run({ lease: lease('b', 'u2'), epoch: 2 }, heldSinceEpoch1);
    expect(first?.phase).toBe('Owned');
    expect(state.kernel.device(DEVICE)).toMatchObject({ owner: null, epoch: 2 });
    expect(next?.phase).toBe('Stuck');
    expect(next?.pins).toEqual([
      expect.objectContaining({
        pid: 4711,
        inode: 5,
        kind: 'fd',
        pod: { namespace: 'team-a', name: 'trainer-0' },
      }),
    ]);
    expect(next?.conditions?.find((c) => c.type === 'Observed')?.status).toBe('True');
  });

  it('keep a device it cannot show free from ever being Free or granted', () => {
    const blocked: NodePinSource = () => ({
      pins: [],
      blocked: { reason: 'ObservationIncomplete', message: 'cannot read /sys/kernel/debug' },
    });
    const { state, first } = run({ lease: lease('b', 'u2'), epoch: 2 }, () => blocked);
    expect(first?.phase).toBe('Unhealthy');
    expect(state.kernel.device(DEVICE)?.owner).toBeNull();
    expect(first?.conditions?.find((c) => c.type === 'Observed')).toMatchObject({
      status: 'False',
      reason: 'ObservationIncomplete',
    });
  });

  it("are listed after the kernel model's own", () => {
    const state = newState('n', { count: 1, memoryBytes: 1, profile: 'static' });
    expect(allPins(state, DEVICE, () => ({ pins: [basePin] })).pins).toEqual([basePin]);
    expect(allPins(state, DEVICE, undefined)).toEqual({ pins: [], blocked: undefined });
  });
});
