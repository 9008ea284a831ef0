// `npm run bench`: brings up the local control plane, runs every cluster benchmark side by side
// with its floor in one run, the kernel micro-benchmark, then writes bench/results/*.json, the
// summary, the plot and the table in bench/README.md from them (readme.ts).
// Flags and their defaults: `npm run bench -- --help` (bench/flags.ts).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadKubeConfig, parseFlagsOrExit } from '../src/kube/index.ts';
import { upByHand } from '../e2e/cluster/index.ts';
import { ascendingCounts, BENCH_FLAGS } from './flags.ts';
import { benchDraTaint, DRA_TAINT_CLUSTER } from './dra-taint.ts';
import { benchFailover } from './failover.ts';
import { benchGrowth, parseSizes } from './growth.ts';
import { benchHandoff } from './handoff.ts';
import { ensureDrainBinary } from './drain/build.ts';
import { benchReaperPdb } from './pdb.ts';
import { benchReaper, summarizeRounds, type ReaperRound } from './reaper.ts';
import { benchScale } from './scale.ts';
import { environment, RESULTS, writeResult, type Environment } from './report.ts';
import { updateReadme } from './readme.ts';
import { Bench, requestsByVerb, startController, stopAll } from './stack.ts';

const ROOT = join(import.meta.dirname, '..');
const started = Date.now();
const log = (line: string) =>
  process.stdout.write(`[bench t+${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);

const args = parseFlagsOrExit('npm run bench --', BENCH_FLAGS);
const BENCHES = ['handoff', 'reaper', 'dra', 'failover', 'scale', 'growth', 'kernel'] as const;
const only = new Set(args.only.split(',').map((x) => x.trim()));
for (const name of only) {
  if (!(BENCHES as readonly string[]).includes(name)) {
    process.stderr.write(
      `npm run bench --: --only: unknown benchmark "${name}" (${BENCHES.join(', ')})\n`,
    );
    process.exit(2);
  }
}
const runs = (name: (typeof BENCHES)[number]) => only.has(name);
const [growthSizes, burstWorkers] = (() => {
  try {
    return [
      parseSizes(args.growthSizes),
      args.burstWorkers.trim() === 'none'
        ? []
        : ascendingCounts('--burst-workers', args.burstWorkers, 'workers', '2,8,16'),
    ];
  } catch (err) {
    process.stderr.write(`npm run bench --: ${(err as Error).message}\n`);
    process.exit(2);
  }
})();

function kernel(env: Environment): number {
  log('kernel model micro-benchmark (bench/kernel.bench.ts)');
  execFileSync(process.execPath, [join(import.meta.dirname, 'kernel.bench.ts')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const file = join(RESULTS, 'kernel.json');
  const k = JSON.parse(readFileSync(file, 'utf8')) as { kernelOpsPerSec: number };
  writeFileSync(file, JSON.stringify({ ...env, ...k }, null, 2) + '\n');
  return k.kernelOpsPerSec;
}

async function main(): Promise<void> {
  log('starting the local control plane');
  // The bench's cluster serves DeviceTaintRules (off by default), for the DRA comparison.
  const up = await upByHand((line) => log(`  ${line}`), DRA_TAINT_CLUSTER);
  const kc = loadKubeConfig({ kubeconfig: up.kubeconfigPath });
  const b = new Bench(kc);
  execFileSync(
    up.bins.kubectl,
    ['apply', '--server-side', '--force-conflicts', '-f', join(ROOT, 'deploy', 'crds')],
    { env: { ...process.env, KUBECONFIG: up.kubeconfigPath }, stdio: 'ignore' },
  );
  execFileSync(
    up.bins.kubectl,
    ['wait', '--for=condition=Established', '-f', join(ROOT, 'deploy', 'crds')],
    { env: { ...process.env, KUBECONFIG: up.kubeconfigPath }, stdio: 'ignore' },
  );
  const version = await b.request<{ gitVersion: string }>('GET', '/version');
  const env = environment(version.gitVersion);
  log(`Kubernetes ${env.kubernetesVersion}, ${env.machine.cores} cores, commit ${env.commit}`);

  const reaperFlags = [
    '--max-evictions-per-handoff',
    '1000',
    '--max-evictions-per-minute',
    '10000',
  ];
  const ctl = await startController(up.kubeconfigPath, reaperFlags);
  try {
    if (runs('handoff')) {
      const n = args.handoffs;
      log(`handoff latency: ${n} handoffs, each followed by its floor`);
      const handoff = await benchHandoff(b, up.kubeconfigPath, n, log, () => ctl.metrics());
      log(
        `handoff p50 ${handoff.handoffMs.p50} ms vs floor ${handoff.floorMs.p50} ms: ${handoff.overFloor.p50}x (two-round floor ${handoff.twoRoundFloorMs.p50} ms: ${handoff.overTwoRoundFloor.p50}x; ConfigMap hops ${handoff.configMapFloorMs.p50} ms: ${handoff.overConfigMapFloor.p50}x)`,
      );
      for (const st of handoff.stages)
        log(`  ${st.stage}: p50 ${st.p50Ms} ms, floor ${st.floorP50Ms ?? '-'} ms`);
      const q = handoff.requestsPerHandoff;
      if (q) {
        log(
          `controller requests per handoff: p50 ${q.p50}, mean ${q.mean} ${JSON.stringify(q.meanByVerb)}`,
        );
      }
      writeResult('handoff', { ...env, ...handoff });
    }

    if (runs('reaper')) {
      const holders = args.holders;
      log(`stuck handoff: ${holders} holder pods, reaper vs a bare client's evictions and drain`);
      // Without Go, or with its build failing, the raised-rate drain is left out (not measured).
      const fast = await ensureDrainBinary(log).catch((err: unknown) => {
        log(`bench/drain not built, so no drain at a raised rate: ${(err as Error).message}`);
        return undefined;
      });
      const tools = {
        kubectl: up.bins.kubectl,
        ...(fast && { fast: { bin: fast, qps: args.drainQps, burst: args.drainQps } }),
      };
      const rounds: ReaperRound[] = [];
      for (let i = 1; i <= args.rounds; i++) {
        const round = await benchReaper(b, up.kubeconfigPath, tools, holders, log, async () =>
          requestsByVerb(await ctl.metrics()),
        );
        rounds.push(round);
        log(
          `round ${i}: reaper ${round.reaperMs} ms vs bare client ${round.floorMs} ms: ${round.overFloor}x; drain ${round.drain.ms} ms, at ${args.drainQps}/s ${round.drainFast?.ms} ms`,
        );
      }
      const reaper = summarizeRounds(rounds);
      log(
        `reaper median ${reaper.reaperMs} ms vs bare client ${reaper.floorMs} ms: ${reaper.overFloor}x`,
      );
      log(`PDB round: ${Math.floor(holders / 3)} holders under PDBs of ${args.pdbSize}`);
      // A failed PDB round is reported as not measured; the rounds above stand.
      const pdb = await benchReaperPdb(b, up.kubeconfigPath, holders, args.pdbSize, log).catch(
        (err: unknown) => {
          log(`PDB round failed: ${(err as Error).message}`);
          return undefined;
        },
      );
      if (pdb)
        log(
          `PDB round: device cleared ${pdb.lastAllowToClearedMs} ms after the last PDB allowed it (Retry-After ${pdb.retryAfterMs} ms)`,
        );
      writeResult('reaper', { ...env, ...reaper, ...(pdb && { pdb }) });
    }

    // The DRA, failover and scale benches start controllers of their own.
    await ctl.stop();
    if (runs('dra')) {
      log(
        `DRA comparison: DeviceTaintRule NoExecute against the handoff, ${args.draRounds} rounds`,
      );
      const dra = await benchDraTaint(
        b,
        up.kubeconfigPath,
        args.draRounds,
        args.draWindow * 1000,
        log,
      );
      writeResult('dra-taint', { ...env, ...dra });
    }
    if (runs('failover')) {
      log(`failover: SIGKILL of the leader, ${args.failoverSamples} times per election timing`);
      const failover = await benchFailover(b, up.kubeconfigPath, args.failoverSamples, log);
      writeResult('failover', { ...env, ...failover });
    }
    if (runs('scale')) {
      const accelerators = args.scaleAccelerators;
      const leases = Number(args.scaleLeases ?? 5 * accelerators);
      const exports = Number(args.scaleExports ?? 20 * accelerators);
      log(`scale: ${accelerators} accelerators, ${leases} leases, ${exports} exports`);
      const scale = await benchScale(
        up.kubeconfigPath,
        {
          accelerators,
          leases,
          exports,
          coldStarts: args.scaleColdStarts,
          burstWorkers,
          ...(args.scaleCpuProf && { cpuProfileDir: args.scaleCpuProf }),
        },
        log,
      );
      writeResult('scale', { ...env, ...scale });
    }
    if (runs('growth')) {
      const growth = await benchGrowth(
        up.kubeconfigPath,
        {
          sizes: growthSizes,
          burst: args.growthBurst,
          coldStarts: args.scaleColdStarts,
          ...(args.scaleCpuProf && { cpuProfileDir: args.scaleCpuProf }),
        },
        log,
      );
      writeResult('growth', { ...env, ...growth });
    }
  } finally {
    await stopAll();
  }
  if (runs('kernel')) kernel(env);
  // From every part's recorded result: with --only, the parts not run keep their last run's.
  await updateReadme();
  log(
    `done in ${((Date.now() - started) / 1000).toFixed(0)} s; tear down with npm run cluster:down`,
  );
}

main().catch(async (err: unknown) => {
  await stopAll();
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
