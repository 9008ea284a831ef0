// The simulated cluster: the in-memory API, the node agent's own sync and publish on the
// simulated kernel, the controller's real view, reconcile and executor (crashing and restarting),
// tenants who release and export, PodDisruptionBudgets whose status allows and takes back
// disruptions, and a kubelet that takes its time. I1-I5 are checked after
// every single write; the pod calls are checked as they arrive.
import type { V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import {
  ControllerView,
  clusterPods,
  clusterReads,
  clusterWrites,
  leaseKeyOf,
  reconcile,
  wakeKeys,
  acceleratorKey,
  PLACEMENT_KEY,
  LIMITS_KEY,
  type Change,
  type EventSink,
  type PodDisruptionBudget,
  type RefusalSources,
  type ExecutorPorts,
  type ReconcileContext,
} from '../../src/controller/index.ts';
import {
  idleEvictionsOf,
  kubeTime,
  podKey,
  type Accelerator,
  type AcceleratorLease,
  type DmaBufExport,
  type DmaBufImportGrant,
  type EvictionRecord,
} from '../../src/crds/index.ts';
import { statusCode } from '../../src/kube/index.ts';
import { addHiddenHolder, removeHiddenHolder } from '../../src/agent/faults.ts';
import { publish } from '../../src/agent/publish.ts';
import type { PodView } from '../../src/agent/processes.ts';
import { newState, parseStateFile, toStateFile, type AgentState } from '../../src/agent/state.ts';
import { syncNode } from '../../src/agent/sync.ts';
import { evictionBudget, isActive, retryDelayMs } from '../../src/reaper/index.ts';
import { LaggingCaches } from './caches.ts';
import {
  MemoryApi,
  ProcessDown,
  type Refusal,
  type Stored,
  type WatchEvent,
} from './memory-api.ts';
import { chance, int, mulberry32, type Rand } from './random.ts';
import {
  NODE,
  podKeyOf,
  scenario,
  type ExportPlan,
  type NextLease,
  type Scenario,
} from './scenario.ts';

const T_START = Date.parse('2026-11-25T10:00:00Z');
const HORIZON_MS = 240 * 60_000;
const MAX_STEPS = 2000;
const API_VERSION = 'accel.dmabuf.io/v1alpha1';
const SILENT = pino({ level: 'silent' });

export class InvariantError extends Error {
  override name = 'InvariantError';
}
function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new InvariantError(what);
}

/** What happened across scenarios: each fault kind is counted, so a test can ask it was common. */
export interface Stats {
  scenarios: number;
  handoffs: number;
  chains: number;
  stuck: number;
  unresolvable: number;
  evictions: number;
  refusals: number;
  /** Evictions sent again before the backoff, because the pod's PDB allowed since the refusal. */
  earlyRetries: number;
  deletes: number;
  crashesAfterWrite: number;
  controllerRestarts: number;
  agentRestarts: number;
  conflicts: number;
  concurrentWrites: number;
  laggedRounds: number;
  hiddenHolders: number;
  slowPods: number;
  expiries: number;
  dryRun: number;
  idle: number;
  writes: number;
  steps: number;
}

export const emptyStats = (): Stats => ({
  scenarios: 0,
  handoffs: 0,
  chains: 0,
  stuck: 0,
  unresolvable: 0,
  evictions: 0,
  refusals: 0,
  earlyRetries: 0,
  deletes: 0,
  crashesAfterWrite: 0,
  controllerRestarts: 0,
  agentRestarts: 0,
  conflicts: 0,
  concurrentWrites: 0,
  laggedRounds: 0,
  hiddenHolders: 0,
  slowPods: 0,
  expiries: 0,
  dryRun: 0,
  idle: 0,
  writes: 0,
  steps: 0,
});

/**
 * team-io and kube-system let team-a's and team-b's exports name their pods; team-c gives no
 * consent, so its importer must fail and never pin, whatever else happens.
 */
const GRANTS: DmaBufImportGrant[] = ['team-io', 'kube-system', 'team-a'].map((namespace) => ({
  apiVersion: API_VERSION,
  kind: 'DmaBufImportGrant',
  metadata: { namespace, name: 'from-tenants' },
  spec: { from: [{ namespace: 'team-a' }, { namespace: 'team-b' }] },
}));
const consented = (exportNs: string, podNs: string) =>
  podNs === exportNs || GRANTS.some((g) => g.metadata.namespace === podNs);

/** A PDB status as the disruption controller writes it: one disruption allowed, or none. */
const budgetStatus = (allows: boolean, now: number) => ({
  currentHealthy: allows ? 2 : 1,
  desiredHealthy: 1,
  expectedPods: 2,
  disruptionsAllowed: allows ? 1 : 0,
  observedGeneration: 1,
  conditions: [
    {
      type: 'DisruptionAllowed',
      status: allows ? 'True' : 'False',
      reason: allows ? 'SufficientPods' : 'InsufficientPods',
      message: '',
      observedGeneration: 1,
      lastTransitionTime: kubeTime(now),
    },
  ],
});

const changeOf = (e: WatchEvent): Change =>
  ({ resource: e.resource, type: e.type, obj: e.obj, ...(e.old && { old: e.old }) }) as Change;

/** The controller process: its caches, view and queue, gone with every crash. */
class ControllerProcess {
  readonly caches: LaggingCaches;
  readonly view: ControllerView;
  readonly dirty = new Set<string>();
  readonly requeueAt = new Map<string, number>();

