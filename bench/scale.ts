// Item 3: scale. A fleet of simulated nodes (bench/fleet.ts plays their agents), leases queued
// on every device and exports on every device; then the controller's fill from scratch, its cold
// start against a bare LIST of the same objects, its memory against the objects' JSON size, and
// a burst of lease deletions (one per device) with its reconciles and API requests per handoff,
// then the same burst at other --workers values.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { CONTROLLER_FLAGS } from '../src/controller/flags.ts';
import { ACCELERATOR_LEASES, ACCELERATORS, DMABUF_EXPORTS } from '../src/crds/index.ts';
import {
  KubeClient,
  loadKubeConfig,
  ResourceClient,
  type ResourceType,
} from '../src/kube/index.ts';
import { percentile, percentiles, type Percentiles } from './report.ts';
import {
  Bench,
  counter,
  requestsByVerb,
  GROUP,
  inParallel,
  sleep,
  startController,
  startFleet,
  sumBy,
  waitFor,
  type Proc,
} from './stack.ts';

export interface ScaleOptions {
  accelerators: number;
  leases: number;
  exports: number;
  /** Controller restarts timed against as many LIST floors. */
  coldStarts: number;
  /** Write a V8 CPU profile of every controller started here into this directory. */
  cpuProfileDir?: string;
  /**
   * Granted leases deleted in the burst, spread evenly over the devices (default: one per device,
   * every device).
   */
  burstDeletions?: number;
  /**
   * After the burst at the controller's default --workers, the same burst again at each of these
   * (the fleet refilled first to the same queue length, the controller restarted with the flag).
   */
  burstWorkers?: readonly number[];
}

export const DEVICES_PER_NODE = 8;
const NAMESPACES = 40;
/** Requests in flight when the bench creates or deletes objects. */
const IN_FLIGHT = 48;
const CONTROLLER = 'acceleratorlease';
const DEFAULT_WORKERS = Number(CONTROLLER_FLAGS.workers.defaultText);

interface Lease {
  metadata: {
    name?: string;
    namespace?: string;
    uid?: string;
    finalizers?: string[];
    deletionTimestamp?: string;
  };
  spec?: { accelerator?: string };
  status?: { phase?: string; queuePosition?: number; accelerator?: string };
}
interface Accel {
  metadata: { name?: string };
  spec?: { owner?: { epoch: number; lease?: { uid: string } } };
  status?: { phase?: string; observedEpoch?: number; owner?: { lease?: { uid: string } } };
}

export interface ScaleResult {
  nodes: number;
  accelerators: number;
  leases: number;
  exports: number;
  namespaces: number;
  /** Items the controller's four LISTs return with the fleet, less those they return without. */
  objects: number;
  create: { acceleratorsMs: number; leasesPerSec: number; exportsPerSec: number };
  /** Controller start to every device Owned, one lease Granted and the rest queued. */
  fillMs: number;
  /** The controller's requests during the fill, by verb (rest_client_requests_total). */
  fillRequests: Record<string, number>;
  coldStart: {
    /** Medians: spawn to every device reconciled with the queue empty (the figure). */
    spawnToReconciledMs: number;
    /** Spawn to the controller's 'caches synced' log line: process start and the four LISTs. */
    spawnToSyncedMs: number;
    /** From there to every device reconciled: the first reconcile pass. */
    syncedToReconciledMs: number;
    /** Spawn to /readyz 200 (answered only once the first pass yields the event loop). */
    spawnToReadyMs: number;
    listFloorMs: number;
    overList: number;
    /**
     * The same, less the start on the empty cluster (Node, the controller's modules, empty
     * LISTs), which the LIST floor does not pay: the target (<= 1.5).
     */
    overListNetOfStart: number;
    /** Writes the controller made during its cold starts (expected 0: nothing changed). */
    writes: number;
    /** One start on the cluster before the fleet: spawn to quiet, what any start costs. */
    emptyClusterMs: number;
  };
  rss: {
    emptyBytes: number;
    fleetBytes: number;
    /** Sum of the JSON size of every item the four LISTs return with the fleet. */
    jsonBytes: number;
    /** RSS with the fleet over jsonBytes, and RSS the fleet added over jsonBytes. */
    overJson: number;
    addedOverJson: number;
    bytesPerObject: number;
    heapUsedBytes: number;
  };
  burst: BurstResult;
  /** The same burst at other --workers values, on the fleet refilled to the same queues. */
  workers?: WorkersRun[];
  /** The whole scale part: fleet, objects, measurements and removing them. */
  wallMs: number;
  samples: {
    spawnToReconciledMs: number[];
    spawnToSyncedMs: number[];
    spawnToReadyMs: number[];
    listFloorMs: number[];
    coldStartWrites: number[];
    rssEmptyBytes: number[];
    rssFleetBytes: number[];
    handoffMs: number[];
  };
}

