// The one executor of everything a reconcile decides: lease and accelerator writes in order
// (with `wait` barriers), the reaper's idle records, then its evictions and deletions, their
// answers folded back into the records, the cordon, and Events. It talks only to the ports in
// writes.ts, so the API server and the simulation's in-memory API run the same code.
import {
  Accelerator,
  CORDON_ANNOTATION,
  idleEvictionsOf,
  parseObject,
  stalePins,
  type AcceleratorLease,
  type EvictionRecord,
} from '../crds/index.ts';
import { isNotFound, statusCode } from '../kube/index.ts';
import { recordOutcome, type CallOutcome, type ReaperEffect } from '../reaper/index.ts';
import { FINALIZER, type Action } from './arbiter.ts';
import type { ClaimAction } from './claims.ts';
import type { GateAction } from './holder-gates.ts';

/** Every write a reconcile may decide: the arbiter's, DRA mode's, the holder gates'. */
export type PlanAction = Action | ClaimAction | GateAction;
import type { EventSink, PodCall, PodCalls, Reads, Writes } from './writes.ts';

/**
 * Run `actions`: the writes between two `wait`s concurrently, except that writes to one lease go
 * in order, each with the resourceVersion the one before returned (a reconcile never conflicts
 * with itself). If a write fails, the writes already started finish, nothing after the next
 * `wait` starts, and the first error is thrown (the next reconcile re-decides from fresh state).
 * Events are recorded once every write succeeded; they are never waited for.
 */
