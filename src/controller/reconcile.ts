// One reconcile, for one work-queue key: read the view, decide (arbiter, reaper, placement,
// namespace limits; all pure), and hand the plan to the executor. The controller's workers and
// the simulation call the same `reconcile`.
import {
  Accelerator,
  LAST_HANDOFF_ANNOTATION,
  kubeTime,
  parseObject,
  preciseTime,
  type AcceleratorLease,
} from '../crds/index.ts';
import type { ReaperPolicy } from '../reaper/index.ts';
import { decideMissing, type Action } from './arbiter.ts';
import { execute, type ExecutorPorts, type Plan } from './executor.ts';
import { decideHandoff, type HandoffDecision } from './handoff.ts';
import type { ReconcileObserver } from './metrics.ts';
import { decideClaim, type ClaimAction } from './claims.ts';
import { decideGate, type GateAction } from './holder-gates.ts';
import { acceleratorOfKey, claimOfKey, gateOfKey, LIMITS_KEY, PLACEMENT_KEY } from './keys.ts';
import { overLimitActions } from './namespace-limit.ts';
import { place } from './placement.ts';
import type { ControllerView } from './view.ts';

export interface ReconcileContext {
  readonly view: ControllerView;
  readonly policy: ReaperPolicy;
  readonly observer?: ReconcileObserver;
}

export type ReconcileOutcome = { requeueAfter?: number } | void;

/** Reconcile `key` at `now`, carrying out what is decided through `ports`. */
export async function reconcile(
  key: string,
  now: number,
  ctx: ReconcileContext,
  ports: ExecutorPorts,
): Promise<ReconcileOutcome> {
  const at = preciseTime(now);
  if (key === LIMITS_KEY) {
    const actions = overLimitActions(ctx.view.admitted(now).over, kubeTime(now));
    await execute({ actions, effects: [] }, ports, at);
    return;
  }
  if (key === PLACEMENT_KEY) {
    await execute({ actions: placementActions(ctx.view, now), effects: [] }, ports, at);
    return;
  }
  const claim = claimOfKey(key);
  if (claim !== undefined) {
    await execute({ actions: claimActions(ctx.view, claim, now), effects: [] }, ports, at);
    return;
  }
  const gated = gateOfKey(key);
  if (gated !== undefined) {
    await execute({ actions: gateActions(ctx.view, gated), effects: [] }, ports, at);
    return;
  }
  const name = acceleratorOfKey(key);
  if (name === undefined) throw new Error(`unknown work-queue key ${key}`);
  const leases = ctx.view.admitted(now).byTarget.get(name) ?? [];
  const raw = ctx.view.accelerator(name);
  if (!raw) {
    ctx.observer?.reaped(name, undefined, false);
    await execute({ actions: decideMissing(name, leases, now).actions, effects: [] }, ports, at);
    return;
  }
  const accelerator = parseObject(Accelerator, raw);
  const decision = decideHandoff({
    accelerator,
    leases,
    exports: ctx.view.exportsOf(name),
    pods: ctx.view.pods,
    disruptions: ctx.view.disruptions,
    policy: ctx.policy,
    evictionsInLastMinute: ctx.view.evictionsInLastMinute(now),
    evictingElsewhere: ctx.view.evictingElsewhere(name),
    now,
  });
  // The reaper's state is the decision's, served before its writes land, so nobody who sees the
  // grant scrapes the state it ended; a grant is counted once its write succeeded.
  observeReaper(ctx.observer, accelerator, leases, decision);
  await execute(planOf(accelerator, leases, decision), ports, at);
  observeGrant(ctx.observer, accelerator, decision, now);
  return decision.requeueAfterMs !== undefined
    ? { requeueAfter: Math.max(1, decision.requeueAfterMs) }
    : undefined;
}

/** The handoff decision as a plan: the reaper's records live on the owner's lease, if it has one. */
function planOf(
  accelerator: Accelerator,
  leases: readonly AcceleratorLease[],
  d: HandoffDecision,
): Plan {
  const ownerUid = accelerator.spec.owner?.lease?.uid;
  const recordsLease = ownerUid ? leases.find((l) => l.metadata.uid === ownerUid) : undefined;
  return {
    actions: d.actions,
    accelerator,
    ...(recordsLease && { recordsLease }),
    ...(d.idleEvictions && { idleEvictions: d.idleEvictions }),
    effects: d.effects,
  };
}

/** DRA: the claim's lease and device conditions (nothing once the claim is gone: its lease is garbage). */
function claimActions(view: ControllerView, key: string, now: number): ClaimAction[] {
  const claim = view.claim(key);
  if (!claim) return [];
  const lease = view.lease(key);
  return decideClaim({
    claim,
    ...(lease && { lease }),
    tainted: (d) => view.deviceTainted(d),
    now: kubeTime(now),
  });
}

/** Holder gates: release the pod once a Granted lease of its namespace selects it. */
function gateActions(view: ControllerView, key: string): GateAction[] {
  const pod = view.pod(key);
  if (!pod) return [];
  return decideGate({
    pod,
    leases: view.leasesIn(pod.metadata?.namespace ?? ''),
    nodeOf: (name) => view.accelerator(name)?.spec.node,
  });
}

/** Place the selector leases that have no device yet on free ones: lease status writes. */
function placementActions(view: ControllerView, now: number): Action[] {
  const { unplaced, byTarget } = view.admitted(now);
  if (unplaced.length === 0) return [];
  const queued = new Set<string>();
  for (const [target, leases] of byTarget)
    if (leases.some((l) => !l.metadata.deletionTimestamp)) queued.add(target);
  const accels = view.accelerators().map((a) => parseObject(Accelerator, a));
  return place(unplaced, accels, queued, kubeTime(now))
    .filter(({ lease, status }) => JSON.stringify(status) !== JSON.stringify(lease.status))
    .map(({ lease, status }) => ({ type: 'leaseStatus', lease, status }));
}

/** Tell the observer of a grant that ended a handoff, and how long the handoff took. */
function observeGrant(
  observer: ReconcileObserver | undefined,
  accelerator: Accelerator,
  d: HandoffDecision,
  now: number,
): void {
  if (!observer) return;
  const startedAt = accelerator.metadata.annotations?.[LAST_HANDOFF_ANNOTATION];
  for (const a of d.actions) {
    const granted =
      a.type === 'leaseStatus' &&
      a.status.phase === 'Granted' &&
      a.lease.status?.phase !== 'Granted';
    if (granted && startedAt) {
      observer.handoffGranted(Math.max(0, (now - Date.parse(startedAt)) / 1000));
    }
  }
}

/** Tell the observer the reaper's state for the device, and whether it just became Unresolvable. */
function observeReaper(
  observer: ReconcileObserver | undefined,
  accelerator: Accelerator,
  leases: readonly AcceleratorLease[],
  d: HandoffDecision,
): void {
  if (!observer) return;
  const name = accelerator.metadata.name ?? '';
  const summary = d.reaper;
  const ownerUid = accelerator.spec.owner?.lease?.uid;
  const lease = leases.find((l) => l.metadata.uid === ownerUid);
  const wasUnresolvable = lease?.status?.conditions?.some(
    (c) => c.type === 'Blocked' && c.reason === 'Unresolvable',
  );
  observer.reaped(name, summary, summary?.state === 'Unresolvable' && !wasUnresolvable);
}