export type WorkersRun = { workers: number } & Pick<
  BurstResult,
  'deletions' | 'ms' | 'handoffsPerSec' | 'handoffMs' | 'requestsPerHandoff' | 'eventsPerHandoff'
>;

/** A bare client's lease writes on the same cluster: the ceiling they put on the burst. */
export interface WriteFloor {
  writes: number;
  inFlight: number;
  writesPerSec: number;
  /** writesPerSec over the burst's controller requests per handoff. */
  handoffsPerSecCeiling: number;
  /** The burst's handoffs per second over that ceiling. */
  overCeiling: number;
}

export interface BurstResult {
  /** The controller's --workers (its default, for the part's first burst). */
  workers?: number;
  /** Measured after the first burst only: at the default --workers in flight, then at 48. */
  writeFloors?: WriteFloor[];
  deletions: number;
  /** First DELETE sent to the last of the next leases Granted (seen by watch). */
  ms: number;
  handoffsPerSec: number;
  reconciles: number;
  reconcilesPerSec: number;
  /** Per device: its DELETE sent to its next lease Granted. */
  handoffMs: Percentiles;
  /** Until the controller is quiet and the deleted leases are gone; Events included. */
  requestsPerHandoff: number;
  eventsPerHandoff: number;
  requestsPerHandoffWithoutEvents: number;
  /** Per handoff, from rest_client_requests_total: by verb, and by verb and resource. */
  byVerb: Record<string, number>;
  byResource: Record<string, number>;
  /** Accelerator status writes of the fleet (the agents' side) per handoff. */
  agentWritesPerHandoff: number;
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const median = (xs: readonly number[]) => percentile(xs, 50);

/** Sums of a metric by the value of one label, e.g. rest_client_requests_total by verb. */
const byLabel = (text: string, name: string, label: string) =>
  sumBy(text, name, (l) => l.get(label));

const minus = (a: Record<string, number>, b: Record<string, number>, per = 1) =>
  Object.fromEntries(
    Object.entries(a)
      .map(([k, v]) => [k, round((v - (b[k] ?? 0)) / per, 3)] as const)
      .filter(([, v]) => v !== 0),
  );
const total = (r: Record<string, number>) => Object.values(r).reduce((s, x) => s + x, 0);
const WRITE_VERBS = ['create', 'update', 'patch', 'delete'];

/** The controller's queue is empty and nothing is in flight: every add has been reconciled. */
async function quiet(ctl: Proc): Promise<{ reconciles: number } | undefined> {
  const text = await ctl.metrics();
  const adds = counter(text, 'workqueue_adds_total', `name="${CONTROLLER}"`);
  const depth = counter(text, 'workqueue_depth', `name="${CONTROLLER}"`);
  const reconciles = counter(text, 'controller_runtime_reconcile_total', `"${CONTROLLER}"`);
  return depth === 0 && adds === reconciles ? { reconciles } : undefined;
}

/** When the controller logged 'caches synced' (every informer listed), in performance.now() time. */
function cachesSyncedAt(ctl: Proc): number {
  for (const line of readFileSync(ctl.logFile, 'utf8').split('\n')) {
    if (!line.includes('"caches synced"')) continue;
    const time = (JSON.parse(line) as { time?: number }).time;
    if (time !== undefined) return time - performance.timeOrigin;
  }
  return NaN;
}

/** VmRSS of a process, in bytes. */
function rssOf(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  if (!kb) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}

/** Resident memory once settled: 5 samples 600 ms apart after 3 s of quiet, and their median. */
async function steadyRss(ctl: Proc): Promise<number[]> {
  await sleep(3000);
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(rssOf(ctl.child.pid));
    await sleep(600);
  }
  return samples;
}

