import { describe, expect, it } from 'vitest';
import { pdbWaits } from './pdb.ts';

describe('pdbWaits', () => {
  const allowed = new Map([
    ['pdb-0', [0, 1_000, 6_000]],
    ['pdb-1', [0, 2_000]],
  ]);

  it('measures each eviction from the latest moment its own budget allowed one before it', () => {
    const w = pdbWaits(
      allowed,
      [
        { pdb: 'pdb-0', at: 500 },
        { pdb: 'pdb-0', at: 5_000 },
        { pdb: 'pdb-1', at: 2_500 },
        { pdb: 'pdb-0', at: 15_000 },
      ],
      100,
    );
    // 500 - max(100, 0); 5000 - 1000; 2500 - 2000; 15000 - 6000
    expect(w.waitsMs).toEqual([400, 4_000, 500, 9_000]);
    expect(w.lastTakenAt).toBe(15_000);
    expect(w.lastAllowAt).toBe(6_000);
  });

  it('counts no wait from before evicting was possible at all', () => {
    const w = pdbWaits(allowed, [{ pdb: 'pdb-1', at: 1_500 }], 1_200);
    expect(w.waitsMs).toEqual([300]);
    expect(w.lastAllowAt).toBe(1_200);
  });

  it('refuses an eviction its budget was never seen to allow, and an empty round', () => {
    expect(() => pdbWaits(allowed, [{ pdb: 'pdb-9', at: 1 }], 0)).toThrow(/pdb-9/);
    expect(() => pdbWaits(allowed, [{ pdb: 'pdb-1', at: -1 }], -5)).toThrow(/pdb-1/);
    expect(() => pdbWaits(allowed, [], 0)).toThrow(/no eviction/);
  });
});
