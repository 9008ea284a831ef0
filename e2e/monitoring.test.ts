// The chart's alerts and dashboard as an operator gets them: rendered by helm with no cluster,
// the alerts run through Prometheus' own rules engine (`promtool test rules`) on series shaped
// like the components' /metrics, the dashboard parsed against the Grafana model it relies on,
// and each alert's runbook and each dashboard panel present in the README.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { helm, promtool } from './harness/index.ts';
import {
  CHART,
  PrometheusRule,
  README,
  readmeAnchors,
  render,
  renderedDashboard,
  renderedRules,
} from './monitoring/chart.ts';
import { DASHBOARD_JSON, LAYOUT_SVG, layoutSvg } from './monitoring/dashboard-layout.ts';
import { metricNames } from './monitoring/promql.ts';

describe('alerts', () => {
  it('pass promtool test rules, rendered as the chart ships them', async () => {
    const rule = await renderedRules();
    const dir = mkdtempSync(join(tmpdir(), 'accel-rules-'));
    writeFileSync(join(dir, 'rules.yaml'), JSON.stringify({ groups: rule.spec.groups }));
    copyFileSync(
      join(import.meta.dirname, 'monitoring', 'rules.test.yaml'),
      join(dir, 'test.yaml'),
    );
    const check = await promtool(['check', 'rules', join(dir, 'rules.yaml')]);
    expect(check.stderr + check.stdout).toContain('SUCCESS: 7 rules found');
    const test = await promtool(['test', 'rules', join(dir, 'test.yaml')]);
    expect(test.stdout + test.stderr, 'promtool test rules').toContain('SUCCESS');
    expect(test.code).toBe(0);
  });

  it('each have a runbook in the README', async () => {
    const rule = await renderedRules();
    const urls = rule.spec.groups.flatMap((g) => g.rules.map((r) => r.annotations.runbook_url));
    expect(urls).toHaveLength(7);
    const missing = urls.filter((u) => !readmeAnchors.has(u.replace(/^.*#/, '')));
    expect(missing).toEqual([]);
  });

  it('are off by default, refuse a misspelt value, and alert on no leader only with election', async () => {
    const none = await helm([
      'template',
      'x',
      CHART,
      '--show-only',
      'templates/prometheusrule.yaml',
    ]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('could not find template');
    const typo = await helm([
      'template',
      'x',
      CHART,
      '--set',
      'metrics.prometheusRule.enable=true',
    ]);
    expect(typo.stderr).toContain("at '/metrics/prometheusRule': additional properties 'enable'");
    const noElection = PrometheusRule.parse(
      await render(
        'prometheusrule.yaml',
        'metrics.prometheusRule.enabled=true,controller.leaderElection.enabled=false,controller.replicas=1',
      ),
    );
    const alerts = noElection.spec.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts).toHaveLength(6);
    expect(alerts).not.toContain('AccelLeaseNoLeader');
  });
});

describe('dashboard', () => {
  it('renders as a ConfigMap for the Grafana sidecar, with a valid dashboard in it', async () => {
    const d = await renderedDashboard();
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(d.templating.list.map((v) => v.name)).toEqual([
      'datasource',
      'namespace',
      'agent_namespace',
    ]);
    const panels = d.panels.filter((p) => p.type !== 'row');
    for (const p of panels) expect(p.targets?.length, p.title).toBeGreaterThan(0);
    // Every query is PromQL naming at least one metric, scoped to the chosen namespace: the
    // agent's namespace for the agents' metrics, the release's for the controller's.
    for (const t of panels.flatMap((p) => p.targets ?? [])) {
      const names = metricNames(t.expr);
      expect(names.length, t.expr).toBeGreaterThan(0);
      const agent = names.every((n) => n.startsWith('accel_agent_'));
      expect(t.expr).toContain(agent ? 'namespace=~"$agent_namespace"' : 'namespace=~"$namespace"');
    }
  });

  it('has its layout drawing in the README up to date with its JSON', () => {
    const drawn = layoutSvg(readFileSync(DASHBOARD_JSON, 'utf8'));
    expect(
      readFileSync(LAYOUT_SVG, 'utf8') === drawn,
      'run node e2e/monitoring/dashboard-layout.ts',
    ).toBe(true);
    expect(README).toContain('](charts/accel-lease/dashboards/accel-lease.layout.svg)');
  });

  it('has each of its panels in the README', async () => {
    const d = await renderedDashboard();
    const titles = d.panels.filter((p) => p.type !== 'row').map((p) => p.title);
    const cell = (t: string) =>
      new RegExp(`\\|\\s*${t.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\s*\\|`);
    const missing = titles.filter((t) => !cell(t).test(README));
    expect(missing).toEqual([]);
  });
});
