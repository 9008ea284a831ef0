// Property: the view's lease indexes, moved one changed lease at a time, read the same as a view
// built from scratch over the same caches. Random sequences of lease adds, updates, deletes and
// recreations, leases that break the schema, namespace policy changes and the clock moving on go
// through one view's notice(); after each step a fresh view is compared on every read, and the
// leases reported as moving in or out of their namespace's limit are exactly those that moved.
// Set VIEW_PROPERTY_SEED to replay a run; the seed is printed on every run.
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { V1Namespace } from '@kubernetes/client-node';
import {
  LEASE_POLICY_LABEL,
  targetOf,
  type Accelerator,
  type AcceleratorLease,
  type AcceleratorLeasePolicy,
  type EvictionRecord,
} from '../crds/index.ts';
import type { Change } from './keys.ts';
import { overNamespaceLimit } from './namespace-limit.ts';
import { MapStore } from '../../test/simulation/caches.ts';
import { ControllerView, type Admitted, type Caches } from './view.ts';

const seed = Number(process.env.VIEW_PROPERTY_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`view property: seed ${seed} (replay with VIEW_PROPERTY_SEED=${seed})`);
const params = { seed, numRuns: Number(process.env.VIEW_PROPERTY_RUNS ?? 200) };

const T0 = Date.parse('2026-12-01T00:00:00Z');
const iso = (t: number) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
const NAMESPACES = ['team-a', 'team-b', 'team-c'];
const DEVICES = ['dev-0', 'dev-1', 'dev-2'];
const POLICIES = ['default', 'tight'];

/** One lease as a test step writes it; the world adds uid, resourceVersion and generation. */
const leaseShape = fc.record({
  // Most in one namespace, so that it often has more leases than its limit.
  ns: fc.constantFrom('team-a', 'team-a', ...NAMESPACES),
  name: fc.constantFrom('l0', 'l1', 'l2', 'l3', 'l4'),
  // A device by name, or a selector lease that placement did (or did not yet) put on one.
  target: fc.constantFrom(...DEVICES, 'selector'),
  placed: fc.option(fc.constantFrom(...DEVICES), { nil: undefined }),
  priority: fc.integer({ min: 0, max: 2 }),
  createdS: fc.integer({ min: 0, max: 5 }),
  // Mostly leases that wait: deleted leases and ones handed a device always keep their place.
  deleted: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
  phase: fc.constantFrom(
    undefined,
    undefined,
    'Pending',
    'Pending',
    'Granted',
    'Expired',
    'Released',
  ),
  epoch: fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
  ),
  // Granted this long before the step's clock, for a duration that the clock may pass.
  grantedAgoS: fc.option(fc.integer({ min: 0, max: 90 }), { nil: undefined }),
  duration: fc.constantFrom(undefined, '30s', '2m'),
  expiresInS: fc.option(fc.integer({ min: -10, max: 120 }), { nil: undefined, freq: 2 }),
  records: fc.array(
    fc.record({
      pod: fc.constantFrom('p0', 'p1', 'p2'),
      result: fc.constantFrom('Evicting', 'Evicted', 'Planned' as const),
      agoS: fc.integer({ min: 0, max: 120 }),
    }),
    { maxLength: 2 },
  ),
  invalid: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
});
type LeaseShape = typeof leaseShape extends fc.Arbitrary<infer T> ? T : never;

const step = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('put' as const), lease: leaseShape }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('recreate' as const), lease: leaseShape }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('delete' as const),
      ns: fc.constantFrom(...NAMESPACES),
      name: fc.constantFrom('l0', 'l1', 'l2', 'l3', 'l4'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('label' as const),
      ns: fc.constantFrom(...NAMESPACES),
      policy: fc.constantFrom(undefined, ...POLICIES, 'missing'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('policy' as const),
      name: fc.constantFrom(...POLICIES),
      maxLeases: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('tick' as const),
      ms: fc.integer({ min: 0, max: 60_000 }),
    }),
  },
  // Read only part of the view: the rest must catch up on its own later read.
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('peek' as const),
      read: fc.constantFrom('leases', 'byTarget', 'lease', 'admitted', 'records'),
    }),
  },
);
type Step = typeof step extends fc.Arbitrary<infer T> ? T : never;

