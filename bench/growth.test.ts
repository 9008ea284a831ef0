import { describe, expect, it } from 'vitest';
import { growthRows, growthSvg } from './growth-report.ts';
import { ascendingCounts } from './flags.ts';
import { parseSizes, type GrowthResult } from './growth.ts';
import { rendered, resultsSection } from './readme.ts';
import type { Environment } from './report.ts';
import type { ScaleResult } from './scale.ts';

const env: Environment = {
  date: '2026-12-01T22:00:00.000Z',
  commit: 'abc',
  machine: { cores: 2, cpuModel: 'AMD EPYC', memoryBytes: 24 * 2 ** 30, node: 'v24.9.0' },
  kubernetesVersion: 'v1.36.3',
};

const p = (x: number) => ({ p50: x, p95: x, p99: x, min: x, max: x, n: 1 });

/** A scale run of `devices` whose figures grow by `k` from the smallest. */
function size(devices: number, k: number): ScaleResult {
  return {
    nodes: devices / 8,
    accelerators: devices,
    leases: 2 * devices,
    exports: 4 * devices,
    namespaces: 40,
    objects: 7 * devices,
    create: { acceleratorsMs: 1, leasesPerSec: 1, exportsPerSec: 1 },
    fillMs: 10_000 * k,
    fillRequests: {},
    coldStart: {
      spawnToReconciledMs: 2000 * k,
      spawnToSyncedMs: 1500 * k,
      syncedToReconciledMs: 500 * k,
      spawnToReadyMs: 1500 * k,
      listFloorMs: 1000 * k,
      overList: 2,
      overListNetOfStart: 1,
      writes: 0,
      emptyClusterMs: 1000,
    },
    rss: {
      emptyBytes: 100 * 2 ** 20,
      fleetBytes: (100 + 50 * k) * 2 ** 20,
      jsonBytes: 10 * k * 2 ** 20,
      overJson: 1,
      addedOverJson: 5,
      bytesPerObject: 7000,
      heapUsedBytes: 40 * k * 2 ** 20,
    },
    burst: {
      deletions: 1000,
      ms: 10_000 * k,
      handoffsPerSec: 100 / k,
      reconciles: 3000,
      reconcilesPerSec: 300 / k,
      handoffMs: p(5000 * k),
      requestsPerHandoff: 7,
      eventsPerHandoff: 1,
      requestsPerHandoffWithoutEvents: 6,
      byVerb: {},
      byResource: {},
      agentWritesPerHandoff: 1,
    },
    wallMs: 1,
    samples: {
      spawnToReconciledMs: [],
      spawnToSyncedMs: [],
      spawnToReadyMs: [],
      listFloorMs: [],
      coldStartWrites: [],
      rssEmptyBytes: [],
      rssFleetBytes: [],
      handoffMs: [],
    },
  };
}

const growth: GrowthResult = {
  leasesPerDevice: 2,
  exportsPerDevice: 4,
  burst: 1000,
  sizes: [size(1000, 1), size(10_000, 4)],
};

describe('parseSizes', () => {
  it('reads ascending accelerator counts and refuses anything else in one line', () => {
    expect(parseSizes('1000, 3000,10000')).toEqual([1000, 3000, 10_000]);
    expect(() => parseSizes('1000,x')).toThrow(/"x" is not a positive whole number/);
    expect(() => parseSizes('0')).toThrow(/"0" is not a positive whole number/);
    expect(() => parseSizes('3000,1000')).toThrow(/ascending order/);
  });
});

describe('--burst-workers', () => {
  it('reads ascending worker counts and refuses anything else in one line', () => {
    const workers = (text: string) => ascendingCounts('--burst-workers', text, 'workers', '2,8');
    expect(workers('2,8, 16')).toEqual([2, 8, 16]);
    expect(() => workers('8,2')).toThrow(/^--burst-workers: give the workers in ascending order/);
    expect(() => workers('2,-1')).toThrow(/"-1" is not a positive whole number of workers/);
  });
});

