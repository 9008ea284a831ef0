// The world of simulation.test.ts: the kernel model with the node agent's own sync and publish,
// the arbiter and the reaper on a fake clock, no API server; one seeded scenario of a stuck
// handoff under faults per seed, with I1-I5 checked at every step. Test support only.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { decide as arbitrate, FINALIZER, type Action } from '../controller/arbiter.ts';
import type {
  Accelerator,
  AcceleratorLease,
  AcceleratorSpecOwner,
  DmaBufExport,
  DmaBufImportGrant,
  EvictionRecord,
  ExporterProfile,
  ImporterKind,
} from '../crds/index.ts';
import { CORDON_ANNOTATION, idleEvictionsOf } from '../crds/index.ts';
import { addHiddenHolder, removeHiddenHolder } from '../agent/faults.ts';
import { publish, type Published } from '../agent/publish.ts';
import type { PodView } from '../agent/processes.ts';
import { newState, parseStateFile, toStateFile, type AgentState } from '../agent/state.ts';
import { syncNode, type SyncResult } from '../agent/sync.ts';
import {
  DEFAULT_REAPER_POLICY,
  evictionBudget,
  isActive,
  podsBeingEvicted,
  reap,
  recordOutcome,
  withReaperStatus,
  type CallOutcome,
  type PodLookup,
  type PodState,
  type ReaperEffect,
  type ReaperPolicy,
} from './index.ts';

const NODE = 'node-a';
const T_START = Date.parse('2026-11-25T10:00:00Z');
const HORIZON_MS = 90 * 60_000;
const MAX_STEPS = 600;

// ---- seeded randomness ---------------------------------------------------------------------

type Rand = () => number;
function mulberry32(seed: number): Rand {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
const chance = (r: Rand, p: number) => r() < p;

/** Equal as the API server would store them: key order and undefined fields do not count. */
function sameContent(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => sameContent(x, b[i]));
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let fields = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    fields++;
    if (!sameContent(x[k], y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) fields--;
  return fields === 0;
}

// ---- the scenario ----------------------------------------------------------------------------

interface PodPlan {
  namespace: string;
  name: string;
  /** The PDB refuses its eviction until this long after the handoff starts. */
  pdbRefuseMs: number;
  /** Once deleted, it takes this long to go (kubelet kills it after its grace). */
  termMs: number;
  /** A controller (StatefulSet-like) recreates a pod of the same name once it is gone. */
  replaced: boolean;
}

interface ExportPlan {
  device: number;
  name: string;
  exporter: string;
  importers: { name: string; kind: ImporterKind; pod: string }[];
}

interface Scenario {
  seed: number;
  profile: ExporterProfile;
  devices: number;
  pods: Map<string, PodPlan>;
  exports: ExportPlan[];
  /** Hidden holders: on export i, gone after ms (or never). */
  hidden: { exportIndex: number; removeAfterMs: number | undefined }[];
  /** The tenant deletes its DmaBufExports this long after the handoff (a voluntary release). */
  releaseAfterMs: number | undefined;
  idle: boolean;
  grace: number;
  maxEvictions: number;
  policy: ReaperPolicy;
  faults: {
    controllerRestart: number;
    crashBeforeEffects: number;
    crashAfterCalls: number;
    agentRestart: number;
  };
}

const key = (ns: string, name: string) => `${ns}/${name}`;

/**
 * team-io and kube-system let team-a's exports name their pods; team-c gives no consent, so its
 * importer must fail and never pin, whatever else happens.
 */
const GRANTS: DmaBufImportGrant[] = ['team-io', 'kube-system'].map((namespace) => ({
  apiVersion: 'accel.dmabuf.io/v1alpha1',
  kind: 'DmaBufImportGrant',
  metadata: { namespace, name: 'from-team-a' },
  spec: { from: [{ namespace: 'team-a' }] },
}));

export function scenario(seed: number): Scenario {
  const r = mulberry32(seed);
  const profile = pick<ExporterProfile>(r, ['static', 'static', 'dynamic', 'revocable']);
  const devices = chance(r, 0.25) ? 2 : 1;
  const pods = new Map<string, PodPlan>();
  const addPod = (namespace: string, name: string) => {
    const k = key(namespace, name);
    if (!pods.has(k)) {
      pods.set(k, {
        namespace,
        name,
        pdbRefuseMs: chance(r, 0.2) ? int(r, 1, 240) * 1000 : 0,
        termMs: chance(r, 0.2) ? int(r, 20, 400) * 1000 : int(r, 1, 3) * 1000,
        replaced: chance(r, 0.2),
      });
    }
    return name;
  };
  const importerPods = [
    ['team-io', 'loader-0'],
    ['team-io', 'loader-1'],
    ['team-a', 'viewer-0'],
    ['team-c', 'peer-0'],
    ['kube-system', 'monitor-0'],
  ] as const;
  const exports: ExportPlan[] = [];
  for (let d = 0; d < devices; d++) {
    const n = int(r, 1, 2);
    for (let i = 0; i < n; i++) {
      const exporter = addPod('team-a', `trainer-${d}-${int(r, 0, 1)}`);
      const importers: ExportPlan['importers'] = [];
      const m = int(r, 0, 2);
      for (let j = 0; j < m; j++) {
        const [ns, name] = chance(r, 0.08) ? importerPods[4] : pick(r, importerPods.slice(0, 4));
        const kind = pick<ImporterKind>(r, ['dynamic', 'mmap', 'rdma-mr', 'rdma-mr', 'pinned']);
        importers.push({ name: `imp${j}`, kind, pod: key(ns, addPod(ns, name)) });
      }
      exports.push({ device: d, name: `buf-${d}-${i}`, exporter, importers });
    }
  }
  addPod('team-a', 'bystander-0');
  addPod('team-io', 'bystander-1');
  const hidden: Scenario['hidden'] = [];
  if (chance(r, 0.12)) {
    hidden.push({
      exportIndex: int(r, 0, exports.length - 1),
      removeAfterMs: chance(r, 0.5) ? int(r, 10, 600) * 1000 : undefined,
    });
  }
  const maxPerHandoff = int(r, 1, 8);
  return {
    seed,
    profile,
    devices,
    pods,
    exports,
    hidden,
    releaseAfterMs: chance(r, 0.15) ? int(r, 5, 300) * 1000 : undefined,
    idle: chance(r, 0.1),
    grace: pick(r, [0, 5, 30, 60]),
    maxEvictions: chance(r, 0.1) ? int(r, 0, 1) : int(r, 2, 6),
    policy: {
      ...DEFAULT_REAPER_POLICY,
      excludedNamespaces: ['kube-system'],
      maxEvictionsPerHandoff: maxPerHandoff,
      maxEvictionsPerMinute: pick(r, [2, 5, 60]),
      evictionDeadlineMs: int(r, 30, 180) * 1000,
      onDeadline: pick(r, ['Wait', 'Delete', 'ForceDelete'] as const),
      dryRun: chance(r, 0.04),
      reapWhenIdle: true,
      idleGracePeriodSeconds: pick(r, [0, 20]),
      retryInitialMs: 5_000,
      retryMaxMs: 60_000,
    },
    faults: {
      controllerRestart: chance(r, 0.5) ? 0.08 : 0,
      crashBeforeEffects: chance(r, 0.3) ? 0.2 : 0,
      crashAfterCalls: chance(r, 0.3) ? 0.2 : 0,
      agentRestart: chance(r, 0.2) ? 0.05 : 0,
    },
  };
}

// ---- the world: what the API server and the node hold ---------------------------------------

interface SimPod {
  uid: string;
  namespace: string;
  name: string;
  created: number;
  deletedAt?: number;
  removeAt?: number;
  /** What the reaper sees of it, rebuilt when it changes. */
  state?: PodState;
}

export class InvariantError extends Error {
  override name = 'InvariantError';
}
function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new InvariantError(what);
}

