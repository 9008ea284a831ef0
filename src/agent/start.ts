// Starts the node agent in-process and wires its parts: the state file, this node's
// Accelerators, the watches that trigger the sync loop, the status writes, and the listeners.
import { HttpMethod, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ExporterProfile } from '../crds/index.ts';
import { KubeClient, ReadinessChecks, createLogger, loadKubeConfig } from '../kube/index.ts';
import { AcceleratorSpecs, FIELD_MANAGER } from './accelerator-specs.ts';
import type { AdminTarget } from './admin.ts';
import { simBackend, type NodeBackend } from './backend.ts';
import { AgentStartError, rootMessage } from './errors.ts';
import type { HostPort } from './flags.ts';
import { AgentMetrics } from './metrics.ts';
import { NoteReporter } from './notes.ts';
import { NodeObserver } from './observe-cluster.ts';
import { closeServers, serveAgent, type AgentServers } from './serve.ts';
import type { AgentState, StateFile } from './state.ts';
import { StateStore } from './state-store.ts';
import { StatusWriter } from './status-writes.ts';
import { SyncLoop } from './sync-loop.ts';
import { syncPass } from './sync-pass.ts';
import { AgentWatches } from './watches.ts';
import { SlicePublisher } from './resource-slice.ts';

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
  /** Publish this node's devices as a ResourceSlice of DRA driver accel.dmabuf.io. */
  readonly dra?: boolean;
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

const GiB = 2 ** 30;

/** A client for the API server, checked to answer before anything else is started. */
async function connect(
  options: AgentOptions,
): Promise<{ kc: KubeConfig; client: KubeClient; server: string }> {
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
  return { kc, client, server };
}

/** The admin API's hold on the agent: every change it makes is persisted and synced. */
function adminTarget(store: StateStore, loop: SyncLoop, crash: () => void): AdminTarget {
  return {
    get state() {
      return store.state;
    },
    mutate<T>(fn: (s: AgentState) => T): T {
      if (store.crashed || loop.stopping) throw new Error('the agent is stopping');
      const out = fn(store.state);
      store.persist();
      loop.trigger();
      return out;
    },
    crash,
  };
}

function readinessChecks(watches: AgentWatches, loop: SyncLoop): ReadinessChecks {
  return new ReadinessChecks()
    .add('informers', () => watches.hasSynced() || 'caches not synced')
    .add('node-sync', () => (loop.ready ? true : 'the node has not been reconciled yet'))
    .add('shutdown', () => (loop.stopping ? 'stopping' : true));
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

  const metrics = new AgentMetrics(node, heartbeatMs);
  const store = new StateStore(options.stateFile, node, setup, metrics, log);
  const { kc, client, server } = await connect(options);
  const specs = new AcceleratorSpecs(client, store, { node, model, setup }, log);
  await specs.publishAtStart(server);

  const watches = new AgentWatches(kc, node, log);
  const notes = new NoteReporter(client, node, watches, log);
  const statuses = new StatusWriter(client, store, watches, backend, metrics, log);
  const observer = new NodeObserver(client, watches, backend, store, log);
  const loop: SyncLoop = new SyncLoop(
    syncPass({
      watches,
      specs,
      observer,
      store,
      notes,
      statuses,
      ...(options.dra && { slices: new SlicePublisher(client, node, log) }),
      wakeAt: (at) => loop.wakeAt(at),
    }),
    metrics,
    log,
  );
  watches.onChange(() => loop.trigger());
  watches.accelerators.on('delete', (obj) => {
    // Recreate it, status included, on the next sync.
    specs.forget(obj.metadata?.name ?? '');
    statuses.forget(obj.metadata?.name ?? '');
  });
  await watches.start(server);

  let servers: AgentServers;
  try {
    servers = await serveAgent({
      adminAddr: options.adminAddr ?? { host: '127.0.0.1', port: 9446 },
      httpAddr: options.httpAddr === undefined ? { host: '', port: 8081 } : options.httpAddr,
      admin: adminTarget(store, loop, () => crash()),
      registry: metrics.registry,
      readiness: readinessChecks(watches, loop),
      log,
    });
  } catch (err) {
    watches.stop();
    throw err;
  }

  loop.every(heartbeatMs, () => statuses.heartbeat());
  loop.every(options.resyncMs ?? 30_000);

  function crash(): void {
    if (!options.onCrash) process.exit(137);
    // In-process: become inert at once, as a killed process would: no persist, no writes.
    store.crashed = true;
    loop.halt();
    watches.stop();
    void closeServers(servers);
    loop.releaseWaiters();
    log.warn('crashed on request of the admin API');
    options.onCrash();
  }

  log.info(
    { server, devices: store.deviceNames(), admin: servers.admin.url, http: servers.httpUrl },
    'agent started',
  );
  loop.start();

  return {
    node,
    adminUrl: servers.admin.url,
    httpUrl: servers.httpUrl,
    snapshot: () => store.snapshot(),
    synced: () => loop.synced(),
    async stop() {
      if (loop.stopping && !loop.busy) return;
      loop.halt();
      await loop.settled();
      store.persist();
      watches.stop();
      await notes.flush();
      await closeServers(servers);
      loop.releaseWaiters();
      if (!store.crashed)
        log.info({ stateFile: options.stateFile }, 'agent stopped; state persisted');
    },
  };
}