/** The caches, the view under test (told of every change), and what it reported moving. */
class World {
  readonly leases = new MapStore<AcceleratorLease>();
  readonly namespaces = new MapStore<V1Namespace>();
  readonly policies = new MapStore<AcceleratorLeasePolicy>();
  readonly caches: Caches = {
    accelerators: new MapStore<Accelerator>(),
    leases: this.leases,
    exports: new MapStore(),
    pods: new MapStore(),
    namespaces: this.namespaces,
    leasePolicies: this.policies,
    pdbs: new MapStore(),
  };
  now = T0;
  private version = 0;
  private uids = 0;
  readonly moved: string[] = [];
  movedTotal = 0;
  /** The over-limit uids as of the incremental view's last admitted(). */
  private lastOver = new Set<string>();
  readonly view = new ControllerView(this.caches, {
    log: pino({ level: 'silent' }),
    onAdmissionChanged: (l) => {
      this.moved.push(l.metadata.uid ?? '');
      this.movedTotal++;
    },
  });

  constructor() {
    for (const ns of NAMESPACES) this.namespaces.items.set(ns, { metadata: { name: ns } });
    this.setPolicy('default', 2);
    this.setPolicy('tight', 1);
  }

  apply(s: Step): void {
    switch (s.op) {
      case 'put': {
        const old = this.leases.get(`${s.lease.ns}/${s.lease.name}`);
        this.putLease(s.lease, old?.metadata.uid ?? this.uid(), old);
        break;
      }
      case 'recreate': {
        const key = `${s.lease.ns}/${s.lease.name}`;
        const old = this.leases.get(key);
        if (old) {
          this.leases.items.delete(key);
          this.notice({ resource: 'leases', type: 'delete', obj: old });
        }
        this.putLease(s.lease, this.uid(), undefined);
        break;
      }
      case 'delete': {
        const key = `${s.ns}/${s.name}`;
        const old = this.leases.get(key);
        if (!old) break;
        this.leases.items.delete(key);
        this.notice({ resource: 'leases', type: 'delete', obj: old });
        break;
      }
      case 'label': {
        const labels = s.policy === undefined ? undefined : { [LEASE_POLICY_LABEL]: s.policy };
        this.namespaces.items.set(s.ns, { metadata: { name: s.ns, ...(labels && { labels }) } });
        this.notice({ resource: 'namespaces', type: 'update' });
        break;
      }
      case 'policy':
        if (s.maxLeases === undefined) this.policies.items.delete(s.name);
        else this.setPolicy(s.name, s.maxLeases);
        this.notice({ resource: 'leasePolicies', type: 'update' });
        break;
      case 'tick':
        this.now += s.ms;
        break;
      case 'peek':
        if (s.read === 'leases') this.view.leases();
        if (s.read === 'byTarget') this.view.leasesByTarget();
        if (s.read === 'lease') this.view.lease('team-a/l0');
        if (s.read === 'admitted') this.admitted();
        if (s.read === 'records') this.view.evictionsInLastMinute(this.now);
        break;
    }
  }

  /** The view under test's admitted(), checking it reported exactly the leases that moved. */
  admitted(): Admitted {
    const a = this.view.admitted(this.now);
    const over = new Set(a.over.keys());
    const moved = [
      ...[...over].filter((u) => !this.lastOver.has(u)),
      ...[...this.lastOver].filter((u) => !over.has(u)),
    ];
    expect([...this.moved].sort(), 'the leases reported as moving').toEqual(moved.sort());
    this.moved.length = 0;
    this.lastOver = over;
    return a;
  }

  private notice(c: Change): void {
    this.view.notice(c);
  }

