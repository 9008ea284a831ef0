// DRA's own way to clear a device, a DeviceTaintRule with effect NoExecute, side by side with this
// project's handoff, on the seed's story in DRA mode and the same API server: who was removed,
// whether a PDB held, whether a pin of the old epoch survived, whether B's pod ran, and when.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { ClusterOptions } from '../e2e/cluster/index.ts';
import {
  claimManifest,
  claimPodManifest,
  deviceClassManifest,
  RESOURCE,
} from '../e2e/stack/dra-manifests.ts';
import { HANDOFF_COMPLETE } from '../src/crds/index.ts';
import { isAlreadyExists, type ObjectLike } from '../src/kube/index.ts';
import type { Bench, Proc } from './stack.ts';
import { GROUP, sleep, startAgent, startController, waitFor } from './stack.ts';

/** DeviceTaintRule is beta and off by default in 1.36: the bench's cluster turns it on. */
export const DRA_TAINT_CLUSTER: ClusterOptions = {
  featureGates: 'DRADeviceTaintRules=true',
  runtimeConfig: 'resource.k8s.io/v1beta2=true',
};

const RULES = '/apis/resource.k8s.io/v1beta2/devicetaintrules';
const DRIVER = 'accel.dmabuf.io';
/** Kubernetes' own reasons on a pod's DisruptionTarget condition, by who removed it. */
export const BY_TAINT_MANAGER = 'DeletionByDeviceTaintManager';
export const BY_EVICTION_API = 'EvictionByEvictionAPI';

export type Mechanism = 'taint' | 'accel-lease';

/** The story's pods by the role names of the seed (their namespaces are per run). */
export const STORY_PODS = [
  'team-a/trainer-0',
  'team-a/trainer-1',
  'team-io/loader-0',
  'team-io/bystander-0',
] as const;
export const PDB_POD = 'team-a/trainer-1';
export const B_POD = 'team-b/train-0';
export const B_CLAIM = 'team-b/tenant-b';

/** One observation after the trigger, in ms from it (watch arrival time). */
export type StoryEvent =
  | { atMs: number; kind: 'podGone'; pod: string; disruptionReason?: string }
  | { atMs: number; kind: 'claimAllocated'; claim: string; device: string }
  | { atMs: number; kind: 'claimDeallocated'; claim: string }
  | { atMs: number; kind: 'handoffComplete'; claim: string; status: string; reason: string }
  | { atMs: number; kind: 'podBound'; pod: string; node: string }
  | { atMs: number; kind: 'podRunning'; pod: string }
  | {
      atMs: number;
      kind: 'accelerator';
      phase: string;
      epoch: number;
      pins: { pod?: string; kind: string; epoch: number }[];
    }
  | { atMs: number; kind: 'lease'; lease: string; phase: string }
  | { atMs: number; kind: 'rule'; status: string; reason: string; message: string }
  | { atMs: number; kind: 'ruleDeleted' };

export interface StoryRun {
  mechanism: Mechanism;
  /** What was done at t = 0. */
  trigger: string;
  controllerFlags: string[];
  node: string;
  namespaces: Record<'team-a' | 'team-io' | 'team-b', string>;
  /** Tenant A's grant: the epoch whose pins must not survive. */
  oldEpoch: number;
  /** The PDB on PDB_POD before the trigger. */
  pdb: { minAvailable: number; disruptionsAllowed: number };
  /** The pods the trigger itself deleted (tenant A's release), not the mechanism. */
  deletedByTrigger: string[];
  /** How long B's pod was given to bind after the last step of the mechanism. */
  windowMs: number;
  events: StoryEvent[];
  /** At the end: which story pods still exist, B's pod's node and phase, pins left. */
  end: {
    podsLeft: string[];
    bNode?: string;
    bPhase?: string;
    acceleratorPhase?: string;
    pins: { pod?: string; kind: string; epoch: number }[];
  };
}