export interface Stats {
  scenarios: number;
  stuck: number;
  granted: number;
  unresolvable: number;
  evictions: number;
  refusals: number;
  deletes: number;
  restarts: number;
  crashes: number;
  steps: number;
  dryRun: number;
  idle: number;
}

export class World {
  readonly s: Scenario;
  readonly r: Rand;
  now = T_START;
  agent: AgentState;
  last: SyncResult | undefined;
  published: Published | undefined;
  accels = new Map<string, Accelerator>();
  leases: AcceleratorLease[] = [];
  exports: DmaBufExport[] = [];
  pods = new Map<string, SimPod>();
  podGen = new Map<string, number>();
  pendingReplacements: { key: string; at: number }[] = [];
  handoffAt = 0;
  /** The controller's memory: gone with every restart. */
  evictionCalls: number[] = [];
  requeueAt = new Map<string, number>();
  // What the invariants need to know about every call ever made.
  lastEvictAt = new Map<string, number>();
  stuckSince = new Map<string, number>();
  accepted = new Set<string>();
  evictedFor = new Map<string, Set<string>>();
  restartedAt: number[] = [];
  trace: string[] | undefined;
  readonly stats: Stats;

  constructor(s: Scenario, stats: Stats, trace: boolean) {
    this.s = s;
    this.r = mulberry32(s.seed ^ 0x5eed);
    this.stats = stats;
    if (trace) this.trace = [];
    this.agent = newState(
      NODE,
      { count: s.devices, memoryBytes: 2 ** 34, profile: s.profile },
      { now: () => this.now },
    );
    for (const plan of s.pods.values()) this.createPod(plan.namespace, plan.name);
    for (let d = 0; d < s.devices; d++) {
      const name = `${NODE}-hl${d}`;
      this.accels.set(name, {
        apiVersion: 'accel.dmabuf.io/v1alpha1',
        kind: 'Accelerator',
        metadata: { name, uid: `accel-${d}` },
        spec: {
          node: NODE,
          index: d,
          model: 'gaudi2',
          memoryBytes: 2 ** 34,
          exporterProfile: s.profile,
        },
      });
    }
  }

  /** Trace lines are only built when replaying a seed. */
  log(line: () => string): void {
    this.trace?.push(`t+${(this.now - T_START) / 1000}s ${line()}`);
  }

  createPod(namespace: string, name: string): void {
    const k = key(namespace, name);
    const gen = (this.podGen.get(k) ?? 0) + 1;
    this.podGen.set(k, gen);
    this.pods.set(k, {
      uid: `uid-${namespace}-${name}-${gen}`,
      namespace,
      name,
      created: this.now,
    });
    this.touch(true);
  }

  lease(namespace: string, name: string, device: number): AcceleratorLease {
    return {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'AcceleratorLease',
      metadata: {
        name,
        namespace,
        uid: `lease-${namespace}-${name}`,
        generation: 1,
        creationTimestamp: new Date(this.now).toISOString(),
      },
      spec: {
        accelerator: `${NODE}-hl${device}`,
        holder: { podSelector: {} },
        priority: 0,
        revocation: { gracePeriodSeconds: this.s.grace, maxEvictions: this.s.maxEvictions },
      },
    };
  }

