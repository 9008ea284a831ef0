import { describe, expect, it } from 'vitest';
import { type HandoffSample, summarizeHandoffs } from './handoff.ts';

// A handoff of 40 ms in stages 20/12/8, a four-hop floor of 5+5+10+5, a two-hop floor of 8+6.
const sample = (scale: number, requests?: Record<string, number>): HandoffSample => ({
  marks: [1000, 1000 + 20 * scale, 1000 + 32 * scale, 1000 + 40 * scale],
  deleteAnsweredMs: 4 * scale,
  ...(requests && { requests }),
  floor: { ms: 25 * scale, hopsMs: [5, 5, 10, 5].map((x) => x * scale) },
  twoRoundFloor: { ms: 14 * scale, hopsMs: [8 * scale, 6 * scale] },
  configMapFloor: { ms: 16 * scale, hopsMs: [4, 4, 4, 4].map((x) => x * scale) },
});

describe('summarizeHandoffs', () => {
  const r = summarizeHandoffs([sample(1), sample(2), sample(1)]);

  it('takes each ratio as the handoff percentile over the same percentile of that floor', () => {
    expect(r.handoffMs.p50).toBe(40);
    expect(r.floorMs.p50).toBe(25);
    expect(r.overFloor.p50).toBe(1.6);
    expect(r.twoRoundFloorMs.p50).toBe(14);
    expect(r.overTwoRoundFloor.p50).toBe(2.86);
    expect(r.overConfigMapFloor.p50).toBe(2.5);
    expect(r.overFloor.p99).toBe(1.6);
    expect(r.hopsPerHandoff).toBe(4);
    expect(r.twoRoundHops).toBe(2);
  });

  it('lines the floor hops up with the stages: deletion and owner write, Owned, Granted', () => {
    expect(r.stages.map((s) => s.stage)).toEqual([
      'DELETE sent to owner seen',
      'owner seen to Owned seen',
      'Owned seen to Granted seen',
    ]);
    expect(r.stages.map((s) => [s.p50Ms, s.floorP50Ms])).toEqual([
      [20, 10],
      [12, 10],
      [8, 5],
    ]);
    // Means: (20+40+20)/3 and (10+20+10)/3 for the first stage.
    expect(r.stages[0]?.overFloorMeanMs).toBe(13.33);
    expect(r.deleteAnsweredMs.p50).toBe(4);
  });

  it('counts requests per handoff over the handoffs that were counted, by verb', () => {
    const q = summarizeHandoffs([
      sample(1, { 'patch accelerators': 1, 'create events': 2, 'get pods': 0 }),
      sample(1, { 'patch accelerators': 1, 'create events': 1 }),
    ]).requestsPerHandoff;
    expect(q?.p50).toBe(2);
    expect(q?.mean).toBe(2.5);
    expect(q?.meanByVerb).toEqual({ 'patch accelerators': 1, 'create events': 1.5 });
    expect(r.requestsPerHandoff).toBeUndefined();
  });

  it("averages the components' own timers over the handoffs that read them", () => {
    const w = (ms: number) => ({ ...sample(1), work: { 'agent sync ms': ms, 'agent syncs': 2 } });
    expect(summarizeHandoffs([w(10), w(20), sample(1)]).workPerHandoff).toEqual({
      'agent sync ms': 15,
      'agent syncs': 2,
    });
    expect(r.workPerHandoff).toBeUndefined();
  });
});