const PODS: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'pods',
  kind: 'Pod',
  namespaced: true,
};

/**
 * The floor of a cold start: what the controller's four informers list (every Accelerator,
 * AcceleratorLease, DmaBufExport and pod, 500 a page, concurrently), listed by a bare client of
 * the same kind (src/kube KubeClient, parsing every page), timed from the first request to the
 * last page parsed.
 */
async function listFloor(
  kubeconfig: string,
): Promise<{ ms: number; items: number; bytes: number }> {
  const client = new KubeClient(loadKubeConfig({ kubeconfig }));
  const types = [ACCELERATORS, ACCELERATOR_LEASES, DMABUF_EXPORTS, PODS];
  const t0 = performance.now();
  const lists = await Promise.all(types.map((t) => new ResourceClient(client, t).list()));
  const ms = performance.now() - t0;
  let items = 0;
  let bytes = 0;
  for (const l of lists) {
    items += l.items.length;
    for (const item of l.items) bytes += Buffer.byteLength(JSON.stringify(item));
  }
  return { ms, items, bytes };
}

/** The controller's requests so far by verb, and by verb and resource (code if not 2xx). */
async function requestCounts(
  ctl: Proc,
): Promise<{ byVerb: Record<string, number>; byResource: Record<string, number> }> {
  const metrics = await ctl.metrics();
  return {
    byVerb: byLabel(metrics, 'rest_client_requests_total', 'verb'),
    byResource: requestsByVerb(metrics),
  };
}

