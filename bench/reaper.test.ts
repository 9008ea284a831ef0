import { describe, expect, it } from 'vitest';
import { clearingStages, countsSince, type ReaperRound, summarizeRounds } from './reaper.ts';

const round = (
  reaperMs: number,
  floorMs: number,
  drainMs: number,
  fastMs?: number,
): ReaperRound => ({
  holders: 100,
  reaperMs,
  deleteToGrantedMs: reaperMs + 50,
  recordsWrittenMs: 30,
  floorMs,
  overFloor: reaperMs / floorMs,
  drain: { command: 'kubectl drain <node>', ms: drainMs },
  overDrain: reaperMs / drainMs,
  ...(fastMs !== undefined && {
    drainFast: { command: 'drain --qps=1000 <node>', ms: fastMs, qps: 1000, burst: 1000 },
    overDrainFast: reaperMs / fastMs,
  }),
  evictions: 100,
  stages: clearingStages([0, 100, reaperMs - 40, reaperMs - 20, reaperMs]),
  floorStages: clearingStages([0, 20, floorMs, floorMs + 15]),
});

describe('clearingStages', () => {
  it('names the stages from Stuck seen through Granted seen', () => {
    expect(clearingStages([0, 1, 3, 6, 10]).map((s) => [s.name, s.ms])).toEqual([
      ['Stuck seen to first eviction taken', 1],
      ['first eviction taken to last holder gone', 2],
      ['last holder gone to device cleared', 3],
      ['device cleared to Granted seen', 4],
    ]);
  });
});

describe('summarizeRounds', () => {
  it('divides the median reaper time by the median floor, not the ratios by each other', () => {
    const r = summarizeRounds([
      round(2000, 1000, 20_000),
      round(3000, 2500, 20_100),
      round(2600, 1100, 19_900),
    ]);
    expect(r.reaperMs).toBe(2600);
    expect(r.floorMs).toBe(1100);
    expect(r.overFloor).toBe(2.364);
    expect(r.drainMs).toBe(20_000);
    expect(r.overDrain).toBe(0.13);
    expect(r.drainFastMs).toBeUndefined();
  });

  it('reports the raised-rate drain only when every round ran it', () => {
    expect(
      summarizeRounds([round(2000, 1000, 20_000, 1500), round(2000, 1000, 20_000)]).drainFastMs,
    ).toBeUndefined();
    const r = summarizeRounds([round(2000, 1000, 20_000, 1500), round(2200, 1000, 20_000, 1700)]);
    expect(r.drainFastMs).toBe(1600);
    expect(r.overDrainFast).toBe(1.313);
    expect(r.drainFastCommand).toBe('drain --qps=1000 <node>');
  });

  it('puts the bare client beside the reaper stage by stage; Granted has no floor', () => {
    const r = summarizeRounds([round(2000, 1000, 20_000)]);
    const granted = r.stages.find((s) => s.stage === 'device cleared to Granted seen');
    expect(granted).toEqual({ stage: 'device cleared to Granted seen', p50Ms: 20, meanMs: 20 });
    const first = r.stages[0];
    expect([first?.p50Ms, first?.floorP50Ms, first?.overFloorMeanMs]).toEqual([100, 20, 80]);
  });

  it('refuses to summarize no rounds', () => {
    expect(() => summarizeRounds([])).toThrow(/no reaper round/);
  });
});

describe('countsSince', () => {
  it('keeps only the kinds of request made between the reads', () => {
    expect(
      countsSince(
        { 'create events': 10, 'get pods': 3 },
        { 'create events': 112, 'get pods': 3, 'create pods/eviction': 100 },
      ),
    ).toEqual({ 'create events': 102, 'create pods/eviction': 100 });
  });

  it('is averaged over the rounds that counted', () => {
    const counted = (n: number): ReaperRound => ({
      ...round(2000, 1000, 20_000),
      controllerRequests: { 'create pods/eviction': 100, 'create events': n },
    });
    expect(
      summarizeRounds([counted(100), counted(103), round(2000, 1000, 20_000)]).controllerRequests,
    ).toEqual({
      'create pods/eviction': 100,
      'create events': 101.5,
    });
    expect(summarizeRounds([round(2000, 1000, 20_000)]).controllerRequests).toBeUndefined();
  });
});