  // ---- the node agent, through its own pure sync and publish --------------------------------

  agentStep(): boolean {
    const views = new Map<string, PodView>();
    for (const p of this.pods.values()) {
      views.set(p.uid, {
        uid: p.uid,
        namespace: p.namespace,
        name: p.name,
        nodeName: NODE,
        phase: 'Running',
        comm: p.name.replace(/-[0-9]+$/, ''),
      });
    }
    const owners = new Map([...this.accels].map(([n, a]) => [n, a.spec.owner]));
    this.last = syncNode(this.agent, {
      owners,
      pods: views,
      exports: this.exports,
      remote: new Map(),
      grants: GRANTS,
      now: this.now,
    });
    const prev = this.published;
    this.published = publish(this.agent, {
      sync: this.last,
      previousConditions: {
        accelerators: new Map([...this.accels].map(([n, a]) => [n, a.status?.conditions])),
        exports: new Map(
          this.exports.map((e) => [e.metadata.uid ?? '', e.status?.conditions] as const),
        ),
      },
      now: this.now,
    });
    let changed = false;
    for (const [name, status] of this.published.acceleratorStatuses) {
      const accel = this.accels.get(name);
      if (!accel || sameContent(accel.status, status)) continue;
      for (const p of status.pins ?? []) {
        const consented =
          !p.pod ||
          p.pod.namespace === 'team-a' ||
          GRANTS.some((g) => g.metadata.namespace === p.pod?.namespace);
        check(
          consented,
          `consent: ${name} pinned by ${p.pod?.namespace}/${p.pod?.name}, whose namespace granted no import`,
        );
      }
      this.accels.set(name, { ...accel, status });
      this.touch(false, name);
      if (status.phase === 'Stuck' && !this.stuckSince.has(`${name}@${status.observedEpoch}`)) {
        this.stuckSince.set(`${name}@${status.observedEpoch}`, this.now);
      }
      changed = true;
      this.log(
        () =>
          `agent: ${name} ${status.phase} epoch ${status.observedEpoch} pins ${(status.pins ?? []).map((p) => `${p.kind}:${p.pod ? key(p.pod.namespace, p.pod.name) : `pid${p.pid}`}@${p.epoch}`).join(',')}`,
      );
    }
    for (const [uid, update] of this.published.exportStatuses) {
      const i = this.exports.findIndex((e) => e.metadata.uid === uid);
      const exp = this.exports[i];
      if (exp && !sameContent(exp.status, update.status)) {
        this.exports[i] = { ...exp, status: update.status };
        this.touch(false, exp.spec.accelerator);
        changed = true;
      }
    }
    return changed || prev === undefined;
  }

  // ---- the API server's side of evictions and deletions -------------------------------------

  evict(e: Extract<ReaperEffect, { type: 'evict' }>, handoff: string, device: string): CallOutcome {
    const k = key(e.pod.namespace, e.pod.name);
    const pod = this.pods.get(k);
    this.checkBlocking(e.uid, device, 'evict');
    // I5: nothing is sent again once an eviction was accepted, restarts or not.
    check(
      !this.accepted.has(e.uid),
      `I5: pod ${k} (${e.uid}) evicted again after an accepted eviction`,
    );
    this.checkGrace(device, 'evict', k);
    // A retry only after a refusal, and never sooner than the first backoff step.
    const last = this.lastEvictAt.get(e.uid);
    check(
      last === undefined || this.now - last >= this.s.policy.retryInitialMs,
      `I5: eviction of ${k} sent again ${(this.now - (last ?? 0)) / 1000}s after the last one`,
    );
    this.lastEvictAt.set(e.uid, this.now);
    this.countBudget(handoff, e.uid, k);
    this.evictionCalls.push(this.now);
    const window = this.evictionCalls.filter((t) => t > this.now - 60_000).length;
    const restarted = this.restartedAt.some((t) => t > this.now - 60_000);
    check(
      restarted || window <= this.s.policy.maxEvictionsPerMinute,
      `rate: ${window} evictions within a minute (max ${this.s.policy.maxEvictionsPerMinute})`,
    );
    this.stats.evictions++;
    let out: CallOutcome;
    if (!pod || pod.uid !== e.uid) out = { kind: 'gone' };
    else if (pod.deletedAt !== undefined) {
      check(false, `I5: eviction sent to ${k}, already terminating`);
    } else if (this.now < this.handoffAt + (this.s.pods.get(k)?.pdbRefuseMs ?? 0)) {
      out = {
        kind: 'refused',
        message: "Cannot evict pod as it would violate the pod's disruption budget.",
      };
      this.stats.refusals++;
    } else {
      pod.deletedAt = this.now;
      pod.state = undefined;
      pod.removeAt = this.now + (this.s.pods.get(k)?.termMs ?? 1000);
      this.accepted.add(e.uid);
      out = { kind: 'accepted' };
    }
    this.log(() => `evict ${k} ${e.uid} attempt ${e.attempt} -> ${out.kind}`);
    return out;
  }

