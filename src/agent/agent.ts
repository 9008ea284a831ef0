// The node agent's effects: load the state file, publish this node's Accelerators, watch
// Accelerators, pods and DmaBufExports, run the sync serially, persist after every change,
// write statuses with server-side apply, and serve the admin and health endpoints.
import { performance } from 'node:perf_hooks';
import { HttpMethod, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  ACCELERATORS,
  DMABUF_EXPORTS,
  DMABUF_IMPORT_GRANTS,
  API_VERSION,
  Accelerator,
  DmaBufExport,
  DmaBufImportGrant,
  parseObject,
  type AcceleratorOwner,
  type AcceleratorStatus,
  type Condition,
  type DmaBufExportStatus,
  type ExporterProfile,
  podKey,
  preciseTime,
} from '../crds/index.ts';
import {
  EventRecorder,
  Informer,
  KubeClient,
  ReadinessChecks,
  ResourceClient,
  createLogger,
  isNotFound,
  loadKubeConfig,
  resourcePath,
  startHttpServer,
  type ObjectLike,
  type RunningHttpServer,
} from '../kube/index.ts';
import { simBackend, type NodeBackend } from './backend.ts';
import { listenAdmin, type AdminServer, type AdminTarget } from './admin.ts';
import type { HostPort } from './flags.ts';
import { leaseOfOwner } from './ownership.ts';
import type { PodView } from './processes.ts';
import { publish } from './publish.ts';
import { importersOffNode, type RemotePod } from './realize.ts';
import {
  ensureDevices,
  newState,
  parseStateFile,
  readStateFile,
  toStateFile,
  writeStateFile,
  type AgentState,
  type StateFile,
} from './state.ts';
import {
  exportsOnNode,
  syncNode,
  type Note,
  type NoteEvent,
  type Observed,
  type SyncResult,
} from './sync.ts';

export const FIELD_MANAGER = 'accel-lease-agent';
/** reportingController of the agent's Events. */
export const EVENT_CONTROLLER = 'accel.dmabuf.io/agent';
export const NODE_LABEL = 'accel.dmabuf.io/node';
export const MODEL_LABEL = 'accel.dmabuf.io/model';

export interface AgentOptions {
  readonly node: string;
  readonly stateFile: string;
  /** Devices `<node>-hl0..N-1`; default 1. */
  readonly devices?: number;
  readonly model?: string;
  /** Default 96 GiB. */
  readonly memoryBytes?: number;
  /** Profile of devices the state file does not have yet; default static. */
  readonly profile?: ExporterProfile;
  /** Loopback only; port 0 picks a free port. Default 127.0.0.1:9446. */
  readonly adminAddr?: HostPort;
  /** /healthz, /readyz, /metrics; null serves none. Default :8081. */
  readonly httpAddr?: HostPort | null;
  readonly heartbeatMs?: number;
  /** Full relist-free resync of the node; default 30 s. */
  readonly resyncMs?: number;
  readonly kubeconfig?: string;
  /** Takes precedence over `kubeconfig` (tests pass the harness's). */
  readonly kubeConfig?: KubeConfig;
  readonly logger?: Logger;
  /** What exists on this node: the simulated kernel (default) or an observed Linux node. */
  readonly backend?: NodeBackend;
  /**
   * What the admin API's crash does after abandoning everything (no persist, no cleanup).
   * Default: exit the process with code 137 at once. In-process tests pass a no-op.
   */
  readonly onCrash?: () => void;
}

export interface AgentHandle {
  readonly node: string;
  readonly adminUrl: string;
  readonly httpUrl: string | undefined;
  /** The persisted form of the live state (what GET /state answers). */
  snapshot(): StateFile;
  /** Resolves when a full sync (and its status writes) that starts after this call is done. */
  synced(): Promise<void>;
  /** Finish the current step, persist, stop watching and serving. */
  stop(): Promise<void>;
}

/** Startup failed in a way an operator must fix (API unreachable, CRDs missing, bad state file). */
export class AgentStartError extends Error {
  override name = 'AgentStartError';
}

const GiB = 2 ** 30;

