// The growth part's table and plot (bench/README.md's growth section and growth.svg), made from
// results/growth.json alone, as readme.ts makes the rest.
import type { GrowthResult } from './growth.ts';
import type { ScaleResult } from './scale.ts';

const n = (x: number) => Math.round(x).toLocaleString('en-US');
const mib = (bytes: number) => bytes / 2 ** 20;
const fixed = (x: number, digits: number) => x.toFixed(digits);

interface Figure {
  label: string;
  value: (s: ScaleResult) => number;
  show: (x: number) => string;
}

/** The cold start less the start on the empty cluster, over the LIST floor (scale.ts's figure). */
const netOverList = (s: ScaleResult) =>
  (s.coldStart.spawnToReconciledMs - s.coldStart.emptyClusterMs) / s.coldStart.listFloorMs;

const FIGURES: Figure[] = [
  { label: 'Objects the controller lists', value: (s) => s.objects, show: n },
  { label: 'Their JSON', value: (s) => mib(s.rss.jsonBytes), show: (x) => `${fixed(x, 1)} MiB` },
  {
    label: 'LIST floor (a bare client, the same four LISTs)',
    value: (s) => s.coldStart.listFloorMs,
    show: (x) => `${n(x)} ms`,
  },
  {
    label: 'Cold start: spawn to every device reconciled',
    value: (s) => s.coldStart.spawnToReconciledMs,
    show: (x) => `${n(x)} ms`,
  },
  {
    label: 'of it: spawn to caches synced',
    value: (s) => s.coldStart.spawnToSyncedMs,
    show: (x) => `${n(x)} ms`,
  },
  {
    label: 'of it: the first pass',
    value: (s) => s.coldStart.syncedToReconciledMs,
    show: (x) => `${n(x)} ms`,
  },
  {
    label: 'Cold start net of the start on the empty cluster, over the LIST floor',
    value: netOverList,
    show: (x) => `${fixed(x, 2)}x`,
  },
  {
    label: 'RSS the fleet added (steady, median of 5)',
    value: (s) => mib(s.rss.fleetBytes - s.rss.emptyBytes),
    show: (x) => `${fixed(x, 1)} MiB`,
  },
  {
    label: 'RSS the fleet added, per object',
    value: (s) => s.rss.bytesPerObject,
    show: (x) => `${n(x)} B`,
  },
  {
    label: 'RSS the fleet added, over its JSON',
    value: (s) => s.rss.addedOverJson,
    show: (x) => `${fixed(x, 2)}x`,
  },
  {
    label: 'V8 heap used',
    value: (s) => mib(s.rss.heapUsedBytes),
    show: (x) => `${fixed(x, 1)} MiB`,
  },
  {
    label: 'Fill: controller start to every device Granted, the rest queued',
    value: (s) => s.fillMs / 1000,
    show: (x) => `${fixed(x, 1)} s`,
  },
  {
    label: 'Fill: devices granted per second',
    value: (s) => s.accelerators / (s.fillMs / 1000),
    show: (x) => `${fixed(x, 1)}/s`,
  },
  {
    label: 'Burst: handoffs per second',
    value: (s) => s.burst.handoffsPerSec,
    show: (x) => `${fixed(x, 1)}/s`,
  },
  {
    label: 'Burst: per device, DELETE to the next lease Granted, p50',
    value: (s) => s.burst.handoffMs.p50 / 1000,
    show: (x) => `${fixed(x, 2)} s`,
  },
  {
    label: 'Burst: reconciles per second',
    value: (s) => s.burst.reconcilesPerSec,
    show: (x) => `${fixed(x, 1)}/s`,
  },
  {
    label: 'Burst: controller requests per handoff (Events included)',
    value: (s) => s.burst.requestsPerHandoff,
    show: (x) => fixed(x, 2),
  },
];

/** One row per figure, one column per size, and how much it grew from the smallest. */
export function growthRows(g: GrowthResult): string[] {
  const first = g.sizes[0];
  const last = g.sizes.at(-1);
  if (!first || !last) return ['No growth run recorded.'];
  const head = g.sizes.map(
    (s) =>
      `${n(s.accelerators)} devices (${n(s.nodes)} nodes), ${n(s.leases)} leases, ${n(s.exports)} exports`,
  );
  const grew = `${n(last.accelerators)} over ${n(first.accelerators)}`;
  return [
    `| Figure | ${head.join(' | ')} | ${grew} |`,
    `| --- | ${g.sizes.map(() => '---').join(' | ')} | --- |`,
    ...FIGURES.map((f) => {
      const a = f.value(first);
      const b = f.value(last);
      const ratio = a > 0 ? `${fixed(b / a, 2)}x` : '-';
      return `| ${f.label} | ${g.sizes.map((s) => f.show(f.value(s))).join(' | ')} | ${ratio} |`;
    }),
  ];
}

interface Series {
  label: string;
  color: string;
  points: { x: number; y: number }[];
}

