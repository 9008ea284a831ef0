// Regenerates the results section of bench/README.md (between its markers) from one run.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DraTaintResult, StoryOutcome } from './dra-taint.ts';
import { B_POD, PDB_POD } from './dra-taint.ts';
import type { FailoverResult } from './failover.ts';
import type { HandoffResult } from './handoff.ts';
import type { ReaperResult } from './reaper.ts';
import { median, type Environment } from './report.ts';
import type { ScaleResult } from './scale.ts';

export interface Summary {
  handoffOverFloorP50: number | null;
  handoffP99Ms: number | null;
  reaperOverDrain: number | null;
  coldStartOverList: number | null;
  requestsPerHandoff: number | null;
  rssBytesPerObject: number | null;
  kernelOpsPerSec: number | null;
}

const README = join(import.meta.dirname, 'README.md');
const BEGIN = '<!-- bench:results:begin (written by npm run bench) -->';
const END = '<!-- bench:results:end -->';
const DRA_BEGIN =
  '<!-- bench:dra:begin (written by npm run bench, and by npm run bench -- --only dra) -->';
const DRA_END = '<!-- bench:dra:end -->';

const verdict = (value: number | null, target: number, lowerIsBetter = true): string => {
  if (value === null) return 'not measured';
  const met = lowerIsBetter ? value <= target : value >= target;
  if (met) return 'met';
  const by = lowerIsBetter ? value / target : target / value;
  return `**missed** by ${by.toFixed(2)}x`;
};

export function resultsSection(
  env: Environment,
  s: Summary,
  h: HandoffResult | undefined,
  r: ReaperResult | undefined,
  sc?: ScaleResult,
  f?: FailoverResult,
): string {
  const gib = (env.machine.memoryBytes / 2 ** 30).toFixed(0);
  const rows: string[] = [
    '| Figure | Measured | Floor / baseline | Ratio | Target | Verdict |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  if (h) {
    for (const p of ['p50', 'p95', 'p99'] as const) {
      rows.push(
        `| Handoff latency ${p} (${h.handoffs} handoffs) | ${h.handoffMs[p]} ms | ${h.floorMs[p]} ms (the handoff's ${h.hopsPerHandoff} writes by a bare client) | ${h.overFloor[p]}x | ${p === 'p50' ? '<= 2' : '-'} | ${p === 'p50' ? verdict(h.overFloor.p50, 2) : '-'} |`,
      );
    }
    rows.push(
      `| Handoff latency p50, against ${h.hopsPerHandoff} ConfigMap write hops (reference) | ${h.handoffMs.p50} ms | ${h.configMapFloorMs.p50} ms | ${h.overConfigMapFloor.p50}x | - | - |`,
    );
    const q = h.requestsPerHandoff;
    rows.push(
      q
        ? `| Controller API requests per handoff (p50 of ${q.n}; mean ${q.mean}, p99 ${q.p99}) | ${q.p50} | - | - | <= 6 | ${verdict(q.p50, 6)} |`
        : '| Controller API requests per handoff | not measured | - | - | <= 6 | not measured |',
    );
  } else {
    rows.push('| Handoff latency | not measured | | | p50 ratio <= 2 | not measured |');
  }
  if (r) {
    rows.push(
      `| Stuck handoff cleared, ${r.holders} holder pods (Stuck to Granted, median of ${r.rounds.length}; ratios ${r.rounds.map((x) => x.ratio).join(', ')}) | ${r.reaperMs} ms | ${r.drainMs} ms (\`kubectl drain --pod-selector\`, ${r.holders} pods) | ${r.ratio}x | <= 0.5 | ${verdict(r.ratio, 0.5)} |`,
    );
  } else {
    rows.push('| Stuck handoff vs kubectl drain | not measured | | | <= 0.5 | not measured |');
  }
  for (const row of f?.rows ?? []) {
    rows.push(
      `| Failover, ${row.label}: leader SIGKILLed to the new leader's first reconcile (median of ${row.samples.toFirstReconcileMs.length}; the waiting handoff done at ${row.toHandoffMs} ms) | ${row.toFirstReconcileMs} ms | ${row.leaseDurationMs} ms (the lease duration a standby must wait out) | ${row.overLease}x | - | - |`,
    );
  }
  if (!f)
    rows.push(
      '| Failover after SIGKILL of the leader | not measured | lease duration | - | - | not measured |',
    );
  rows.push(...(sc ? scaleRows(sc) : NO_SCALE_ROWS));
  rows.push(
    `| Kernel model | ${s.kernelOpsPerSec?.toLocaleString('en-US') ?? 'not measured'} ops/s | - | - | >= 100,000 | ${verdict(s.kernelOpsPerSec, 100_000, false)} |`,
  );
  return [
    BEGIN,
    `Last run: ${env.date}, commit \`${env.commit}\`, Kubernetes ${env.kubernetesVersion}, ${env.machine.cores} cores (${env.machine.cpuModel}), ${gib} GiB, Node ${env.machine.node}.`,
    '',
    ...rows,
    '',
    '`results/summary.json` (null: not measured in this run):',
    '',
    '```json',
    JSON.stringify(s, null, 2),
    '```',
    '',
    ...(h ? ['![Handoff latency distribution against the floor](handoff.svg)', ''] : []),
    END,
  ].join('\n');
}