  constructor(api: MemoryApi) {
    this.caches = new LaggingCaches(api);
    this.view = new ControllerView(this.caches.asCaches(), {
      log: SILENT,
      onAdmissionChanged: (l) => this.dirty.add(leaseKeyOf(l)),
    });
    // A fresh process reconciles everything, as `run` queues every accelerator.
    for (const a of this.caches.list<Accelerator>('accelerators'))
      this.dirty.add(acceleratorKey(a.metadata.name ?? ''));
    this.dirty.add(PLACEMENT_KEY);
    this.dirty.add(LIMITS_KEY);
  }

  /** Deliver up to `n` watch events, as the informers would: to the view, then the queue. */
  deliver(n: number): void {
    const pods = this.caches.asCaches().pods;
    const refusals: RefusalSources = {
      refused: () => this.view.refusedEvictions(),
      pod: (key) => pods.get(key),
    };
    this.caches.deliver(n, (e) => {
      const change = changeOf(e);
      this.view.notice(change);
      const accelerators = () => this.caches.list<Accelerator>('accelerators');
      for (const k of wakeKeys(change, accelerators, {}, refusals)) this.dirty.add(k);
    });
  }

  /** Keys to reconcile now: woken by an event, or whose requeue time has come. */
  due(now: number): string[] {
    const keys = new Set(this.dirty);
    for (const [k, at] of this.requeueAt) if (at <= now) keys.add(k);
    this.dirty.clear();
    return [...keys].sort();
  }
}

export class World {
  readonly s: Scenario;
  readonly r: Rand;
  readonly stats: Stats;
  readonly trace: string[] | undefined;
  now = T_START;
  readonly api: MemoryApi;
  agent: AgentState;
  agentCache: LaggingCaches;
  ctrl: ControllerProcess;
  private readonly ctx: () => ReconcileContext;
  handoffAt = 0;
  // What the invariants need to know about every call and every state seen.
  readonly stuckSince = new Map<string, number>();
  readonly accepted = new Set<string>();
  readonly lastEvictAt = new Map<string, number>();
  readonly evictionsSent = new Map<string, number>();
  readonly evictedFor = new Map<string, Set<string>>();
  readonly evictionTimes: number[] = [];
  readonly planned = new Set<string>();
  readonly grantedAt = new Map<string, number>();
  /** Per PDB: the times its status came to allow a disruption. */
  readonly allowedAt = new Map<string, number[]>();
  /** Per pod uid: the Retry-After (s) its last refusal named. */
  readonly toldRetryAfter = new Map<string, number>();
  /** PDB status changes still to come: the budget allows one (true) or none (false). */
  private budgetChanges: { at: number; key: string; allows: boolean }[] = [];
  pendingReplacements: { key: string; at: number }[] = [];
  private readonly releases = new Map<string, number>();
  private readonly exportsAt = new Map<string, number>();
  private hiddenPids: { pid: number; at: number | undefined }[] = [];

  constructor(s: Scenario, stats: Stats, trace: boolean) {
    this.s = s;
    this.r = mulberry32(s.seed ^ 0x5eed);
    this.stats = stats;
    this.trace = trace ? [] : undefined;
    this.api = new MemoryApi(() => this.now, {
      refuseEviction: (pod) => this.refuseEviction(pod),
      terminationMs: (pod) => this.plan(pod)?.termMs ?? 1000,
    });
    this.api.afterControllerWrite = (what) => this.afterControllerWrite(what);
    this.api.raceControllerWrite = () => this.beforeControllerWrite();
    this.api.beforePodCall = (call, pod, grace) => this.checkPodCall(call, pod, grace);
    this.agent = newState(
      NODE,
      { count: s.devices, memoryBytes: 2 ** 34, profile: s.profile },
      { now: () => this.now },
    );
    this.agentCache = new LaggingCaches(this.api);
    this.ctrl = new ControllerProcess(this.api);
    this.ctx = () => ({ view: this.ctrl.view, policy: s.policy });
  }

  log(line: () => string): void {
    this.trace?.push(`t+${(this.now - T_START) / 1000}s ${line()}`);
  }

  private plan(pod: V1Pod) {
    return this.s.pods.get(podKeyOf(pod.metadata?.namespace ?? '', pod.metadata?.name ?? ''));
  }

  // ---- objects as users and the agent create them ---------------------------------------------

