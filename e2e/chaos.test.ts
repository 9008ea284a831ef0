// Faults on the real API server while handoffs run (issue: kill anything mid-handoff and lose
// nothing). Each schedule is drawn from a seed; `npm test` runs the few seeds that together
// inject every fault kind, `npm run chaos -- --seeds N` runs seeds 1..N, `--seed S` replays one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServerReplica } from './cluster/index.ts';
import { clusterInfo, NEEDS_LOCAL_CONTROL_PLANE, type ApiServerReplica } from './harness/index.ts';
import { auditFlags } from './chaos/audit.ts';
import { runSchedule } from './chaos/run.ts';
import { coveringSeeds, scheduleOf } from './chaos/schedule.ts';

function seeds(): number[] {
  if (process.env.CHAOS_SEED) return process.env.CHAOS_SEED.split(',').map(Number);
  if (process.env.CHAOS_SEEDS) {
    return Array.from({ length: Number(process.env.CHAOS_SEEDS) }, (_, i) => i + 1);
  }
  return coveringSeeds();
}

const local = clusterInfo().kind === 'local';

describe('chaos: faults mid-handoff on the real API server', () => {
  let replica: ApiServerReplica | undefined;
  let auditLog = '';
  const auditDir = mkdtempSync(join(tmpdir(), 'accel-chaos-audit-'));
  beforeAll(async () => {
    if (!local) return;
    const audit = auditFlags(auditDir);
    auditLog = audit.log;
    replica = await startApiServerReplica({ extraArgs: audit.args });
  });
  afterAll(async () => {
    await replica?.dispose();
    rmSync(auditDir, { recursive: true, force: true });
  });

  for (const seed of seeds()) {
    it.skipIf(!local)(
      `schedule ${seed}${local ? '' : ` (skipped: ${NEEDS_LOCAL_CONTROL_PLANE})`}`,
      async () => {
        const report = await runSchedule(scheduleOf(seed), { replica: replica!, auditLog });
        console.log(
          [
            `${report.schedule}`,
            ...report.faults.map((f) => `  ${f}`),
            `  ${report.evictions} evictions, ${report.controllerExits} controller exits, ${(report.ms / 1000).toFixed(0)}s`,
          ].join('\n'),
        );
        expect(
          report.violations,
          `seed ${seed} broke an invariant; replay it with: npm run chaos -- --seed ${seed}`,
        ).toEqual([]);
      },
      300_000,
    );
  }
});
