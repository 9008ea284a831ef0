// The recorded results as one value: each part's bench/results/<part>.json (with the environment
// of the run that wrote it), and the summary derived from them. The README's table, the summary
// file and the plot are all made from this, so none of them can say what the JSON does not.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DraTaintResult } from './dra-taint.ts';
import type { FailoverResult } from './failover.ts';
import type { GrowthResult } from './growth.ts';
import type { HandoffResult } from './handoff.ts';
import type { PdbRound } from './pdb.ts';
import type { ReaperResult } from './reaper.ts';
import { RESULTS, type Environment } from './report.ts';
import type { ScaleResult } from './scale.ts';

export interface Results {
  handoff?: Environment & HandoffResult;
  reaper?: Environment & ReaperResult & { pdb?: PdbRound };
  dra?: Environment & DraTaintResult;
  failover?: Environment & FailoverResult;
  scale?: Environment & ScaleResult;
  growth?: Environment & GrowthResult;
  kernel?: Environment & { kernelOpsPerSec: number };
}

export const PARTS = ['handoff', 'reaper', 'dra', 'failover', 'scale', 'growth', 'kernel'] as const;
export type Part = (typeof PARTS)[number];

/** A part's result file, where it is not named after the part. */
const FILE: Partial<Record<Part, string>> = { dra: 'dra-taint' };

/** Every part's result file that exists in `dir`. */
export function loadResults(dir = RESULTS): Results {
  const out: Record<string, unknown> = {};
  for (const part of PARTS) {
    const file = join(dir, `${FILE[part] ?? part}.json`);
    if (existsSync(file)) out[part] = JSON.parse(readFileSync(file, 'utf8'));
  }
  return out;
}

export interface Summary {
  handoffOverFloorP50: number | null;
  handoffOverTwoRoundFloorP50: number | null;
  handoffP99Ms: number | null;
  reaperOverFloor: number | null;
  reaperOverDrain: number | null;
  pdbClearedAfterLastAllowMs: number | null;
  coldStartOverList: number | null;
  requestsPerHandoff: number | null;
  rssBytesPerObject: number | null;
  kernelOpsPerSec: number | null;
}

/** The headline figures (null: that part has no result, or an older one without the figure). */
export function summaryOf(r: Results): Summary {
  const h = r.handoff;
  return {
    handoffOverFloorP50: h?.overFloor.p50 ?? null,
    handoffOverTwoRoundFloorP50: h?.overTwoRoundFloor?.p50 ?? null,
    handoffP99Ms: h?.handoffMs.p99 ?? null,
    reaperOverFloor: r.reaper?.overFloor ?? null,
    reaperOverDrain: r.reaper?.overDrain ?? null,
    pdbClearedAfterLastAllowMs: r.reaper?.pdb?.lastAllowToClearedMs ?? null,
    coldStartOverList: r.scale?.coldStart.overList ?? null,
    requestsPerHandoff: h?.requestsPerHandoff?.p50 ?? null,
    rssBytesPerObject: r.scale?.rss.bytesPerObject ?? null,
    kernelOpsPerSec: r.kernel?.kernelOpsPerSec ?? null,
  };
}

/** The parts grouped by the run that wrote them (date and commit), newest run first. */
export function runsOf(r: Results): { env: Environment; parts: Part[] }[] {
  const runs = new Map<string, { env: Environment; parts: Part[] }>();
  for (const part of PARTS) {
    const env = r[part];
    if (!env) continue;
    const key = `${env.date} ${env.commit}`;
    const run = runs.get(key) ?? { env, parts: [] };
    run.parts.push(part);
    runs.set(key, run);
  }
  return [...runs.values()].sort((a, b) => b.env.date.localeCompare(a.env.date));
}