  private uid(): string {
    return `uid-${++this.uids}`;
  }

  private setPolicy(name: string, maxLeases: number): void {
    this.policies.items.set(name, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'AcceleratorLeasePolicy',
      metadata: { name, uid: `policy-${name}`, resourceVersion: String(++this.version) },
      spec: { maxLeasesPerNamespace: maxLeases },
    } as AcceleratorLeasePolicy);
  }

  private putLease(s: LeaseShape, uid: string, old: AcceleratorLease | undefined): void {
    const records: EvictionRecord[] = s.records.map((r, i) => ({
      pod: { namespace: s.ns, name: r.pod },
      uid: `pod-${r.pod}`,
      reason: 'pins the device',
      result: r.result,
      ...(r.result !== 'Planned' && {
        started: iso(this.now - r.agoS * 1000),
        attempts: i + 1,
        lastAttemptTime: iso(this.now - r.agoS * 1000),
      }),
    }));
    const status = {
      ...(s.phase && { phase: s.phase }),
      ...(s.epoch !== undefined && { epoch: s.epoch }),
      ...(s.target === 'selector' && s.placed && { accelerator: s.placed }),
      ...(s.grantedAgoS !== undefined && { grantedAt: iso(this.now - s.grantedAgoS * 1000) }),
      ...(s.expiresInS !== undefined && { expiresAt: iso(this.now + s.expiresInS * 1000) }),
      ...(records.length > 0 && { evictions: records }),
    };
    const lease: AcceleratorLease = {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'AcceleratorLease',
      metadata: {
        name: s.name,
        namespace: s.ns,
        uid,
        resourceVersion: String(++this.version),
        generation: (old?.metadata.generation ?? 0) + 1,
        creationTimestamp: old?.metadata.creationTimestamp ?? iso(T0 + s.createdS * 1000),
        ...(s.deleted && { deletionTimestamp: iso(this.now) }),
      },
      spec: {
        ...(s.target === 'selector'
          ? { selector: { matchLabels: { pool: 'a' } } }
          : { accelerator: s.target }),
        holder: { podSelector: { matchLabels: { app: s.name } } },
        priority: s.priority,
        revocation: { gracePeriodSeconds: 30, maxEvictions: 5 },
        ...(s.duration && { duration: s.duration }),
      },
      ...(Object.keys(status).length > 0 && { status }),
    };
    // A lease the schema refuses (written before a stricter CRD): the view skips it.
    const stored = s.invalid ? { ...lease, spec: { ...lease.spec, priority: 'high' } } : lease;
    this.leases.items.set(`${s.ns}/${s.name}`, stored as AcceleratorLease);
    this.notice({
      resource: 'leases',
      type: old ? 'update' : 'add',
      obj: stored as AcceleratorLease,
      ...(old && { old }),
    });
  }
}

/** What a lease is, for comparing two views' copies of it. */
const id = (l: AcceleratorLease) => `${l.metadata.uid}@${l.metadata.resourceVersion}`;
const ids = (ls: readonly AcceleratorLease[]) => ls.map(id).sort();
const byTarget = (m: ReadonlyMap<string, readonly AcceleratorLease[]>) =>
  Object.fromEntries(
    [...m]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([t, ls]): [string, string[]] => [t, ids(ls)]),
  );
const overOf = (a: Admitted) =>
  Object.fromEntries(
    [...a.over].map(([uid, o]) => [uid, { lease: id(o.lease), limit: o.limit, within: o.within }]),
  );

