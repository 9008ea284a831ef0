import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FakeClock, flushMicrotasks } from './clock.ts';
import { KubeApiError } from './errors.ts';
import type { Lease, LeaseSpec } from './event-types.ts';
import {
  decideLeadership,
  electionProblem,
  nextLeaseSpec,
  releasedLeaseSpec,
  type ElectionState,
} from './leader-decision.ts';
import { LeaderElector, type LeaseStore } from './leader-election.ts';

const base: ElectionState = {
  identity: 'me',
  now: 100_000,
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  observed: undefined,
  observedAt: 100_000,
  leading: false,
  lastRenewAt: undefined,
};
const held = (holder: string, extra: LeaseSpec = {}): LeaseSpec => ({
  holderIdentity: holder,
  leaseDurationSeconds: 15,
  ...extra,
});

describe('decideLeadership', () => {
  it('creates the Lease when none exists', () => {
    expect(decideLeadership(base)).toEqual({ action: 'create' });
  });

  it('waits while another holder renewed within the lease duration (by our clock)', () => {
    const d = decideLeadership({ ...base, observed: held('other'), observedAt: 90_000 });
    expect(d).toEqual({ action: 'wait', holder: 'other', expiresInMs: 5_000 });
  });

  it('acquires once the lease has not changed for a whole lease duration', () => {
    expect(decideLeadership({ ...base, observed: held('other'), observedAt: 85_000 })).toEqual({
      action: 'acquire',
      previousHolder: 'other',
    });
  });

  it("ignores the holder's own timestamps: a far-future renewTime does not extend the lease", () => {
    const observed = held('other', { renewTime: '2999-01-01T00:00:00.000000Z' });
    expect(decideLeadership({ ...base, observed, observedAt: 80_000 }).action).toBe('acquire');
  });

  it('uses the record leaseDurationSeconds over our own default', () => {
    const observed = held('other', { leaseDurationSeconds: 60 });
    expect(decideLeadership({ ...base, observed, observedAt: 60_000 }).action).toBe('wait');
  });

  it('acquires a released lease (no holder) at once', () => {
    expect(decideLeadership({ ...base, observed: { leaseDurationSeconds: 1 } })).toEqual({
      action: 'acquire',
      previousHolder: '',
    });
  });

  it('renews its own lease, and resumes one it held before a restart', () => {
    const observed = held('me');
    expect(decideLeadership({ ...base, observed, leading: true, lastRenewAt: 98_000 })).toEqual({
      action: 'renew',
    });
    expect(decideLeadership({ ...base, observed })).toEqual({ action: 'renew' });
  });

  it('is lost when another identity holds the lease we think we lead', () => {
    const d = decideLeadership({
      ...base,
      observed: held('thief'),
      leading: true,
      lastRenewAt: 99_000,
    });
    expect(d).toEqual({ action: 'lost', reason: 'lease is held by thief' });
  });

  it('is lost when the last successful renew is older than the renew deadline', () => {
    const d = decideLeadership({
      ...base,
      observed: held('me'),
      leading: true,
      lastRenewAt: 89_999,
    });
    expect(d.action).toBe('lost');
    const ok = decideLeadership({
      ...base,
      observed: held('me'),
      leading: true,
      lastRenewAt: 90_000,
    });
    expect(ok.action).toBe('renew');
  });
});

describe('lease records', () => {
  it('counts a transition only when the lease changes hands', () => {
    const prev = held('other', { leaseTransitions: 4, acquireTime: 'then' });
    expect(
      nextLeaseSpec({ action: 'acquire', previousHolder: 'other' }, prev, 'me', 0, 15_000),
    ).toEqual({
      holderIdentity: 'me',
      leaseDurationSeconds: 15,
      acquireTime: '1970-01-01T00:00:00.000000Z',
      renewTime: '1970-01-01T00:00:00.000000Z',
      leaseTransitions: 5,
    });
    const renewed = nextLeaseSpec(
      { action: 'renew' },
      held('me', { leaseTransitions: 5, acquireTime: 'then' }),
      'me',
      1500,
      15_000,
    );
    expect(renewed).toMatchObject({
      leaseTransitions: 5,
      acquireTime: 'then',
      renewTime: '1970-01-01T00:00:01.500000Z',
    });
    expect(releasedLeaseSpec(renewed, 0)).toMatchObject({
      leaseDurationSeconds: 1,
      leaseTransitions: 5,
    });
    expect(releasedLeaseSpec(renewed, 0).holderIdentity).toBeUndefined();
  });
});

