// What every result file carries (date, commit, machine, Kubernetes version), percentiles, and the
// hand-written SVG of the handoff latency distribution against its floor.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join } from 'node:path';

export const RESULTS = join(import.meta.dirname, 'results');

export interface Environment {
  date: string;
  commit: string;
  machine: { cores: number; cpuModel: string; memoryBytes: number; node: string };
  kubernetesVersion: string;
}

export function environment(kubernetesVersion: string): Environment {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    // The bench's own outputs do not make the tree dirty, nor a worktree's node_modules link.
    const dirty = execFileSync(
      'git',
      [
        'status',
        '--porcelain',
        '--',
        '.',
        ':!bench/results',
        ':!bench/handoff.svg',
        ':!bench/README.md',
        ':!node_modules',
      ],
      { encoding: 'utf8' },
    ).trim();
    if (dirty) commit += '+dirty';
  } catch {
    // not a git checkout: keep 'unknown'
  }
  return {
    date: new Date().toISOString(),
    commit,
    machine: {
      cores: availableParallelism(),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryBytes: totalmem(),
      node: process.version,
    },
    kubernetesVersion,
  };
}

export function writeResult(name: string, body: object): string {
  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `${name}.json`);
  writeFileSync(file, JSON.stringify(body, null, 2) + '\n');
  return file;
}

/** Nearest-rank percentile of samples (not sorted in place). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const s = [...samples].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1] as number;
}

/** The median of samples (the mean of the middle two for an even count; not sorted in place). */
export function median(samples: readonly number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
  n: number;
}

export function percentiles(samples: readonly number[]): Percentiles {
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    p50: r(percentile(samples, 50)),
    p95: r(percentile(samples, 95)),
    p99: r(percentile(samples, 99)),
    min: r(Math.min(...samples)),
    max: r(Math.max(...samples)),
    n: samples.length,
  };
}

/**
 * Empirical CDFs of two sample sets on a log-scale latency axis: each series is a step line from
 * its fastest to its slowest sample, with p50/p99 marked.
 */
export function cdfSvg(series: { label: string; color: string; samples: number[] }[]): string {
  const W = 720;
  const H = 360;
  const m = { l: 60, r: 20, t: 30, b: 50 };
  const all = series.flatMap((s) => s.samples).filter((x) => x > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...all))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all))));
  const x = (v: number) =>
    m.l +
    ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) *
      (W - m.l - m.r);
  const y = (q: number) => H - m.b - q * (H - m.t - m.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">Handoff latency vs floor (CDF, log scale)</text>`,
  ];
  for (let d = lo; d <= hi; d *= 10) {
    for (const k of [1, 2, 5]) {
      const v = d * k;
      if (v > hi) break;
      parts.push(
        `<line x1="${x(v).toFixed(1)}" y1="${m.t}" x2="${x(v).toFixed(1)}" y2="${H - m.b}" stroke="#ddd"/>`,
        `<text x="${x(v).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">${v >= 1 ? v : v.toPrecision(1)}</text>`,
      );
    }
  }
  for (const q of [0, 0.25, 0.5, 0.75, 0.9, 1]) {
    parts.push(
      `<line x1="${m.l}" y1="${y(q).toFixed(1)}" x2="${W - m.r}" y2="${y(q).toFixed(1)}" stroke="#eee"/>`,
      `<text x="${m.l - 6}" y="${(y(q) + 4).toFixed(1)}" text-anchor="end">${q}</text>`,
    );
  }
  parts.push(
    `<text x="${W / 2}" y="${H - 12}" text-anchor="middle">milliseconds</text>`,
    `<text x="16" y="${H / 2}" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">fraction of samples</text>`,
  );
  series.forEach((s, i) => {
    const sorted = [...s.samples].sort((a, b) => a - b);
    const pts = sorted.map((v, k) => `${x(v).toFixed(1)},${y((k + 1) / sorted.length).toFixed(1)}`);
    parts.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${x(sorted[0] ?? lo).toFixed(1)},${y(0)} ${pts.join(' ')}"/>`,
      `<rect x="${m.l + 10}" y="${m.t + 8 + i * 18}" width="12" height="12" fill="${s.color}"/>`,
      `<text x="${m.l + 28}" y="${m.t + 18 + i * 18}">${s.label}: p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms (n=${sorted.length})</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
