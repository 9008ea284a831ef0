// Regenerates the results section of bench/README.md (between its markers), results/summary.json
// and the plot from bench/results/*.json (results.ts), and says whether the files on disk are what
// those results make (`npm run bench:check`).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DraTaintResult, StoryOutcome } from './dra-taint.ts';
import { B_POD, PDB_POD } from './dra-taint.ts';
import type { HandoffResult } from './handoff.ts';
import { PDB_RETRY_AFTER_S, type PdbRound } from './pdb.ts';
import type { ReaperResult } from './reaper.ts';
import { cdfSvg, median, RESULTS, type Environment } from './report.ts';
import { loadResults, runsOf, summaryOf, type Results, type Summary } from './results.ts';
import type { FailoverResult } from './failover.ts';
import type { GrowthResult } from './growth.ts';
import { growthRows, growthSvg } from './growth-report.ts';
import type { ScaleResult } from './scale.ts';
import type { StageRow } from './stages.ts';

export type { Summary } from './results.ts';

const README = join(import.meta.dirname, 'README.md');
const SVG = join(import.meta.dirname, 'handoff.svg');
const GROWTH_SVG = join(import.meta.dirname, 'growth.svg');
const SUMMARY = join(RESULTS, 'summary.json');
const BEGIN = '<!-- bench:results:begin (written by npm run bench) -->';
const END = '<!-- bench:results:end -->';
const DRA_BEGIN =
  '<!-- bench:dra:begin (written by npm run bench, and by npm run bench -- --only dra) -->';
const DRA_END = '<!-- bench:dra:end -->';
const GROWTH_BEGIN =
  '<!-- bench:growth:begin (written by npm run bench, and by npm run bench -- --only growth) -->';
const GROWTH_END = '<!-- bench:growth:end -->';

/** Targets, lower is better: the issue's numbers. */
export const TARGETS = {
  handoffOverFloorP50: 1.3,
  requestsPerHandoff: 6,
  reaperOverFloor: 1.2,
  /** The reaper clears the device within this many Retry-Afters of the last PDB allowing it. */
  pdbOverRetryAfter: 1,
};

export const verdict = (value: number | null, target: number, lowerIsBetter = true): string => {
  if (value === null) return 'not measured';
  const met = lowerIsBetter ? value <= target : value >= target;
  if (met) return 'met';
  const by = lowerIsBetter ? value / target : target / value;
  return `**missed** by ${by.toFixed(2)}x`;
};

function handoffRows(h: HandoffResult): string[] {
  const rows: string[] = [];
  for (const p of ['p50', 'p95', 'p99'] as const) {
    const t = p === 'p50' ? TARGETS.handoffOverFloorP50 : undefined;
    rows.push(
      `| Handoff latency ${p} (${h.handoffs} handoffs) | ${h.handoffMs[p]} ms | ${h.floorMs[p]} ms (a bare client's ${h.hopsPerHandoff} hops: the handoff's own writes, each seen by watch) | ${h.overFloor[p]}x | ${t ? `<= ${t}` : '-'} | ${t ? verdict(h.overFloor.p50, t) : '-'} |`,
    );
  }
  rows.push(
    `| Handoff latency p50, against a bare client's ${h.twoRoundHops} hops (the deletion seen, then owner and Granted in one round: what a design that granted without the agent's answer would need) | ${h.handoffMs.p50} ms | ${h.twoRoundFloorMs.p50} ms | ${h.overTwoRoundFloor.p50}x | - | - |`,
    `| Handoff latency p50, against ${h.hopsPerHandoff} ConfigMap write hops (reference) | ${h.handoffMs.p50} ms | ${h.configMapFloorMs.p50} ms | ${h.overConfigMapFloor.p50}x | - | - |`,
  );
  const q = h.requestsPerHandoff;
  const t = TARGETS.requestsPerHandoff;
  rows.push(
    q
      ? `| Controller API requests per handoff (p50 of ${q.n}; mean ${q.mean}, p99 ${q.p99}) | ${q.p50} | - | - | <= ${t} | ${verdict(q.p50, t)} |`
      : `| Controller API requests per handoff | not measured | - | - | <= ${t} | not measured |`,
  );
  return rows;
}

