// Plays the node agents of many simulated nodes in one process, for the scale benchmark: each
// node keeps the agent's own state and simulated kernel (newState), every pass runs the agent's
// syncNode and publish, and statuses are server-side applied under the agent's field manager.
// Unlike one agent per node, it shares one watch of Accelerators and one of DmaBufExports among
// the nodes, writes no DmaBufExport status and sends no periodic heartbeat (bench/README.md, Scale).
// Flags: --nodes a,b,c --devices 8 --concurrency 32 --http-addr host:port; KUBECONFIG in the env.
import { parseArgs } from 'node:util';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import {
  ACCELERATORS,
  DMABUF_EXPORTS,
  API_VERSION,
  Accelerator,
  DmaBufExport,
  parseObject,
  type AcceleratorOwner,
  type AcceleratorStatus,
  type Condition,
} from '../src/crds/index.ts';
import {
  EVENT_CONTROLLER,
  FIELD_MANAGER,
  MODEL_LABEL,
  NODE_LABEL,
  newState,
  publish,
  syncNode,
  type AgentState,
  type Note,
} from '../src/agent/index.ts';
import {
  EventRecorder,
  Informer,
  KubeClient,
  loadKubeConfig,
  ReadinessChecks,
  ResourceClient,
  WorkQueue,
  createLogger,
  resourcePath,
  startHttpServer,
  type ObjectLike,
} from '../src/kube/index.ts';
import { inParallel } from './stack.ts';

// The agent's defaults (src/agent/start.ts): gaudi2, 96 GiB, static profile.
const MODEL = 'gaudi2';
const MEMORY_BYTES = 96 * 2 ** 30;
const PROFILE = 'static';

interface RawObject extends ObjectLike {
  metadata?: ObjectLike['metadata'] & { generation?: number };
  spec?: { accelerator?: string };
  status?: AcceleratorStatus;
}

interface SimNode {
  readonly name: string;
  readonly state: AgentState;
  readonly devices: string[];
  readonly events: EventRecorder;
  /** What was last applied per device, so that an unchanged status is not written again. */
  readonly applied: Map<string, { key: string; status: AcceleratorStatus }>;
}

const { values: flags } = parseArgs({
  options: {
    nodes: { type: 'string', default: '' },
    devices: { type: 'string', default: '8' },
    concurrency: { type: 'string', default: '32' },
    'http-addr': { type: 'string', default: '127.0.0.1:0' },
  },
});

const log = createLogger({ name: 'accel-bench-fleet', level: 'warn' });
const kc = loadKubeConfig({ kubeconfig: process.env.KUBECONFIG });
const client = new KubeClient(kc, { userAgent: FIELD_MANAGER });
const accelerators = new ResourceClient<RawObject>(client, ACCELERATORS);
const registry = new Registry();
collectDefaultMetrics({ register: registry });
const writes = new Counter({
  name: 'accel_fleet_status_writes_total',
  help: 'Accelerator status applies by result',
  labelNames: ['result'],
  registers: [registry],
});

const nodes = new Map<string, SimNode>();
const nodeOfDevice = new Map<string, string>();
for (const name of flags.nodes.split(',').filter(Boolean)) {
  const state = newState(name, {
    count: Number(flags.devices),
    memoryBytes: MEMORY_BYTES,
    profile: PROFILE,
  });
  const devices = state.kernel.devices().map((d) => d.name);
  for (const d of devices) nodeOfDevice.set(d, name);
  const events = new EventRecorder(client, {
    reportingController: EVENT_CONTROLLER,
    reportingInstance: `${FIELD_MANAGER}-${name}`.slice(0, 128),
    logger: log,
  });
  nodes.set(name, { name, state, devices, events, applied: new Map() });
}

// Every node's specs first, as each agent publishes its devices before it watches anything.
await inParallel([...nodes.values()], Number(flags.concurrency), async (node) => {
  for (const device of node.devices) {
    await accelerators.apply(
      {
        apiVersion: API_VERSION,
        kind: 'Accelerator',
        metadata: { name: device, labels: { [NODE_LABEL]: node.name, [MODEL_LABEL]: MODEL } },
        spec: {
          node: node.name,
          index: Number(device.slice(node.name.length + 3)),
          model: MODEL,
          memoryBytes: MEMORY_BYTES,
          exporterProfile: PROFILE,
        },
      },
      { fieldManager: FIELD_MANAGER, force: true },
    );
  }
});