describe('electionProblem', () => {
  const at = { namespace: 'accel-lease-system', name: 'accel-lease-controller' };

  it('tells the operator to create a missing namespace, or to pick another', () => {
    expect(electionProblem({ ...at, verb: 'create', code: 404 })).toEqual({
      cause: 'namespace accel-lease-system missing',
      message:
        'leader election: namespace accel-lease-system does not exist: create it ' +
        '(kubectl create namespace accel-lease-system) or pass --leader-election-namespace',
    });
  });

  it('names the refused verb, the Lease, the namespace and the RBAC to grant', () => {
    const p = electionProblem({
      ...at,
      verb: 'get',
      code: 403,
      detail: 'User "system:serviceaccount:x:y" cannot get resource "leases"',
    });
    expect(p?.message).toBe(
      'leader election: forbidden to get leases.coordination.k8s.io accel-lease-controller in ' +
        "namespace accel-lease-system: grant this controller's ServiceAccount a Role and " +
        'RoleBinding in accel-lease-system allowing create on leases and get, update on leases ' +
        'named accel-lease-controller (apiGroups: coordination.k8s.io) (the API server said: ' +
        'User "system:serviceaccount:x:y" cannot get resource "leases")',
    );
    // One cause per verb: a replica refused get and then update has two things to report.
    expect(p?.cause).not.toBe(electionProblem({ ...at, verb: 'update', code: 403 })?.cause);
  });

  it('leaves to retrying what retrying may fix', () => {
    for (const code of [0, undefined, 409, 429, 500, 503]) {
      expect(electionProblem({ ...at, verb: 'create', code })).toBeUndefined();
    }
    // A 404 on get is no Lease yet; on update, one deleted since it was read.
    expect(electionProblem({ ...at, verb: 'get', code: 404 })).toBeUndefined();
    expect(electionProblem({ ...at, verb: 'update', code: 404 })).toBeUndefined();
  });
});

/** A Lease store with the API server's optimistic concurrency on resourceVersion. */
class MemoryLeaseStore implements LeaseStore {
  lease: Lease | undefined;
  private rv = 0;
  failing = false;
  /** The namespace does not exist: reads find nothing, creates are refused with 404. */
  noNamespace = false;
  /** Verbs refused with 403. */
  forbidden = new Set<string>();
  /** Requests never answered (a hung server) until their signal aborts. */
  hanging = false;
  calls: string[] = [];

  private async answer<T>(verb: string, signal: AbortSignal | undefined, ok: () => T): Promise<T> {
    this.calls.push(verb);
    if (this.hanging) {
      await new Promise((_, reject) =>
        signal?.addEventListener('abort', () => reject(signal.reason as Error)),
      );
    }
    if (this.failing) throw new KubeApiError(verb, '/leases', 0);
    if (this.forbidden.has(verb)) {
      throw new KubeApiError(verb, '/leases', 403, { reason: 'Forbidden', message: 'no' });
    }
    return ok();
  }

  find(_name: string, _ns?: string, signal?: AbortSignal): Promise<Lease | undefined> {
    return this.answer('get', signal, () =>
      this.lease && !this.noNamespace ? structuredClone(this.lease) : undefined,
    );
  }
  create(lease: Lease, opts?: { signal?: AbortSignal }): Promise<Lease> {
    return this.answer('create', opts?.signal, () => this.doCreate(lease));
  }
  replace(lease: Lease, opts?: { signal?: AbortSignal }): Promise<Lease> {
    return this.answer('update', opts?.signal, () => this.doReplace(lease));
  }

  private doCreate(lease: Lease): Lease {
    if (this.noNamespace) {
      throw new KubeApiError('POST', '/leases', 404, {
        reason: 'NotFound',
        message: 'namespaces "ns" not found',
      });
    }
    if (this.lease) throw new KubeApiError('POST', '/leases', 409, { reason: 'AlreadyExists' });
    return this.store(lease);
  }
  private doReplace(lease: Lease): Lease {
    if (lease.metadata.resourceVersion !== this.lease?.metadata.resourceVersion) {
      throw new KubeApiError('PUT', '/leases', 409, { reason: 'Conflict' });
    }
    return this.store(lease);
  }
  /** As the server does: a write bumps the resourceVersion (a test may do so behind our back). */
  store(lease: Lease): Lease {
    this.lease = {
      ...structuredClone(lease),
      metadata: { ...lease.metadata, resourceVersion: String(++this.rv) },
    };
    return structuredClone(this.lease);
  }
}

function elector(
  identity: string,
  store: LeaseStore,
  clock: FakeClock,
  extra: { registry?: Registry; releaseOnCancel?: boolean; logger?: Logger } = {},
) {
  const log: string[] = [];
  let signal: AbortSignal | undefined;
  const e = new LeaderElector(undefined, {
    namespace: 'ns',
    name: 'accel-lease-controller',
    identity,
    store,
    clock,
    random: () => 0,
    ...extra,
    onStartedLeading: (s) => {
      signal = s;
      log.push('started');
    },
    onStoppedLeading: () => log.push('stopped'),
  });
  return { e, log, signal: () => signal };
}

