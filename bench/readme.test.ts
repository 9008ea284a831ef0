import { describe, expect, it } from 'vitest';
import { summarizeHandoffs, type HandoffSample } from './handoff.ts';
import { rendered, resultsSection, verdict } from './readme.ts';
import { clearingStages, summarizeRounds, type ReaperRound } from './reaper.ts';
import type { Environment } from './report.ts';
import { runsOf, summaryOf, type Results } from './results.ts';

const env = (date: string, commit: string): Environment => ({
  date,
  commit,
  machine: { cores: 2, cpuModel: 'AMD EPYC', memoryBytes: 24 * 2 ** 30, node: 'v24.9.0' },
  kubernetesVersion: 'v1.36.3',
});

const handoffSample: HandoffSample = {
  marks: [0, 20, 32, 40],
  deleteAnsweredMs: 4,
  floor: { ms: 32, hopsMs: [8, 8, 8, 8] },
  twoRoundFloor: { ms: 14, hopsMs: [8, 6] },
  configMapFloor: { ms: 16, hopsMs: [4, 4, 4, 4] },
};

const round: ReaperRound = {
  holders: 100,
  reaperMs: 2400,
  deleteToGrantedMs: 2450,
  recordsWrittenMs: 30,
  floorMs: 1000,
  overFloor: 2.4,
  drain: { command: 'kubectl drain <node>', ms: 20_000 },
  overDrain: 0.12,
  evictions: 100,
  stages: clearingStages([0, 100, 2360, 2380, 2400]),
  floorStages: clearingStages([0, 20, 1000, 1015]),
};

const results: Results = {
  handoff: { ...env('2026-12-01T18:30:00.000Z', 'abc'), ...summarizeHandoffs([handoffSample]) },
  reaper: {
    ...env('2026-12-01T18:30:00.000Z', 'abc'),
    ...summarizeRounds([round]),
    pdb: {
      holders: 100,
      pdbHolders: 33,
      size: 3,
      pdbs: 11,
      reaperMs: 16_000,
      lastAllowToClearedMs: 9_500,
      retryAfterMs: 10_000,
      overRetryAfter: 0.95,
      waitAfterAllowMs: { p50: 4_000, max: 9_300 },
      stages: [],
    },
  },
  kernel: { ...env('2026-11-25T20:51:42.327Z', 'old'), kernelOpsPerSec: 483_933 },
};

describe('verdict', () => {
  it('says met, missed by how much, or not measured', () => {
    expect(verdict(1.2, 1.2)).toBe('met');
    expect(verdict(1.56, 1.2)).toBe('**missed** by 1.30x');
    expect(verdict(50_000, 100_000, false)).toBe('**missed** by 2.00x');
    expect(verdict(null, 1)).toBe('not measured');
  });
});

describe('summaryOf and runsOf', () => {
  it('derives the summary from the results alone, null where a part was not recorded', () => {
    expect(summaryOf(results)).toMatchObject({
      handoffOverFloorP50: 1.25,
      handoffOverTwoRoundFloorP50: 2.86,
      reaperOverFloor: 2.4,
      reaperOverDrain: 0.12,
      pdbClearedAfterLastAllowMs: 9_500,
      coldStartOverList: null,
      kernelOpsPerSec: 483_933,
    });
  });

  it('groups the parts by the run that wrote them, newest first', () => {
    expect(runsOf(results).map((r) => [r.env.commit, r.parts])).toEqual([
      ['abc', ['handoff', 'reaper']],
      ['old', ['kernel']],
    ]);
  });
});

describe('resultsSection', () => {
  const section = resultsSection(results);

  it('names each run and the parts it measured', () => {
    expect(section).toContain(
      '`handoff`, `reaper`: 2026-12-01T18:30:00.000Z, commit `abc`; `kernel`: 2026-11-25T20:51:42.327Z, commit `old`',
    );
  });

  it('judges each figure against its target', () => {
    expect(section).toMatch(
      /Handoff latency p50 \(1 handoffs\) \| 40 ms \| 32 ms .*\| 1.25x \| <= 1.3 \| met \|/,
    );
    expect(section).toMatch(
      /\| 2400 ms \| 1000 ms .*\| 2.4x \| <= 1.2 \| \*\*missed\*\* by 2.00x \|/,
    );
    expect(section).toMatch(
      /\| 9500 ms \| 10000 ms \(one Retry-After\) \| 0.95x \| <= 1 \| met \|/,
    );
    expect(section).toMatch(/Cold start.*\| not measured \|/);
  });

  it('breaks the handoff and the clearing down by stage beside their floors', () => {
    expect(section).toContain(
      '| DELETE sent to owner seen | 20 ms | 20 ms | 16 ms | 16 ms | 4 ms |',
    );
    expect(section).toContain('| device cleared to Granted seen | 20 ms | 20 ms | - | - | - |');
  });
});

describe('rendered', () => {
  it('replaces only the section between the markers, and is stable once written', async () => {
    const readme =
      '# Benchmarks\n\nProse stays.\n\n## Results\n\n<!-- bench:results:begin (written by npm run bench) -->\nold\n<!-- bench:results:end -->\n\nAfter.\n';
    const once = await rendered(results, readme);
    expect(once.readme).toContain('Prose stays.');
    expect(once.readme).toContain('After.');
    expect(once.readme).not.toContain('\nold\n');
    expect((await rendered(results, once.readme)).readme).toBe(once.readme);
    expect(JSON.parse(once.summary)).toMatchObject({ reaperOverFloor: 2.4 });
    expect(once.svg).toContain('<svg');
  });

  it('shows a changed result as a changed README', async () => {
    const readme =
      '<!-- bench:results:begin (written by npm run bench) -->\n<!-- bench:results:end -->\n';
    const a = await rendered(results, readme);
    const changed = { ...results, kernel: { ...results.kernel!, kernelOpsPerSec: 1 } };
    expect((await rendered(changed, a.readme)).readme).not.toBe(a.readme);
  });
});