  private createPod(namespace: string, name: string, gen: number): void {
    this.api.put('pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { namespace, name, uid: `uid-${namespace}-${name}-${gen}`, labels: { app: name } },
      spec: { nodeName: NODE, containers: [{ name: name.replace(/-[0-9]+$/, '') }] },
    });
  }

  /** The pod's PDB (maxUnavailable 1), allowing none until its plan says. */
  private createBudget(namespace: string, pod: string): void {
    this.api.put('pdbs', {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { namespace, name: `pdb-${pod}`, generation: 1 },
      spec: { maxUnavailable: 1, selector: { matchLabels: { app: pod } } },
      status: budgetStatus(false, this.now),
    });
  }

  private lease(namespace: string, name: string, device: number, next?: NextLease): Stored {
    return {
      apiVersion: API_VERSION,
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
        priority: next?.priority ?? 0,
        ...(next?.duration && { duration: next.duration }),
        revocation: { gracePeriodSeconds: this.s.grace, maxEvictions: this.s.maxEvictions },
      },
    };
  }

  private createExport(e: ExportPlan, index: number): void {
    this.api.put('exports', {
      apiVersion: API_VERSION,
      kind: 'DmaBufExport',
      metadata: { name: e.name, namespace: e.namespace, uid: `dbx-${e.name}`, generation: 1 },
      spec: {
        accelerator: `${NODE}-hl${e.device}`,
        lease: e.lease,
        exporter: { pod: e.exporter },
        sizeBytes: 4096,
        offsetBytes: 4096 * index,
        importers: e.importers.map((imp) => {
          const [namespace = '', name = ''] = imp.pod.split('/');
          return { name: imp.name, kind: imp.kind, pod: { namespace, name } };
        }),
        source: 'Declared',
      },
    });
    this.log(() => `export ${e.namespace}/${e.name} under ${e.lease}`);
  }

  // ---- the node agent, through its own pure sync and publish -----------------------------------

  agentStep(): void {
    this.agentCache.deliver(Infinity, () => undefined);
    const views = new Map<string, PodView>();
    for (const p of this.agentCache.list<V1Pod>('pods')) {
      const uid = p.metadata?.uid ?? '';
      views.set(uid, {
        uid,
        namespace: p.metadata?.namespace ?? '',
        name: p.metadata?.name ?? '',
        nodeName: NODE,
        phase: 'Running',
        comm: (p.metadata?.name ?? '').replace(/-[0-9]+$/, ''),
        labels: p.metadata?.labels,
      });
    }
    const accels = this.agentCache.list<Accelerator>('accelerators');
    const exports = this.agentCache.list<DmaBufExport>('exports');
    const sync = syncNode(this.agent, {
      owners: new Map(accels.map((a) => [a.metadata.name ?? '', a.spec.owner])),
      pods: views,
      exports,
      remote: new Map(),
      grants: GRANTS,
      now: this.now,
    });
    const published = publish(this.agent, {
      sync,
      previousConditions: {
        accelerators: new Map(accels.map((a) => [a.metadata.name ?? '', a.status?.conditions])),
        exports: new Map(exports.map((e) => [e.metadata.uid ?? '', e.status?.conditions] as const)),
      },
      now: this.now,
    });
    for (const [name, status] of published.acceleratorStatuses)
      this.writeAcceleratorStatus(name, status);
    for (const update of published.exportStatuses.values()) {
      const key = `${update.namespace}/${update.name}`;
      const e = this.api.peek<Stored>('exports', key);
      if (!e || this.unchanged(`export/${key}`, update.status)) continue;
      this.api.put('exports', { ...e, status: update.status });
      this.afterWrite();
    }
  }

  private writeAcceleratorStatus(name: string, status: NonNullable<Accelerator['status']>): void {
    const a = this.api.peek<Stored & Accelerator>('accelerators', name);
    if (!a || this.unchanged(`accelerator/${name}`, status)) return;
    for (const p of status.pins ?? []) {
      const owner = p.export?.split('/')[0] ?? 'team-a';
      check(
        !p.pod || consented(owner, p.pod.namespace),
        `consent: ${name} pinned by ${p.pod ? podKey(p.pod) : ''}, whose namespace granted no import`,
      );
    }
    this.api.put('accelerators', { ...a, status });
    const at = `${name}@${status.observedEpoch}`;
    if (status.phase === 'Stuck' && !this.stuckSince.has(at)) this.stuckSince.set(at, this.now);
    this.log(
      () =>
        `agent: ${name} ${status.phase} epoch ${status.observedEpoch} pins ${(status.pins ?? []).map((p) => `${p.kind}:${p.pod ? podKey(p.pod) : `pid${p.pid}`}@${p.epoch}`).join(',')}`,
    );
    this.afterWrite();
  }

  restartAgent(): void {
    const text = JSON.stringify(toStateFile(this.agent));
    this.agent = parseStateFile(text, NODE, 'sim', { now: () => this.now });
    this.agentCache = new LaggingCaches(this.api);
    this.written = new Map();
    this.stats.agentRestarts++;
    this.log(() => 'agent restarts from its state file');
  }

  // ---- the controller: its real reconcile, executor and writes ----------------------------------

  restartController(why: string): void {
    this.api.controllerDown = false;
    this.ctrl = new ControllerProcess(this.api);
    this.log(() => `controller restarts (${why})`);
  }

  private ports(): ExecutorPorts {
    const client = this.api.controllerClient();
    const events: EventSink = { event: () => undefined, eventRef: () => undefined };
    return {
      writes: this.ctrl.view.recording(clusterWrites(client)),
      reads: clusterReads(client),
      pods: clusterPods(client),
      events,
      signal: new AbortController().signal,
      now: () => this.now,
    };
  }

  /** One round of the controller: deliver (part of) its watch, reconcile what is due. */
  async controllerRound(): Promise<void> {
    const lagged = chance(this.r, this.s.faults.watchLag) && this.ctrl.caches.behind > 1;
    if (lagged) this.stats.laggedRounds++;
    this.ctrl.deliver(lagged ? int(this.r, 0, this.ctrl.caches.behind - 1) : Infinity);
    const ports = this.ports();
    for (const key of this.ctrl.due(this.now)) {
      try {
        const out = await reconcile(key, this.now, this.ctx(), ports);
        const after = out?.requeueAfter;
        this.ctrl.requeueAt.set(key, after === undefined ? Infinity : this.now + after);
      } catch (err) {
        if (err instanceof InvariantError) throw err;
        if (this.api.controllerDown || err instanceof ProcessDown) {
          this.restartController('crash after a write');
          return;
        }
        const code = statusCode(err);
        check(code === 409 || code === 404, `controller: ${key} failed: ${(err as Error).message}`);
        this.stats.conflicts++;
        this.ctrl.requeueAt.set(key, this.now + 1000);
      }
    }
  }

  /** Someone else writes the object first (a label, a status): the controller's write gets 409. */
  private beforeControllerWrite(): boolean {
    // No draw when the fault is off: the other faults of a seed stay where they were.
    const p = this.s.faults.concurrentWrite;
    if (p === 0 || !chance(this.r, p)) return false;
    this.stats.concurrentWrites++;
    return true;
  }

  private afterControllerWrite(what: string): void {
    this.stats.writes++;
    this.log(() => `write ${what}`);
    this.afterWrite();
    if (chance(this.r, this.s.faults.crashAfterWrite)) {
      this.stats.crashesAfterWrite++;
      this.api.controllerDown = true;
      throw new ProcessDown(`crash after ${what}`);
    }
  }

  // ---- the API server's side of pod calls ---------------------------------------------------------

  /** The PDB of a planned pod, by namespace/name: pdb-<pod name>, selecting app=<pod name>. */
  private budgetKey(pod: V1Pod): string | undefined {
    const plan = this.plan(pod);
    return plan?.budget ? podKeyOf(plan.namespace, `pdb-${plan.name}`) : undefined;
  }

  /** The pod's PDB allows no disruption now, as its stored status says (the API server reads it). */
  private pdbRefuses(pod: V1Pod): boolean {
    const key = this.budgetKey(pod);
    const b = key && this.api.peek<Stored & PodDisruptionBudget>('pdbs', key);
    return !!b && (b.status?.disruptionsAllowed ?? 0) <= 0;
  }

  private refuseEviction(pod: V1Pod): Refusal | undefined {
    const key = this.budgetKey(pod);
    if (!this.pdbRefuses(pod)) {
      // Accepted: the eviction takes the disruption the budget allowed, as kube-apiserver does.
      if (key) this.setBudget(key, false);
      return undefined;
    }
    this.stats.refusals++;
    const told = this.plan(pod)?.budget?.retryAfterS;
    const uid = pod.metadata?.uid ?? '';
    if (told === undefined) this.toldRetryAfter.delete(uid);
    else this.toldRetryAfter.set(uid, told);
    return {
      message: "Cannot evict pod as it would violate the pod's disruption budget.",
      ...(told !== undefined && { retryAfterSeconds: told }),
    };
  }

  /** Write a PDB's status: one disruption allowed or none, the condition's transition now. */
  private setBudget(key: string, allows: boolean): void {
    const b = this.api.peek<Stored & PodDisruptionBudget>('pdbs', key);
    if (!b || (b.status?.disruptionsAllowed ?? 0) > 0 === allows) return;
    this.api.put('pdbs', { ...b, status: budgetStatus(allows, this.now) });
    if (allows) this.allowedAt.set(key, [...(this.allowedAt.get(key) ?? []), this.now]);
    this.log(() => `pdb ${key} allows ${allows ? 1 : 0}`);
  }

  /** The PDB status changes that are due. */
  private budgets(): void {
    const due = this.budgetChanges.filter((c) => c.at <= this.now);
    this.budgetChanges = this.budgetChanges.filter((c) => c.at > this.now);
    for (const c of due) this.setBudget(c.key, c.allows);
  }

  /** I4, I5, the records, the grace, the budget, the rate and the policy, at each call. */
  private checkPodCall(call: 'evict' | 'delete', pod: V1Pod, grace: number | undefined): void {
    try {
      this.checkPodCallNow(call, pod, grace);
    } catch (err) {
      // callPod turns any error into a failed outcome: keep the violation to fail the run.
      this.violation ??= err as Error;
      throw err;
    }
  }

  private checkPodCallNow(call: 'evict' | 'delete', pod: V1Pod, grace: number | undefined): void {
    const uid = pod.metadata?.uid ?? '';
    const k = podKeyOf(pod.metadata?.namespace ?? '', pod.metadata?.name ?? '');
    check(!this.s.policy.dryRun, `dry run: ${call} ${k}`);
    check(
      !this.s.policy.excludedNamespaces.includes(pod.metadata?.namespace ?? ''),
      `I4: ${call} of ${k} in an excluded namespace`,
    );
    const devices = this.blockedDevices(uid);
    check(devices.length > 0, `I4: ${call} of ${k}, which holds no pin of an earlier epoch`);
    // The handoff that sent it: the device whose owner-elect's records hold this request.
    const found = devices
      .map((device) => ({ device, handoff: this.handoffOf(device, uid) }))
      .find((d) => d.handoff !== undefined);
    check(found !== undefined, `records first: ${call} of ${k} sent before its record was written`);
    const { device, handoff } = found as {
      device: string;
      handoff: { id: string; lease?: AcceleratorLease };
    };
    this.checkGrace(device, call, k);
    this.countBudget(handoff, uid, k);
    if (call === 'evict') {
      check(!this.accepted.has(uid), `I5: ${k} (${uid}) evicted again after an accepted eviction`);
      check(
        this.planned.has(`${handoff.id}/${uid}`),
        `Planned first: ${k} evicted without a Planned record`,
      );
      const last = this.lastEvictAt.get(uid);
      if (last !== undefined) this.checkRetryGap(pod, k, last);
      this.lastEvictAt.set(uid, this.now);
      this.evictionsSent.set(uid, (this.evictionsSent.get(uid) ?? 0) + 1);
      this.evictionTimes.push(this.now);
      const window = this.evictionTimes.filter((t) => t > this.now - 60_000).length;
      check(
        window <= this.s.policy.maxEvictionsPerMinute,
        `rate: ${window} evictions within a minute (max ${this.s.policy.maxEvictionsPerMinute})`,
      );
      this.stats.evictions++;
      if ((this.plan(pod)?.termMs ?? 0) >= 20_000) this.stats.slowPods++;
      if (!this.pdbRefuses(pod)) this.accepted.add(uid);
    } else {
      check(
        this.s.policy.onDeadline !== 'Wait',
        `policy: ${k} deleted although onDeadline is Wait`,
      );
      check(
        (grace === 0) === (this.s.policy.onDeadline === 'ForceDelete'),
        `policy: ${k} deleted with grace ${grace} under ${this.s.policy.onDeadline}`,
      );
      this.stats.deletes++;
      this.accepted.add(uid);
    }
    this.log(() => `${call} ${k} ${uid}`);
  }

  /**
   * No hot loop: an eviction is sent again no sooner than retryInitialMs after the last, unless
   * the Retry-After its refusal named has passed, or its PDB came to allow a disruption since.
   * (Not the full backoff: a pod evicted for a later handoff starts a new record at attempt 1.)
   */
  private checkRetryGap(pod: V1Pod, k: string, last: number): void {
    const uid = pod.metadata?.uid ?? '';
    const gap = this.now - last;
    const key = this.budgetKey(pod);
    const allowedSince = ((key && this.allowedAt.get(key)) || []).some(
      (t) => t > last && t <= this.now,
    );
    // Sooner than the backoff the pod's evictions so far would give: sent because it allowed.
    const sent = this.evictionsSent.get(uid) ?? 1;
    if (allowedSince && gap < retryDelayMs(this.s.policy, sent)) this.stats.earlyRetries++;
    if (gap >= this.s.policy.retryInitialMs) return;
    const told = this.toldRetryAfter.get(uid);
    if (told !== undefined && gap >= told * 1000) return;
    check(
      allowedSince,
      `I5: eviction of ${k} sent again ${gap / 1000}s after the last one, with no Retry-After passed and no PDB allowing since`,
    );
  }

  /** The devices on which the pod holds, right now in the kernel, a pin of an earlier epoch. */
  private blockedDevices(uid: string): string[] {
    const pid = this.agent.pods[uid]?.pid;
    if (pid === undefined) return [];
    return this.api
      .peekAll<Stored & Accelerator>('accelerators')
      .map((a) => ({ name: a.metadata.name ?? '', epoch: a.spec.owner?.epoch ?? 0 }))
      .filter(({ name, epoch }) =>
        this.agent.kernel.pins(name).some((p) => p.pid === pid && p.epoch < epoch),
      )
      .map(({ name }) => name);
  }

  /** The handoff whose records hold an active request for `uid`: a lease's, or a device's idle reap. */
  private handoffOf(
    device: string,
    uid: string,
  ): { id: string; lease?: AcceleratorLease } | undefined {
    // Written for this very request: active, and its last attempt is now (whole seconds).
    const sent = (rs: readonly EvictionRecord[] | undefined) =>
      (rs ?? []).some(
        (r) =>
          r.uid === uid &&
          isActive(r) &&
          r.result !== 'Planned' &&
          Date.parse(r.lastAttemptTime ?? '') > this.now - 1000,
      );
    const a = this.api.peek<Stored & Accelerator>('accelerators', device);
    const ownerUid = a?.spec.owner?.lease?.uid;
    const owner = this.api
      .peekAll<Stored & AcceleratorLease>('leases')
      .find((l) => l.metadata.uid === ownerUid);
    if (owner && sent(owner.status?.evictions)) return { id: `lease:${ownerUid}`, lease: owner };
    if (a && !owner && sent(idleEvictionsOf(a)))
      return { id: `idle:${device}@${a.spec.owner?.epoch}` };
    return undefined;
  }

  /** No call before the grace period, counted from when the device was first seen stuck. */
  private checkGrace(device: string, what: string, k: string): void {
    const accel = this.api.peek<Stored & Accelerator>('accelerators', device);
    const epoch = accel?.spec.owner?.epoch ?? 0;
    const since = this.stuckSince.get(`${device}@${epoch}`);
    const graceS = accel?.spec.owner?.lease ? this.s.grace : this.s.policy.idleGracePeriodSeconds;
    check(since !== undefined, `grace: ${what} ${k} on ${device}, never seen stuck at ${epoch}`);
    check(
      this.now >= since + graceS * 1000,
      `grace: ${what} ${k} ${(this.now - since) / 1000}s after ${device} got stuck (grace ${graceS}s)`,
    );
  }

  private countBudget(
    handoff: { id: string; lease?: AcceleratorLease },
    uid: string,
    k: string,
  ): void {
    const set = this.evictedFor.get(handoff.id) ?? new Set();
    set.add(uid);
    this.evictedFor.set(handoff.id, set);
    const limit = handoff.lease
      ? evictionBudget(this.s.policy, handoff.lease)
      : this.s.policy.maxEvictionsPerHandoff;
    check(
      set.size <= limit,
      `I4: ${set.size} pods evicted for ${handoff.id} (limit ${limit}), last ${k}`,
    );
  }

  // ---- invariants after every write ---------------------------------------------------------------

  /** After any write: I1 and I2 on what the API server holds, against the kernel. */
  afterWrite(): void {
    const leases = this.api.peekAll<Stored & AcceleratorLease>('leases');
    for (const l of leases) {
      for (const r of l.status?.evictions ?? []) {
        if (r.result === 'Planned') this.planned.add(`lease:${l.metadata.uid}/${r.uid}`);
        if (r.result !== 'Evicted') continue;
        const pod = this.api.peek<V1Pod & Stored>('pods', podKey(r.pod));
        check(
          pod?.metadata?.uid !== r.uid,
          `records: ${r.pod.name} marked Evicted while it still exists`,
        );
      }
    }
    for (const a of this.api.peekAll<Stored & Accelerator>('accelerators')) {
      const name = a.metadata.name ?? '';
      for (const r of idleEvictionsOf(a)) {
        if (r.result === 'Planned')
          this.planned.add(`idle:${name}@${a.spec.owner?.epoch}/${r.uid}`);
      }
      // The finalizer's promise: a lease lives while its device still names it (docs/design.md, 3).
      for (const o of [a.spec.owner?.lease, a.status?.owner?.lease]) {
        if (!o) continue;
        check(
          leases.some((l) => l.metadata.uid === o.uid),
          `finalizer: lease ${o.namespace}/${o.name} is gone while ${name} still names it`,
        );
      }
      const granted = leases.filter(
        (l) => l.spec.accelerator === name && l.status?.phase === 'Granted',
      );
      check(granted.length <= 1, `I1: ${granted.length} leases Granted on ${name}`);
      for (const g of granted) {
        const epoch = g.status?.epoch ?? -1;
        const device = this.agent.kernel.device(name);
        // A deleted lease keeps its last status until its finalizer goes; docs/design.md, I2.
        check(
          device?.epoch === epoch || g.metadata.deletionTimestamp !== undefined,
          `I2: ${g.metadata.name} Granted at ${epoch}, device at ${device?.epoch}`,
        );
        // Only a lease being deleted may read Granted once spec.owner has moved on from it.
        const owner = a.spec.owner;
        check(
          (owner?.lease?.uid === g.metadata.uid && owner?.epoch === epoch) ||
            g.metadata.deletionTimestamp !== undefined,
          `I2: ${g.metadata.name} reads Granted at ${epoch} while spec.owner is ${owner?.lease?.name ?? 'nobody'} at ${owner?.epoch}`,
        );
        const older = this.agent.kernel.pins(name).filter((p) => p.epoch < epoch);
        check(
          older.length === 0,
          `I2: ${g.metadata.name} Granted on ${name} while ${older.length} older pin(s) survive`,
        );
        if (!this.grantedAt.has(g.metadata.uid ?? '')) {
          this.grantedAt.set(g.metadata.uid ?? '', this.now);
          this.stats.handoffs++;
          this.log(() => `${g.metadata.name} Granted at ${epoch}`);
        }
      }
    }
  }

  // ---- tenants, the kubelet, hidden holders --------------------------------------------------------

  /** Tenants act on what they see: a granted next lease exports, holds, then releases. */
  private tenants(): void {
    if (this.s.releaseAfterMs !== undefined && this.now >= this.handoffAt + this.s.releaseAfterMs) {
      for (const e of this.api.peekAll<Stored>('exports')) {
        if (e.metadata.namespace === 'team-a')
          this.api.deleteObject('exports', `team-a/${e.metadata.name}`);
      }
    }
    for (const [d, chain] of this.s.chains.entries()) {
      for (const [k, next] of chain.entries()) {
        const granted = this.grantedAt.get(`lease-team-b-${next.name}`);
        if (granted === undefined) continue;
        if (
          next.export &&
          !this.exportsAt.has(next.name) &&
          this.now >= granted + next.holdMs / 2
        ) {
          this.exportsAt.set(next.name, this.now);
          this.createExport(next.export, 100 + d * 10 + k);
        }
        // Released while others wait for the device; the last one granted keeps it.
        const waiting = chain.some((n) => !this.grantedAt.has(`lease-team-b-${n.name}`));
        if (
          waiting &&
          !next.duration &&
          !this.releases.has(next.name) &&
          this.now >= granted + next.holdMs
        ) {
          this.releases.set(next.name, this.now);
          this.api.deleteObject('leases', `team-b/${next.name}`);
          this.log(() => `team-b releases ${next.name}`);
        }
      }
    }
    for (const h of this.hiddenPids) {
      if (
        h.at !== undefined &&
        this.now >= this.handoffAt + h.at &&
        this.agent.hiddenHolders[String(h.pid)]
      ) {
        removeHiddenHolder(this.agent, h.pid);
        this.log(() => `hidden holder ${h.pid} exits`);
      }
    }
  }

  /** The kubelet: pods past their termination go; replaced ones come back under a new uid. */
  private kubelet(): void {
    for (const [k, at] of [...this.api.terminating]) {
      if (at > this.now) continue;
      this.api.remove('pods', k);
      this.log(() => `pod ${k} is gone`);
      // Its budget allows again once the disruption is over, as the disruption controller sees.
      const p = this.s.pods.get(k);
      if (p?.budget && this.now >= this.handoffAt + p.pdbRefuseMs)
        this.budgetChanges.push({
          at: this.now + 2000,
          key: podKeyOf(p.namespace, `pdb-${p.name}`),
          allows: true,
        });
    }
    for (const p of this.s.pods.values()) {
      const k = podKeyOf(p.namespace, p.name);
      if (this.api.peek('pods', k) || !p.replaced) continue;
      if (!this.pendingReplacements.some((x) => x.key === k))
        this.pendingReplacements.push({ key: k, at: this.now + 2000 });
    }
    for (const rep of this.pendingReplacements.filter((x) => x.at <= this.now)) {
      const [ns = '', n = ''] = rep.key.split('/');
      this.gens.set(rep.key, (this.gens.get(rep.key) ?? 1) + 1);
      this.createPod(ns, n, this.gens.get(rep.key) ?? 2);
      this.log(() => `pod ${rep.key} replaced`);
    }
    this.pendingReplacements = this.pendingReplacements.filter((x) => x.at > this.now);
  }

  private readonly gens = new Map<string, number>();
  /** The first invariant broken inside a call the code under test catches. */
  private violation: Error | undefined;
  /** What the agent last wrote per object, as it remembers it: it skips a write of the same. */
  private written = new Map<string, string>();

  private unchanged(key: string, status: unknown): boolean {
    const text = JSON.stringify(status);
    if (this.written.get(key) === text) return true;
    this.written.set(key, text);
    return false;
  }

  // ---- driving it ---------------------------------------------------------------------------------

  /** One round: faults, the agent, the controller, then invariants; true if anything changed. */
  async step(): Promise<boolean> {
    const before = this.api.log.length;
    if (chance(this.r, this.s.faults.agentRestart)) this.restartAgent();
    this.agentStep();
    if (chance(this.r, this.s.faults.controllerRestart)) {
      this.stats.controllerRestarts++;
      this.restartController('restart');
    }
    await this.controllerRound();
    if (this.violation) throw this.violation;
    // The agent syncs again when its watch brought something new.
    if (this.agentCache.behind > 0) this.agentStep();
    return this.api.log.length !== before || this.ctrl.caches.behind > 0;
  }

  /** Advance the clock: one second after a change, else to the next thing due. */
  advance(changed: boolean): boolean {
    if (changed) this.now += 1000;
    else {
      const next = Math.min(...this.upcoming().filter((t) => t > this.now));
      if (!Number.isFinite(next) || next > this.handoffAt + HORIZON_MS) return false;
      this.now = Math.max(this.now + 1000, Math.ceil(next / 1000) * 1000);
    }
    this.kubelet();
    this.tenants();
    this.budgets();
    return true;
  }

  /** Times at which something will happen without anyone acting. */
  private upcoming(): number[] {
    const out = [...this.ctrl.requeueAt.values(), ...this.api.terminating.values()];
    out.push(...this.pendingReplacements.map((x) => x.at));
    out.push(...this.budgetChanges.map((c) => c.at));
    if (this.s.releaseAfterMs !== undefined) out.push(this.handoffAt + this.s.releaseAfterMs);
    for (const h of this.hiddenPids) if (h.at !== undefined) out.push(this.handoffAt + h.at);
    for (const chain of this.s.chains) {
      for (const next of chain) {
        const g = this.grantedAt.get(`lease-team-b-${next.name}`);
        if (g !== undefined) out.push(g + next.holdMs / 2, g + next.holdMs);
      }
    }
    return out;
  }

  async setup(): Promise<void> {
    const s = this.s;
    for (const p of s.pods.values()) this.createPod(p.namespace, p.name, 1);
    for (const p of s.pods.values()) if (p.budget) this.createBudget(p.namespace, p.name);
    for (let d = 0; d < s.devices; d++) {
      this.api.put('accelerators', {
        apiVersion: API_VERSION,
        kind: 'Accelerator',
        metadata: { name: `${NODE}-hl${d}`, labels: { 'accel.dmabuf.io/node': NODE } },
        spec: {
          node: NODE,
          index: d,
          model: 'gaudi2',
          memoryBytes: 2 ** 34,
          exporterProfile: s.profile,
        },
      });
      this.api.put('leases', this.lease('team-a', `old-${d}`, d));
    }
    for (let i = 0; i < 10; i++) {
      await this.step();
      this.now += 1000;
    }
    for (const [i, e] of s.exports.entries()) this.createExport(e, i);
    for (let i = 0; i < 4; i++) {
      await this.step();
      this.now += 1000;
    }
    const leases = this.api.peekAll<Stored & AcceleratorLease>('leases');
    check(
      leases.every((l) => l.status?.phase === 'Granted'),
      'setup: the first tenant is not Granted',
    );
    const realized = Object.keys(this.agent.exports).length;
    check(
      realized === s.exports.length,
      `setup: ${realized} of ${s.exports.length} exports realized`,
    );
    for (const h of s.hidden) {
      const exp = s.exports[h.exportIndex] as ExportPlan;
      try {
        const holder = addHiddenHolder(this.agent, {
          export: `team-a/${exp.name}`,
          comm: 'rdma-agent',
        });
        this.hiddenPids.push({ pid: holder.pid, at: h.removeAfterMs });
        this.stats.hiddenHolders++;
      } catch {
        // The buffer took no new importer (nothing to pass): no hidden holder this time.
      }
    }
  }

  async run(): Promise<void> {
    await this.setup();
    const s = this.s;
    this.handoffAt = this.now;
    this.budgetChanges = [...s.pods.values()].flatMap((p) => {
      if (!p.budget) return [];
      const key = podKeyOf(p.namespace, `pdb-${p.name}`);
      const at = (ms: number) => this.handoffAt + ms;
      const blip = p.budget.blip;
      return [
        ...(blip
          ? [
              { at: at(blip.atMs), key, allows: true },
              { at: at(Math.min(blip.atMs + blip.forMs, p.pdbRefuseMs)), key, allows: false },
            ]
          : []),
        { at: at(p.pdbRefuseMs), key, allows: true },
      ];
    });
    for (let d = 0; d < s.devices; d++) {
      for (const next of s.chains[d] ?? [])
        this.api.put('leases', this.lease('team-b', next.name, d, next));
      this.api.deleteObject('leases', `team-a/old-${d}`);
    }
    if (s.chains.some((c) => c.length > 1)) this.stats.chains++;
    this.log(() => 'handoff starts');
    for (let steps = 0; ; steps++) {
      check(steps < MAX_STEPS, `I3: no end after ${MAX_STEPS} steps`);
      this.stats.steps++;
      const changed = await this.step();
      if (!changed && this.settled()) break;
      if (!this.advance(changed)) break;
    }
    for (const l of this.api.peekAll<Stored & AcceleratorLease>('leases')) {
      if (l.status?.phase === 'Expired') this.stats.expiries++;
    }
    if (this.stuckSince.size > 0) this.stats.stuck++;
    if (s.policy.dryRun) this.stats.dryRun++;
    if (s.idle) this.stats.idle++;
    this.checkSettled();
  }

  /** The last lease the device got to: the one spec.owner names. */
  private ownerLease(device: string): (Stored & AcceleratorLease) | undefined {
    const uid = this.api.peek<Stored & Accelerator>('accelerators', device)?.spec.owner?.lease?.uid;
    return this.api
      .peekAll<Stored & AcceleratorLease>('leases')
      .find((l) => l.metadata.uid === uid);
  }

  /** Every handoff is over (granted, finished, or explicitly unresolvable) and nothing is in flight. */
  settled(): boolean {
    if (this.pendingReplacements.length > 0 || this.api.terminating.size > 0) return false;
    return [...Array(this.s.devices).keys()].every((d) => this.deviceSettled(d) !== undefined);
  }

  /** How device d's story ended, or undefined while it goes on. */
  private deviceSettled(d: number): 'granted' | 'unresolvable' | 'dry-run' | 'idle' | undefined {
    const name = `${NODE}-hl${d}`;
    const accel = this.api.peek<Stored & Accelerator>('accelerators', name);
    if (this.s.idle) {
      const stuck = accel?.status?.phase === 'Stuck';
      const cordoned = accel?.metadata.annotations?.['accel.dmabuf.io/cordoned'] !== undefined;
      return !stuck || cordoned || this.s.policy.dryRun ? 'idle' : undefined;
    }
    const owner = this.ownerLease(name);
    const blocked = owner?.status?.conditions?.find((c) => c.type === 'Blocked');
    const reaping = owner?.status?.conditions?.find((c) => c.type === 'Reaping');
    if (
      blocked?.status === 'True' &&
      blocked.reason === 'Unresolvable' &&
      !owner?.status?.evictions?.some(isActive)
    )
      return 'unresolvable';
    if (this.s.policy.dryRun && reaping?.reason === 'DryRun') return 'dry-run';
    const mine = this.api
      .list<Stored & AcceleratorLease>('leases')
      .filter((l) => l.spec.accelerator === name);
    const open = mine.filter(
      (l) =>
        l.metadata.deletionTimestamp !== undefined ||
        (l.status?.phase !== 'Expired' &&
          l.status?.phase !== 'Released' &&
          l.status?.phase !== 'Granted'),
    );
    return open.length === 0 ? 'granted' : undefined;
  }

  /** I3: each handoff ended in Granted, finished, an explicit Unresolvable, or a dry run's report. */
  checkSettled(): void {
    for (let d = 0; d < this.s.devices; d++) {
      const end = this.deviceSettled(d);
      const owner = this.ownerLease(`${NODE}-hl${d}`);
      check(
        end !== undefined,
        `I3: ${NODE}-hl${d} never settled: owner ${owner?.metadata.name} ${owner?.status?.phase} (${(owner?.status?.conditions ?? []).map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`).join('; ')})`,
      );
      if (end === 'unresolvable' && owner) {
        this.stats.unresolvable++;
        this.checkUnresolvable(`${NODE}-hl${d}`, owner);
      }
    }
  }

  /**
   * Unresolvable must be true of the kernel: a pin is held outside any pod or in an excluded
   * namespace, or more pods hold pins than the budget has left.
   */
  private checkUnresolvable(name: string, lease: AcceleratorLease): void {
    const epoch = this.api.peek<Stored & Accelerator>('accelerators', name)?.spec.owner?.epoch ?? 0;
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
}

export async function runScenario(seed: number, stats: Stats, trace = false): Promise<World> {
  const world = new World(scenario(seed), stats, trace);
  try {
    await world.run();
  } finally {
    stats.scenarios++;
  }
  return world;
}
