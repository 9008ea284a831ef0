// The chart's monitoring objects as helm renders them with no cluster: the PrometheusRule and
// the Grafana dashboard, parsed against the shapes operators' tools read.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { expect } from 'vitest';
import { helm } from '../harness/index.ts';

const ROOT = join(import.meta.dirname, '..', '..');
export const CHART = join(ROOT, 'charts', 'accel-lease');
export const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** `helm template` of one template with the given values; no --kube-version, no cluster. */
export async function render(template: string, set: string): Promise<Record<string, unknown>> {
  const r = await helm([
    'template',
    'accel-lease',
    CHART,
    '--namespace',
    'accel-lease-system',
    '--set',
    set,
    '--show-only',
    `templates/${template}`,
  ]);
  expect(r.code, `helm template: ${r.stderr}`).toBe(0);
  const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as Record<string, unknown>);
  expect(docs).toHaveLength(1);
  return docs[0]!;
}

export const PrometheusRule = z.object({
  kind: z.literal('PrometheusRule'),
  spec: z.object({
    groups: z.array(
      z.object({
        name: z.string(),
        rules: z.array(
          z
            .object({
              alert: z.string(),
              expr: z.string(),
              annotations: z.object({ runbook_url: z.string() }).loose(),
            })
            .loose(),
        ),
      }),
    ),
  }),
});

/** GitHub's anchor for a Markdown heading. */
const anchor = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .replace(/ /g, '-');
export const readmeAnchors = new Set(
  README.split('\n')
    .filter((l) => /^#{1,6} /.test(l))
    .map((l) => anchor(l.replace(/^#+ /, ''))),
);

export async function renderedRules() {
  return PrometheusRule.parse(
    await render('prometheusrule.yaml', 'metrics.prometheusRule.enabled=true'),
  );
}

// The parts of Grafana's dashboard model (schemaVersion 39) this dashboard uses, strictly.
const Target = z.object({
  refId: z.string(),
  datasource: z.object({ type: z.literal('prometheus'), uid: z.literal('${datasource}') }),
  expr: z.string().min(1),
  legendFormat: z.string().optional(),
  format: z.enum(['time_series', 'table', 'heatmap']).optional(),
  instant: z.boolean().optional(),
});
const GridPos = z
  .object({ x: z.int().min(0), y: z.int().min(0), w: z.int().min(1), h: z.int().min(1) })
  .refine((g) => g.x + g.w <= 24, 'a panel must fit the 24 columns of the grid');
const Panel = z.object({
  id: z.int(),
  type: z.enum(['row', 'stat', 'table', 'timeseries', 'heatmap']),
  title: z.string().min(1),
  gridPos: GridPos,
  targets: z.array(Target).optional(),
});
const Dashboard = z.object({
  uid: z.string().regex(/^[a-zA-Z0-9_-]{1,40}$/),
  title: z.string(),
  schemaVersion: z.int().min(36),
  panels: z.array(Panel).min(1),
  templating: z.object({ list: z.array(z.object({ name: z.string(), type: z.string() })) }),
});

export async function renderedDashboard() {
  const cm = await render('dashboard-configmap.yaml', 'metrics.dashboard.enabled=true');
  expect(cm).toMatchObject({
    kind: 'ConfigMap',
    metadata: { namespace: 'accel-lease-system', labels: { grafana_dashboard: '1' } },
  });
  const data = (cm as { data: Record<string, string> }).data;
  return Dashboard.parse(JSON.parse(data['accel-lease.json'] ?? ''));
}