  delete(
    e: Extract<ReaperEffect, { type: 'delete' }>,
    handoff: string,
    device: string,
  ): CallOutcome {
    const k = key(e.pod.namespace, e.pod.name);
    const pod = this.pods.get(k);
    this.checkBlocking(e.uid, device, 'delete');
    this.checkGrace(device, 'delete', k);
    check(this.s.policy.onDeadline !== 'Wait', `policy: ${k} deleted although onDeadline is Wait`);
    check(
      (e.gracePeriodSeconds === 0) === (this.s.policy.onDeadline === 'ForceDelete'),
      `policy: ${k} deleted with grace ${e.gracePeriodSeconds} under ${this.s.policy.onDeadline}`,
    );
    this.countBudget(handoff, e.uid, k);
    this.stats.deletes++;
    this.log(() => `delete ${k} ${e.uid} grace ${e.gracePeriodSeconds ?? 'default'}`);
    if (!pod || pod.uid !== e.uid) return { kind: 'gone' };
    if (e.gracePeriodSeconds === 0) {
      this.removePod(k);
    } else if (pod.deletedAt === undefined) {
      pod.deletedAt = this.now;
      pod.state = undefined;
      pod.removeAt = this.now + (this.s.pods.get(k)?.termMs ?? 1000);
    }
    this.accepted.add(e.uid);
    return { kind: 'accepted' };
  }

  /** No eviction before the grace period, counted from when the device was first seen stuck. */
  checkGrace(device: string, what: string, k: string): void {
    const accel = this.accels.get(device);
    const epoch = accel?.spec.owner?.epoch ?? 0;
    const since = this.stuckSince.get(`${device}@${epoch}`);
    const graceS = accel?.spec.owner?.lease ? this.s.grace : this.s.policy.idleGracePeriodSeconds;
    check(since !== undefined, `grace: ${what} ${k} on ${device}, never seen stuck at ${epoch}`);
    check(
      this.now >= since + graceS * 1000,
      `grace: ${what} ${k} ${(this.now - since) / 1000}s after ${device} got stuck (grace ${graceS}s)`,
    );
    check(!this.s.policy.dryRun, `dry run: ${what} ${k}`);
  }

  /** I4: the pod holds, right now in the kernel, a pin of an earlier epoch on that device. */
  checkBlocking(uid: string, device: string, what: string): void {
    const ns = [...this.pods.values()].find((p) => p.uid === uid)?.namespace;
    check(
      ns === undefined || !this.s.policy.excludedNamespaces.includes(ns),
      `I4: ${what} of pod ${uid} in excluded namespace ${ns}`,
    );
    const pid = this.agent.pods[uid]?.pid;
    const epoch = this.accels.get(device)?.spec.owner?.epoch ?? 0;
    const holds =
      pid !== undefined &&
      this.agent.kernel.pins(device).some((p) => p.pid === pid && p.epoch < epoch);
    check(holds, `I4: ${what} of pod ${uid} which holds no pin of an earlier epoch on ${device}`);
  }

  countBudget(handoff: string, uid: string, k: string): void {
    const set = this.evictedFor.get(handoff) ?? new Set();
    set.add(uid);
    this.evictedFor.set(handoff, set);
    const [kind, id] = handoff.split(':');
    let limit: number;
    if (kind === 'lease') {
      const lease = this.leases.find((l) => l.metadata.uid === id);
      limit = evictionBudget(this.s.policy, lease);
    } else {
      limit = this.s.policy.maxEvictionsPerHandoff;
    }
    check(
      set.size <= limit,
      `I4: ${set.size} pods evicted for ${handoff} (limit ${limit}), last ${k}`,
    );
  }

  removePod(k: string): void {
    this.pods.delete(k);
    this.touch(true);
    if (this.s.pods.get(k)?.replaced) {
      this.pendingReplacements.push({ key: k, at: this.now + 2000 });
    }
  }

  // ---- the controller: the arbiter, then the reaper over the owner-elect lease --------------

  restartController(why: string): void {
    this.evictionCalls = [];
    this.requeueAt.clear();
    this.arbiterMemo.clear();
    this.touch(false);
    this.restartedAt.push(this.now);
    this.stats.restarts++;
    this.log(() => `controller restarts (${why})`);
  }

  applyActions(actions: readonly Action[]): void {
    for (const act of actions) {
      switch (act.type) {
        case 'setOwner': {
          const a = this.accels.get(act.accelerator.metadata.name ?? '');
          if (a) {
            this.accels.set(a.metadata.name ?? '', { ...a, spec: { ...a.spec, owner: act.owner } });
          }
          this.touch(true, act.accelerator.metadata.name);
          this.log(
            () =>
              `setOwner ${act.accelerator.metadata.name} -> ${act.owner.lease?.name ?? 'none'}@${act.owner.epoch}`,
          );
          break;
        }
        case 'leaseStatus':
          this.leases = this.leases.map((l) =>
            l.metadata.uid === act.lease.metadata.uid ? { ...l, status: act.status } : l,
          );
          break;
        case 'addFinalizer':
          this.leases = this.leases.map((l) =>
            l.metadata.uid === act.lease.metadata.uid
              ? { ...l, metadata: { ...l.metadata, finalizers: [FINALIZER] } }
              : l,
          );
          break;
        case 'removeFinalizer':
          this.leases = this.leases.filter(
            (l) => l.metadata.uid !== act.lease.metadata.uid || !l.metadata.deletionTimestamp,
          );
          break;
        case 'event':
        case 'wait':
          break;
      }
    }
  }