function reaperRows(r: ReaperResult, pdb: PdbRound | undefined): string[] {
  const ratios = (f: (x: ReaperResult['rounds'][number]) => number | undefined) =>
    r.rounds.map(f).join(', ');
  const what = `Stuck handoff cleared, ${r.holders} holder pods (Stuck to Granted, median of ${r.rounds.length}`;
  const rows = [
    `| ${what}; ratios ${ratios((x) => x.overFloor)}) | ${r.reaperMs} ms | ${r.floorMs} ms (a bare client's concurrent Evictions of the same pods in the same scenario, to their deletion seen) | ${r.overFloor}x | <= ${TARGETS.reaperOverFloor} | ${verdict(r.overFloor, TARGETS.reaperOverFloor)} |`,
    `| ${what}), against \`${r.drainCommand}\` (reference: client-go's default 5 requests/s) | ${r.reaperMs} ms | ${r.drainMs} ms | ${r.overDrain}x | - | - |`,
  ];
  if (r.drainFastMs !== undefined)
    rows.push(
      `| ${what}), against kubectl drain's code with its rate raised, \`${r.drainFastCommand ?? ''}\` (reference) | ${r.reaperMs} ms | ${r.drainFastMs} ms | ${r.overDrainFast ?? ''}x | - | - |`,
    );
  const t = TARGETS.pdbOverRetryAfter;
  rows.push(
    pdb
      ? `| PDB round: ${pdb.pdbHolders} of ${pdb.holders} holders under ${pdb.pdbs} PDBs of ${pdb.size} (maxUnavailable 1); from the last PDB allowing the eviction it waited for to the device cleared (Stuck to Granted ${pdb.reaperMs} ms; each covered eviction came p50 ${pdb.waitAfterAllowMs.p50} ms, at most ${pdb.waitAfterAllowMs.max} ms after its PDB allowed it) | ${pdb.lastAllowToClearedMs} ms | ${pdb.retryAfterMs} ms (one Retry-After) | ${pdb.overRetryAfter}x | <= ${t} | ${verdict(pdb.overRetryAfter, t)} |`
      : `| PDB round (device cleared after the last PDB allowed it) | not measured | ${PDB_RETRY_AFTER_S * 1000} ms (one Retry-After) | - | <= ${t} | not measured |`,
  );
  return rows;
}

function stageRows(title: string, floor: string, stages: readonly StageRow[]): string[] {
  const cell = (x: number | undefined) => (x === undefined ? '-' : `${x} ms`);
  return [
    `| ${title} | p50 | mean | ${floor} p50 | ${floor} mean | mean above the floor |`,
    '| --- | --- | --- | --- | --- | --- |',
    ...stages.map(
      (s) =>
        `| ${s.stage} | ${cell(s.p50Ms)} | ${cell(s.meanMs)} | ${cell(s.floorP50Ms)} | ${cell(s.floorMeanMs)} | ${cell(s.overFloorMeanMs)} |`,
    ),
  ];
}

/** The components' own timers per handoff, as one sentence under the stage table. */
function workLine(w: Record<string, number> | undefined): string[] {
  if (!w) return [];
  const parts = Object.entries(w).map(([k, v]) => `${k} ${v}`);
  return [
    '',
    `The components' own timers, mean per handoff over the same window as the requests (the work after Granted, the finalizer and the Events, included; a reconcile's time includes its waits on the API server): ${parts.join(', ')}.`,
  ];
}

const NO_SCALE_ROWS = [
  '| Cold start, 1,000 accelerators / 5,000 leases / 20,000 exports | not measured | LIST of the same objects | - | - | not measured |',
  '| Steady-state RSS per object | not measured | JSON size of the objects | - | - | not measured |',
  '| Reconciles per second under 1,000 lease deletions | not measured | - | - | - | not measured |',
];

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const n = (x: number) => x.toLocaleString('en-US');
const hundredths = (x: number) => Math.round(x * 100) / 100;