/** A logger whose JSON lines the test reads back; at(level) gives the messages at that level. */
function captureLog() {
  const lines: Array<Record<string, unknown> & { level: number; msg: string }> = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => lines.push(JSON.parse(line) as (typeof lines)[number]) },
  );
  return {
    logger,
    lines,
    at: (level: number) => lines.filter((l) => l.level === level).map((l) => l.msg),
  };
}

async function tick(clock: FakeClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 500) await clock.advanceAsync(500);
}

/** Elector `a` alone on a fresh store, leading one second after it started. */
async function leadingAlone(extra: { releaseOnCancel?: boolean } = {}) {
  const clock = new FakeClock(1_000_000);
  const store = new MemoryLeaseStore();
  const a = elector('a', store, clock, extra);
  void a.e.run();
  await tick(clock, 1000);
  expect(a.e.isLeader()).toBe(true);
  return { clock, store, a };
}

describe('LeaderElector', () => {
  it('one of two candidates leads; when it stops, the other takes over after the lease expires', async () => {
    const clock = new FakeClock(1_000_000);
    const store = new MemoryLeaseStore();
    const registry = new Registry();
    const a = elector('a', store, clock, { registry });
    const b = elector('b', store, clock);
    void a.e.run();
    await flushMicrotasks();
    void b.e.run();
    await tick(clock, 3000);
    expect(a.e.isLeader()).toBe(true);
    expect(b.e.isLeader()).toBe(false);
    expect(b.e.leader()).toBe('a');
    expect(b.e.ready()).toBe(true); // a healthy standby
    expect(await registry.metrics()).toContain(
      'leader_election_master_status{name="accel-lease-controller"} 1',
    );

    await a.e.stop();
    expect(a.signal()?.aborted).toBe(true);
    expect(a.log).toEqual(['started', 'stopped']);
    expect(await registry.metrics()).toContain(
      'leader_election_master_status{name="accel-lease-controller"} 0',
    );
    await tick(clock, 10_000);
    expect(b.e.isLeader()).toBe(false); // the lease has not expired yet
    await tick(clock, 8_000);
    expect(b.e.isLeader()).toBe(true);
    expect(store.lease?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    await b.e.stop();
  });

  it('releaseOnCancel lets the successor take over on its next try', async () => {
    const clock = new FakeClock(1_000_000);
    const store = new MemoryLeaseStore();
    const a = elector('a', store, clock, { releaseOnCancel: true });
    const b = elector('b', store, clock);
    void a.e.run();
    await flushMicrotasks();
    void b.e.run();
    await tick(clock, 2000);
    expect(a.e.isLeader()).toBe(true);
    await a.e.stop();
    expect(store.lease?.spec?.holderIdentity).toBeUndefined();
    await tick(clock, 5000);
    expect(b.e.isLeader()).toBe(true);
    await b.e.stop();
  });

  it('aborts the signal exactly at the renew deadline when renewals fail', async () => {
    const { clock, store, a } = await leadingAlone();
    const lastRenew = clock.now() - 1000; // acquired at the start
    store.failing = true;
    let abortedAt: number | undefined;
    a.signal()?.addEventListener('abort', () => (abortedAt = clock.now()));
    await tick(clock, 15_000);
    expect(a.e.isLeader()).toBe(false);
    expect(abortedAt).toBeDefined();
    expect(abortedAt! - lastRenew).toBeLessThanOrEqual(10_000);
    expect(a.log).toEqual(['started', 'stopped']);
    expect(a.e.ready()).toMatch(/^cannot read the election Lease ns\/accel-lease-controller: /);
    // When the server comes back, it campaigns again and (holding the lease still) resumes.
    store.failing = false;
    await tick(clock, 5000);
    expect(a.e.isLeader()).toBe(true);
    expect(a.log).toEqual(['started', 'stopped', 'started']);
    await a.e.stop();
  });

  it('fences by the clock: after a pause past the renew deadline, the first write asked about is refused before any timer runs', async () => {
    const fake = new FakeClock(1_000_000);
    // A process resumed from SIGSTOP: its clock jumped, its timers have not run yet.
    let jumped = 0;
    const resumed = {
      now: () => fake.now() + jumped,
      setTimeout: (fn: () => void, ms: number) => fake.setTimeout(fn, ms),
      sleep: (ms: number, signal?: AbortSignal) => fake.sleep(ms, signal),
    };
    const store = new MemoryLeaseStore();
    const a = elector('a', store, resumed as unknown as FakeClock);
    void a.e.run();
    await tick(fake, 1000);
    expect(a.e.isLeader()).toBe(true);
    expect(a.e.fence()).toBe(true);
    // It last renewed when it acquired, a second before the pause.
    jumped = 8_999; // 9.999 s since that renewal: inside the 10 s renew deadline
    expect(a.e.fence()).toBe(true);
    jumped = 9_000;
    expect(a.e.fence()).toBe(false);
    expect(a.signal()?.aborted).toBe(true);
    expect(a.log).toEqual(['started', 'stopped']);
    await a.e.stop();
  });

  it('gives up at once when it sees another holder', async () => {
    const { clock, store, a } = await leadingAlone();
    store.lease!.spec = { holderIdentity: 'usurper', leaseDurationSeconds: 15 };
    await tick(clock, 2500);
    expect(a.e.isLeader()).toBe(false);
    expect(a.signal()?.aborted).toBe(true);
    await a.e.stop();
  });

  it('says once that the namespace is missing, stays unready saying so, and leads once it exists', async () => {
    const clock = new FakeClock(1_000_000);
    const store = new MemoryLeaseStore();
    store.noNamespace = true;
    const logs = captureLog();
    const a = elector('a', store, clock, { logger: logs.logger });
    void a.e.run();
    await tick(clock, 20_000);
    expect(store.calls.filter((c) => c === 'create').length).toBeGreaterThan(5);
    const missing =
      'leader election: namespace ns does not exist: create it (kubectl create namespace ns) ' +
      'or pass --leader-election-namespace';
    expect(logs.at(50)).toEqual([missing]);
    expect(logs.at(40)).toEqual([]); // no warning per retry either
    expect(a.e.ready()).toBe(missing);

    store.noNamespace = false;
    await tick(clock, 5_000);
    expect(a.e.isLeader()).toBe(true);
    expect(a.e.ready()).toBe(true);
    expect(logs.lines.some((l) => l.resolved === missing)).toBe(true);
    expect(logs.at(50)).toHaveLength(1);
    await a.e.stop();
  });

  it('names a refused verb once per verb, and reports it as the readiness reason', async () => {
    const clock = new FakeClock(1_000_000);
    const store = new MemoryLeaseStore();
    store.forbidden.add('get');
    const logs = captureLog();
    const a = elector('a', store, clock, { logger: logs.logger });
    void a.e.run();
    await tick(clock, 10_000);
    expect(logs.at(50)).toHaveLength(1);
    expect(logs.at(50)[0]).toMatch(
      /^leader election: forbidden to get leases\.coordination\.k8s\.io /,
    );
    expect(a.e.ready()).toBe(logs.at(50)[0]);
    store.forbidden = new Set(['create']);
    await tick(clock, 10_000);
    expect(logs.at(50)).toHaveLength(2);
    expect(logs.at(50)[1]).toMatch(/forbidden to create leases/);
    expect(a.e.isLeader()).toBe(false);
    await a.e.stop();
  });

  it('stop() of a standby cancels a request the server never answers', async () => {
    const clock = new FakeClock(1_000_000);
    const store = new MemoryLeaseStore();
    store.lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'accel-lease-controller', namespace: 'ns', resourceVersion: '1' },
      spec: held('other'),
    };
    const b = elector('b', store, clock);
    void b.e.run();
    await tick(clock, 1000);
    store.hanging = true;
    await tick(clock, 5000);
    expect(store.calls.at(-1)).toBe('get');
    let stopped = false;
    void b.e.stop().then(() => (stopped = true));
    await flushMicrotasks();
    expect(stopped).toBe(true);
    expect(clock.pending()).toBe(0);
  });

  it('releases on stop even when a cancelled renew reached the server first', async () => {
    const { store, a } = await leadingAlone({ releaseOnCancel: true });
    // The renew in flight landed: our copy of the Lease is one version behind.
    store.store(store.lease!);
    await a.e.stop();
    expect(store.lease?.spec?.holderIdentity).toBeUndefined();
  });

  it('rejects timings that cannot be safe', () => {
    const store = new MemoryLeaseStore();
    const opts = { namespace: 'ns', name: 'x', identity: 'a', store, onStartedLeading: () => {} };
    expect(() => new LeaderElector(undefined, { ...opts, leaseDurationMs: 10_000 })).toThrow(
      /greater than the renew deadline/,
    );
    expect(() => new LeaderElector(undefined, { ...opts, retryPeriodMs: 10_000 })).toThrow(
      /greater than the retry period/,
    );
  });
});
