import { describe, expect, it } from 'vitest';
import { desiredSlice } from './resource-slice.ts';

const device = (accelerator: string, cordoned = false) => ({
  accelerator,
  model: 'gaudi2',
  memoryBytes: 2 ** 30,
  profile: 'dynamic' as const,
  cordoned,
});

describe('desiredSlice', () => {
  it("is one pool named after the node, each device gated by the handoff's conditions", () => {
    const s = desiredSlice('node-a', [device('node-a-hl0'), device('node-a-hl1')]);
    expect(s.metadata.name).toBe('node-a.accel.dmabuf.io');
    const spec = s.spec as Record<string, unknown> & { devices: Record<string, unknown>[] };
    expect(spec.driver).toBe('accel.dmabuf.io');
    expect(spec.nodeName).toBe('node-a');
    expect(spec.pool).toEqual({ name: 'node-a', generation: 1, resourceSliceCount: 1 });
    expect(spec.devices.map((d) => d.name)).toEqual(['hl0', 'hl1']);
    expect(spec.devices[0]).toMatchObject({
      attributes: {
        accelerator: { string: 'node-a-hl0' },
        model: { string: 'gaudi2' },
        profile: { string: 'dynamic' },
        memory: { int: 2 ** 30 },
      },
      bindsToNode: true,
      bindingConditions: ['accel.dmabuf.io/handoff-complete'],
      bindingFailureConditions: ['accel.dmabuf.io/unresolvable'],
    });
    expect(spec.devices[0]).not.toHaveProperty('taints');
  });

  it('taints a cordoned device NoSchedule, and leaves out names of other nodes', () => {
    const s = desiredSlice('node-a', [device('node-a-hl0', true), device('node-b-hl0')]);
    const spec = s.spec as { devices: Record<string, unknown>[] };
    expect(spec.devices).toHaveLength(1);
    expect(spec.devices[0]?.taints).toEqual([
      { key: 'accel.dmabuf.io/cordoned', value: 'true', effect: 'NoSchedule' },
    ]);
  });
});