/** The deepest cause's message: "connect ECONNREFUSED 127.0.0.1:1" rather than "fetch failed". */
export function rootMessage(err: unknown): string {
  let e: unknown = err;
  let msg = err instanceof Error ? err.message : String(err);
  for (let depth = 0; depth < 8 && e instanceof Error && e.cause !== undefined; depth++) {
    e = e.cause;
    if (e instanceof Error && e.message) msg = e.message;
  }
  return msg;
}

/** Objects as the informers hold them: unvalidated until parsed with the CRD schemas. */
interface RawObject<Status> extends ObjectLike {
  metadata?: ObjectLike['metadata'] & { labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: Status;
}
type RawAccelerator = RawObject<AcceleratorStatus>;
type RawExport = RawObject<DmaBufExportStatus>;
type RawGrant = RawObject<never>;

function formatHostPort(addr: HostPort): string {
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

function podView(pod: V1Pod): PodView {
  return {
    uid: pod.metadata?.uid ?? '',
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    nodeName: pod.spec?.nodeName,
    phase: pod.status?.phase ?? 'Pending',
    comm: pod.spec?.containers[0]?.name ?? pod.metadata?.name ?? 'pod',
    labels: pod.metadata?.labels,
  };
}

function agentMetrics(registry: Registry) {
  const registers = [registry];
  return {
    syncs: new Counter({
      name: 'accel_agent_syncs_total',
      help: 'Node syncs by result',
      labelNames: ['result'],
      registers,
    }),
    syncSeconds: new Histogram({
      name: 'accel_agent_sync_duration_seconds',
      help: 'Duration of one node sync, status writes included',
      registers,
    }),
    writes: new Counter({
      name: 'accel_agent_status_writes_total',
      help: 'Server-side applies by resource and result',
      labelNames: ['resource', 'result'],
      registers,
    }),
    stateWrites: new Counter({
      name: 'accel_agent_state_writes_total',
      help: 'Atomic writes of the state file',
      registers,
    }),
    phase: new Gauge({
      name: 'accel_agent_device_phase',
      help: '1 for the phase each device is in',
      labelNames: ['device', 'phase'],
      registers,
    }),
    pins: new Gauge({
      name: 'accel_agent_device_pins',
      help: "References keeping an earlier owner's memory alive, per device",
      labelNames: ['device'],
      registers,
    }),
    processes: new Gauge({
      name: 'accel_agent_processes',
      help: 'Simulated processes on the node',
      registers,
    }),
    heartbeatPeriod: new Gauge({
      name: 'accel_agent_heartbeat_period_seconds',
      help: 'How often this agent refreshes status.heartbeatTime (--heartbeat), so alerts can tell a late heartbeat',
      labelNames: ['node'],
      registers,
    }),
  };
}

function withTimeout<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new AgentStartError(`${what}: no answer within ${ms / 1000}s`)),
      ms,
    );
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export async function startAgent(options: AgentOptions): Promise<AgentHandle> {
  const node = options.node;
  const log = (options.logger ?? createLogger({ name: 'accel-lease-agent' })).child({ node });
  const setup = {
    count: options.devices ?? 1,
    memoryBytes: options.memoryBytes ?? 96 * GiB,
    profile: options.profile ?? 'static',
  };
  const model = options.model ?? 'gaudi2';
  const heartbeatMs = options.heartbeatMs ?? 10_000;
  const backend = options.backend ?? simBackend;

  // ---- state ------------------------------------------------------------------------------
  let state: AgentState;
  const text = readStateFile(options.stateFile);
  if (text === undefined) {
    state = newState(node, setup);
    log.info(
      { stateFile: options.stateFile, devices: setup.count },
      'no state file: starting fresh',
    );
  } else {
    try {
      state = parseStateFile(text, node, options.stateFile);
    } catch (err) {
      throw new AgentStartError((err as Error).message);
    }
    const mismatched = ensureDevices(state, setup);
    if (mismatched.length > 0) {
      log.warn(
        { devices: mismatched },
        'flags disagree with the memory or profile these devices were created with; the state file wins',
      );
    }
    log.info(
      {
        stateFile: options.stateFile,
        processes: state.kernel.processes().length,
        exports: Object.keys(state.exports).length,
      },
      'restored state',
    );
  }
  let lastWritten = '';
  let dead = false;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = agentMetrics(registry);
  metrics.heartbeatPeriod.set({ node }, heartbeatMs / 1000);
  const persist = (): void => {
    if (dead) return;
    const out = JSON.stringify(toStateFile(state));
    if (out === lastWritten) return;
    writeStateFile(options.stateFile, out);
    lastWritten = out;
    metrics.stateWrites.inc();
  };
  try {
    persist();
  } catch (err) {
    throw new AgentStartError(`cannot write state file ${options.stateFile}: ${rootMessage(err)}`);
  }

  // ---- API server -------------------------------------------------------------------------
  let kc: KubeConfig;
  try {
    kc = options.kubeConfig ?? loadKubeConfig({ kubeconfig: options.kubeconfig });
  } catch (err) {
    throw new AgentStartError((err as Error).message);
  }
  const server = kc.getCurrentCluster()?.server ?? '(no server)';
  const client = new KubeClient(kc, { userAgent: FIELD_MANAGER });
  try {
    await client.request({ method: HttpMethod.GET, path: '/version', timeoutMs: 10_000 });
  } catch (err) {
    throw new AgentStartError(`cannot reach the API server at ${server}: ${rootMessage(err)}`);
  }
  const accelerators = new ResourceClient<RawAccelerator>(client, ACCELERATORS);
  const recorder = new EventRecorder(client, {
    reportingController: EVENT_CONTROLLER,
    reportingInstance: `${FIELD_MANAGER}-${node}`.slice(0, 128),
    logger: log,
  });
  const dmabufExports = new ResourceClient<RawExport>(client, DMABUF_EXPORTS);

  const deviceNames = () => state.kernel.devices().map((d) => d.name);
  const desiredSpec = (name: string) => {
    const dev = state.kernel.device(name);
    return {
      node,
      index: Number(name.slice(node.length + 3)),
      model,
      memoryBytes: dev?.memoryBytes ?? setup.memoryBytes,
      exporterProfile: dev?.profile ?? setup.profile,
    };
  };
  const specApplied = new Map<string, number>();
  const applySpec = async (name: string): Promise<void> => {
    await accelerators.apply(
      {
        apiVersion: API_VERSION,
        kind: 'Accelerator',
        metadata: { name, labels: { [NODE_LABEL]: node, [MODEL_LABEL]: model } },
        spec: desiredSpec(name),
      },
      { fieldManager: FIELD_MANAGER, force: true },
    );
    specApplied.set(name, Date.now());
  };
  for (const name of deviceNames()) {
    try {
      await applySpec(name);
    } catch (err) {
      const hint = isNotFound(err)
        ? ': is the Accelerator CRD installed? (kubectl apply -f deploy/crds/)'
        : '';
      throw new AgentStartError(
        `cannot publish Accelerator ${name} on ${server}: ${rootMessage(err)}${hint}`,
      );
    }
  }

  // Sync loop state, declared before the informers whose handlers trigger it.
  let stopping = false;
  // No sync before every cache has synced: an empty pod cache would look like every pod exited.
  let live = false;
  let running: Promise<void> | undefined;
  let rerun = false;
  let heartbeatDue = true;
  let ready = false;
  let retryMs = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let wakeTimer: NodeJS.Timeout | undefined;
  const waiters: Array<() => void> = [];
  let lastSync: SyncResult | undefined;
  const appliedAccel = new Map<string, { key: string; status: AcceleratorStatus }>();
  const appliedExport = new Map<string, { key: string; status: DmaBufExportStatus }>();
  const remoteCache = new Map<string, { at: number; pod: RemotePod }>();
  const lastWarning = new Map<string, string>();
  const invalidSeen = new Set<string>();

  // ---- informers --------------------------------------------------------------------------
  const accelInformer = new Informer<RawAccelerator>(kc, {
    path: resourcePath(ACCELERATORS),
    labelSelector: `${NODE_LABEL}=${node}`,
    name: 'accelerators',
    logger: log,
  });
  const podInformer = new Informer<V1Pod>(kc, {
    path: '/api/v1/pods',
    fieldSelector: `spec.nodeName=${node}`,
    name: 'pods',
    logger: log,
  });
  const exportInformer = new Informer<RawExport>(kc, {
    path: resourcePath(DMABUF_EXPORTS),
    name: 'dmabufexports',
    logger: log,
  });
  const grantInformer = new Informer<RawGrant>(kc, {
    path: resourcePath(DMABUF_IMPORT_GRANTS),
    name: 'dmabufimportgrants',
    logger: log,
  });
  const informers = [accelInformer, podInformer, exportInformer, grantInformer];
  for (const inf of informers) {
    inf.on('add', () => trigger());
    inf.on('update', () => trigger());
    inf.on('delete', () => trigger());
  }
  accelInformer.on('delete', (obj) => {
    // Recreate it, status included, on the next sync.
    specApplied.delete(obj.metadata?.name ?? '');
    appliedAccel.delete(obj.metadata?.name ?? '');
  });
  try {
    await withTimeout(
      `listing Accelerators, pods, DmaBufExports and DmaBufImportGrants on ${server}`,
      30_000,
      Promise.all(informers.map((i) => i.start())),
    );
  } catch (err) {
    for (const inf of informers) inf.stop();
    throw err instanceof AgentStartError ? err : new AgentStartError(rootMessage(err));
  }

  // ---- the sync loop ----------------------------------------------------------------------
  function trigger(): void {
    if (stopping || !live) return;
    if (running) {
      rerun = true;
      return;
    }
    running = (async () => {
      do {
        rerun = false;
        const done = waiters.splice(0);
        const started = performance.now();
        let ok = false;
        try {
          ok = await syncOnce();
          metrics.syncs.inc({ result: ok ? 'success' : 'retry' });
        } catch (err) {
          metrics.syncs.inc({ result: 'error' });
          log.error({ err }, 'node sync failed');
        }
        metrics.syncSeconds.observe((performance.now() - started) / 1000);
        if (ok) {
          ready = true;
          retryMs = 0;
        } else {
          scheduleRetry();
        }
        for (const w of done) w();
      } while (rerun && !stopping);
      running = undefined;
    })();
  }

  function scheduleRetry(): void {
    if (stopping || retryTimer) return;
    retryMs = Math.min(retryMs === 0 ? 1000 : retryMs * 2, 30_000);
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      trigger();
    }, retryMs);
  }

  function scheduleWake(at: number | undefined): void {
    clearTimeout(wakeTimer);
    wakeTimer = undefined;
    if (at === undefined || stopping) return;
    wakeTimer = setTimeout(() => trigger(), Math.max(0, at - Date.now()) + 5);
  }

  async function ensureSpecs(): Promise<boolean> {
    let ok = true;
    for (const name of deviceNames()) {
      const cached = accelInformer.get(name);
      const want = desiredSpec(name);
      const differs = cached
        ? Object.entries(want).some(([k, v]) => cached.spec?.[k] !== v) ||
          cached.metadata?.labels?.[NODE_LABEL] !== node ||
          cached.metadata?.labels?.[MODEL_LABEL] !== model
        : Date.now() - (specApplied.get(name) ?? 0) > 10_000;
      if (!differs) continue;
      try {
        await applySpec(name);
      } catch (err) {
        ok = false;
        log.warn({ device: name, err: rootMessage(err) }, 'applying the Accelerator spec failed');
      }
    }
    return ok;
  }

  async function lookupRemote(ref: {
    namespace: string;
    name: string;
  }): Promise<RemotePod | undefined> {
    const key = podKey(ref);
    const hit = remoteCache.get(key);
    if (hit && Date.now() - hit.at < 5_000) return hit.pod;
    try {
      const pod = await client.request<V1Pod>({
        method: HttpMethod.GET,
        path: `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/pods/${encodeURIComponent(ref.name)}`,
      });
      const found: RemotePod = { nodeName: pod.spec?.nodeName };
      remoteCache.set(key, { at: Date.now(), pod: found });
      return found;
    } catch (err) {
      if (isNotFound(err)) {
        remoteCache.set(key, { at: Date.now(), pod: 'missing' });
        return 'missing';
      }
      log.warn({ pod: key, err: rootMessage(err) }, 'looking up an importer pod failed');
      return undefined;
    }
  }

  /**
   * The cached objects that parse, each invalid one logged once and skipped. A grant that does
   * not parse grants nothing: an importer it would allow fails instead.
   */
  function parsedAll<S extends z.ZodType>(
    schema: S,
    informer: Informer<ObjectLike>,
    kind: string,
  ): z.output<S>[] {
    const out: z.output<S>[] = [];
    for (const obj of informer.list()) {
      try {
        out.push(parseObject(schema, obj));
      } catch (err) {
        const uid = obj.metadata?.uid ?? '';
        if (!invalidSeen.has(uid)) {
          invalidSeen.add(uid);
          log.warn({ err: (err as Error).message }, `skipping an invalid ${kind}`);
        }
      }
    }
    return out;
  }
  const parsedExports = () => parsedAll(DmaBufExport, exportInformer, 'DmaBufExport');
  const parsedGrants = () => parsedAll(DmaBufImportGrant, grantInformer, 'DmaBufImportGrant');

  async function observe(): Promise<Observed> {
    const owners = new Map<string, AcceleratorOwner | undefined>();
    for (const name of deviceNames()) {
      const obj = accelInformer.get(name);
      if (!obj) continue;
      try {
        owners.set(name, parseObject(Accelerator, obj).spec.owner);
      } catch (err) {
        const msg = (err as Error).message;
        if (lastWarning.get(`invalid/${name}`) !== msg) {
          lastWarning.set(`invalid/${name}`, msg);
          log.warn({ device: name, err: msg }, 'ignoring an invalid Accelerator');
        }
      }
    }
    const pods = new Map<string, PodView>();
    for (const pod of podInformer.list()) {
      const view = podView(pod);
      pods.set(view.uid, view);
    }
    backend.observe({ state, pods, now: Date.now() });
    // Only the simulator can carry out a declared export; an observer reports what it sees.
    const exports = backend.realizesExports ? parsedExports() : [];
    // Importer pods of exports about to be realized that are not on this node: look them up,
    // so an importer elsewhere fails with a reason instead of waiting forever.
    const candidates = exportsOnNode(state, exports).filter((e) => {
      if (state.exports[e.metadata.uid ?? '']) return false;
      const named = (l: { namespace: string; name: string } | undefined) =>
        l !== undefined && l.namespace === e.metadata.namespace && l.name === e.spec.lease;
      return (
        named(leaseOfOwner(state.kernel.device(e.spec.accelerator)?.owner ?? null)) ||
        named(owners.get(e.spec.accelerator)?.lease)
      );
    });
    const byKey = new Map([...pods.values()].map((p) => [`${p.namespace}/${p.name}`, p]));
    const grants = parsedGrants();
    const remote = new Map<string, RemotePod>();
    for (const ref of importersOffNode(candidates, byKey, grants)) {
      const found = await lookupRemote(ref);
      if (found !== undefined) remote.set(podKey(ref), found);
    }
    return { owners, pods, exports, remote, grants, now: Date.now(), nodePins: backend.pins };
  }

  function recordEvent(e: NoteEvent): void {
    const cached =
      e.kind === 'Accelerator'
        ? accelInformer.get(e.name)
        : exportInformer.get(`${e.namespace ?? ''}/${e.name}`);
    recorder.event(
      {
        apiVersion: API_VERSION,
        kind: e.kind,
        name: e.name,
        ...(e.namespace !== undefined && { namespace: e.namespace }),
        ...(cached?.metadata?.uid !== undefined && { uid: cached.metadata.uid }),
      },
      e.type,
      e.reason,
      e.kind === 'Accelerator' ? 'ApplyOwner' : 'Realize',
      e.note,
    );
  }

  function logNotes(notes: readonly Note[], devices: SyncResult['devices']): void {
    for (const note of notes) {
      const device = typeof note.fields.device === 'string' ? note.fields.device : undefined;
      const repeatable =
        note.msg === 'spec.owner refused' ||
        note.msg === 'applying spec.owner failed' ||
        note.msg === 'slow revoke in progress';
      if (device && repeatable) {
        const key = `${note.msg}/${JSON.stringify(note.fields)}`;
        if (lastWarning.get(device) === key) continue;
        lastWarning.set(device, key);
      }
      log[note.level](note.fields, note.msg);
      if (note.event) recordEvent(note.event);
    }
    for (const [device, r] of devices) {
      if (r.outcome.kind === 'unchanged' || r.outcome.kind === 'applied')
        lastWarning.delete(device);
    }
  }

  async function syncOnce(): Promise<boolean> {
    let ok = await ensureSpecs();
    const observed = await observe();
    if (dead) return true;
    const result = syncNode(state, observed);
    persist();
    lastSync = result;
    logNotes(result.notes, result.devices);
    scheduleWake(result.wakeAt);
    const heartbeat = heartbeatDue;
    heartbeatDue = false;
    if (!(await publishAll(heartbeat))) {
      ok = false;
      if (heartbeat) heartbeatDue = true;
    }
    return ok;
  }

  async function publishAll(heartbeat: boolean): Promise<boolean> {
    if (!lastSync || dead) return true;
    const now = Date.now();
    const cachedAccel = (name: string) => accelInformer.get(name)?.status;
    const cachedExport = new Map(
      exportInformer
        .list()
        .map(
          (o) => [o.metadata?.uid ?? '', (o as { status?: DmaBufExportStatus }).status] as const,
        ),
    );
    const published = publish(state, {
      sync: lastSync,
      previousConditions: {
        accelerators: new Map(
          deviceNames().map((n): [string, Condition[] | undefined] => [
            n,
            appliedAccel.get(n)?.status.conditions ?? cachedAccel(n)?.conditions,
          ]),
        ),
        exports: new Map(
          [...lastSync.exports.keys()].map((uid): [string, Condition[] | undefined] => [
            uid,
            appliedExport.get(uid)?.status.conditions ?? cachedExport.get(uid)?.conditions,
          ]),
        ),
      },
      now,
      nodePins: backend.pins,
    });
    let ok = true;
    for (const [name, status] of published.acceleratorStatuses) {
      const key = JSON.stringify(status);
      metrics.pins.set({ device: name }, status.pins?.length ?? 0);
      for (const phase of ['Free', 'Owned', 'Revoking', 'Stuck', 'Unhealthy']) {
        metrics.phase.set({ device: name, phase }, status.phase === phase ? 1 : 0);
      }
      if (!heartbeat && appliedAccel.get(name)?.key === key) continue;
      try {
        await applyAcceleratorStatus(name, { ...status, heartbeatTime: preciseTime(now) });
        appliedAccel.set(name, { key, status });
        metrics.writes.inc({ resource: 'accelerators', result: 'success' });
      } catch (err) {
        ok = false;
        appliedAccel.delete(name);
        metrics.writes.inc({ resource: 'accelerators', result: 'error' });
        log.warn({ device: name, err: rootMessage(err) }, 'writing Accelerator status failed');
      }
    }
    for (const [uid, update] of published.exportStatuses) {
      const key = JSON.stringify(update.status);
      if (appliedExport.get(uid)?.key === key) continue;
      try {
        await dmabufExports.applyStatus(
          {
            apiVersion: API_VERSION,
            kind: 'DmaBufExport',
            metadata: { name: update.name, namespace: update.namespace },
            status: update.status,
          },
          { fieldManager: FIELD_MANAGER, force: true },
        );
        appliedExport.set(uid, { key, status: update.status });
        metrics.writes.inc({ resource: 'dmabufexports', result: 'success' });
      } catch (err) {
        if (isNotFound(err)) continue; // deleted meanwhile: the next sync releases it
        ok = false;
        metrics.writes.inc({ resource: 'dmabufexports', result: 'error' });
        log.warn(
          { export: `${update.namespace}/${update.name}`, err: rootMessage(err) },
          'writing DmaBufExport status failed',
        );
      }
    }
    for (const uid of appliedExport.keys()) {
      if (!published.exportStatuses.has(uid)) appliedExport.delete(uid);
    }
    metrics.processes.set(state.kernel.processes().length);
    return ok;
  }

  async function applyAcceleratorStatus(name: string, status: AcceleratorStatus): Promise<void> {
    if (dead) return;
    await accelerators.applyStatus(
      { apiVersion: API_VERSION, kind: 'Accelerator', metadata: { name }, status },
      { fieldManager: FIELD_MANAGER, force: true },
    );
  }

  // ---- listeners and timers ---------------------------------------------------------------
  const admin: AdminTarget = {
    get state() {
      return state;
    },
    mutate<T>(fn: (s: AgentState) => T): T {
      if (dead || stopping) throw new Error('the agent is stopping');
      const out = fn(state);
      persist();
      trigger();
      return out;
    },
    crash: () => crash(),
  };
  const adminAddr = options.adminAddr ?? { host: '127.0.0.1', port: 9446 };
  const httpAddr = options.httpAddr === undefined ? { host: '', port: 8081 } : options.httpAddr;
  const readiness = new ReadinessChecks()
    .add('informers', () => informers.every((i) => i.hasSynced()) || 'caches not synced')
    .add('node-sync', () => (ready ? true : 'the node has not been reconciled yet'))
    .add('shutdown', () => (stopping ? 'stopping' : true));
  let adminServer: AdminServer | undefined;
  let httpServer: RunningHttpServer | undefined;
  try {
    adminServer = await listenAdmin(adminAddr, admin);
    httpServer = httpAddr
      ? await startHttpServer({
          bindAddress: formatHostPort(httpAddr),
          registry,
          readiness,
          logger: log,
        })
      : undefined;
  } catch (err) {
    for (const inf of informers) inf.stop();
    await adminServer?.close();
    throw new AgentStartError(`cannot listen: ${rootMessage(err)}`);
  }
  const adminListening: AdminServer = adminServer;
  const httpUrl =
    httpServer &&
    `http://${httpAddr?.host ? formatHostPort({ ...httpAddr, port: httpServer.port }) : `127.0.0.1:${httpServer.port}`}`;

  const heartbeatTimer = setInterval(() => {
    heartbeatDue = true;
    trigger();
  }, heartbeatMs);
  const resyncTimer = setInterval(() => trigger(), options.resyncMs ?? 30_000);

  function clearTimers(): void {
    clearInterval(heartbeatTimer);
    clearInterval(resyncTimer);
    clearTimeout(retryTimer);
    clearTimeout(wakeTimer);
  }

  function crash(): void {
    if (!options.onCrash) process.exit(137);
    // In-process: become inert at once, as a killed process would: no persist, no writes.
    dead = true;
    stopping = true;
    clearTimers();
    for (const inf of informers) inf.stop();
    void adminListening.close();
    void httpServer?.close();
    for (const w of waiters.splice(0)) w();
    log.warn('crashed on request of the admin API');
    options.onCrash();
  }

  log.info(
    { server, devices: deviceNames(), admin: adminListening.url, http: httpUrl },
    'agent started',
  );
  live = true;
  trigger();

  return {
    node,
    adminUrl: adminListening.url,
    httpUrl,
    snapshot: () => toStateFile(state),
    synced: () =>
      new Promise<void>((resolve) => {
        if (stopping) return resolve();
        waiters.push(resolve);
        trigger();
      }),
    async stop() {
      if (stopping && !running) return;
      stopping = true;
      clearTimers();
      await running;
      persist();
      for (const inf of informers) inf.stop();
      await recorder.flush();
      await Promise.all([adminListening.close(), httpServer?.close()]);
      for (const w of waiters.splice(0)) w();
      if (!dead) log.info({ stateFile: options.stateFile }, 'agent stopped; state persisted');
    },
  };
}
