import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadResults } from './results.ts';

describe('loadResults', () => {
  it("reads each part's file that exists, the DRA comparison from dra-taint.json", () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-results-'));
    writeFileSync(join(dir, 'kernel.json'), JSON.stringify({ kernelOpsPerSec: 5 }));
    writeFileSync(join(dir, 'dra-taint.json'), JSON.stringify({ rounds: 3 }));
    writeFileSync(join(dir, 'summary.json'), JSON.stringify({ kernelOpsPerSec: 9 }));
    const r = loadResults(dir);
    expect(Object.keys(r).sort()).toEqual(['dra', 'kernel']);
    expect(r.kernel?.kernelOpsPerSec).toBe(5);
    expect(r.dra?.rounds).toBe(3);
  });
});
