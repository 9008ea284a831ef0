// The seed's story with a leader-elected controller and a node agent run as users run them: their
// /metrics, scraped while the device is Stuck and after the grant, pass `promtool check metrics`,
// show the reaper's state while it lasts, and serve every metric the chart's alerts and
// dashboard query.
import { describe, expect, it } from 'vitest';
import { promtool, testNamespace } from './harness/index.ts';
import { renderedDashboard, renderedRules } from './monitoring/chart.ts';
import { familyOf, metricNames } from './monitoring/promql.ts';
import {
  api,
  createLease,
  GROUP,
  loaderPinsTenantA,
  phaseIs,
  ready,
  startAgent,
  startController,
  testNode,
  waitFor,
  type Component,
} from './stack/index.ts';

async function scrape(c: Component): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${c.httpPort}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/**
 * What promtool finds in a scrape, one line each. prom-client's own default metrics name three
 * gauges *_total (nodejs_active_handles_total and the like); those are its, not ours.
 */
async function lint(text: string): Promise<string[]> {
  const r = await promtool(['check', 'metrics'], text);
  expect([0, 3], `promtool check metrics exited ${r.code}: ${r.stderr}`).toContain(r.code);
  return (r.stdout + r.stderr)
    .split('\n')
    .filter(Boolean)
    .filter(
      (l) =>
        !/^nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/.test(l),
    );
}

const families = (text: string) =>
  new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1] ?? ''));

describe('/metrics of the controller and the agent', () => {
  it('pass promtool check metrics during the seed story and serve what alerts and dashboard query', async () => {
    const node = await testNode('metrics');
    const accel = `${node}-hl0`;
    const [a, io, b, system] = [
      await testNamespace('team-a'),
      await testNamespace('team-io'),
      await testNamespace('team-b'),
      await testNamespace('accel-system'),
    ];
    const agent = await startAgent({ node, profile: 'dynamic' });
    const controller = await startController({ electionNamespace: system });
    await ready(controller);
    await loaderPinsTenantA(node, accel, a, io);
    await createLease(b, 'tenant-b', {
      accelerator: accel,
      revocation: { gracePeriodSeconds: 3, maxEvictions: 5 },
    });
    await api('DELETE', `${GROUP}/namespaces/${a}/acceleratorleases/tenant-a`);

    const state = `reaper_handoff_state{accelerator="${accel}",state=`;
    // The grace period starts once the waiting lease is marked Blocked, a reconcile later.
    const graceEnd = new RegExp(
      `^reaper_grace_period_end_timestamp_seconds\\{accelerator="${accel}"\\} \\d+`,
      'm',
    );
    const whileStuck = await waitFor('the reaper state and grace end served', async () => {
      const text = await scrape(controller);
      return text.includes(state) && graceEnd.test(text) ? text : undefined;
    });
    expect(whileStuck).toMatch(
      new RegExp(`^leader_election_master_status\\{name="[^"]+"\\} 1$`, 'm'),
    );
    const stuckAgent = await scrape(agent);
    expect(stuckAgent).toContain(`accel_agent_device_phase{device="${accel}",phase="Stuck"} 1`);
    expect(stuckAgent).toContain(`accel_agent_heartbeat_period_seconds{node="${node}"} 5`);

    await phaseIs(b, 'tenant-b', 'Granted', 60_000);
    const [afterCtl, afterAgent] = await Promise.all([scrape(controller), scrape(agent)]);
    expect(afterCtl, 'no reaper state once the device is handed over').not.toContain(state);
    expect(afterCtl).toMatch(
      new RegExp(
        `^accel_lease_accelerator_status\\{accelerator="${accel}",node="${node}",phase="Owned",owner="${b}/tenant-b"\\} 1$`,
        'm',
      ),
    );
    expect(afterCtl).toMatch(/^handoff_duration_seconds_count \d+$/m);
    expect(afterCtl).toMatch(/^evictions_total\{result="evict:[^"]+"\} [1-9]/m);

    for (const [what, text] of [
      ['controller while Stuck', whileStuck],
      ['controller after the grant', afterCtl],
      ['agent while Stuck', stuckAgent],
      ['agent after the grant', afterAgent],
    ] as const) {
      expect(await lint(text), `promtool check metrics on the ${what}`).toEqual([]);
    }

    const served = families(whileStuck + afterCtl + stuckAgent + afterAgent);
    const rules = await renderedRules();
    const dashboard = await renderedDashboard();
    const queries = [
      ...rules.spec.groups.flatMap((g) => g.rules.map((r) => r.expr)),
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
    ];
    const unserved = queries.flatMap((q) => metricNames(q)).filter((n) => !familyOf(n, served));
    expect(unserved, 'metrics queried but not served').toEqual([]);
  });
});