interface Meta {
  name?: string;
  namespace?: string;
  uid?: string;
  deletionTimestamp?: string;
}
interface Pod extends ObjectLike {
  metadata: Meta;
  spec?: { nodeName?: string };
  status?: {
    phase?: string;
    conditions?: { type: string; status: string; reason?: string }[];
  };
}
interface Claim extends ObjectLike {
  metadata: Meta;
  status?: {
    allocation?: { devices?: { results?: { driver: string; device: string }[] } };
    devices?: { driver: string; conditions?: { type: string; status: string; reason: string }[] }[];
  };
}
interface Accelerator extends ObjectLike {
  metadata: Meta;
  status?: {
    phase?: string;
    observedEpoch?: number;
    pins?: { pod?: { namespace: string; name: string }; kind: string; epoch: number }[];
  };
}
interface Lease extends ObjectLike {
  metadata: Meta;
  status?: { phase?: string; epoch?: number };
}
interface Rule extends ObjectLike {
  metadata: Meta;
  status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
}

/** LeaseParameters of B's claim: no grace, so the figure is the mechanism, not a policy wait. */
const B_REVOCATION = { gracePeriodSeconds: 0, maxEvictions: 5 };

/**
 * Runs the story once under `mechanism` on a fresh simulated node and namespaces, and returns
 * what the watches saw. The controller runs in DRA mode either way; for `taint` with
 * `--dry-run`, so that every pod removed is removed by DRA's device-taint-eviction controller,
 * while the claim's binding condition still says whether the device is clear.
 */