describe('the scale rows', () => {
  it("show the burst's target, and each --workers burst against the default's rate", () => {
    const scale = { ...env, ...size(1000, 1) };
    const workers = [8, 16].map((w) => ({
      workers: w,
      deletions: 1000,
      ms: 1,
      handoffsPerSec: w * 5,
      handoffMs: p(3000),
      requestsPerHandoff: 7.5,
      eventsPerHandoff: 1,
    }));
    const writeFloor = {
      writes: 7000,
      inFlight: 4,
      writesPerSec: 140,
      handoffsPerSecCeiling: 20,
      overCeiling: 5,
    };
    const section = resultsSection({
      scale: {
        ...scale,
        burst: { ...scale.burst, workers: 4, writeFloors: [writeFloor] },
        workers,
      },
    });
    expect(section).toContain(
      "at 4 writes in flight (a bare client's merge patches of the same leases, 7,000 of them, the controller stopped: 140 writes/s over 7 requests per handoff) | 100/s | 20/s | 5x |",
    );
    expect(section).toMatch(
      /Handoffs per second under the same burst \(.*`--workers 4`\) \| 100\/s \| - \| - \| >= 100\/s \| met \|/,
    );
    expect(section).toContain(
      '| The same burst at `--workers 8` (queues refilled; per device p50 3.0 s; 7.5 requests per handoff, 1 of them Events) | 40/s | 100/s (`--workers 4`, above) | 0.4x | - | - |',
    );
    expect(section).toContain('| 80/s | 100/s (`--workers 4`, above) | 0.8x |');
    const slow = resultsSection({
      scale: { ...scale, burst: { ...scale.burst, handoffsPerSec: 13.3 } },
    });
    expect(slow).toMatch(/\| 13.3\/s \| - \| - \| >= 100\/s \| \*\*missed\*\* by 7.52x \|/);
    expect(slow).not.toContain('The same burst at');
  });
});

describe('growthRows', () => {
  const rows = growthRows(growth);

  it('has a column per size and the growth from the smallest to the largest', () => {
    expect(rows[0]).toBe(
      '| Figure | 1,000 devices (125 nodes), 2,000 leases, 4,000 exports | 10,000 devices (1,250 nodes), 20,000 leases, 40,000 exports | 10,000 over 1,000 |',
    );
    expect(rows).toContain(
      '| Cold start: spawn to every device reconciled | 2,000 ms | 8,000 ms | 4.00x |',
    );
    expect(rows).toContain('| Objects the controller lists | 7,000 | 70,000 | 10.00x |');
    // Net of the empty start: (2000 - 1000) / 1000 and (8000 - 1000) / 4000.
    expect(rows).toContain(
      '| Cold start net of the start on the empty cluster, over the LIST floor | 1.00x | 1.75x | 1.75x |',
    );
    expect(rows).toContain('| Burst: handoffs per second | 100.0/s | 25.0/s | 0.25x |');
  });
});

describe('the growth section and plot', () => {
  it('are written between their markers from the recorded run, and change with it', async () => {
    const readme =
      '# Benchmarks\n\n<!-- bench:growth:begin (written by npm run bench, and by npm run bench -- --only growth) -->\nold\n<!-- bench:growth:end -->\n\nAfter.\n';
    const once = await rendered({ growth: { ...env, ...growth } }, readme);
    expect(once.readme).not.toContain('\nold\n');
    expect(once.readme).toContain('After.');
    expect(once.readme).toContain('commit `abc`');
    expect(once.growthSvg).toBe(growthSvg(growth));
    expect(once.growthSvg).toContain('<polyline');
    const bigger = { ...growth, sizes: [size(1000, 1), size(10_000, 5)] };
    const again = await rendered({ growth: { ...env, ...bigger } }, once.readme);
    expect(again.readme).not.toBe(once.readme);
    expect(again.growthSvg).not.toBe(once.growthSvg);
  });
});
