// Public face of src/kube: the Kubernetes plumbing shared by the controller, the reaper, the
// node agent and the CLI. Import from here only; every other file in this folder is private.

export {
  loadKubeConfig,
  KubeClient,
  RequestStats,
  requestStats,
  exposeRequestMetrics,
} from './client.ts';
export type { LoadKubeConfigOptions, KubeClientOptions, RequestOptions, Verb } from './client.ts';

export { MutationCache } from './mutation-cache.ts';

export {
  KubeApiError,
  statusCode,
  retryAfterSeconds,
  isNotFound,
  isConflict,
  isAlreadyExists,
  isGone,
  isTooManyRequests,
} from './errors.ts';
export type { ApiStatus } from './errors.ts';

export { ResourceClient, resourcePath, apiVersionOf } from './resources.ts';
export type {
  ResourceType,
  ListOptions,
  WriteOptions,
  ApplyOptions,
  ApplyObject,
  DeleteOptions,
  MutateOptions,
  ObjectLike,
} from './resources.ts';

export { retryOnConflict } from './conflict-retry.ts';
export type { RetryOnConflictOptions } from './conflict-retry.ts';

export { Informer, stripManagedFields } from './informer.ts';
export type {
  InformerOptions,
  InformerEvent,
  InformerHandlers,
  InformerStats,
} from './informer.ts';
export { objectKey, splitKey, diffRelist } from './relist-diff.ts';
export type { RelistDiff } from './relist-diff.ts';

export { WorkQueue } from './workqueue.ts';
export type { WorkQueueOptions } from './workqueue.ts';
export { TerminalError } from './reconcile-loop.ts';
export type {
  Reconciler,
  ReconcileResult,
  ReconcileContext,
  ReconcileQueue,
} from './reconcile-loop.ts';
export {
  ItemExponentialRateLimiter,
  BucketRateLimiter,
  MaxOfRateLimiter,
  defaultControllerRateLimiter,
} from './rate-limiter.ts';
export type { RateLimiter } from './rate-limiter.ts';
export { workQueueMetrics, reconcileMetrics } from './metrics.ts';

export { EventRecorder, EVENTS } from './events.ts';
export type { EventRecorderOptions } from './events.ts';
export { observeOccurrence, seriesKey, eventNamespace, truncateNote } from './event-series.ts';
export type { SeriesState, Occurrence } from './event-series.ts';
export { objectReferenceSchema, eventSchema, leaseSchema } from './event-types.ts';
export type { ObjectReference, KubeEvent, Lease, LeaseSpec } from './event-types.ts';

export { LeaderElector, LEASES } from './leader-election.ts';
export type { LeaderElectionOptions, LeaseStore } from './leader-election.ts';
export { decideLeadership, nextLeaseSpec, releasedLeaseSpec } from './leader-decision.ts';
export type { ElectionState, ElectionDecision } from './leader-decision.ts';

export { startHttpServer, ReadinessChecks, parseBindAddress } from './http-server.ts';
export type {
  HttpServerOptions,
  RunningHttpServer,
  ReadinessCheck,
  ReadinessReport,
} from './http-server.ts';

export { createLogger, LOG_LEVELS } from './logger.ts';
export type { LoggerOptions, LogLevel } from './logger.ts';

export {
  flag,
  commonFlags,
  leaderElectionFlags,
  parseFlags,
  parseFlagsOrExit,
  rephraseParseArgs,
  exitWithUsageIfAsked,
  parseDuration,
  formatDuration,
  flagName,
  usage,
  FlagError,
} from './flags.ts';
export type { FlagSpec, FlagSpecs, ParsedFlags } from './flags.ts';

export { realClock, FakeClock, flushMicrotasks, toMicroTime } from './clock.ts';
export type { Clock, TimerHandle } from './clock.ts';

export { prettyDestination, prettyLine } from './pretty-log.ts';
