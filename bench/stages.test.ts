import { describe, expect, it } from 'vitest';
import { groupHops, stagesBetween, stageTable } from './stages.ts';

describe('stagesBetween', () => {
  it('names each stage after the marks that bound it and takes their difference', () => {
    expect(
      stagesBetween([
        ['sent', 100],
        ['seen', 103.5],
        ['done', 110],
      ]),
    ).toEqual([
      { name: 'sent to seen', ms: 3.5 },
      { name: 'seen to done', ms: 6.5 },
    ]);
  });

  it('has no stage for a single mark', () => {
    expect(stagesBetween([['sent', 1]])).toEqual([]);
  });
});

describe('groupHops', () => {
  it('sums consecutive hops in groups, so a floor lines up with observed stages', () => {
    expect(groupHops([1, 2, 3, 4], [2, 1, 1], ['a', 'b', 'c'])).toEqual([
      { name: 'a', ms: 3 },
      { name: 'b', ms: 3 },
      { name: 'c', ms: 4 },
    ]);
  });

  it('refuses groups that do not cover the hops exactly', () => {
    expect(() => groupHops([1, 2, 3], [2, 2], ['a', 'b'])).toThrow(/cannot group 3 hops/);
    expect(() => groupHops([1, 2], [1, 1], ['a'])).toThrow(/cannot group/);
  });
});

describe('stageTable', () => {
  const s = (a: number, b: number) => [
    { name: 'x', ms: a },
    { name: 'y', ms: b },
  ];

  it('gives each stage its median and mean, and its excess over the same stage of the floor', () => {
    const rows = stageTable([s(10, 1), s(20, 2), s(60, 3)], [s(5, 1), s(5, 1), s(5, 4)]);
    expect(rows).toEqual([
      { stage: 'x', p50Ms: 20, meanMs: 30, floorP50Ms: 5, floorMeanMs: 5, overFloorMeanMs: 25 },
      { stage: 'y', p50Ms: 2, meanMs: 2, floorP50Ms: 1, floorMeanMs: 2, overFloorMeanMs: 0 },
    ]);
  });

  it('makes the stage means add up to the mean of the totals, which medians need not', () => {
    const samples = [s(1, 100), s(100, 1), s(50, 50)];
    const rows = stageTable(samples);
    const totals = samples.map((x) => x[0]!.ms + x[1]!.ms);
    const meanTotal = totals.reduce((a, b) => a + b, 0) / totals.length;
    expect(rows.reduce((a, r) => a + r.meanMs, 0)).toBeCloseTo(meanTotal, 1);
    expect(rows.reduce((a, r) => a + r.p50Ms, 0)).not.toBeCloseTo(meanTotal, 1);
  });

  it('leaves the floor columns out for a stage the floor does not have', () => {
    const rows = stageTable([[{ name: 'granted', ms: 4 }]], [[{ name: 'other', ms: 1 }]]);
    expect(rows).toEqual([{ stage: 'granted', p50Ms: 4, meanMs: 4 }]);
  });
});