// One watch of Accelerators and one of DmaBufExports for all nodes, feeding a queue of nodes (one
// pass at a time per node, as in one agent). A node syncs when the spec of one of its devices
// changes (its own status writes do not change what it decides) or when one of its exports comes
// or goes.
const queue = new WorkQueue({ name: 'fleet', registry, logger: log });
const accelInformer = new Informer<RawObject>(kc, {
  path: resourcePath(ACCELERATORS),
  name: 'accelerators',
  logger: log,
});
const exportInformer = new Informer<RawObject>(kc, {
  path: resourcePath(DMABUF_EXPORTS),
  name: 'dmabufexports',
  logger: log,
});
const wake = (device: string | undefined) => {
  const node = nodeOfDevice.get(device ?? '');
  if (node) queue.add(node);
};
accelInformer.on('add', (a) => wake(a.metadata?.name));
accelInformer.on('delete', (a) => wake(a.metadata?.name));
accelInformer.on('update', (a, old) => {
  if (a.metadata?.generation !== old.metadata?.generation) wake(a.metadata?.name);
});
/** Parsed exports by device, then uid: each node sees only the exports on its devices. */
const exportsByDevice = new Map<string, Map<string, DmaBufExport>>();
const indexExport = (raw: RawObject, present: boolean) => {
  const device = raw.spec?.accelerator ?? '';
  if (!nodeOfDevice.has(device)) return;
  let byUid = exportsByDevice.get(device);
  if (!byUid) exportsByDevice.set(device, (byUid = new Map<string, DmaBufExport>()));
  const uid = raw.metadata?.uid ?? '';
  if (!present) byUid.delete(uid);
  else {
    try {
      byUid.set(uid, parseObject(DmaBufExport, raw));
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'skipping an invalid DmaBufExport');
    }
  }
  wake(device);
};
exportInformer.on('add', (e) => indexExport(e, true));
exportInformer.on('update', (e, old) => {
  if (e.metadata?.generation !== old.metadata?.generation) indexExport(e, true);
});
exportInformer.on('delete', (e) => indexExport(e, false));
await Promise.all([accelInformer.start(), exportInformer.start()]);

/** One agent pass over one node: what startAgent's syncOnce and publishAll do, minus exports. */
async function syncOnce(node: SimNode): Promise<void> {
  const owners = new Map<string, AcceleratorOwner | undefined>();
  for (const device of node.devices) {
    const obj = accelInformer.get(device);
    if (obj) owners.set(device, parseObject(Accelerator, obj).spec.owner);
  }
  const now = Date.now();
  const result = syncNode(node.state, {
    owners,
    pods: new Map(),
    exports: node.devices.flatMap((d) => [...(exportsByDevice.get(d)?.values() ?? [])]),
    remote: new Map(),
    // The fleet's exports have no importers, so no consent is ever asked for.
    grants: [],
    now,
  });
  for (const note of result.notes) record(node, note);
  const published = publish(node.state, {
    sync: result,
    previousConditions: {
      accelerators: new Map(
        node.devices.map((d): [string, Condition[] | undefined] => [
          d,
          node.applied.get(d)?.status.conditions ?? accelInformer.get(d)?.status?.conditions,
        ]),
      ),
      exports: new Map(),
    },
    now,
  });
  for (const [device, status] of published.acceleratorStatuses) {
    const key = JSON.stringify(status);
    if (node.applied.get(device)?.key === key) continue;
    try {
      await accelerators.applyStatus(
        {
          apiVersion: API_VERSION,
          kind: 'Accelerator',
          metadata: { name: device },
          status: { ...status, heartbeatTime: new Date(now).toISOString() },
        },
        { fieldManager: FIELD_MANAGER, force: true },
      );
      node.applied.set(device, { key, status });
      writes.inc({ result: 'success' });
    } catch (err) {
      node.applied.delete(device);
      writes.inc({ result: 'error' });
      throw err;
    }
  }
}

function record(node: SimNode, note: Note): void {
  const e = note.event;
  if (!e || e.kind !== 'Accelerator') return;
  const uid = accelInformer.get(e.name)?.metadata?.uid;
  node.events.event(
    { apiVersion: API_VERSION, kind: e.kind, name: e.name, ...(uid !== undefined && { uid }) },
    e.type,
    e.reason,
    'ApplyOwner',
    e.note,
  );
}

const synced = new Set<string>();
void queue.runWorkers(Number(flags.concurrency), async (name) => {
  const node = nodes.get(name);
  if (!node) return;
  await syncOnce(node);
  synced.add(name);
});
for (const name of nodes.keys()) queue.add(name);

const readiness = new ReadinessChecks()
  .add('informers', () => accelInformer.hasSynced() && exportInformer.hasSynced())
  .add('nodes', () => synced.size === nodes.size || `${synced.size}/${nodes.size} nodes synced`);
const http = await startHttpServer({
  bindAddress: flags['http-addr'],
  registry,
  readiness,
  logger: log,
});
const stop = async () => {
  await queue.shutDown();
  accelInformer.stop();
  exportInformer.stop();
  await Promise.all([...nodes.values()].map((n) => n.events.flush()));
  await http.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
