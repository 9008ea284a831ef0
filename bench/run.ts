// `npm run bench`: brings up the local control plane, runs every cluster benchmark side by side
// with its floor in one run, the kernel micro-benchmark, then writes bench/results/*.json, the
// summary, the plot and the table in bench/README.md.
// Flags and their defaults: `npm run bench -- --help` (bench/flags.ts).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadKubeConfig, parseFlagsOrExit } from '../src/kube/index.ts';
import { upByHand } from '../e2e/cluster/index.ts';
import { BENCH_FLAGS } from './flags.ts';
import { benchDraTaint, DRA_TAINT_CLUSTER } from './dra-taint.ts';
import { benchFailover, type FailoverResult } from './failover.ts';
import { benchHandoff, type HandoffResult } from './handoff.ts';
import { benchReaper, summarizeRounds, type ReaperResult, type ReaperRound } from './reaper.ts';
import { benchScale, type ScaleResult } from './scale.ts';
import { cdfSvg, environment, RESULTS, writeResult, type Environment } from './report.ts';
import { updateDraSection, updateReadme, type Summary } from './readme.ts';
import { Bench, requestsByVerb, startController, stopAll } from './stack.ts';

const ROOT = join(import.meta.dirname, '..');
const started = Date.now();
const log = (line: string) =>
  process.stdout.write(`[bench t+${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);

const args = parseFlagsOrExit('npm run bench --', BENCH_FLAGS);
const BENCHES = ['handoff', 'reaper', 'dra', 'failover', 'scale', 'kernel'] as const;
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
  const summary: Summary = {
    handoffOverFloorP50: null,
    handoffP99Ms: null,
    reaperOverDrain: null,
    coldStartOverList: null,
    requestsPerHandoff: null,
    rssBytesPerObject: null,
    kernelOpsPerSec: null,
  };
  let handoff: HandoffResult | undefined;
  let reaper: ReaperResult | undefined;
  let scale: ScaleResult | undefined;
  let failover: FailoverResult | undefined;
  try {
    if (runs('handoff')) {
      const n = args.handoffs;
      log(`handoff latency: ${n} handoffs, each followed by its floor`);
      handoff = await benchHandoff(b, up.kubeconfigPath, n, log, async () =>
        requestsByVerb(await ctl.metrics()),
      );
      writeFileSync(
        join(import.meta.dirname, 'handoff.svg'),
        cdfSvg([
          { label: 'handoff', color: '#d62728', samples: handoff.samples.handoffMs },
          {
            label: `floor: the handoff's ${handoff.hopsPerHandoff} writes, bare client`,
            color: '#1f77b4',
            samples: handoff.samples.floorMs,
          },
          {
            label: `${handoff.hopsPerHandoff} ConfigMap write hops`,
            color: '#7f7f7f',
            samples: handoff.samples.configMapFloorMs,
          },
        ]),
      );
      summary.handoffOverFloorP50 = handoff.overFloor.p50;
      summary.handoffP99Ms = handoff.handoffMs.p99;
      log(
        `handoff p50 ${handoff.handoffMs.p50} ms vs floor ${handoff.floorMs.p50} ms: ${handoff.overFloor.p50}x (ConfigMap hops ${handoff.configMapFloorMs.p50} ms: ${handoff.overConfigMapFloor.p50}x)`,
      );
      const q = handoff.requestsPerHandoff;
      if (q) {
        summary.requestsPerHandoff = q.p50;
        log(
          `controller requests per handoff: p50 ${q.p50}, mean ${q.mean} ${JSON.stringify(q.meanByVerb)}`,
        );
      }
      writeResult('handoff', { ...env, ...handoff });
    }

    if (runs('reaper')) {
      const holders = args.holders;
      log(`stuck handoff: ${holders} holder pods, reaper vs kubectl drain`);
      const rounds: ReaperRound[] = [];
      for (let i = 1; i <= args.rounds; i++) {
        const round = await benchReaper(b, up.kubeconfigPath, up.bins.kubectl, holders, log);
        rounds.push(round);
        log(
          `round ${i}: reaper ${round.reaperMs} ms vs drain ${round.drainMs} ms: ${round.ratio}x`,
        );
      }
      reaper = summarizeRounds(rounds);
      writeResult('reaper', { ...env, ...reaper });
      summary.reaperOverDrain = reaper.ratio;
      log(`reaper median ${reaper.reaperMs} ms vs drain ${reaper.drainMs} ms: ${reaper.ratio}x`);
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
      await updateDraSection(env, dra);
    }
    if (runs('failover')) {
      log(`failover: SIGKILL of the leader, ${args.failoverSamples} times per election timing`);
      failover = await benchFailover(b, up.kubeconfigPath, args.failoverSamples, log);
      writeResult('failover', { ...env, ...failover });
    }
    if (runs('scale')) {
      const accelerators = args.scaleAccelerators;
      const leases = Number(args.scaleLeases ?? 5 * accelerators);
      const exports = Number(args.scaleExports ?? 20 * accelerators);
      log(`scale: ${accelerators} accelerators, ${leases} leases, ${exports} exports`);
      scale = await benchScale(
        up.kubeconfigPath,
        {
          accelerators,
          leases,
          exports,
          coldStarts: args.scaleColdStarts,
          ...(args.scaleCpuProf && { cpuProfileDir: args.scaleCpuProf }),
        },
        log,
      );
      writeResult('scale', { ...env, ...scale });
      summary.coldStartOverList = scale.coldStart.overList;
      summary.rssBytesPerObject = scale.rss.bytesPerObject;
    }
  } finally {
    await stopAll();
  }
  if (runs('kernel')) summary.kernelOpsPerSec = kernel(env);
  if (only.size < BENCHES.length) {
    log(
      `--only ${args.only}: results/*.json written; bench/README.md left as the last full run wrote it${runs('dra') ? ', but for its DRA section' : ''}`,
    );
  } else {
    writeResult('summary', { ...env, ...summary });
    await updateReadme(env, summary, handoff, reaper, scale, failover);
  }
  log(
    `done in ${((Date.now() - started) / 1000).toFixed(0)} s; tear down with npm run cluster:down`,
  );
}

main().catch(async (err: unknown) => {
  await stopAll();
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