export async function runActions(
  actions: readonly PlanAction[],
  writes: Writes,
  events: EventSink,
  /** This reconcile's time (ISO 8601 with milliseconds): the last-handoff annotation of an owner change. */
  handoffAt: string,
): Promise<ReadonlyMap<string, AcceleratorLease>> {
  const latest = new Map<string, AcceleratorLease>();
  const fresh = (l: AcceleratorLease) => latest.get(l.metadata.uid ?? '') ?? l;
  const remember = (l: AcceleratorLease) => latest.set(l.metadata.uid ?? '', l);

  const write = async (action: Exclude<PlanAction, { type: 'wait' | 'event' }>): Promise<void> => {
    switch (action.type) {
      case 'addFinalizer': {
        const l = fresh(action.lease);
        remember(await writes.setLeaseFinalizers(l, [...(l.metadata.finalizers ?? []), FINALIZER]));
        break;
      }
      case 'removeFinalizer': {
        const l = fresh(action.lease);
        await writes
          .setLeaseFinalizers(
            l,
            (l.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
          )
          .catch((err: unknown) => {
            if (!isNotFound(err)) throw err; // already gone: what removing it was for
          });
        break;
      }
      case 'leaseStatus':
        remember(await writes.replaceLeaseStatus(fresh(action.lease), action.status));
        break;
      case 'setOwner':
        await writes.setOwner(action.accelerator, action.owner, handoffAt);
        break;
      case 'createLease':
        await writes.createLease(action.lease).catch((err: unknown) => {
          // Refused (a lease policy bound, say): the claim's owner must learn why its pod waits.
          const code = statusCode(err);
          if (code === 403 || code === 422) noteRefusedClaimLease(action.lease, err, events);
          throw err;
        });
        break;
      case 'deleteLease':
        await writes.deleteLease(action.lease);
        break;
      case 'claimDeviceStatus':
        await writes.setClaimDeviceConditions(action.claim, action.device, action.conditions);
        break;
      case 'ungatePod':
        await writes.ungatePod(action.pod, action.node);
        break;
    }
  };

  // One chain per object: writes to one lease in order, different objects at once.
  let chains = new Map<string, Promise<void>>();
  const settle = async () => {
    const results = await Promise.allSettled(chains.values());
    chains = new Map();
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  const notes: Extract<PlanAction, { type: 'event' }>[] = [];
  for (const action of actions) {
    const key = chainKey(action);
    if (action.type === 'wait') {
      await settle();
      continue;
    }
    if (action.type === 'event' || key === undefined) {
      if (action.type === 'event') notes.push(action);
      continue;
    }
    chains.set(
      key,
      (chains.get(key) ?? Promise.resolve()).then(() => write(action)),
    );
  }
  await settle();
  for (const e of notes) events.event(e.regarding, e.eventType, e.reason, e.reason, e.note);
  return latest;
}

/** The object an action writes: writes to one object run in order; undefined for the rest. */
function chainKey(action: PlanAction): string | undefined {
  switch (action.type) {
    case 'wait':
    case 'event':
      return undefined;
    case 'setOwner':
      return 'accelerator';
    case 'createLease':
    case 'deleteLease':
      return `lease:${action.lease.metadata.namespace ?? ''}/${action.lease.metadata.name ?? ''}`;
    case 'claimDeviceStatus':
      return `claim:${action.claim.metadata?.uid ?? ''}`;
    case 'ungatePod':
      return `pod:${action.pod.metadata?.uid ?? ''}`;
    case 'addFinalizer':
    case 'removeFinalizer':
    case 'leaseStatus':
      return action.lease.metadata.uid ?? '';
  }
}

/** Everything one reconcile decided, in the order it is carried out. */
export interface Plan {
  /** Writes, in order, with `wait` barriers: the arbiter's, with the reaper's status merged in. */
  readonly actions: readonly PlanAction[];
  /** The accelerator the plan is about; absent for the placement and namespace-limit passes. */
  readonly accelerator?: Accelerator;
  /** The lease whose status holds the reaper's records; absent: the records are the idle reap's. */
  readonly recordsLease?: AcceleratorLease;
  /** Idle-reap records to store on the accelerator ([] clears them), after the actions. */
  readonly idleEvictions?: readonly EvictionRecord[];
  /** The reaper's calls, cordon and Events: only after every write above succeeded. */
  readonly effects: readonly ReaperEffect[];
}

export interface ExecutorPorts {
  readonly writes: Writes;
  readonly reads: Reads;
  readonly pods: PodCalls;
  readonly events: EventSink;
  /** Leadership: once aborted, no pod call is sent and writes in flight are aborted. */
  readonly signal: AbortSignal;
  /** The time an answer is recorded at. */
  now(): number;
  /** Told of every pod call and its answer (metrics). */
  onPodCall?(effect: PodCall, outcome: CallOutcome): void;
}

/**
 * Carry out `plan`: the actions (see runActions), the idle records, then the reaper's effects.
 * Pod calls go out concurrently; their answers are folded into the records they belong to and
 * written in one more write. A failed write throws, and nothing after it runs: the records
 * written before a call say it may have been sent, which is what the next reconcile assumes.
 */
export async function execute(plan: Plan, ports: ExecutorPorts, handoffAt: string): Promise<void> {
  const written = await runActions(plan.actions, ports.writes, ports.events, handoffAt);
  let accel = plan.accelerator;
  // The answers are folded into the records just stored, at the version just written.
  if (accel && plan.idleEvictions) {
    accel = parseObject(
      Accelerator,
      await ports.writes.setIdleEvictions(accel, plan.idleEvictions),
    );
  }
  if (!accel || plan.effects.length === 0) return;
  const answers = await runEffects(accel, plan.effects, ports);
  if (answers.length === 0) return;
  const fold = (records: readonly EvictionRecord[]) => {
    let out = [...records];
    for (const { effect, outcome } of answers) {
      const folded = recordOutcome(out, effect, outcome, ports.now());
      out = folded.records;
      for (const e of folded.effects) noteEffect(e, ports.events);
    }
    return out;
  };
  const uid = plan.recordsLease?.metadata.uid;
  const lease = uid ? (written.get(uid) ?? plan.recordsLease) : undefined;
  if (lease) {
    const status = { ...lease.status, evictions: fold(lease.status?.evictions ?? []) };
    await ports.writes.replaceLeaseStatus(lease, status);
    return;
  }
  const idle = idleEvictionsOf(accel);
  if (idle.length > 0) await ports.writes.setIdleEvictions(accel, fold(idle));
}

/** The reaper's effects: pod calls and the cordon at once, then its Events; the calls' answers. */
async function runEffects(
  accel: Accelerator,
  effects: readonly ReaperEffect[],
  ports: ExecutorPorts,
): Promise<{ effect: PodCall; outcome: CallOutcome }[]> {
  const answers: { effect: PodCall; outcome: CallOutcome }[] = [];
  const blocking = await stillBlocking(accel, effects, ports);
  await Promise.all(
    effects.map(async (effect) => {
      if (effect.type === 'evict' || effect.type === 'delete') {
        if (ports.signal.aborted || !blocking.has(effect.uid)) return;
        const outcome = await ports.pods.call(effect, ports.signal);
        ports.onPodCall?.(effect, outcome);
        answers.push({ effect, outcome });
      } else if (effect.type === 'cordon') {
        await ports.writes.annotate(accel, { [CORDON_ANNOTATION]: effect.message });
      }
    }),
  );
  for (const e of effects) noteEffect(e, ports.events);
  return answers;
}

/**
 * The pod uids the device, read live, still reports holding pins of an earlier epoch. The plan
 * was made from a cache that may lag: a pod that let go of its pins meanwhile is not evicted
 * (its record stays as sent, and the next reconcile abandons it). Empty if the device is gone.
 */
async function stillBlocking(
  accel: Accelerator,
  effects: readonly ReaperEffect[],
  ports: ExecutorPorts,
): Promise<Set<string>> {
  if (!effects.some((e) => e.type === 'evict' || e.type === 'delete')) return new Set();
  const live = await ports.reads.accelerator(accel.metadata.name ?? '', ports.signal);
  if (!live) return new Set();
  return new Set(stalePins(parseObject(Accelerator, live)).flatMap((p) => p.podUID ?? []));
}

/** A Warning Event on the claim a refused lease was made for, with the API server's reason. */
function noteRefusedClaimLease(lease: AcceleratorLease, err: unknown, events: EventSink): void {
  const { namespace, name } = lease.metadata;
  const owner = (lease.metadata.ownerReferences ?? []) as { name?: string; uid?: string }[];
  events.eventRef(
    {
      apiVersion: 'resource.k8s.io/v1',
      kind: 'ResourceClaim',
      ...(namespace !== undefined && { namespace }),
      name: owner[0]?.name ?? name,
      uid: owner[0]?.uid,
    },
    'Warning',
    'LeaseRefused',
    'CreateLease',
    `the API server refused lease ${namespace ?? ''}/${name ?? ''} for this claim, so its pod does not bind: ${(err as Error).message}`,
  );
}

function noteEffect(e: ReaperEffect, events: EventSink): void {
  if (e.type === 'event') events.eventRef(e.regarding, e.eventType, e.reason, e.reason, e.note);
}