export async function runStory(
  b: Bench,
  kubeconfig: string,
  mechanism: Mechanism,
  windowMs: number,
  log: (line: string) => void,
): Promise<StoryRun> {
  const suffix = randomBytes(2).toString('hex');
  const node = await b.node(`bench-dra-${mechanism === 'taint' ? 't' : 'p'}`);
  const accel = `${node}-hl0`;
  const ns = {
    'team-a': await b.namespace(`dra-a-${suffix}`),
    'team-io': await b.namespace(`dra-io-${suffix}`),
    'team-b': await b.namespace(`dra-b-${suffix}`),
  };
  const role = (namespace: string | undefined, name: string | undefined) =>
    `${Object.entries(ns).find(([, v]) => v === namespace)?.[0] ?? namespace}/${name}`;
  const controllerFlags = ['--dra', ...(mechanism === 'taint' ? ['--dry-run'] : [])];
  const procs: Proc[] = [];
  const rule = `bench-${node}`;
  const watches: { stop(): void }[] = [];
  try {
    procs.push(await startAgent(kubeconfig, node, 'dynamic', 1, ['--dra']));
    procs.push(await startController(kubeconfig, controllerFlags));
    await ensureDeviceClass(b);
    log(`  ${mechanism}: tenant A's claim, two trainers (a PDB on trainer-1), loader-0's MR`);
    const oldEpoch = await tenantA(b, ns['team-a'], accel);
    await b.pods(ns['team-io'], ['loader-0', 'bystander-0'], node, { app: 'io' });
    await b.request('POST', `${GROUP}/namespaces/${ns['team-io']}/dmabufimportgrants`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufImportGrant',
      metadata: { name: 'from-tenant-a', namespace: ns['team-io'] },
      spec: { from: [{ namespace: ns['team-a'] }] },
    });
    await b.request('POST', `${GROUP}/namespaces/${ns['team-a']}/dmabufexports`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufExport',
      metadata: { name: 'weights', namespace: ns['team-a'] },
      spec: {
        accelerator: accel,
        lease: 'tenant-a',
        exporter: { pod: 'trainer-0' },
        sizeBytes: 1 << 30,
        importers: [
          { name: 'nic0', kind: 'rdma-mr', pod: { namespace: ns['team-io'], name: 'loader-0' } },
          { name: 'view', kind: 'mmap', pod: { namespace: ns['team-a'], name: 'trainer-0' } },
        ],
      },
    });
    await waitFor('export weights Active', async () => {
      const e = await b.request<Lease>(
        'GET',
        `${GROUP}/namespaces/${ns['team-a']}/dmabufexports/weights`,
      );
      return e.status?.phase === 'Active';
    });
    await claim(b, ns['team-b'], 'tenant-b', { revocation: B_REVOCATION });
    await claimPod(b, ns['team-b'], 'train-0', 'tenant-b', {});
    await waitFor("B's pod unschedulable (the device is A's)", async () => {
      const p = await b.request<Pod>('GET', `/api/v1/namespaces/${ns['team-b']}/pods/train-0`);
      return p.status?.conditions?.some(
        (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
      );
    });
    const pdb = await waitFor('PDB trainer-1 at 0 disruptions allowed', async () => {
      const p = await b.request<{
        status?: { currentHealthy?: number; disruptionsAllowed?: number };
      }>('GET', `/apis/policy/v1/namespaces/${ns['team-a']}/poddisruptionbudgets/trainer-1`);
      return p.status?.currentHealthy === 1 && p.status.disruptionsAllowed === 0
        ? { minAvailable: 1, disruptionsAllowed: 0 }
        : undefined;
    });

    // The watches that time everything after the trigger.
    const events: StoryEvent[] = [];
    let t0 = NaN;
    const at = () => Math.round((performance.now() - t0) * 10) / 10;
    const record = (e: StoryEvent) => {
      if (!Number.isNaN(t0)) events.push(e);
    };
    const pods = await b.watch<Pod>('/api/v1/pods', 'dra-pods');
    watches.push(pods);
    const mine = new Set(Object.values(ns));
    const seen = new Set<string>();
    const once = (key: string, e: () => StoryEvent) => {
      if (Number.isNaN(t0) || seen.has(key)) return;
      seen.add(key);
      record(e());
    };
    pods.informer.on('delete', (p) => {
      if (!mine.has(p.metadata.namespace ?? '')) return;
      const pod = role(p.metadata.namespace, p.metadata.name);
      const target = p.status?.conditions?.find((c) => c.type === 'DisruptionTarget');
      once(`gone ${pod}`, () => ({
        atMs: at(),
        kind: 'podGone',
        pod,
        ...(target?.reason !== undefined && { disruptionReason: target.reason }),
      }));
    });
    pods.informer.on('update', (p) => {
      if (p.metadata.namespace !== ns['team-b']) return;
      const pod = role(p.metadata.namespace, p.metadata.name);
      const nodeName = p.spec?.nodeName;
      if (nodeName)
        once(`bound ${pod}`, () => ({ atMs: at(), kind: 'podBound', pod, node: nodeName }));
      if (p.status?.phase === 'Running')
        once(`running ${pod}`, () => ({ atMs: at(), kind: 'podRunning', pod }));
    });
    const claims = await b.watch<Claim>(`${RESOURCE}/resourceclaims`, 'dra-claims');
    watches.push(claims);
    const allocation = new Map<string, string | undefined>();
    const condition = new Map<string, string | undefined>();
    const onClaim = (c: Claim) => {
      if (!mine.has(c.metadata.namespace ?? '')) return;
      const name = role(c.metadata.namespace, c.metadata.name);
      const device = c.status?.allocation?.devices?.results?.find((r) => r.driver === DRIVER);
      const was = allocation.get(name);
      allocation.set(name, device?.device);
      if (was !== device?.device) {
        if (device)
          record({ atMs: at(), kind: 'claimAllocated', claim: name, device: device.device });
        else record({ atMs: at(), kind: 'claimDeallocated', claim: name });
      }
      const complete = c.status?.devices
        ?.find((d) => d.driver === DRIVER)
        ?.conditions?.find((x) => x.type === HANDOFF_COMPLETE);
      const said = complete && `${complete.status} ${complete.reason}`;
      if (said === condition.get(name)) return;
      condition.set(name, said);
      if (complete)
        record({
          atMs: at(),
          kind: 'handoffComplete',
          claim: name,
          status: complete.status,
          reason: complete.reason,
        });
    };
    claims.informer.on('add', onClaim);
    claims.informer.on('update', onClaim);
    const accels = await b.watch<Accelerator>(`${GROUP}/accelerators`, 'dra-accel');
    watches.push(accels);
    let lastAccel = '';
    accels.informer.on('update', (x) => {
      if (x.metadata.name !== accel) return;
      const e: StoryEvent = {
        atMs: 0,
        kind: 'accelerator',
        phase: x.status?.phase ?? '',
        epoch: x.status?.observedEpoch ?? 0,
        pins: (x.status?.pins ?? []).map((p) => ({
          ...(p.pod && { pod: role(p.pod.namespace, p.pod.name) }),
          kind: p.kind,
          epoch: p.epoch,
        })),
      };
      const key = JSON.stringify({ ...e, atMs: 0 });
      if (key === lastAccel) return;
      lastAccel = key;
      record({ ...e, atMs: at() });
    });
    const leases = await b.watch<Lease>(`${GROUP}/acceleratorleases`, 'dra-leases');
    watches.push(leases);
    const leasePhase = new Map<string, string>();
    const onLease = (l: Lease, gone = false) => {
      if (!mine.has(l.metadata.namespace ?? '')) return;
      const name = role(l.metadata.namespace, l.metadata.name);
      const phase = gone ? 'Deleted' : (l.status?.phase ?? 'Pending');
      if (leasePhase.get(name) === phase) return;
      leasePhase.set(name, phase);
      record({ atMs: at(), kind: 'lease', lease: name, phase });
    };
    leases.informer.on('add', (l) => onLease(l));
    leases.informer.on('update', (l) => onLease(l));
    leases.informer.on('delete', (l) => onLease(l, true));
    for (const l of leases.informer.list()) onLease(l);
    for (const c of claims.informer.list()) onClaim(c);
    const rules = await b.watch<Rule>(RULES, 'dra-rules');
    watches.push(rules);
    let lastRule = '';
    rules.informer.on('update', (r) => {
      const c = r.status?.conditions?.find((x) => x.type === 'EvictionInProgress');
      if (r.metadata.name !== rule || !c) return;
      const key = `${c.status} ${c.reason} ${c.message}`;
      if (key === lastRule) return;
      lastRule = key;
      record({ atMs: at(), kind: 'rule', status: c.status, reason: c.reason, message: c.message });
    });
    rules.informer.on('delete', (r) => {
      if (r.metadata.name === rule) record({ atMs: at(), kind: 'ruleDeleted' });
    });

    const aPodsGone = () =>
      ['team-a/trainer-0', 'team-a/trainer-1'].every((p) => seen.has(`gone ${p}`));
    const bAllocated = () => allocation.get(B_CLAIM) !== undefined;
    const bRunning = () => seen.has(`running ${B_POD}`);
    let trigger: string;
    const deletedByTrigger: string[] = [];
    t0 = performance.now();
    if (mechanism === 'taint') {
      trigger = `DeviceTaintRule ${rule}: effect NoExecute on ${DRIVER}/${node}/hl0`;
      log(`  ${trigger}`);
      await b.request('POST', RULES, {
        apiVersion: 'resource.k8s.io/v1beta2',
        kind: 'DeviceTaintRule',
        metadata: { name: rule },
        spec: {
          deviceSelector: { driver: DRIVER, pool: node, device: 'hl0' },
          taint: { key: 'accel.dmabuf.io/handoff', value: 'tenant-b', effect: 'NoExecute' },
        },
      });
      await waitFor("A's pods deleted by the taint", aPodsGone, 60_000);
      // The rule says when it is done; then the administrator lifts it so B can be allocated.
      await waitFor(
        'the rule to report its eviction Completed',
        () => lastRule.startsWith('False Completed'),
        60_000,
      );
      await b.request('DELETE', `${RULES}/${rule}`);
      log(`  rule Completed and deleted at ${at()} ms; B's pod has ${windowMs / 1000} s to run`);
      await waitFor("B's claim allocated once the rule is gone", bAllocated, 30_000).catch(
        () => undefined,
      );
      await waitFor("B's pod running", bRunning, windowMs).catch(() => undefined);
    } else {
      trigger = "tenant A's release: DELETE of its two pods (the claim is deallocated)";
      log(`  ${trigger}`);
      deletedByTrigger.push('team-a/trainer-0', 'team-a/trainer-1');
      await Promise.all(
        ['trainer-0', 'trainer-1'].map((p) =>
          b.request('DELETE', `/api/v1/namespaces/${ns['team-a']}/pods/${p}`),
        ),
      );
      await waitFor("B's pod running", bRunning, 120_000);
      // A late removal would still show: the watches run a second longer.
      await sleep(1000);
    }

    const end = await snapshot(b, ns, accel, role);
    for (const w of watches.splice(0)) w.stop();
    return {
      mechanism,
      trigger,
      controllerFlags,
      node,
      namespaces: ns,
      oldEpoch,
      pdb,
      deletedByTrigger,
      windowMs,
      events,
      end,
    };
  } finally {
    for (const w of watches) w.stop();
    await Promise.all(procs.map((p) => p.stop()));
    await b.request('DELETE', `${RULES}/${rule}`).catch(() => undefined);
    for (const n of Object.values(ns))
      await b.request('DELETE', `/api/v1/namespaces/${n}`).catch(() => undefined);
    await b
      .request('DELETE', `${RESOURCE}/resourceslices/${node}.${DRIVER}`)
      .catch(() => undefined);
    await b.deleteNode(node);
  }
}

