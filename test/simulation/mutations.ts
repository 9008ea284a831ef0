// Proof that the simulation can fail: each mutation breaks the executor or a decision on
// purpose, in a copy of the sources, and the simulation must find a failing seed (the regression
// seeds first, then fresh ones) within the budget. Prints, per mutation, the first failing seed, how many seeds it took and the
// violation; exits 1 if any mutation survives.
// Run: npm run sim:mutations [-- --seeds N] [--base S] [--only TEXT]
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REGRESSION_SEEDS } from './seeds.ts';

interface Mutation {
  readonly name: string;
  readonly file: string;
  readonly find: string;
  readonly replace: string;
}

export const MUTATIONS: readonly Mutation[] = [
  {
    name: 'arbiter: drop the finalizer ordering (release a deleted lease at once)',
    file: 'src/controller/arbiter.ts',
    find: "  if (!stillReferenced && !holdsRecords) return { kind: 'release' };",
    replace: "  if (!holdsRecords) return { kind: 'release' };",
  },
  {
    name: 'arbiter: grant before the old pin is gone (enforced once the epoch is observed)',
    file: 'src/controller/arbiter.ts',
    find: "    observed === owner.epoch &&\n    status?.phase === 'Owned' &&\n    status.owner?.lease?.uid === owner.lease?.uid;",
    replace: '    observed === owner.epoch;',
  },
  {
    name: 'arbiter: change the owner without waiting for the old grant to be withdrawn',
    file: 'src/controller/arbiter.ts',
    find: "      ownerWrites.push({ type: 'wait' });",
    replace: '      void 0;',
  },
  {
    name: 'reaper: double an eviction after a restart (retry one whose pod is already terminating)',
    file: 'src/reaper/decide.ts',
    find: "  if (terminating || att.outcome === 'Accepted')",
    replace: '  if (false)',
  },
  {
    name: "arbiter: release a deleted lease's records with it at once",
    file: 'src/controller/arbiter.ts',
    find: '  const holdsRecords = counted !== undefined && counted > r.now;',
    replace: '  const holdsRecords = counted !== undefined && false;',
  },
  {
    name: 'reaper: retry a refused eviction early while its PDB still allows none',
    file: 'src/reaper/decide.ts',
    find: '  const since = disruptions.allowedSince(podKey(r.pod));',
    replace: '  const since: number | undefined = now;',
  },
  {
    name: 'reaper: skip the per-minute cap',
    file: 'src/reaper/decide.ts',
    find: 'const allowance = Math.max(0, policy.maxEvictionsPerMinute - h.input.evictionsInLastMinute);',
    replace: 'const allowance = Infinity;',
  },
  {
    name: 'executor: run the pod calls before the writes that record them',
    file: 'src/controller/executor.ts',
    find: '  const written = await runActions(plan.actions, ports.writes, ports.events, handoffAt);\n',
    replace:
      '  if (plan.accelerator && plan.effects.length > 0) await runEffects(plan.accelerator, plan.effects, ports);\n' +
      '  const written = await runActions(plan.actions, ports.writes, ports.events, handoffAt);\n',
  },
  {
    name: 'executor: evict from the cached plan, without reading the device live first',
    file: 'src/controller/executor.ts',
    find: 'if (ports.signal.aborted || !blocking.has(effect.uid)) return;',
    replace: 'if (ports.signal.aborted) return;',
  },
  {
    name: 'executor: drop the wait barriers (writes of two rounds at once)',
    file: 'src/controller/executor.ts',
    find: "    if (action.type === 'wait') {\n      await settle();\n      continue;\n    }",
    replace: "    if (action.type === 'wait') continue;",
  },
  {
    name: 'view: forget the per-minute count (skip the cap)',
    file: 'src/controller/view.ts',
    find: 'return requestsAfter(this.allRecords().flat(), now - 60_000);',
    replace: 'return 0;',
  },
  {
    name: 'view: no pod is being evicted elsewhere (double an eviction across handoffs)',
    file: 'src/controller/view.ts',
    find: 'for (const uid of podsBeingEvicted(records)) out.add(uid);',
    replace: 'void records;',
  },
];

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '3000' },
    base: { type: 'string', default: '1' },
    only: { type: 'string' },
  },
});
const SEEDS = Number(values.seeds);
const BASE = Number(values.base);
const root = resolve(import.meta.dirname, '../..');

interface WorldModule {
  emptyStats(): unknown;
  runScenario(seed: number, stats: unknown): Promise<unknown>;
}

/** The first seed (from BASE) the mutated code fails, or undefined if none in SEEDS. */
async function hunt(
  m: Mutation,
): Promise<{ seed: number; tried: number; message: string } | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'accel-lease-mutant-'));
  try {
    for (const part of ['src', 'test', 'package.json'])
      cpSync(join(root, part), join(dir, part), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    const file = join(dir, m.file);
    const text = readFileSync(file, 'utf8');
    const at = text.indexOf(m.find);
    if (at < 0 || text.indexOf(m.find, at + 1) >= 0)
      throw new Error(`${m.name}: the text to mutate is not in ${m.file} exactly once`);
    writeFileSync(file, text.slice(0, at) + m.replace + text.slice(at + m.find.length));
    const world = (await import(join(dir, 'test/simulation/world.ts'))) as WorldModule;
    // The regression seeds first, as the test runs them, then fresh ones.
    const seeds = [...REGRESSION_SEEDS, ...Array.from({ length: SEEDS }, (_, i) => BASE + i)];
    for (const [i, seed] of seeds.entries()) {
      try {
        await world.runScenario(seed, world.emptyStats());
      } catch (err) {
        return { seed, tried: i + 1, message: (err as Error).message.slice(0, 200) };
      }
    }
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let survived = 0;
for (const m of MUTATIONS.filter(
  (x) => values.only === undefined || x.name.includes(values.only),
)) {
  const started = performance.now();
  const caught = await hunt(m);
  const s = ((performance.now() - started) / 1000).toFixed(1);
  if (caught)
    console.log(
      `caught   ${m.name}\n         seed ${caught.seed}, after ${caught.tried} seed(s), ${s} s: ${caught.message}`,
    );
  else {
    survived++;
    console.log(`SURVIVED ${m.name}: no failure in ${SEEDS} seeds (${s} s)`);
  }
}
process.exit(survived > 0 ? 1 : 0);
