// Chaos schedules: a seed names one schedule, and the fixed set `npm test` runs injects every kind.
import { describe, expect, it } from 'vitest';
import { coveringSeeds, FAULT_KINDS, scheduleOf } from './schedule.ts';

describe('chaos schedules', () => {
  it('are the same for the same seed, and differ across seeds', () => {
    expect(scheduleOf(42)).toEqual(scheduleOf(42));
    expect(scheduleOf(42)).not.toEqual(scheduleOf(43));
  });

  it('the covering seeds inject every fault kind between them', () => {
    const kinds = new Set(coveringSeeds().flatMap((s) => scheduleOf(s).faults.map((f) => f.kind)));
    expect([...kinds].sort()).toEqual([...FAULT_KINDS].sort());
  });

  it('draw every exporter profile, PDBs, hidden holders and both queue lengths over 50 seeds', () => {
    const devices = Array.from({ length: 50 }, (_, i) => scheduleOf(i + 1).devices).flat();
    expect(new Set(devices.map((d) => d.profile)).size).toBe(3);
    expect(devices.some((d) => d.pdbSeconds !== undefined)).toBe(true);
    expect(devices.some((d) => d.hiddenHolder)).toBe(true);
    expect(new Set(devices.map((d) => d.queued))).toEqual(new Set([1, 2]));
  });
});