function scaleRows(sc: ScaleResult): string[] {
  const c = sc.coldStart;
  const b = sc.burst;
  const fleet = `${n(sc.accelerators)} accelerators / ${n(sc.leases)} leases / ${n(sc.exports)} exports`;
  // From the recorded medians, as scale.ts computes it: results older than the figure have them too.
  const netOfStart = hundredths((c.spawnToReconciledMs - c.emptyClusterMs) / c.listFloorMs);
  return [
    `| Cold start, ${fleet} (spawn to every device reconciled, median of ${sc.samples.spawnToReconciledMs.length}: caches synced at ${c.spawnToSyncedMs} ms, first pass ${c.syncedToReconciledMs} ms; ${c.emptyClusterMs} ms on the empty cluster) | ${c.spawnToReconciledMs} ms | ${c.listFloorMs} ms (bare LIST of the same ${n(sc.objects)} objects) | ${c.overList}x | - | - |`,
    `| Cold start net of the start on the empty cluster (${c.spawnToReconciledMs} - ${c.emptyClusterMs} ms) | ${Math.round(c.spawnToReconciledMs - c.emptyClusterMs)} ms | ${c.listFloorMs} ms (the same LIST) | ${netOfStart}x | <= 1.5 | ${verdict(netOfStart, 1.5)} |`,
    `| Fill from scratch (controller start to ${n(sc.accelerators)} Granted, the rest queued) | ${(sc.fillMs / 1000).toFixed(1)} s | - | - | - | - |`,
    `| Steady-state RSS with the fleet (median of ${sc.samples.rssFleetBytes.length}; ${mib(sc.rss.emptyBytes)} before it, so the fleet added ${sc.rss.addedOverJson}x its JSON size) | ${mib(sc.rss.fleetBytes)} | ${mib(sc.rss.jsonBytes)} (JSON of the listed objects) | ${sc.rss.overJson}x | - | - |`,
    `| Steady-state RSS per object (RSS with the fleet less RSS before it, over ${n(sc.objects)} objects) | ${n(sc.rss.bytesPerObject)} bytes | - | - | - | - |`,
    `| Reconciles per second under ${n(b.deletions)} lease deletions (${n(b.reconciles)} reconciles in ${(b.ms / 1000).toFixed(1)} s) | ${b.reconcilesPerSec}/s | - | - | - | - |`,
    `| Handoffs per second under the same burst (per device p50 ${(b.handoffMs.p50 / 1000).toFixed(1)} s, p99 ${(b.handoffMs.p99 / 1000).toFixed(1)} s${b.workers === undefined ? '' : `; \`--workers ${b.workers}\``}) | ${b.handoffsPerSec}/s | - | - | >= 100/s | ${verdict(b.handoffsPerSec, 100, false)} |`,
    `| Controller API requests per handoff in the burst (${b.eventsPerHandoff} of them Events; ${b.requestsPerHandoffWithoutEvents} without) | ${b.requestsPerHandoff} | - | - | <= 6 | ${verdict(b.requestsPerHandoff, 6)} |`,
    ...(b.writeFloors ?? []).map(
      (f) =>
        `| Ceiling the API server's write rate puts on the burst at ${f.inFlight} writes in flight (a bare client's merge patches of the same leases, ${n(f.writes)} of them, the controller stopped: ${f.writesPerSec} writes/s over ${b.requestsPerHandoff} requests per handoff) | ${b.handoffsPerSec}/s | ${f.handoffsPerSecCeiling}/s | ${f.overCeiling}x | - | - |`,
    ),
    ...(sc.workers ?? []).map(
      (w) =>
        `| The same burst at \`--workers ${w.workers}\` (queues refilled; per device p50 ${(w.handoffMs.p50 / 1000).toFixed(1)} s; ${w.requestsPerHandoff} requests per handoff, ${w.eventsPerHandoff} of them Events) | ${w.handoffsPerSec}/s | ${b.handoffsPerSec}/s (${b.workers === undefined ? 'the default' : `\`--workers ${b.workers}\``}, above) | ${hundredths(w.handoffsPerSec / b.handoffsPerSec)}x | - | - |`,
    ),
  ];
}

function failoverRows(f: FailoverResult | undefined): string[] {
  if (!f)
    return [
      '| Failover after SIGKILL of the leader | not measured | lease duration | - | - | not measured |',
    ];
  return f.rows.map(
    (row) =>
      `| Failover, ${row.label}: leader SIGKILLed to the new leader's first reconcile (median of ${row.samples.toFirstReconcileMs.length}; the waiting handoff done at ${row.toHandoffMs} ms) | ${row.toFirstReconcileMs} ms | ${row.leaseDurationMs} ms (the lease duration a standby must wait out) | ${row.overLease}x | - | - |`,
  );
}