  /** Pod uids with an eviction or deletion sent and not finished, per handoff. */
  sentElsewhere(except: string): Set<string> {
    const out = new Set<string>();
    const add = (records: readonly EvictionRecord[] | undefined) => {
      for (const uid of podsBeingEvicted(records ?? [])) out.add(uid);
    };
    for (const l of this.leases) if (`lease:${l.metadata.uid}` !== except) add(l.status?.evictions);
    for (const a of this.accels.values()) {
      if (`idle:${a.metadata.name}` !== except) add(idleEvictionsOf(a));
    }
    return out;
  }

  reconcile(name: string): boolean {
    const accel = this.accels.get(name);
    if (!accel) return false;
    const targeting = this.leases.filter((l) => l.spec.accelerator === name);
    // The arbiter is a pure function of these objects (the simulated leases never expire), and
    // the world replaces an object whenever it changes: the same objects give the same decision.
    const memo = this.arbiterMemo.get(name);
    const same =
      memo?.accel === accel &&
      memo.leases.length === targeting.length &&
      memo.leases.every((l, i) => l === targeting[i]);
    const decision = same ? memo.decision : arbitrate(accel, targeting, this.now);
    if (!same) this.arbiterMemo.set(name, { accel, leases: targeting, decision });
    let actions = decision.actions;
    let changed: boolean;
    let wake = decision.requeueAfterMs;
    const ownerUid = accel.spec.owner?.lease?.uid;
    const lease = ownerUid ? targeting.find((l) => l.metadata.uid === ownerUid) : undefined;
    const handoff = lease ? `lease:${ownerUid}` : `idle:${name}`;
    let effects: ReaperEffect[] = [];
    let reaperWrote = false;
    if (!actions.some((a) => a.type === 'setOwner') && accel.spec.owner) {
      const pods: PodLookup = {
        get: (k) => {
          const p = this.pods.get(k);
          if (!p) return undefined;
          p.state ??= {
            uid: p.uid,
            nodeName: NODE,
            ...(p.deletedAt !== undefined && {
              deletionTimestamp: new Date(p.deletedAt).toISOString(),
            }),
          };
          return p.state;
        },
      };
      const d = reap({
        accelerator: accel,
        exports: this.exports.filter((e) => e.spec.accelerator === name),
        pods,
        lease,
        policy: this.s.policy,
        evictionsInLastMinute: this.evictionCalls.filter((t) => t > this.now - 60_000).length,
        evictingElsewhere: this.sentElsewhere(handoff),
        now: this.now,
      });
      effects = d.effects;
      if (d.requeueAfterMs !== undefined) {
        wake = Math.min(wake ?? Infinity, d.requeueAfterMs);
      }
      if (lease && d.leaseStatus) {
        const patch = d.leaseStatus;
        let merged = false;
        actions = actions.map((a) => {
          if (a.type !== 'leaseStatus' || a.lease.metadata.uid !== ownerUid) return a;
          merged = true;
          return { ...a, status: withReaperStatus(a.status, patch, this.now) };
        });
        if (!merged) {
          const status = withReaperStatus(lease.status, patch, this.now);
          if (!sameContent(status, lease.status)) {
            actions = [...actions, { type: 'leaseStatus', lease, status }];
          }
        }
      }
      if (d.idleEvictions) {
        this.storeIdleEvictions(name, d.idleEvictions);
        reaperWrote = true;
      }
      if (
        d.summary.state !== 'Off' &&
        d.summary.state !== 'NotStuck' &&
        d.summary.state !== 'Resolved'
      ) {
        this.stuckSeen = true;
      }
      if (d.summary.state !== 'Off')
        this.log(() => `reap ${name}: ${d.summary.state} ${JSON.stringify(d.summary)}`);
    }
    // The reaper's overlay may bring a status the arbiter wanted to change back to what is stored.
    actions = actions.filter(
      (a) =>
        a.type !== 'leaseStatus' ||
        a.lease.metadata.uid !== ownerUid ||
        !sameContent(a.status, a.lease.status),
    );
    changed = actions.some((a) => a.type !== 'event') || reaperWrote;
    const recordsBefore = lease?.status?.evictions;
    this.applyActions(actions);
    // Records are read by every accelerator's reconcile (evictingElsewhere).
    const recordsAfter = this.leases.find((l) => l.metadata.uid === ownerUid)?.status?.evictions;
    if (reaperWrote || !sameContent(recordsBefore, recordsAfter)) this.touch(false);
    else if (changed) this.touch(false, name);
    this.requeueAt.set(name, wake === undefined ? Infinity : this.now + wake);
    if (effects.length === 0) return changed;

    // Writes are done; a crash now loses the effects but not the records.
    if (chance(this.r, this.s.faults.crashBeforeEffects)) {
      this.stats.crashes++;
      this.restartController('crash before effects');
      return changed;
    }
    // Each first eviction was written as Planned in an earlier step, and every request is in the
    // records before it is sent.
    const stored = lease ? (lease.status?.evictions ?? []) : idleEvictionsOf(accel);
    const written = lease
      ? (this.leases.find((l) => l.metadata.uid === ownerUid)?.status?.evictions ?? [])
      : idleEvictionsOf(this.accels.get(name) as Accelerator);
    for (const e of effects) {
      if (e.type !== 'evict' && e.type !== 'delete') continue;
      if (e.type === 'evict' && e.attempt === 1) {
        check(
          stored.some((r) => r.uid === e.uid && r.result === 'Planned'),
          `Planned first: ${e.pod.name} evicted without a Planned record`,
        );
      }
      check(
        written.some((r) => r.uid === e.uid && isActive(r) && r.result !== 'Planned'),
        `records first: ${e.type} of ${e.pod.name} sent before its record was written`,
      );
    }
    const answers: { e: ReaperEffect & { type: 'evict' | 'delete' }; out: CallOutcome }[] = [];
    for (const e of effects) {
      if (e.type === 'evict') answers.push({ e, out: this.evict(e, handoff, name) });
      else if (e.type === 'delete') answers.push({ e, out: this.delete(e, handoff, name) });
      else if (e.type === 'cordon') {
        const a = this.accels.get(name) as Accelerator;
        this.accels.set(name, {
          ...a,
          metadata: {
            ...a.metadata,
            annotations: { ...a.metadata.annotations, [CORDON_ANNOTATION]: e.message },
          },
        });
        this.log(() => `cordon ${name}: ${e.message}`);
      }
      if (e.type !== 'event') changed = true;
    }
    if (changed) this.touch(false);
    if (answers.length === 0) return changed;
    if (chance(this.r, this.s.faults.crashAfterCalls)) {
      this.stats.crashes++;
      this.restartController('crash before the answers were recorded');
      return true;
    }
    this.touch(false);
    const fold = (records: readonly EvictionRecord[]) =>
      answers.reduce(
        (recs, { e, out }) => recordOutcome(recs, e, out, this.now).records,
        [...records],
      );
    if (lease) {
      this.leases = this.leases.map((l) =>
        l.metadata.uid === ownerUid
          ? { ...l, status: { ...l.status, evictions: fold(l.status?.evictions ?? []) } }
          : l,
      );
    } else {
      const idle = idleEvictionsOf(this.accels.get(name) as Accelerator);
      if (idle.length > 0) this.storeIdleEvictions(name, fold(idle));
    }
    return true;
  }

