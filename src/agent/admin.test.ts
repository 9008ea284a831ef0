// The admin API's routes over a simulated node: what each endpoint does to the kernel, and the
// errors it answers with.
import { describe, expect, it } from 'vitest';
import { handleAdmin, type AdminTarget } from './admin.ts';
import { FakeNode, importer, lease } from '../../test/fixtures/agent.ts';
import type { AgentState } from './state.ts';

function target(n: FakeNode) {
  const calls = { mutations: 0, crashed: 0 };
  const t: AdminTarget = {
    get state() {
      return n.state;
    },
    mutate<T>(fn: (s: AgentState) => T): T {
      calls.mutations++;
      return fn(n.state);
    },
    crash: () => calls.crashed++,
  };
  return { t, calls };
}

function scene() {
  const n = new FakeNode('dynamic');
  n.pod('team-a', 'trainer-0');
  n.pod('team-io', 'loader-0');
  n.own({ lease: lease('tenant-a'), epoch: 1 });
  n.declare('weights', {
    lease: 'tenant-a',
    exporter: 'trainer-0',
    importers: [importer('nic0', 'rdma-mr', 'team-io', 'loader-0')],
  });
  n.step();
  return n;
}

describe('admin API', () => {
  it('GET /state answers the state file, kernel included', () => {
    const n = scene();
    const res = handleAdmin('GET', '/state', undefined, target(n).t);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ version: 1, node: 'node-a', kernel: n.kernel().toJSON() });
  });

  it('adds a hidden holder that pins, lists it, and removes it by pid', () => {
    const n = scene();
    const { t, calls } = target(n);
    const added = handleAdmin(
      'POST',
      '/hidden-holders',
      { export: 'team-a/weights', comm: 'gdb' },
      t,
    );
    expect(added.status).toBe(201);
    const pid = (added.body as { pid: number }).pid;
    expect(n.kernel().process(pid)).toMatchObject({ comm: 'gdb', label: null });
    expect(handleAdmin('GET', '/hidden-holders', undefined, t).body).toEqual([added.body]);

    n.own({ epoch: 2 });
    n.deletePod('team-io', 'loader-0');
    expect(n.step().device?.pins?.map((p) => p.pid)).toEqual([pid]);

    expect(handleAdmin('DELETE', `/hidden-holders/${pid}`, undefined, t).status).toBe(200);
    expect(n.kernel().process(pid)).toBeUndefined();
    expect(n.step().device?.phase).toBe('Free');
    expect(calls.mutations).toBe(2);
  });

  it('refuses what it cannot do, with a reason', () => {
    const n = scene();
    const { t } = target(n);
    expect(handleAdmin('POST', '/hidden-holders', { export: 'x/y' }, t)).toMatchObject({
      status: 404,
      body: { error: 'no realized DmaBufExport x/y on node node-a' },
    });
    expect(handleAdmin('POST', '/hidden-holders', {}, t).status).toBe(400);
    expect(handleAdmin('POST', '/hidden-holders', 'text', t).status).toBe(400);
    expect(handleAdmin('DELETE', '/hidden-holders/99999', undefined, t).status).toBe(404);
    expect(handleAdmin('PUT', '/slow-revoke', { delayMs: -1 }, t).status).toBe(400);
    expect(handleAdmin('GET', '/crash', undefined, t).status).toBe(405);
    expect(handleAdmin('GET', '/nope', undefined, t).status).toBe(404);
    // A revoked buffer takes no new importer.
    n.own({ epoch: 2 });
    n.step();
    const late = handleAdmin('POST', '/hidden-holders', { export: 'team-a/weights' }, t);
    expect(late.status).toBe(409);
    expect((late.body as { error: string }).error).toMatch(/cannot take new importers/);
    expect(
      n
        .kernel()
        .processes()
        .filter((p) => p.label === null),
    ).toEqual([]);
  });

  it('sets the slow revoke and crashes only after answering', () => {
    const n = scene();
    const { t, calls } = target(n);
    expect(handleAdmin('PUT', '/slow-revoke', { delayMs: 2500 }, t).body).toEqual({
      delayMs: 2500,
    });
    expect(n.state.slowRevokeMs).toBe(2500);
    expect(handleAdmin('GET', '/slow-revoke', undefined, t).body).toEqual({ delayMs: 2500 });
    const crash = handleAdmin('POST', '/crash', undefined, t);
    expect(crash.status).toBe(202);
    expect(calls.crashed).toBe(0);
    crash.after?.();
    expect(calls.crashed).toBe(1);
  });
});
