// Item 6: how the scale figures grow with the fleet. The scale part (scale.ts) again at each
// size of one shape, 2 leases and 4 exports per device (the 10,000 / 20,000 / 40,000),
// each with the same burst of deletions, so that what changes from one size to the next is the
// fleet the controller holds, not the work it is given.
import { ascendingCounts } from './flags.ts';
import { benchScale, type ScaleResult } from './scale.ts';

export const GROWTH_SHAPE = { leasesPerDevice: 2, exportsPerDevice: 4 };

export interface GrowthOptions {
  sizes: readonly number[];
  /** Deletions in each size's burst (at most one per device). */
  burst: number;
  coldStarts: number;
  cpuProfileDir?: string;
}

export interface GrowthResult {
  leasesPerDevice: number;
  exportsPerDevice: number;
  burst: number;
  /** One scale run per size, smallest first. */
  sizes: ScaleResult[];
}

/** `--growth-sizes`: accelerators per run, comma-separated positive integers, ascending. */
export const parseSizes = (text: string): number[] =>
  ascendingCounts('--growth-sizes', text, 'accelerators', '1000,3000,10000');

export async function benchGrowth(
  kubeconfig: string,
  opts: GrowthOptions,
  log: (s: string) => void,
): Promise<GrowthResult> {
  const sizes: ScaleResult[] = [];
  for (const accelerators of opts.sizes) {
    const leases = GROWTH_SHAPE.leasesPerDevice * accelerators;
    const exports = GROWTH_SHAPE.exportsPerDevice * accelerators;
    log(`growth: ${accelerators} accelerators, ${leases} leases, ${exports} exports`);
    sizes.push(
      await benchScale(
        kubeconfig,
        {
          accelerators,
          leases,
          exports,
          coldStarts: opts.coldStarts,
          burstDeletions: Math.min(opts.burst, accelerators),
          ...(opts.cpuProfileDir && { cpuProfileDir: opts.cpuProfileDir }),
        },
        log,
      ),
    );
  }
  return { ...GROWTH_SHAPE, burst: opts.burst, sizes };
}