  /** What the controller's setIdleEvictions does: spec.owner.idleEvictions, none removes it. */
  private storeIdleEvictions(name: string, records: readonly EvictionRecord[]): void {
    const a = this.accels.get(name) as Accelerator;
    const owner = a.spec.owner;
    if (!owner) return;
    const next: AcceleratorSpecOwner = { ...owner, idleEvictions: [...records] };
    if (records.length === 0) delete next.idleEvictions;
    this.accels.set(name, { ...a, spec: { ...a.spec, owner: next } });
  }

  stuckSeen = false;

  // ---- invariants at every step --------------------------------------------------------------

  checkInvariants(): void {
    for (const l of this.leases) {
      for (const r of l.status?.evictions ?? []) {
        if (r.result !== 'Evicted') continue;
        const pod = this.pods.get(key(r.pod.namespace, r.pod.name));
        check(pod?.uid !== r.uid, `records: ${r.pod.name} marked Evicted while it still exists`);
      }
    }
    for (const [name, accel] of this.accels) {
      const granted = this.leases.filter(
        (l) => l.spec.accelerator === name && l.status?.phase === 'Granted',
      );
      check(granted.length <= 1, `I1: ${granted.length} leases Granted on ${name}`);
      for (const g of granted) {
        const epoch = g.status?.epoch ?? -1;
        const device = this.agent.kernel.device(name);
        // A deleted lease keeps its last status while the device moves on, until its finalizer
        // goes (before the next lease is granted, which the I1 check above covers).
        check(
          device?.epoch === epoch || g.metadata.deletionTimestamp !== undefined,
          `I2: ${g.metadata.name} Granted at ${epoch}, device at ${device?.epoch}`,
        );
        const older = this.agent.kernel.pins(name).filter((p) => p.epoch < epoch);
        check(
          older.length === 0,
          `I2: ${g.metadata.name} Granted on ${name} while ${older.length} older pin(s) survive`,
        );
      }
      void accel;
    }
  }

  /** I3: the handoff ended, in Granted or in an explicit Unresolvable (or dry run said so). */
  checkSettled(): void {
    for (const [name, accel] of this.accels) {
      if (this.s.idle) {
        const stuck = accel.status?.phase === 'Stuck';
        const cordoned = accel.metadata.annotations?.[CORDON_ANNOTATION] !== undefined;
        check(
          !stuck || cordoned || this.s.policy.dryRun,
          `I3: idle ${name} still Stuck and not cordoned`,
        );
        continue;
      }
      const next = this.leases.find((l) => l.metadata.name === `next-${name.slice(-1)}`);
      check(next !== undefined, `lease for ${name} vanished`);
      const blocked = next.status?.conditions?.find((c) => c.type === 'Blocked');
      const reaping = next.status?.conditions?.find((c) => c.type === 'Reaping');
      const ok =
        next.status?.phase === 'Granted' ||
        (blocked?.status === 'True' && blocked.reason === 'Unresolvable') ||
        (this.s.policy.dryRun && reaping?.reason === 'DryRun');
      check(
        ok,
        `I3: ${next.metadata.name} ended ${next.status?.phase} (Blocked ${blocked?.reason}, Reaping ${reaping?.reason}: ${reaping?.message})`,
      );
      if (next.status?.phase === 'Granted') this.stats.granted++;
      else if (blocked?.reason === 'Unresolvable') {
        this.stats.unresolvable++;
        this.checkUnresolvable(name, next);
      }
    }
  }