const runLine = ({ env, parts }: { env: Environment; parts: string[] }) =>
  `${parts.map((p) => `\`${p}\``).join(', ')}: ${env.date}, commit \`${env.commit}\``;

/** The results section (markers included) for `r`, before prettier formats it. */
export function resultsSection(r: Results): string {
  const s = summaryOf(r);
  const runs = runsOf(r);
  const newest = runs[0]?.env;
  const machine = newest
    ? `Kubernetes ${newest.kubernetesVersion}, ${newest.machine.cores} cores (${newest.machine.cpuModel}), ${(newest.machine.memoryBytes / 2 ** 30).toFixed(0)} GiB, Node ${newest.machine.node}`
    : 'no results recorded';
  const rows: string[] = [
    '| Figure | Measured | Floor / baseline | Ratio | Target | Verdict |',
    '| --- | --- | --- | --- | --- | --- |',
    ...(r.handoff
      ? handoffRows(r.handoff)
      : [
          `| Handoff latency | not measured | | | p50 ratio <= ${TARGETS.handoffOverFloorP50} | not measured |`,
        ]),
    ...(r.reaper
      ? reaperRows(r.reaper, r.reaper.pdb)
      : [
          `| Stuck handoff against a bare client's evictions | not measured | | | <= ${TARGETS.reaperOverFloor} | not measured |`,
        ]),
    ...failoverRows(r.failover),
    ...(r.scale ? scaleRows(r.scale) : NO_SCALE_ROWS),
    `| Kernel model | ${s.kernelOpsPerSec?.toLocaleString('en-US') ?? 'not measured'} ops/s | - | - | >= 100,000 | ${verdict(s.kernelOpsPerSec, 100_000, false)} |`,
  ];
  const stages = [
    ...(r.handoff
      ? [
          '',
          `Handoff by stage, ${r.handoff.handoffs} handoffs (the floor's hops 1 and 2, the deletion and the owner write, are its first stage; DELETE answered after p50 ${r.handoff.deleteAnsweredMs.p50} ms):`,
          '',
          ...stageRows('Handoff stage', 'Floor', r.handoff.stages),
          ...workLine(r.handoff.workPerHandoff),
        ]
      : []),
    ...(r.reaper
      ? [
          '',
          `Stuck handoff by stage, median of ${r.reaper.rounds.length} rounds (the bare client has no Granted; "device cleared" is the Accelerator Owned by tenant B for the reaper, Free for the bare client; the reaper's eviction records were on the lease ${r.reaper.recordsWrittenMs} ms after Stuck was seen):`,
          '',
          ...stageRows('Clearing stage', 'Bare client', r.reaper.stages),
          ...(r.reaper.controllerRequests
            ? [
                '',
                `The controller's requests in a clearing, mean over the rounds, from tenant A's release to 1 s after Granted: ${Object.entries(
                  r.reaper.controllerRequests,
                )
                  .map(([k, v]) => `${k} ${v}`)
                  .join(', ')}.`,
              ]
            : []),
        ]
      : []),
  ];
  return [
    BEGIN,
    `Recorded runs (each figure and its floor come from one run): ${runs.map(runLine).join('; ') || 'none'}. ${machine}.`,
    '',
    ...rows,
    ...stages,
    '',
    '`results/summary.json` (null: not measured):',
    '',
    '```json',
    JSON.stringify(s, null, 2),
    '```',
    '',
    ...(r.handoff ? ['![Handoff latency distribution against the floor](handoff.svg)', ''] : []),
    END,
  ].join('\n');
}