/** Every read of the view under test against a view built now from the same caches. */
function compare(w: World): void {
  const fresh = new ControllerView(w.caches, {
    log: pino({ level: 'silent' }),
    onAdmissionChanged: () => undefined,
  });
  const a = w.admitted();
  const b = fresh.admitted(w.now);
  expect(overOf(a), 'admitted().over').toEqual(overOf(b));
  expect(byTarget(a.byTarget), 'admitted().byTarget').toEqual(byTarget(b.byTarget));
  expect(ids(a.leases), 'admitted().leases').toEqual(ids(b.leases));
  expect(ids(a.unplaced), 'admitted().unplaced').toEqual(ids(b.unplaced));
  checkFresh(w, fresh);
  expect(ids(w.view.leases()), 'leases()').toEqual(ids(fresh.leases()));
  expect(byTarget(w.view.leasesByTarget()), 'leasesByTarget()').toEqual(
    byTarget(fresh.leasesByTarget()),
  );
  for (const ns of NAMESPACES) {
    expect(ids(w.view.leasesIn(ns)), `leasesIn(${ns})`).toEqual(ids(fresh.leasesIn(ns)));
    for (const name of ['l0', 'l1', 'l2', 'l3', 'l4']) {
      const key = `${ns}/${name}`;
      const [x, y] = [w.view.lease(key), fresh.lease(key)];
      expect(x && id(x), `lease(${key})`).toEqual(y && id(y));
    }
  }
  expect(w.view.evictionsInLastMinute(w.now)).toBe(fresh.evictionsInLastMinute(w.now));
  for (const d of [...DEVICES, 'elsewhere']) {
    expect([...w.view.evictingElsewhere(d)].sort(), `evictingElsewhere(${d})`).toEqual(
      [...fresh.evictingElsewhere(d)].sort(),
    );
  }
}

/**
 * The fresh view's verdict against overNamespaceLimit over all its leases at once: the view
 * computes it one namespace at a time, and skips namespaces within their limit.
 */
function checkFresh(w: World, fresh: ControllerView): void {
  const limitOf = (ns: string) => {
    const policy = w.namespaces.get(ns)?.metadata?.labels?.[LEASE_POLICY_LABEL] ?? 'default';
    const p = w.policies.get(policy);
    return p && { policy, maxLeases: p.spec.maxLeasesPerNamespace };
  };
  const over = overNamespaceLimit(fresh.leases(), limitOf, w.now);
  const a = fresh.admitted(w.now);
  expect(Object.fromEntries([...a.over].map(([u, o]) => [u, o.within]))).toEqual(
    Object.fromEntries([...over].map(([u, o]) => [u, o.within])),
  );
  const grouped = new Map<string, AcceleratorLease[]>();
  for (const l of fresh.leases()) {
    const t = targetOf(l);
    if (t && !over.has(l.metadata.uid ?? '')) grouped.set(t, [...(grouped.get(t) ?? []), l]);
  }
  expect(byTarget(a.byTarget)).toEqual(byTarget(grouped));
}

/** Runs that had leases over a limit, moves, and moves on the clock alone: a floor for meaning. */
const reached = { over: 0, moved: 0, expired: 0 };

describe('the incremental lease view', () => {
  it('reads as a view built from scratch, after any sequence of changes', () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 10, maxLength: 60, size: 'max' }),
        fc.boolean(),
        (steps, each) => {
          const w = new World();
          let sawOver = false;
          let sawExpiry = false;
          for (const s of steps) {
            const before = w.movedTotal;
            w.apply(s);
            // Compare after every step, or only now and then: reads that skip steps must catch up.
            if (each || s.op === 'tick' || s.op === 'peek') {
              compare(w);
              sawOver ||= w.view.admitted(w.now).over.size > 0;
              sawExpiry ||= each && s.op === 'tick' && w.movedTotal > before;
            }
          }
          compare(w);
          if (sawOver || w.view.admitted(w.now).over.size > 0) reached.over++;
          if (w.movedTotal > 0) reached.moved++;
          if (sawExpiry) reached.expired++;
        },
      ),
      params,
    );
    expect(reached.over).toBeGreaterThan(params.numRuns / 4);
    expect(reached.moved).toBeGreaterThan(params.numRuns / 10);
    expect(reached.expired).toBeGreaterThan(0);
  }, 120_000);
});