  /**
   * Unresolvable must be true of the kernel: a pin is held outside any pod or in an excluded
   * namespace, or more pods hold pins than the budget has left.
   */
  checkUnresolvable(name: string, lease: AcceleratorLease): void {
    const epoch = this.accels.get(name)?.spec.owner?.epoch ?? 0;
    const pins = this.agent.kernel.pins(name).filter((p) => p.epoch < epoch);
    const excluded = new Set(this.s.policy.excludedNamespaces);
    const outside = pins.some((p) => p.holder === null || excluded.has(p.holder.namespace));
    const holders = new Set(pins.map((p) => p.pid));
    const used = this.evictedFor.get(`lease:${lease.metadata.uid}`)?.size ?? 0;
    const left = evictionBudget(this.s.policy, lease) - used;
    check(
      pins.length > 0 && (outside || holders.size > left),
      `I3: ${lease.metadata.name} declared Unresolvable, yet ${holders.size} holder(s) of ${pins.length} pin(s) are all evictable within the ${left} evictions left`,
    );
  }

  // ---- driving it ----------------------------------------------------------------------------

  /**
   * One round, level-triggered like the real processes: the agent syncs when its inputs changed,
   * and each accelerator is reconciled when anything changed since its last reconcile or its
   * requeue time has come. Returns whether anything changed.
   */
  step(): boolean {
    this.changed = false;
    if (chance(this.r, this.s.faults.agentRestart)) {
      const text = JSON.stringify(toStateFile(this.agent));
      this.agent = parseStateFile(text, NODE, 'sim', { now: () => this.now });
      this.agentDirty = true;
      this.log(() => 'agent restarts from its state file');
    }
    if (this.agentDirty) {
      this.agentDirty = false;
      this.agentStep();
      this.checkInvariants();
    }
    if (chance(this.r, this.s.faults.controllerRestart)) this.restartController('restart');
    for (const name of this.accels.keys()) {
      if (!this.dirty.has(name) && this.now < (this.requeueAt.get(name) ?? 0)) continue;
      this.dirty.delete(name);
      this.reconcile(name);
      this.checkInvariants();
    }
    return this.changed;
  }

  arbiterMemo = new Map<
    string,
    { accel: Accelerator; leases: AcceleratorLease[]; decision: ReturnType<typeof arbitrate> }
  >();

  /** What a watch would deliver: which accelerators to reconcile, whether the agent must sync. */
  changed = false;
  agentDirty = true;
  dirty = new Set<string>();

  touch(agent: boolean, accelerator?: string): void {
    this.changed = true;
    if (agent) this.agentDirty = true;
    if (accelerator !== undefined) this.dirty.add(accelerator);
    else for (const name of this.accels.keys()) this.dirty.add(name);
  }

  /** Advance the clock: one second after a change (informer latency), else to the next event. */
  advance(changed: boolean, events: number[]): boolean {
    if (changed) {
      this.now += 1000;
    } else {
      const next = Math.min(...events.filter((t) => t > this.now));
      if (!Number.isFinite(next)) return false;
      this.now = Math.max(this.now + 1000, Math.ceil(next / 1000) * 1000);
    }
    for (const [k, p] of [...this.pods]) {
      if (p.removeAt !== undefined && p.removeAt <= this.now) {
        this.removePod(k);
        this.log(() => `pod ${k} is gone`);
      }
    }
    for (const rep of this.pendingReplacements.filter((x) => x.at <= this.now)) {
      const [ns = '', n = ''] = rep.key.split('/');
      if (!this.pods.has(rep.key)) this.createPod(ns, n);
      this.log(() => `pod ${rep.key} replaced`);
    }
    this.pendingReplacements = this.pendingReplacements.filter((x) => x.at > this.now);
    return true;
  }