/** The plot of the handoff samples against their floors. */
export function handoffSvg(h: HandoffResult): string {
  return cdfSvg([
    { label: 'handoff', color: '#d62728', samples: h.samples.handoffMs },
    {
      label: `floor: the handoff's ${h.hopsPerHandoff} writes, bare client`,
      color: '#1f77b4',
      samples: h.samples.floorMs,
    },
    {
      label: `floor: ${h.twoRoundHops} hops, owner and Granted in one round`,
      color: '#2ca02c',
      samples: h.samples.twoRoundFloorMs,
    },
    {
      label: `${h.hopsPerHandoff} ConfigMap write hops`,
      color: '#7f7f7f',
      samples: h.samples.configMapFloorMs,
    },
  ]);
}

/** `text` with what lies between `begin` and `end` replaced by `section` (or it appended). */
function replaced(text: string, begin: string, end: string, section: string, heading: string) {
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  return a >= 0 && b > a
    ? text.slice(0, a) + section + text.slice(b + end.length)
    : `${text.trimEnd()}\n\n## ${heading}\n\n${section}\n`;
}

/** What the README, the summary and the plot should hold for `r`, given the README's text now. */
export async function rendered(
  r: Results,
  readme: string,
): Promise<{ readme: string; summary: string; svg?: string; growthSvg?: string }> {
  let next = replaced(readme, BEGIN, END, resultsSection(r), 'Results');
  if (r.dra)
    next = replaced(next, DRA_BEGIN, DRA_END, draSection(r.dra, r.dra), 'Against DRA: results');
  if (r.growth)
    next = replaced(next, GROWTH_BEGIN, GROWTH_END, growthSection(r.growth, r.growth), 'Growth');
  const prettier = await import('prettier');
  const config = (await prettier.resolveConfig(README)) ?? {};
  const runs = runsOf(r).map(({ env, parts }) => ({ parts, date: env.date, commit: env.commit }));
  return {
    readme: await prettier.format(next, { ...config, filepath: README }),
    summary: JSON.stringify({ runs, ...summaryOf(r) }, null, 2) + '\n',
    ...(r.handoff && { svg: handoffSvg(r.handoff) }),
    ...(r.growth && { growthSvg: growthSvg(r.growth) }),
  };
}

/** Rewrites the README's results section, results/summary.json and the plot from results/*.json. */
export async function updateReadme(): Promise<Summary> {
  const r = loadResults();
  const out = await rendered(r, readFileSync(README, 'utf8'));
  writeFileSync(README, out.readme);
  writeFileSync(SUMMARY, out.summary);
  if (out.svg) writeFileSync(SVG, out.svg);
  if (out.growthSvg) writeFileSync(GROWTH_SVG, out.growthSvg);
  return summaryOf(r);
}

/** The files that differ from what results/*.json make (empty: none). */
export async function drift(): Promise<string[]> {
  const out = await rendered(loadResults(), readFileSync(README, 'utf8'));
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return undefined;
    }
  };
  return [
    ...(read(README) === out.readme ? [] : ['bench/README.md']),
    ...(read(SUMMARY) === out.summary ? [] : ['bench/results/summary.json']),
    ...(out.svg !== undefined && read(SVG) !== out.svg ? ['bench/handoff.svg'] : []),
    ...(out.growthSvg !== undefined && read(GROWTH_SVG) !== out.growthSvg
      ? ['bench/growth.svg']
      : []),
  ];
}

const ms = (x: number | undefined) => (x === undefined ? 'never' : `${(x / 1000).toFixed(2)} s`);

/** One cell over the rounds: the value when every round agrees, else each round's. */
function agreed(outcomes: StoryOutcome[], cell: (o: StoryOutcome) => string): string {
  const values = outcomes.map(cell);
  if (values.every((v) => v === values[0]))
    return `${values[0]} (${values.length} of ${values.length})`;
  return values.map((v, i) => `round ${i + 1}: ${v}`).join('; ');
}

/** A time over the rounds: median and every round's, or how many rounds never got there. */
function timed(outcomes: StoryOutcome[], pick: (o: StoryOutcome) => number | undefined): string {
  const xs = outcomes.map(pick);
  const got = xs.filter((x): x is number => x !== undefined);
  if (got.length === 0) return 'never';
  const all = xs.map(ms).join(', ');
  const missing = xs.length - got.length;
  return `${ms(median(got))} (${all})${missing ? `; never in ${missing} of ${xs.length}` : ''}`;
}

