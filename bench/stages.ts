// Where a timed operation's time goes: the stages between its marks (watch events), their medians
// over many samples, and the same stages of its floor beside them. Pure arithmetic, no I/O.
import { percentile } from './report.ts';

/** A named point in time (performance.now(), ms), in the order the operation passes them. */
export type Mark = readonly [name: string, at: number];

export interface Stage {
  /** "<mark> to <next mark>" */
  name: string;
  ms: number;
}

/** The stages between consecutive marks; the first mark is the start. */
export function stagesBetween(marks: readonly Mark[]): Stage[] {
  return marks.slice(1).map(([name, at], i) => {
    const [from, t] = marks[i] as Mark;
    return { name: `${from} to ${name}`, ms: at - t };
  });
}

/**
 * Consecutive hop times summed in groups, named in order: [h1, h2, h3, h4] with groups [2, 1, 1]
 * is [h1 + h2, h3, h4], so that a floor's hops line up with the stages an observer can mark.
 */
export function groupHops(
  hopsMs: readonly number[],
  groups: readonly number[],
  names: readonly string[],
): Stage[] {
  const total = groups.reduce((s, g) => s + g, 0);
  if (total !== hopsMs.length || names.length !== groups.length)
    throw new Error(`cannot group ${hopsMs.length} hops as [${groups.join(', ')}]`);
  let next = 0;
  return groups.map((g, i) => {
    const ms = hopsMs.slice(next, next + g).reduce((s, x) => s + x, 0);
    next += g;
    return { name: names[i] as string, ms };
  });
}

export interface StageRow {
  stage: string;
  /** Median of this stage over the samples. */
  p50Ms: number;
  /** Mean over the samples: unlike the medians, the means of the stages add up to the total's. */
  meanMs: number;
  /** The same stage of the floor (absent if the floor has no such stage). */
  floorP50Ms?: number;
  floorMeanMs?: number;
  /** Mean of the stage above the floor's mean: where the time above the floor goes. */
  overFloorMeanMs?: number;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

function byName(samples: readonly (readonly Stage[])[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const sample of samples)
    for (const s of sample) out.set(s.name, [...(out.get(s.name) ?? []), s.ms]);
  return out;
}

const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/**
 * Per stage (in the order of the first sample), the median and mean over the samples, beside the
 * floor's stage of the same name when there is one.
 */
export function stageTable(
  measured: readonly (readonly Stage[])[],
  floor: readonly (readonly Stage[])[] = [],
): StageRow[] {
  const m = byName(measured);
  const f = byName(floor);
  return [...m.entries()].map(([stage, xs]) => {
    const fs = f.get(stage);
    return {
      stage,
      p50Ms: round2(percentile(xs, 50)),
      meanMs: round2(mean(xs)),
      ...(fs && {
        floorP50Ms: round2(percentile(fs, 50)),
        floorMeanMs: round2(mean(fs)),
        overFloorMeanMs: round2(mean(xs) - mean(fs)),
      }),
    };
  });
}