/** One log-log panel: its series against devices, at (left, top), w by h. */
function panel(
  title: string,
  unit: string,
  series: Series[],
  box: { left: number; top: number; w: number; h: number },
): string[] {
  const pts = series.flatMap((s) => s.points).filter((p) => p.x > 0 && p.y > 0);
  const decade = (v: number, up: boolean) =>
    10 ** (up ? Math.ceil(Math.log10(v)) : Math.floor(Math.log10(v)));
  const xs = pts.map((p) => p.x);
  const ys = pts.map((p) => p.y);
  const x0 = decade(Math.min(...xs), false);
  const x1 = Math.max(decade(Math.max(...xs), true), x0 * 10);
  const y0 = decade(Math.min(...ys), false);
  const y1 = Math.max(decade(Math.max(...ys), true), y0 * 10);
  const m = { l: 56, r: 10, t: 24, b: 36 };
  const X = (v: number) =>
    box.left +
    m.l +
    ((Math.log10(v) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0))) * (box.w - m.l - m.r);
  const Y = (v: number) =>
    box.top +
    box.h -
    m.b -
    ((Math.log10(v) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))) * (box.h - m.t - m.b);
  const out = [
    `<text x="${box.left + box.w / 2}" y="${box.top + 14}" text-anchor="middle" font-size="13">${title}</text>`,
  ];
  const ticks = (lo: number, hi: number) => {
    const t: number[] = [];
    for (let d = lo; d <= hi; d *= 10) for (const k of [1, 2, 5]) if (d * k <= hi) t.push(d * k);
    return t;
  };
  const label = (v: number) => (v >= 1 ? n(v) : v.toPrecision(1));
  for (const v of ticks(x0, x1))
    out.push(
      `<line x1="${X(v).toFixed(1)}" y1="${box.top + m.t}" x2="${X(v).toFixed(1)}" y2="${box.top + box.h - m.b}" stroke="#ddd"/>`,
      `<text x="${X(v).toFixed(1)}" y="${box.top + box.h - m.b + 14}" text-anchor="middle" font-size="10">${label(v)}</text>`,
    );
  for (const v of ticks(y0, y1))
    out.push(
      `<line x1="${box.left + m.l}" y1="${Y(v).toFixed(1)}" x2="${box.left + box.w - m.r}" y2="${Y(v).toFixed(1)}" stroke="#eee"/>`,
      `<text x="${box.left + m.l - 4}" y="${(Y(v) + 3).toFixed(1)}" text-anchor="end" font-size="10">${label(v)}</text>`,
    );
  out.push(
    `<text x="${box.left + box.w / 2}" y="${box.top + box.h - 6}" text-anchor="middle" font-size="11">devices</text>`,
    `<text x="${box.left + 12}" y="${box.top + box.h / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 ${box.left + 12} ${box.top + box.h / 2})">${unit}</text>`,
  );
  series.forEach((s, i) => {
    const line = s.points
      .filter((p) => p.x > 0 && p.y > 0)
      .map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`);
    out.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${line.join(' ')}"/>`,
      ...line.map((p) => {
        const [cx, cy] = p.split(',');
        return `<circle cx="${cx}" cy="${cy}" r="3" fill="${s.color}"/>`;
      }),
      `<rect x="${box.left + m.l}" y="${box.top + box.h + 4 + i * 15}" width="10" height="10" fill="${s.color}"/>`,
      `<text x="${box.left + m.l + 14}" y="${box.top + box.h + 13 + i * 15}" font-size="10">${s.label}</text>`,
    );
  });
  return out;
}

/** Three log-log panels against devices: cold start, memory, rates. */
export function growthSvg(g: GrowthResult): string {
  const W = 960;
  const H = 300;
  /** Room under the panels for their legends. */
  const L = 50;
  const w = W / 3;
  const at = (f: (s: ScaleResult) => number) =>
    g.sizes.map((s) => ({ x: s.accelerators, y: f(s) }));
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 30 + L}" viewBox="0 0 ${W} ${H + 30 + L}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H + 30 + L}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">Growth with the fleet (${g.leasesPerDevice} leases and ${g.exportsPerDevice} exports per device; log-log)</text>`,
    ...panel(
      'Cold start',
      'ms',
      [
        {
          label: 'spawn to reconciled',
          color: '#d62728',
          points: at((s) => s.coldStart.spawnToReconciledMs),
        },
        { label: 'LIST floor', color: '#1f77b4', points: at((s) => s.coldStart.listFloorMs) },
      ],
      { left: 0, top: 30, w, h: H },
    ),
    ...panel(
      'Memory',
      'MiB',
      [
        {
          label: 'RSS the fleet added',
          color: '#d62728',
          points: at((s) => mib(s.rss.fleetBytes - s.rss.emptyBytes)),
        },
        { label: 'V8 heap used', color: '#ff7f0e', points: at((s) => mib(s.rss.heapUsedBytes)) },
        { label: 'JSON of the objects', color: '#1f77b4', points: at((s) => mib(s.rss.jsonBytes)) },
      ],
      { left: w, top: 30, w, h: H },
    ),
    ...panel(
      `Rates (burst of ${n(g.burst)} deletions)`,
      'per second',
      [
        { label: 'burst handoffs', color: '#d62728', points: at((s) => s.burst.handoffsPerSec) },
        {
          label: 'fill grants',
          color: '#2ca02c',
          points: at((s) => s.accelerators / (s.fillMs / 1000)),
        },
      ],
      { left: 2 * w, top: 30, w, h: H },
    ),
    '</svg>',
  ];
  return parts.join('\n') + '\n';
}