/** "pod, pod: remover; pod: remover" in name order, whatever order the pods went in. */
function removedBy(o: StoryOutcome): string {
  const by = new Map<string, string[]>();
  for (const r of o.removed) by.set(r.by, [...(by.get(r.by) ?? []), r.pod]);
  if (by.size === 0) return 'none';
  return [...by]
    .map(([who, pods]) => `${pods.sort().join(', ')}: ${who}`)
    .sort()
    .join('; ');
}

/** The comparison table, one column per mechanism, from the recorded runs. */
export function draRows(d: DraTaintResult): string[] {
  const of = (m: StoryOutcome['mechanism']) => d.outcomes.filter((o) => o.mechanism === m);
  const columns = [of('taint'), of('accel-lease')];
  const window = `${d.windowMs / 1000} s`;
  const row = (label: string, cell: (os: StoryOutcome[]) => string) =>
    `| ${label} | ${columns.map(cell).join(' | ')} |`;
  const pins = (o: StoryOutcome) =>
    o.pinsSurvived.length === 0
      ? 'no'
      : `yes: ${o.pinsSurvived.map((p) => `${p.pod ?? 'a process in no pod'} ${p.kind} (epoch ${p.epoch})`).join(', ')}`;
  return [
    '| | DeviceTaintRule `NoExecute` (DRA) | accel-lease, `--dra` |',
    '| --- | --- | --- |',
    row('Pods removed, by whom', (os) => agreed(os, removedBy)),
    row(`PDB on ${PDB_POD} (0 disruptions allowed) honoured`, (os) =>
      agreed(os, (o) => (o.pdbHonoured ? 'yes' : 'no')),
    ),
    row("A pin of A's epoch survived", (os) => agreed(os, pins)),
    row(`B's pod ${B_POD} ran`, (os) =>
      agreed(os, (o) =>
        o.bRan ? 'yes' : `no, not bound ${window} after the mechanism's last step`,
      ),
    ),
    row("t = 0 to A's pods gone", (os) => timed(os, (o) => o.aPodsGoneMs)),
    row('to the DeviceTaintRule saying `Completed`', (os) =>
      os[0]?.mechanism === 'taint' ? timed(os, (o) => o.ruleCompletedMs) : 'no rule',
    ),
    row("to the device free of A's pins", (os) => timed(os, (o) => o.pinsClearedMs)),
    row("to B's claim allocated the device", (os) => timed(os, (o) => o.bAllocatedMs)),
    row('to `handoff-complete=True` on it', (os) => timed(os, (o) => o.handoffCompleteMs)),
    row("to B's pod Running", (os) => timed(os, (o) => o.bRunningMs)),
  ];
}

/** The growth section (markers included): the table over the sizes and the plot. */
export function growthSection(env: Environment, g: GrowthResult): string {
  return [
    GROWTH_BEGIN,
    `Last run: ${env.date}, commit \`${env.commit}\`, Kubernetes ${env.kubernetesVersion}, ${env.machine.cores} cores (${env.machine.cpuModel}), Node ${env.machine.node}; ${g.leasesPerDevice} leases and ${g.exportsPerDevice} exports per device, a burst of ${g.burst.toLocaleString('en-US')} deletions at every size (one per device where the fleet is smaller). Raw figures and samples: \`results/growth.json\`.`,
    '',
    ...growthRows(g),
    '',
    '![Cold start, memory and rates against the fleet size](growth.svg)',
    '',
    GROWTH_END,
  ].join('\n');
}

export function draSection(env: Environment, d: DraTaintResult): string {
  return [
    DRA_BEGIN,
    `Last run: ${env.date}, commit \`${env.commit}\`, Kubernetes ${env.kubernetesVersion}, ${env.machine.cores} cores (${env.machine.cpuModel}), Node ${env.machine.node}; ${d.rounds} rounds, each mechanism on a fresh node. Times are from the trigger (t = 0) to the watch event, median (every round). Raw events: \`results/dra-taint.json\`.`,
    '',
    ...draRows(d),
    '',
    DRA_END,
  ].join('\n');
}
