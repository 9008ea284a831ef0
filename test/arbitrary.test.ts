// The generator itself: what it yields is admitted, and it reaches the extremes that matter.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { arbitraryOf } from './arbitrary.ts';

const seed = Number(process.env.ARBITRARY_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`arbitrary generator tests: seed ${seed} (replay with ARBITRARY_SEED=${seed})`);

const Name = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
const Thing = z
  .object({
    name: Name,
    count: z.int().min(-5).max(1000),
    mode: z.enum(['a', 'b']).default('a'),
    note: z.string().max(1024).optional(),
    items: z.array(z.int().min(0)).max(50),
  })
  .strict()
  .refine((t) => t.count !== 7, { message: 'never 7' });

describe('arbitraryOf', () => {
  const samples = fc.sample(arbitraryOf(Thing), { numRuns: 400, seed });

  it('yields only values the schema accepts, refinements included', () => {
    for (const s of samples) expect(Thing.safeParse(s).success).toBe(true);
    expect(samples.some((s) => s.count === 7)).toBe(false);
  });

  it('reaches the bounds: the longest name, both integer limits, a full-length string', () => {
    expect(samples.some((s) => s.name.length === 253)).toBe(true);
    expect(samples.some((s) => s.count === -5)).toBe(true);
    expect(samples.some((s) => s.count === 1000)).toBe(true);
    expect(samples.some((s) => s.note?.length === 1024)).toBe(true);
    expect(samples.some((s) => s.items.includes(Number.MAX_SAFE_INTEGER))).toBe(true);
  });
});