export async function benchScale(
  kubeconfig: string,
  opts: ScaleOptions,
  log: (s: string) => void,
): Promise<ScaleResult> {
  const started = performance.now();
  const b = new Bench(loadKubeConfig({ kubeconfig }));
  const run = randomBytes(2).toString('hex');
  const nodeCount = Math.ceil(opts.accelerators / DEVICES_PER_NODE);
  const leasesPer = Math.max(1, Math.round(opts.leases / opts.accelerators));
  const namespaces = Array.from(
    { length: Math.min(NAMESPACES, opts.leases) },
    (_, i) => `scale-${run}-t${String(i).padStart(2, '0')}`,
  );
  const controllerOptions = {
    readyPollMs: 20,
    nodeArgs: opts.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfileDir] : [],
  };
  // At info level the controller logs 'caches synced' and little else (no line per reconcile).
  const ctlStart = (args: string[] = []) =>
    startController(kubeconfig, ['--log-level', 'info', ...args], controllerOptions);

  // Baseline: the same controller on the cluster before the fleet exists.
  const empty = await listFloor(kubeconfig);
  let ctl = await ctlStart();
  const emptyReconciled = await waitFor(
    'the controller quiet on the empty cluster',
    async () => ((await quiet(ctl)) ? performance.now() : undefined),
    60_000,
    50,
  );
  const emptyStartMs = emptyReconciled - ctl.spawnedAt;
  const rssEmptyBytes = await steadyRss(ctl);
  await ctl.stop();
  log(
    `  baseline: ${empty.items} objects; the controller reconciled ${s(emptyStartMs)} after its spawn, RSS ${mib(median(rssEmptyBytes))}`,
  );

  const nodes: string[] = [];
  const leases = await b.watch<Lease>(`${GROUP}/acceleratorleases`, 'scale-leases');
  const accels = await b.watch<Accel>(`${GROUP}/accelerators`, 'scale-accelerators');
  let fleet: Proc | undefined;
  const devices: string[] = [];
  let result: ScaleResult;
  const ours = (l: Lease) => l.metadata.namespace?.startsWith(`scale-${run}-`) === true;
  try {
    // ---- the fleet ---------------------------------------------------------------------------
    const t0 = performance.now();
    await inParallel(Array.from({ length: nodeCount }), 16, async () => {
      nodes.push(await b.node(`scale-${run}`));
    });
    nodes.sort();
    fleet = await startFleet(kubeconfig, [
      '--nodes',
      nodes.join(','),
      '--devices',
      String(DEVICES_PER_NODE),
    ]);
    for (const n of nodes) for (let i = 0; i < DEVICES_PER_NODE; i++) devices.push(`${n}-hl${i}`);
    devices.splice(opts.accelerators);
    const acceleratorsMs = performance.now() - t0;
    log(
      `  ${nodes.length} nodes, ${nodes.length * DEVICES_PER_NODE} Accelerators published by the fleet in ${s(acceleratorsMs)}`,
    );

    // ---- leases and exports ------------------------------------------------------------------
    for (const ns of namespaces) await b.namespace(ns);
    const leaseName = (device: string, k: number) => `${device}-l${k}`;
    const nsOf = (d: number, k: number) =>
      namespaces[(d * leasesPer + k) % namespaces.length] ?? '';
    // Position k of every device before position k + 1 of any, so creation order is queue order.
    const leaseJobs = Array.from({ length: opts.leases }, (_, j) => ({
      d: j % devices.length,
      k: Math.floor(j / devices.length),
    }));
    let t = performance.now();
    await inParallel(leaseJobs, IN_FLIGHT, async ({ d, k }) => {
      const device = devices[d] ?? '';
      await b.lease(nsOf(d, k), leaseName(device, k), { accelerator: device });
    });
    const leasesPerSec = opts.leases / ((performance.now() - t) / 1000);
    t = performance.now();
    await inParallel(Array.from({ length: opts.exports }), IN_FLIGHT, async (_, j) => {
      const d = j % devices.length;
      const slot = Math.floor(j / devices.length);
      const k = slot % leasesPer;
      const device = devices[d] ?? '';
      const lease = leaseName(device, k);
      await b.request('POST', `${GROUP}/namespaces/${nsOf(d, k)}/dmabufexports`, {
        apiVersion: 'accel.dmabuf.io/v1alpha1',
        kind: 'DmaBufExport',
        metadata: { name: `${lease}-buf${slot}` },
        spec: {
          accelerator: device,
          lease,
          exporter: { pod: `${lease}-trainer` },
          sizeBytes: 2 ** 30,
          offsetBytes: Math.floor(slot / leasesPer) * 2 ** 30,
        },
      });
    });
    const exportsPerSec = opts.exports / ((performance.now() - t) / 1000);
    log(
      `  created ${opts.leases} leases (${leasesPerSec.toFixed(0)}/s) and ${opts.exports} exports (${exportsPerSec.toFixed(0)}/s) in ${namespaces.length} namespaces`,
    );

    // ---- fill: the controller from scratch ---------------------------------------------------
    ctl = await ctlStart();
    const converged = () => {
      let granted = 0;
      let queued = 0;
      for (const l of leases.informer.list()) {
        if (!ours(l)) continue;
        if (l.status?.phase === 'Granted') granted++;
        else if (l.status?.phase === 'Pending' && (l.status.queuePosition ?? 0) >= 1) queued++;
      }
      if (granted !== devices.length || queued !== opts.leases - devices.length) return false;
      return devices.every((name) => {
        const a = accels.informer.get(name);
        const owner = a?.spec?.owner;
        return (
          a?.status?.phase === 'Owned' &&
          owner?.lease !== undefined &&
          a.status.observedEpoch === owner.epoch &&
          a.status.owner?.lease?.uid === owner.lease.uid
        );
      });
    };
    // 15 minutes, and more for fleets past the 1,000 devices (about 20 grants a second).
    await waitFor('the fill to converge', converged, 15 * 60_000 + 60 * devices.length, 200);
    const fillMs = performance.now() - ctl.spawnedAt;
    const fillRequests = byLabel(await ctl.metrics(), 'rest_client_requests_total', 'verb');
    log(
      `  fill: ${devices.length} Granted, ${opts.leases - devices.length} queued, every device Owned, ${s(fillMs)} after the controller started (${total(fillRequests)} requests)`,
    );
    await waitFor('the controller quiet after the fill', () => quiet(ctl), 5 * 60_000, 200);
    await ctl.stop();

    // ---- cold start against the LIST floor, alternating -------------------------------------
    const spawnToReconciled: number[] = [];
    const spawnToSynced: number[] = [];
    const spawnToReady: number[] = [];
    const floorMs: number[] = [];
    const writes: number[] = [];
    let fleetList = { ms: 0, items: 0, bytes: 0 };
    for (let i = 1; i <= opts.coldStarts; i++) {
      fleetList = await listFloor(kubeconfig);
      floorMs.push(fleetList.ms);
      ctl = await ctlStart();
      const reconciled = await waitFor(
        'every device reconciled after a cold start',
        async () => {
          const q = await quiet(ctl);
          return q && q.reconciles >= devices.length + 1 ? performance.now() : undefined;
        },
        5 * 60_000,
        50,
      );
      spawnToReconciled.push(reconciled - ctl.spawnedAt);
      spawnToSynced.push(cachesSyncedAt(ctl) - ctl.spawnedAt);
      spawnToReady.push(ctl.readyAt - ctl.spawnedAt);
      const verbs = byLabel(await ctl.metrics(), 'rest_client_requests_total', 'verb');
      writes.push(WRITE_VERBS.reduce((n, v) => n + (verbs[v] ?? 0), 0));
      log(
        `  cold start ${i}: caches synced ${s(spawnToSynced.at(-1) ?? 0)}, every device reconciled ${s(spawnToReconciled.at(-1) ?? 0)} after the spawn; LIST floor ${s(fleetList.ms)} (${fleetList.items} objects, ${mib(fleetList.bytes)} JSON)`,
      );
      if (i < opts.coldStarts) await ctl.stop();
    }

    // ---- steady-state memory (the last cold-started controller) ------------------------------
    const rssFleetBytes = await steadyRss(ctl);
    const heapUsedBytes = counter(await ctl.metrics(), 'nodejs_heap_size_used_bytes');
    const objects = fleetList.items - empty.items;
    log(
      `  RSS ${mib(median(rssFleetBytes))} with the fleet, ${mib(median(rssEmptyBytes))} without (${objects} objects)`,
    );

    /** Per device with a Granted lease: it and the leases queued behind it (positioned). */
    const queues = () => {
      const granted = new Set<string>();
      const held = new Map<string, number>();
      for (const l of leases.informer.list()) {
        if (!ours(l) || l.metadata.deletionTimestamp) continue;
        const device = l.spec?.accelerator ?? '';
        const phase = l.status?.phase;
        if (phase === 'Granted') granted.add(device);
        else if (phase !== 'Pending' || (l.status?.queuePosition ?? 0) < 1) continue;
        held.set(device, (held.get(device) ?? 0) + 1);
      }
      for (const device of held.keys()) if (!granted.has(device)) held.delete(device);
      return held;
    };

    // ---- burst: granted leases deleted at once (every one, or burstDeletions spread evenly) ---
    const burst = async (): Promise<{ result: BurstResult; handoffMs: number[]; line: string }> => {
      const granted = new Map<string, Lease>();
      for (const l of leases.informer.list())
        if (ours(l) && l.status?.phase === 'Granted') granted.set(l.spec?.accelerator ?? '', l);
      const grantedBy = burstSubset(devices, granted, opts.burstDeletions ?? devices.length);
      const deleted = new Set([...grantedBy.values()].map((l) => l.metadata.uid));
      const deletedAt = new Map<string, number>();
      const handedAt = new Map<string, number>();
      const gone = new Set<string>();
      let allHanded: () => void = () => undefined;
      const handed = new Promise<void>((resolve) => (allHanded = resolve));
      const onLease = (l: Lease) => {
        const device = l.spec?.accelerator ?? '';
        if (
          l.status?.phase !== 'Granted' ||
          deleted.has(l.metadata.uid) ||
          !grantedBy.has(device) ||
          handedAt.has(device)
        )
          return;
        handedAt.set(device, performance.now());
        if (handedAt.size === grantedBy.size) allHanded();
      };
      const unsubscribe = [
        leases.informer.on('update', onLease),
        leases.informer.on('add', onLease),
        leases.informer.on('delete', (l) => {
          if (deleted.has(l.metadata.uid)) gone.add(l.metadata.uid ?? '');
        }),
      ];
      const fleetWrites = async () =>
        counter(await (fleet as Proc).metrics(), 'accel_fleet_status_writes_total');
      const before = await requestCounts(ctl);
      const reconcilesBefore = (await quiet(ctl))?.reconciles ?? NaN;
      const agentBefore = await fleetWrites();
      const burstStart = performance.now();
      await inParallel([...grantedBy], IN_FLIGHT, async ([device, l]) => {
        deletedAt.set(device, performance.now());
        await b.request(
          'DELETE',
          `${GROUP}/namespaces/${l.metadata.namespace}/acceleratorleases/${l.metadata.name}`,
        );
      });
      // A deadline whose timer goes with the burst: a pending timer would keep the process alive.
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([
        handed,
        new Promise<never>((_, reject) => {
          deadline = setTimeout(
            () =>
              reject(
                new Error(`burst: ${handedAt.size}/${grantedBy.size} handed over after 10 min`),
              ),
            10 * 60_000,
          );
        }),
      ]).finally(() => clearTimeout(deadline));
      const burstMs = Math.max(...handedAt.values()) - burstStart;
      const reconciles =
        counter(await ctl.metrics(), 'controller_runtime_reconcile_total', `"${CONTROLLER}"`) -
        reconcilesBefore;
      await waitFor('the deleted leases gone', () => gone.size === deleted.size, 5 * 60_000, 200);
      await waitFor('the controller quiet after the burst', () => quiet(ctl), 5 * 60_000, 200);
      await sleep(1000); // Events are written after the reconcile that records them
      const after = await requestCounts(ctl);
      const agentWrites = (await fleetWrites()) - agentBefore;
      for (const off of unsubscribe) off();
      const n = grantedBy.size;
      const handoffMs = [...grantedBy.keys()].map(
        (d) => (handedAt.get(d) ?? NaN) - (deletedAt.get(d) ?? NaN),
      );
      const byResource = minus(after.byResource, before.byResource, n);
      const events = (byResource['create events'] ?? 0) + (byResource['patch events'] ?? 0);
      const byVerb = minus(after.byVerb, before.byVerb, n);
      const perHandoff = total(byVerb);
      const line = `${n} deletions handed over in ${s(burstMs)} (${(n / (burstMs / 1000)).toFixed(1)}/s), ${(reconciles / (burstMs / 1000)).toFixed(1)} reconciles/s, ${perHandoff.toFixed(2)} requests per handoff (${events.toFixed(2)} of them Events)`;
      const result: BurstResult = {
        deletions: n,
        ms: round(burstMs),
        handoffsPerSec: round(n / (burstMs / 1000), 1),
        reconciles,
        reconcilesPerSec: round(reconciles / (burstMs / 1000), 1),
        handoffMs: percentiles(handoffMs),
        requestsPerHandoff: round(perHandoff),
        eventsPerHandoff: round(events),
        requestsPerHandoffWithoutEvents: round(perHandoff - events),
        byVerb,
        byResource,
        agentWritesPerHandoff: round(agentWrites / n),
      };
      return { result, handoffMs, line };
    };
    const first = await burst();
    log(`  burst: ${first.line}`);

    // ---- the API server's write rate: a ceiling for the burst -------------------------------
    // A bare client writes the fleet's leases (an annotation, merge patch) as many times as the
    // controller sent requests in the burst, with the controller stopped: as many at once as the
    // controller has workers, then as many as the bench itself sends when it fills the fleet.
    // Each rate over the controller's requests per handoff is the most handoffs per second those
    // requests allow on this API server at that concurrency.
    await ctl.stop();
    const targets = leases.informer.list().filter((l) => ours(l) && !l.metadata.deletionTimestamp);
    const patches = Math.round(first.result.requestsPerHandoff * first.result.deletions);
    const writeFloors: WriteFloor[] = [];
    for (const inFlight of [DEFAULT_WORKERS, IN_FLIGHT]) {
      const w0 = performance.now();
      await inParallel(Array.from({ length: patches }), inFlight, async (_, i) => {
        const l = targets[i % targets.length] as Lease;
        await b.request(
          'PATCH',
          `${GROUP}/namespaces/${l.metadata.namespace}/acceleratorleases/${l.metadata.name}`,
          { metadata: { annotations: { 'bench.accel.dmabuf.io/write': `${inFlight}-${i}` } } },
          'application/merge-patch+json',
        );
      });
      const writesPerSec = patches / ((performance.now() - w0) / 1000);
      const ceiling = writesPerSec / first.result.requestsPerHandoff;
      const floor: WriteFloor = {
        writes: patches,
        inFlight,
        writesPerSec: round(writesPerSec, 1),
        handoffsPerSecCeiling: round(ceiling, 1),
        overCeiling: round(first.result.handoffsPerSec / ceiling),
      };
      writeFloors.push(floor);
      log(
        `  write floor: ${patches} lease patches, ${inFlight} in flight, ${floor.writesPerSec}/s: at ${first.result.requestsPerHandoff} requests per handoff at most ${floor.handoffsPerSecCeiling} handoffs/s (the burst reached ${floor.overCeiling}x of it)`,
      );
    }

    // ---- the same burst at other --workers: each device's queue refilled to its length first --
    const workers: WorkersRun[] = [];
    for (const [i, w] of (opts.burstWorkers ?? []).entries()) {
      await ctl.stop(); // (already stopped for the write floor, on the first round)
      const k = leasesPer + i;
      const short = queues();
      const refill = devices.flatMap((device, d) =>
        short.get(device) === leasesPer - 1 ? [{ device, d }] : [],
      );
      await inParallel(refill, IN_FLIGHT, async ({ device, d }) => {
        await b.lease(nsOf(d, k), leaseName(device, k), { accelerator: device });
      });
      ctl = await ctlStart(['--workers', String(w)]);
      await waitFor(
        `the refilled queues positioned (--workers ${w})`,
        () => {
          const now = queues();
          return refill.every(({ device }) => now.get(device) === leasesPer);
        },
        5 * 60_000,
        200,
      );
      await waitFor('the controller quiet after the refill', () => quiet(ctl), 5 * 60_000, 200);
      const run = await burst();
      log(`  burst at --workers ${w}: ${run.line}`);
      const { deletions, ms, handoffsPerSec, handoffMs, requestsPerHandoff, eventsPerHandoff } =
        run.result;
      workers.push({
        workers: w,
        ...{ deletions, ms, handoffsPerSec, handoffMs, requestsPerHandoff, eventsPerHandoff },
      });
    }

    result = {
      nodes: nodes.length,
      accelerators: devices.length,
      leases: opts.leases,
      exports: opts.exports,
      namespaces: namespaces.length,
      objects,
      create: {
        acceleratorsMs: round(acceleratorsMs),
        leasesPerSec: round(leasesPerSec, 1),
        exportsPerSec: round(exportsPerSec, 1),
      },
      fillMs: round(fillMs),
      fillRequests,
      coldStart: {
        spawnToReconciledMs: round(median(spawnToReconciled)),
        spawnToSyncedMs: round(median(spawnToSynced)),
        syncedToReconciledMs: round(
          median(spawnToReconciled.map((x, i) => x - (spawnToSynced[i] ?? 0))),
        ),
        spawnToReadyMs: round(median(spawnToReady)),
        listFloorMs: round(median(floorMs)),
        overList: round(median(spawnToReconciled) / median(floorMs)),
        overListNetOfStart: round((median(spawnToReconciled) - emptyStartMs) / median(floorMs)),
        writes: writes.reduce((a, x) => a + x, 0),
        emptyClusterMs: round(emptyStartMs),
      },
      rss: {
        emptyBytes: median(rssEmptyBytes),
        fleetBytes: median(rssFleetBytes),
        jsonBytes: fleetList.bytes,
        overJson: round(median(rssFleetBytes) / fleetList.bytes),
        addedOverJson: round((median(rssFleetBytes) - median(rssEmptyBytes)) / fleetList.bytes),
        bytesPerObject: Math.round((median(rssFleetBytes) - median(rssEmptyBytes)) / objects),
        heapUsedBytes,
      },
      burst: { ...first.result, workers: DEFAULT_WORKERS, writeFloors },
      ...(workers.length > 0 && { workers }),
      wallMs: 0,
      samples: {
        spawnToReconciledMs: spawnToReconciled.map((x) => round(x)),
        spawnToSyncedMs: spawnToSynced.map((x) => round(x)),
        spawnToReadyMs: spawnToReady.map((x) => round(x)),
        listFloorMs: floorMs.map((x) => round(x)),
        coldStartWrites: writes,
        rssEmptyBytes,
        rssFleetBytes,
        handoffMs: first.handoffMs.map((x) => round(x)),
      },
    };
  } finally {
    await ctl.stop();
    await fleet?.stop();
    await cleanUp(b, namespaces, nodes, leases.informer.list().filter(ours), log);
    leases.stop();
    accels.stop();
  }
  result.wallMs = round(performance.now() - started);
  log(`  scale part took ${s(result.wallMs)}, removing the fleet included`);
  return result;
}