async function ensureDeviceClass(b: Bench): Promise<void> {
  await b
    .request('POST', `${RESOURCE}/deviceclasses`, deviceClassManifest())
    .catch((err: unknown) => {
      if (!isAlreadyExists(err)) throw err;
    });
}

const claim = (b: Bench, ns: string, name: string, params?: Record<string, unknown>) =>
  b.request('POST', `${RESOURCE}/namespaces/${ns}/resourceclaims`, claimManifest(ns, name, params));

const claimPod = (
  b: Bench,
  ns: string,
  name: string,
  claimName: string,
  labels: Record<string, string>,
) =>
  b.request('POST', `/api/v1/namespaces/${ns}/pods`, claimPodManifest(ns, name, claimName, labels));

/**
 * Tenant A's claim `tenant-a` with two pods sharing it (a PDB of minAvailable 1 on trainer-1);
 * returns the epoch of A's grant once both run.
 */
async function tenantA(b: Bench, ns: string, accel: string): Promise<number> {
  await claim(b, ns, 'tenant-a');
  await b.request('POST', `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`, {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'trainer-1', namespace: ns },
    spec: { minAvailable: 1, selector: { matchLabels: { pdb: 'trainer-1' } } },
  });
  await claimPod(b, ns, 'trainer-0', 'tenant-a', { app: 'train' });
  await claimPod(b, ns, 'trainer-1', 'tenant-a', { app: 'train', pdb: 'trainer-1' });
  await waitFor("A's trainers Running", async () => {
    const list = await b.request<{ items: Pod[] }>('GET', `/api/v1/namespaces/${ns}/pods`);
    return list.items.filter((p) => p.status?.phase === 'Running').length === 2;
  });
  const lease = await b.request<Lease>(
    'GET',
    `${GROUP}/namespaces/${ns}/acceleratorleases/tenant-a`,
  );
  if (lease.status?.phase !== 'Granted')
    throw new Error(
      `tenant A's pods run but its lease is ${lease.status?.phase ?? 'unset'} on ${accel}`,
    );
  return lease.status.epoch ?? 0;
}

