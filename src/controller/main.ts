// Entry point of the lease controller: `npm start` (or `node src/controller/main.ts --help`).
// A bad flag: one line, exit 2. API server unreachable or CRDs missing: one line, exit 1.
// SIGTERM: stop leading, let the current reconcile finish, exit 0. Leadership lost: exit 1,
// so the replica restarts as a clean standby (as client-go controllers do).
import { HttpMethod } from '@kubernetes/client-node';
import { Registry, collectDefaultMetrics } from 'prom-client';
import {
  createLogger,
  EventRecorder,
  exposeRequestMetrics,
  KubeClient,
  LeaderElector,
  loadKubeConfig,
  parseFlagsOrExit,
  prettyDestination,
  ReadinessChecks,
  startHttpServer,
} from '../kube/index.ts';
import { DEFAULT_REAPER_POLICY } from '../reaper/index.ts';
import { LeaseController } from './wiring.ts';
import { CONTROLLER_FLAGS } from './flags.ts';
import { recorderSink } from './writes.ts';

const PROGRAM = 'accel-lease-controller';

const flags = parseFlagsOrExit(PROGRAM, CONTROLLER_FLAGS);

const log = createLogger({
  name: PROGRAM,
  level: flags.logLevel,
  ...(flags.logFormat === 'pretty' && { destination: prettyDestination() }),
});

function fail(message: string): never {
  process.stderr.write(`${PROGRAM}: ${message.split('\n')[0]}\n`);
  process.exit(1);
}

let client: KubeClient;
try {
  client = new KubeClient(loadKubeConfig({ kubeconfig: flags.kubeconfig }), {
    // The identity tells replicas apart in the API server's audit log.
    userAgent: `${PROGRAM} (${flags.identity})`,
  });
  await client.request({ method: HttpMethod.GET, path: '/apis/accel.dmabuf.io/v1alpha1' });
  if (flags.dra) await client.request({ method: HttpMethod.GET, path: '/apis/resource.k8s.io/v1' });
} catch (err) {
  fail(
    `cannot reach the accel.dmabuf.io/v1alpha1 API${flags.dra ? ' or resource.k8s.io/v1 (--dra needs Kubernetes 1.34+)' : ''} (is the API server up and are the CRDs installed?): ${(err as Error).message}`,
  );
}

const registry = new Registry();
collectDefaultMetrics({ register: registry });
exposeRequestMetrics(client.kc, registry);
const readiness = new ReadinessChecks();
let elector: LeaderElector | undefined;
// Events are sent in batches, after the write that caused them: the client asks the fence too.
const recorder = new EventRecorder(
  client.withFence(() => !flags.leaderElect || (elector?.fence() ?? false)),
  {
    reportingController: 'accel.dmabuf.io/controller',
    reportingInstance: flags.identity.slice(0, 128),
    logger: log,
  },
);
const controller = new LeaseController({
  kc: client.kc,
  client,
  log,
  registry,
  events: recorderSink(recorder),
  workers: flags.workers,
  defaultLeasePolicy: flags.defaultLeasePolicy,
  dra: flags.dra,
  holderGates: flags.holderGates,
  policy: {
    ...DEFAULT_REAPER_POLICY,
    excludedNamespaces: [
      ...new Set([
        ...flags.excludedNamespaces
          .split(',')
          .map((n) => n.trim())
          .filter(Boolean),
        flags.leaderElectionNamespace,
      ]),
    ],
    maxEvictionsPerHandoff: flags.maxEvictionsPerHandoff,
    maxEvictionsPerMinute: flags.maxEvictionsPerMinute,
    evictionDeadlineMs: flags.evictionDeadline,
    retryInitialMs: flags.evictionRetryInitial,
    retryMaxMs: Math.max(flags.evictionRetryMax, flags.evictionRetryInitial),
    onDeadline: flags.onDeadline,
    dryRun: flags.dryRun,
    reapWhenIdle: flags.reapWhenIdle,
  },
});
readiness.add('informers', () => controller.hasSynced() || 'caches not synced');

const http = await startHttpServer({
  bindAddress: flags.httpBindAddress,
  registry,
  readiness,
  logger: log,
}).catch((err: Error) => fail(`cannot serve health and metrics: ${err.message}`));

// Shutdown, for every kind of replica: a leader, a standby, one still filling its caches, one
// retrying its election. Leadership (or, without election, `unelected`) is aborted first, so
// writes in flight stop and the workers finish the reconcile at hand and skip the rest.
let stopping = false;
const unelected = new AbortController();
/** Set once this replica reconciles; resolves when its workers have drained. */
let reconciling: Promise<void> | undefined;
const shutdown = async (why: string, code: number) => {
  if (stopping) return;
  stopping = true;
  log.info({ reason: why }, 'stopping');
  unelected.abort(new Error(`stopping: ${why}`));
  await elector?.stop(); // cancels its retry sleep and requests; releases a held Lease
  await reconciling;
  await controller.stop();
  await http.close();
  process.exit(code);
};
process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
process.on('SIGINT', () => void shutdown('SIGINT', 0));

const reconcile = (signal: AbortSignal, fence?: () => boolean) => {
  reconciling ??= controller.run(signal, fence).catch((err: unknown) => {
    log.error({ err }, 'controller stopped');
    void shutdown('controller stopped', 1);
  });
};

try {
  await controller.startInformers();
} catch (err) {
  // Only stop() ends a start, and shutdown() is then on its way to process.exit.
  if (!stopping) fail(`cannot fill the caches: ${(err as Error).message}`);
}
if (!stopping) {
  log.info({ identity: flags.identity }, 'caches synced');
  if (flags.leaderElect) {
    elector = new LeaderElector(client, {
      namespace: flags.leaderElectionNamespace,
      name: flags.leaderElectionId,
      identity: flags.identity,
      leaseDurationMs: flags.leaseDuration,
      renewDeadlineMs: flags.renewDeadline,
      retryPeriodMs: flags.retryPeriod,
      releaseOnCancel: true,
      logger: log,
      registry,
      onStartedLeading: (signal) => {
        if (stopping) return;
        log.info('leading: reconciling');
        reconcile(signal, () => elector?.fence() ?? false);
      },
      onStoppedLeading: () => {
        if (!stopping) void shutdown('leadership lost', 1);
      },
      onNewLeader: (leader) => log.info({ leader }, 'leader observed'),
    });
    const election = elector;
    readiness.add('leader-election', () => election.ready());
    void election.run();
  } else {
    reconcile(unelected.signal);
  }
}