/** `n` of the devices' granted leases, every (devices / n)th device in fleet order. */
function burstSubset(
  devices: readonly string[],
  granted: ReadonlyMap<string, Lease>,
  n: number,
): Map<string, Lease> {
  const out = new Map<string, Lease>();
  const step = devices.length / Math.min(n, devices.length);
  for (let i = 0; out.size < n && Math.floor(i * step) < devices.length; i++) {
    const device = devices[Math.floor(i * step)] ?? '';
    const l = granted.get(device);
    if (l) out.set(device, l);
  }
  return out;
}

/**
 * Leaves the cluster as the fleet found it. The controller is stopped by now, so the bench drops
 * the leases' finalizers itself before deleting them.
 */
async function cleanUp(
  b: Bench,
  namespaces: string[],
  nodes: string[],
  leases: Lease[],
  log: (s: string) => void,
): Promise<void> {
  const t0 = performance.now();
  await inParallel(
    leases.filter((l) => l.metadata.finalizers?.length),
    IN_FLIGHT,
    (l) =>
      b
        .request(
          'PATCH',
          `${GROUP}/namespaces/${l.metadata.namespace}/acceleratorleases/${l.metadata.name}`,
          { metadata: { finalizers: null } },
          'application/merge-patch+json',
        )
        .catch(() => undefined),
  );
  const t1 = performance.now();
  await inParallel(namespaces, 8, async (ns) => {
    for (const plural of ['acceleratorleases', 'dmabufexports'])
      await b.request('DELETE', `${GROUP}/namespaces/${ns}/${plural}`).catch(() => undefined);
    await b.request('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
  });
  const t2 = performance.now();
  await inParallel(nodes, 16, (n) => b.deleteNode(n));
  const t3 = performance.now();
  log(
    `  removed the fleet in ${s(t3 - t0)} (finalizers ${s(t1 - t0)}, leases, exports and namespaces ${s(t2 - t1)}, nodes and Accelerators ${s(t3 - t2)})`,
  );
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