const NO_SCALE_ROWS = [
  '| Cold start, 1,000 accelerators / 5,000 leases / 20,000 exports | not measured | LIST of the same objects | - | - | not measured |',
  '| Steady-state RSS per object | not measured | JSON size of the objects | - | - | not measured |',
  '| Reconciles per second under 1,000 lease deletions | not measured | - | - | - | not measured |',
];

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const n = (x: number) => x.toLocaleString('en-US');

function scaleRows(sc: ScaleResult): string[] {
  const c = sc.coldStart;
  const b = sc.burst;
  const fleet = `${n(sc.accelerators)} accelerators / ${n(sc.leases)} leases / ${n(sc.exports)} exports`;
  return [
    `| Cold start, ${fleet} (spawn to every device reconciled, median of ${sc.samples.spawnToReconciledMs.length}: caches synced at ${c.spawnToSyncedMs} ms, first pass ${c.syncedToReconciledMs} ms; ${c.emptyClusterMs} ms on the empty cluster) | ${c.spawnToReconciledMs} ms | ${c.listFloorMs} ms (bare LIST of the same ${n(sc.objects)} objects) | ${c.overList}x | - | - |`,
    `| Cold start net of the start on the empty cluster (${c.spawnToReconciledMs} - ${c.emptyClusterMs} ms) | ${Math.round(c.spawnToReconciledMs - c.emptyClusterMs)} ms | ${c.listFloorMs} ms (the same LIST) | ${c.overListNetOfStart}x | <= 1.5 | ${verdict(c.overListNetOfStart, 1.5)} |`,
    `| Fill from scratch (controller start to ${n(b.deletions)} Granted, the rest queued) | ${(sc.fillMs / 1000).toFixed(1)} s | - | - | - | - |`,
    `| Steady-state RSS with the fleet (median of ${sc.samples.rssFleetBytes.length}; ${mib(sc.rss.emptyBytes)} before it, so the fleet added ${sc.rss.addedOverJson}x its JSON size) | ${mib(sc.rss.fleetBytes)} | ${mib(sc.rss.jsonBytes)} (JSON of the listed objects) | ${sc.rss.overJson}x | - | - |`,
    `| Steady-state RSS per object (RSS with the fleet less RSS before it, over ${n(sc.objects)} objects) | ${n(sc.rss.bytesPerObject)} bytes | - | - | - | - |`,
    `| Reconciles per second under ${n(b.deletions)} lease deletions (${n(b.reconciles)} reconciles in ${(b.ms / 1000).toFixed(1)} s) | ${b.reconcilesPerSec}/s | - | - | - | - |`,
    `| Handoffs per second under the same burst (per device p50 ${(b.handoffMs.p50 / 1000).toFixed(1)} s, p99 ${(b.handoffMs.p99 / 1000).toFixed(1)} s) | ${b.handoffsPerSec}/s | - | - | - | - |`,
    `| Controller API requests per handoff in the burst (${b.eventsPerHandoff} of them Events; ${b.requestsPerHandoffWithoutEvents} without) | ${b.requestsPerHandoff} | - | - | <= 6 | ${verdict(b.requestsPerHandoff, 6)} |`,
  ];
}

/** Rewrites the results section, formatted as the repository's prettier config wants. */
export async function updateReadme(
  env: Environment,
  s: Summary,
  h: HandoffResult | undefined,
  r: ReaperResult | undefined,
  sc?: ScaleResult,
  f?: FailoverResult,
): Promise<void> {
  await replaceSection(BEGIN, END, resultsSection(env, s, h, r, sc, f), 'Results');
}

/** Rewrites the DRA comparison's own section: `--only dra` updates it too. */
export async function updateDraSection(env: Environment, d: DraTaintResult): Promise<void> {
  await replaceSection(DRA_BEGIN, DRA_END, draSection(env, d), 'Against DRA: results');
}

/** Replaces the text between two markers (or appends it under `heading`) and runs prettier. */
async function replaceSection(
  begin: string,
  end: string,
  section: string,
  heading: string,
): Promise<void> {
  const text = readFileSync(README, 'utf8');
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  const next =
    a >= 0 && b > a
      ? text.slice(0, a) + section + text.slice(b + end.length)
      : `${text.trimEnd()}\n\n## ${heading}\n\n${section}\n`;
  const prettier = await import('prettier');
  const config = (await prettier.resolveConfig(README)) ?? {};
  writeFileSync(README, await prettier.format(next, { ...config, filepath: README }));
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