async function snapshot(
  b: Bench,
  ns: Record<string, string>,
  accel: string,
  role: (namespace: string | undefined, name: string | undefined) => string,
): Promise<StoryRun['end']> {
  const podsLeft: string[] = [];
  for (const n of Object.values(ns)) {
    const list = await b.request<{ items: Pod[] }>('GET', `/api/v1/namespaces/${n}/pods`);
    for (const p of list.items)
      if (!p.metadata.deletionTimestamp) podsLeft.push(role(p.metadata.namespace, p.metadata.name));
  }
  const bPod = await b.request<Pod>('GET', `/api/v1/namespaces/${ns['team-b']}/pods/train-0`);
  const a = await b.request<Accelerator>('GET', `${GROUP}/accelerators/${accel}`);
  return {
    podsLeft: podsLeft.sort(),
    ...(bPod.spec?.nodeName !== undefined && { bNode: bPod.spec.nodeName }),
    ...(bPod.status?.phase !== undefined && { bPhase: bPod.status.phase }),
    ...(a.status?.phase !== undefined && { acceleratorPhase: a.status.phase }),
    pins: (a.status?.pins ?? []).map((p) => ({
      ...(p.pod && { pod: role(p.pod.namespace, p.pod.name) }),
      kind: p.kind,
      epoch: p.epoch,
    })),
  };
}

/** What one run comes to, from its events alone. */
export interface StoryOutcome {
  mechanism: Mechanism;
  /** Story pods removed after the trigger, in order, and by whom. */
  removed: { pod: string; by: string; atMs: number }[];
  /** False when PDB_POD was removed by the mechanism other than through the Eviction API. */
  pdbHonoured: boolean;
  /** Pins left at the end that keep tenant A's epoch (or an earlier one) alive. */
  pinsSurvived: { pod?: string; kind: string; epoch: number }[];
  bRan: boolean;
  aPodsGoneMs?: number;
  /** The DeviceTaintRule's EvictionInProgress condition False with reason Completed. */
  ruleCompletedMs?: number;
  /** The first device status after the trigger at a later epoch with no pin of A's epoch. */
  pinsClearedMs?: number;
  bAllocatedMs?: number;
  handoffCompleteMs?: number;
  bRunningMs?: number;
}