  run(): void {
    const s = this.s;
    // Setup: the old tenant owns each device (as the arbiter hands a free device over: epoch 1)
    // and has realized its exports.
    for (let d = 0; d < s.devices; d++) {
      const old = this.lease('team-a', `old-${d}`, d);
      old.metadata.finalizers = [FINALIZER];
      this.leases.push(old);
      const name = `${NODE}-hl${d}`;
      const accel = this.accels.get(name) as Accelerator;
      const owner = {
        lease: { namespace: 'team-a', name: `old-${d}`, uid: old.metadata.uid ?? '' },
        epoch: 1,
      };
      this.accels.set(name, { ...accel, spec: { ...accel.spec, owner } });
    }
    for (const [i, e] of s.exports.entries()) {
      this.exports.push({
        apiVersion: 'accel.dmabuf.io/v1alpha1',
        kind: 'DmaBufExport',
        metadata: {
          name: e.name,
          namespace: 'team-a',
          uid: `dbx-${i}`,
          generation: 1,
          creationTimestamp: new Date(this.now).toISOString(),
        },
        spec: {
          accelerator: `${NODE}-hl${e.device}`,
          lease: `old-${e.device}`,
          exporter: { pod: e.exporter },
          sizeBytes: 4096,
          offsetBytes: 4096 * i,
          importers: e.importers.map((imp) => {
            const [namespace = '', name = ''] = imp.pod.split('/');
            return { name: imp.name, kind: imp.kind, pod: { namespace, name } };
          }),
          source: 'Declared',
        },
      });
    }
    for (let i = 0; i < 6 && this.step(); i++) this.advance(true, []);
    check(
      this.leases.every((l) => l.status?.phase === 'Granted'),
      'setup: the first tenant is not Granted',
    );
    const realized = Object.keys(this.agent.exports).length;
    check(
      realized === s.exports.length,
      `setup: ${realized} of ${s.exports.length} exports realized`,
    );
    const hiddenPids: { pid: number; at: number | undefined }[] = [];
    for (const h of s.hidden) {
      const exp = s.exports[h.exportIndex] as ExportPlan;
      try {
        const holder = addHiddenHolder(this.agent, {
          export: `team-a/${exp.name}`,
          comm: 'rdma-agent',
        });
        hiddenPids.push({ pid: holder.pid, at: h.removeAfterMs });
      } catch {
        // The buffer took no new importer (nothing to pass): no hidden holder this time.
      }
    }

    this.touch(true);
    // The handoff: the next tenant queues, the old one is released.
    this.handoffAt = this.now;
    for (let d = 0; d < s.devices; d++) {
      if (!s.idle) this.leases.push(this.lease('team-b', `next-${d}`, d));
      this.leases = this.leases.map((l) =>
        l.metadata.name === `old-${d}`
          ? {
              ...l,
              metadata: { ...l.metadata, deletionTimestamp: new Date(this.now).toISOString() },
            }
          : l,
      );
    }
    this.log(() => 'handoff starts');
    const releaseAt =
      s.releaseAfterMs === undefined ? undefined : this.handoffAt + s.releaseAfterMs;
    for (let steps = 0; ; steps++) {
      check(steps < MAX_STEPS, `I3: no end after ${MAX_STEPS} steps`);
      this.stats.steps++;
      if (releaseAt !== undefined && this.now >= releaseAt && this.exports.length > 0) {
        this.exports = [];
        this.touch(true);
        this.log(() => 'the tenant deletes its DmaBufExports');
      }
      for (const h of hiddenPids) {
        if (
          h.at !== undefined &&
          this.now >= this.handoffAt + h.at &&
          this.agent.hiddenHolders[String(h.pid)]
        ) {
          removeHiddenHolder(this.agent, h.pid);
          this.touch(true);
          this.log(() => `hidden holder ${h.pid} exits`);
        }
      }
      const changed = this.step();
      if (this.settled() && !changed) break;
      const events = [
        ...this.requeueAt.values(),
        ...[...this.pods.values()].flatMap((p) => (p.removeAt !== undefined ? [p.removeAt] : [])),
        ...this.pendingReplacements.map((x) => x.at),
        ...(releaseAt !== undefined && this.exports.length > 0 ? [releaseAt] : []),
        ...hiddenPids.flatMap((h) =>
          h.at !== undefined && this.agent.hiddenHolders[String(h.pid)]
            ? [this.handoffAt + h.at]
            : [],
        ),
      ].filter((t) => t <= this.handoffAt + HORIZON_MS);
      if (!this.advance(changed, events)) break;
    }
    if (this.stuckSeen) this.stats.stuck++;
    if (s.policy.dryRun) this.stats.dryRun++;
    if (s.idle) this.stats.idle++;
    this.checkSettled();
  }

  /** Every handoff is over (granted, or explicitly unresolvable) and nothing is in flight. */
  settled(): boolean {
    if (this.pendingReplacements.length > 0) return false;
    if ([...this.pods.values()].some((p) => p.removeAt !== undefined)) return false;
    for (const [name, accel] of this.accels) {
      if (this.s.idle) {
        if (
          accel.status?.phase === 'Stuck' &&
          accel.metadata.annotations?.[CORDON_ANNOTATION] === undefined
        )
          return false;
        continue;
      }
      const next = this.leases.find(
        (l) => l.spec.accelerator === name && l.metadata.name?.startsWith('next-'),
      );
      const blocked = next?.status?.conditions?.find((c) => c.type === 'Blocked');
      if (next?.status?.phase === 'Granted') continue;
      if (blocked?.reason === 'Unresolvable' && !next?.status?.evictions?.some(isActive)) continue;
      return false;
    }
    return true;
  }
}

export function runScenario(seed: number, stats: Stats, trace = false): World {
  const world = new World(scenario(seed), stats, trace);
  world.run();
  stats.scenarios++;
  return world;
}

export const emptyStats = (): Stats => ({
  scenarios: 0,
  stuck: 0,
  granted: 0,
  unresolvable: 0,
  evictions: 0,
  refusals: 0,
  deletes: 0,
  restarts: 0,
  crashes: 0,
  steps: 0,
  dryRun: 0,
  idle: 0,
});

export function addStats(into: Stats, from: Stats): void {
  for (const k of Object.keys(into) as (keyof Stats)[]) into[k] += from[k];
}

export interface ShardResult {
  readonly stats: Stats;
  /** The first failing seed, if any (the shard stops there). */
  readonly failure?: { readonly seed: number; readonly message: string };
}

/** Run seeds `base + offset`, `base + offset + stride`, ... (`count` of them in all, across shards). */
export function runShard(base: number, count: number, offset: number, stride: number): ShardResult {
  const stats = emptyStats();
  for (let i = offset; i < count; i += stride) {
    const seed = (base + i) >>> 0;
    try {
      runScenario(seed, stats);
    } catch (err) {
      return { stats, failure: { seed, message: (err as Error).message } };
    }
  }
  return { stats };
}

interface ShardRequest {
  readonly reaperSimulation: true;
  readonly base: number;
  readonly count: number;
  readonly offset: number;
  readonly stride: number;
}

// Started as a worker thread by simulation.test.ts: run one shard and report it.
const request = workerData as ShardRequest | undefined;
if (!isMainThread && request?.reaperSimulation === true) {
  parentPort?.postMessage(runShard(request.base, request.count, request.offset, request.stride));
}