const REMOVED_BY: Record<string, string> = {
  [BY_TAINT_MANAGER]: 'device-taint-eviction, by DELETE',
  [BY_EVICTION_API]: 'Eviction API',
};

export function summarizeStory(run: StoryRun): StoryOutcome {
  const removed = run.events.flatMap((e) =>
    e.kind === 'podGone'
      ? [
          {
            pod: e.pod,
            by: run.deletedByTrigger.includes(e.pod)
              ? "tenant A's release, by DELETE"
              : (REMOVED_BY[e.disruptionReason ?? ''] ?? 'DELETE'),
            atMs: e.atMs,
          },
        ]
      : [],
  );
  const pdbRemoval = removed.find((r) => r.pod === PDB_POD);
  const pdbHonoured =
    pdbRemoval === undefined ||
    run.deletedByTrigger.includes(PDB_POD) ||
    pdbRemoval.by === 'Eviction API';
  const aGone = removed.filter((r) => r.pod.startsWith('team-a/'));
  const at = (p: (e: StoryEvent) => boolean) => run.events.find(p)?.atMs;
  const bRunningMs = at((e) => e.kind === 'podRunning' && e.pod === B_POD);
  const pinsClearedMs = at(
    (e) =>
      e.kind === 'accelerator' &&
      e.epoch > run.oldEpoch &&
      !e.pins.some((p) => p.epoch <= run.oldEpoch),
  );
  const bAllocatedMs = at((e) => e.kind === 'claimAllocated' && e.claim === B_CLAIM);
  const ruleCompletedMs = at(
    (e) => e.kind === 'rule' && e.status === 'False' && e.reason === 'Completed',
  );
  const handoffCompleteMs = at(
    (e) => e.kind === 'handoffComplete' && e.claim === B_CLAIM && e.status === 'True',
  );
  return {
    mechanism: run.mechanism,
    removed,
    pdbHonoured,
    pinsSurvived: run.end.pins.filter((p) => p.epoch <= run.oldEpoch),
    bRan: run.end.bPhase === 'Running' && run.end.bNode !== undefined,
    ...(aGone.length === 2 && { aPodsGoneMs: Math.max(...aGone.map((r) => r.atMs)) }),
    ...(ruleCompletedMs !== undefined && { ruleCompletedMs }),
    ...(pinsClearedMs !== undefined && { pinsClearedMs }),
    ...(bAllocatedMs !== undefined && { bAllocatedMs }),
    ...(handoffCompleteMs !== undefined && { handoffCompleteMs }),
    ...(bRunningMs !== undefined && { bRunningMs }),
  };
}

export interface DraTaintResult {
  rounds: number;
  windowMs: number;
  outcomes: StoryOutcome[];
  /** Every run's raw record, in the order they ran (taint, then accel-lease, per round). */
  runs: StoryRun[];
}

/** `rounds` times: the story under DRA's taint, then under this project, each on a fresh node. */
export async function benchDraTaint(
  b: Bench,
  kubeconfig: string,
  rounds: number,
  windowMs: number,
  log: (line: string) => void,
): Promise<DraTaintResult> {
  const runs: StoryRun[] = [];
  for (let i = 1; i <= rounds; i++) {
    for (const mechanism of ['taint', 'accel-lease'] as const) {
      const run = await runStory(b, kubeconfig, mechanism, windowMs, log);
      runs.push(run);
      const o = summarizeStory(run);
      log(
        `round ${i}, ${mechanism}: removed ${o.removed.map((r) => r.pod).join(', ') || 'nothing'}; pins left ${o.pinsSurvived.length}; B ran: ${o.bRan}${o.bRunningMs !== undefined ? ` at ${o.bRunningMs} ms` : ''}`,
      );
    }
  }
  return { rounds, windowMs, outcomes: runs.map(summarizeStory), runs };
}
