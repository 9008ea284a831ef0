// `kubectl dmabuf why LEASE`: what stands between a lease and its device, link by link (lease ->
// device -> each stale pin: export -> importer -> holder -> eviction), and the next step in words.
import {
  findCondition,
  isBlockerOf,
  selectorToString,
  stalePins,
  type Accelerator,
  type AcceleratorLease,
  type DmaBufExport,
  type EvictionRecord,
  type ExporterProfile,
  type Pin,
  timeMs,
} from '../crds/index.ts';
import { CORDON_ANNOTATION } from '../crds/index.ts';
import {
  deviceQueue,
  type DeviceQueue,
  isFinished,
  leaseKey,
  OVER_NAMESPACE_LIMIT,
  targetOf,
} from '../crds/index.ts';

/**
 * Granted: exit 0. DeviceMissing: exit 3. Every other verdict means "not granted": exit 1.
 * Waiting: the controller or the agent has a step to take; Blocked: pins of an earlier epoch
 * hold the device; Unresolvable: some of them no eviction can clear.
 */
export type Verdict =
  | 'Granted'
  | 'Queued'
  | 'Waiting'
  | 'Blocked'
  | 'Unresolvable'
  | 'Releasing'
  | 'Finished'
  | 'Unplaced'
  | 'DeviceMissing';

export interface LeaseLink {
  namespace: string;
  name: string;
  /** status.phase; Pending until the controller has written one. */
  phase: string;
  priority: number;
  /** The device it names or was placed on. */
  accelerator: string | null;
  /** spec.selector in label-selector syntax, for a selector lease. */
  selector: string | null;
  epoch: number | null;
  grantedAt: string | null;
  expiresAt: string | null;
  deleting: boolean;
}

export interface DeviceLink {
  name: string;
  node: string;
  profile: ExporterProfile;
  phase: string;
  /** spec.owner.epoch: the epoch the device is being handed to. */
  epoch: number;
  /** status.observedEpoch: the epoch the device reports. */
  observedEpoch: number | null;
  /** spec.owner.lease: the desired owner. */
  owner: string | null;
  /** status.owner.lease: the owner the device enforces. */
  enforcedOwner: string | null;
  ownerEnforced: boolean;
  cordoned: string | null;
  heartbeatTime: string | null;
}

export interface EvictionLink {
  /** The lease whose status.evictions[] holds the record (the lease spec.owner names). */
  lease: string;
  result: EvictionRecord['result'];
  message: string | null;
  started: string | null;
  finished: string | null;
}

export interface PinLink {
  epoch: number;
  since: string;
  /** "export team-a/weights", else the dma-buf's name or inode. */
  buffer: string;
  export: string | null;
  importer: string | null;
  kind: Pin['kind'];
  revocable: boolean;
  pod: string | null;
  pid: number;
  comm: string | null;
  eviction: EvictionLink | null;
  next: string;
}

export interface WhyChain {
  lease: LeaseLink;
  verdict: Verdict;
  device: DeviceLink | null;
  /** Position in the device's queue (1 is first in line after the owner) and who is ahead. */
  queue: { position: number; ahead: string[] } | null;
  /** Pins of an epoch earlier than the device's: what keeps the handoff from completing. */
  pins: PinLink[];
  /** The next steps, most pressing first. */
  next: string[];
}

export interface WhyInput {
  readonly lease: AcceleratorLease;
  /** The lease's device; undefined when it names one that does not exist, or is not placed. */
  readonly accelerator: Accelerator | undefined;
  /** DmaBufExports on that device: they say whether each attachment is revocable. */
  readonly exports: readonly DmaBufExport[];
  /** Every lease in the cluster: the queue, and the owner's eviction records. */
  readonly leases: readonly AcceleratorLease[];
  readonly now: number;
}

/** What each profile revokes on owner drop (docs/design.md section 1). */
const REVOCABLE: Readonly<Record<ExporterProfile, readonly Pin['kind'][]>> = {
  static: [],
  dynamic: ['dynamic', 'mmap'],
  revocable: ['dynamic', 'mmap', 'rdma-mr'],
};

/** An agent that has not reported for this long is probably not running. */
const STALE_HEARTBEAT_MS = 60_000;

/** "10:03:12 UTC" on the day of `now`, else "2026-11-26 10:03:12 UTC". */
export function clock(t: number, now: number): string {
  const at = new Date(t).toISOString();
  const day =
    at.slice(0, 10) === new Date(now).toISOString().slice(0, 10) ? '' : `${at.slice(0, 10)} `;
  return `${day}${at.slice(11, 19)} UTC`;
}

/** A span as kubectl prints ages: 45s, 12m, 3h, 2d. */
export function span(milliseconds: number): string {
  const s = Math.max(0, Math.round(milliseconds / 1000));
  if (s < 120) return `${s}s`;
  if (s < 120 * 60) return `${Math.floor(s / 60)}m`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`;
}

/** "a pinned attachment", "an rdma-mr attachment", "an open dma-buf fd". */
function heldThing(kind: Pin['kind']): string {
  return kind === 'fd' ? 'an open dma-buf fd' : `${article(kind)} attachment`;
}

function bufferOf(pin: Pin): string {
  if (pin.export !== undefined) return `export ${pin.export}`;
  if (pin.buffer !== undefined) return `dma-buf ${pin.buffer} (inode ${pin.inode})`;
  return `dma-buf inode ${pin.inode}`;
}

function revocable(pin: Pin, profile: ExporterProfile, exports: readonly DmaBufExport[]): boolean {
  if (pin.kind !== 'fd' && pin.export !== undefined && pin.importer !== undefined) {
    const exp = exports.find(
      (e) => `${e.metadata.namespace ?? ''}/${e.metadata.name ?? ''}` === pin.export,
    );
    const att = exp?.status?.attachments?.find((a) => a.name === pin.importer);
    if (att) return att.revocable;
  }
  return REVOCABLE[profile].includes(pin.kind);
}

/** The record that speaks for a pod now: an unfinished one, else the latest. */
function recordFor(pod: string, records: readonly EvictionRecord[]): EvictionRecord | undefined {
  const mine = records.filter((r) => `${r.pod.namespace}/${r.pod.name}` === pod);
  return mine.findLast((r) => r.finished === undefined) ?? mine.at(-1);
}

function leaseLink(lease: AcceleratorLease): LeaseLink {
  const st = lease.status;
  return {
    namespace: lease.metadata.namespace ?? '',
    name: lease.metadata.name ?? '',
    phase: st?.phase ?? 'Pending',
    priority: lease.spec.priority,
    accelerator: targetOf(lease) ?? null,
    selector: lease.spec.selector ? selectorToString(lease.spec.selector) : null,
    epoch: st?.epoch ?? null,
    grantedAt: st?.grantedAt ?? null,
    expiresAt: st?.expiresAt ?? null,
    deleting: lease.metadata.deletionTimestamp !== undefined,
  };
}

function deviceLink(a: Accelerator): DeviceLink {
  const owner = a.spec.owner;
  const st = a.status;
  const key = (l: { namespace: string; name: string } | undefined) =>
    l ? `${l.namespace}/${l.name}` : null;
  return {
    name: a.metadata.name ?? '',
    node: a.spec.node,
    profile: a.spec.exporterProfile,
    phase: st?.phase ?? 'Unknown',
    epoch: owner?.epoch ?? 0,
    observedEpoch: st?.observedEpoch ?? null,
    owner: key(owner?.lease),
    enforcedOwner: key(st?.owner?.lease),
    ownerEnforced:
      owner?.lease !== undefined &&
      st?.phase === 'Owned' &&
      st.observedEpoch === owner.epoch &&
      st.owner?.lease?.uid === owner.lease.uid,
    cordoned: a.metadata.annotations?.[CORDON_ANNOTATION] ?? null,
    heartbeatTime: st?.heartbeatTime ?? null,
  };
}

/** "A (the owner), B and C" */
function names(keys: readonly string[], owner: string | null): string {
  const shown = keys.map((k) => (k === owner ? `${k} (the owner)` : k));
  return shown.length <= 1
    ? (shown[0] ?? '')
    : `${shown.slice(0, -1).join(', ')} and ${shown.at(-1) ?? ''}`;
}

interface PinContext {
  readonly device: DeviceLink;
  readonly exports: readonly DmaBufExport[];
  /** The lease spec.owner names: the reaper works for it and keeps its records. */
  readonly owner: AcceleratorLease | undefined;
  /** Some stale pin has no pod: the reaper then evicts nobody for this device. */
  readonly hiddenHolder: boolean;
  readonly now: number;
}

/** When the owner's grace period ends: its Blocked condition turned True, plus the grace. */
function graceEnd(owner: AcceleratorLease | undefined): number | undefined {
  const blocked = findCondition(owner?.status?.conditions, 'Blocked');
  if (!owner || blocked?.status !== 'True') return undefined;
  return (
    (timeMs(blocked.lastTransitionTime) ?? 0) + owner.spec.revocation.gracePeriodSeconds * 1000
  );
}

/** What clears one stale pin: an operator, the agent's revocation, or the reaper's eviction. */
function pinNext(
  pin: Pin,
  ctx: PinContext,
  pod: string | null,
  canRevoke: boolean,
  record: EvictionRecord | undefined,
): string {
  const { device, owner, now } = ctx;
  const blocker = owner?.status?.blockedBy?.find((b) => isBlockerOf(b, pin));

  if (pod === null) {
    const comm = pin.comm !== undefined ? ` (${pin.comm})` : '';
    return (
      `Unresolvable: pid ${pin.pid}${comm} holds ${heldThing(pin.kind)} outside any pod; ` +
      `an operator must kill it on ${device.node}` +
      (device.cordoned !== null
        ? `, then remove the annotation ${CORDON_ANNOTATION} from the Accelerator ` +
          `(kubectl annotate accel ${device.name} ${CORDON_ANNOTATION}-)`
        : '')
    );
  }
  if (canRevoke) {
    return `the agent on ${device.node} revokes ${pin.importer ?? 'it'} (${device.profile} device)`;
  }
  if (record && (record.finished === undefined || record.result === 'DryRun')) {
    switch (record.result) {
      case 'Planned':
        return `the reaper will evict ${pod}`;
      case 'Evicting':
        return `waiting for ${pod} to exit after its eviction`;
      case 'Refused':
        return `a PodDisruptionBudget refuses the eviction of ${pod}; the reaper retries with backoff`;
      case 'Failed':
        return `the eviction of ${pod} failed; the reaper retries with backoff`;
      case 'Deleted':
        return `waiting for ${pod} to terminate: the reaper deleted it after its eviction deadline`;
      case 'DryRun':
        return `dry run: the reaper would evict ${pod}, and sends nothing`;
      case 'Evicted':
        return `${pod} is gone; waiting for the agent on ${device.node} to report its pins released`;
    }
  }
  if (record && (record.result === 'Evicted' || record.result === 'Deleted')) {
    return `${pod} is gone; waiting for the agent on ${device.node} to report its pins released`;
  }
  if (ctx.hiddenHolder) {
    return `${pod} is not evicted while a pin held outside any pod remains: evicting it alone cannot free ${device.name}`;
  }
  if (blocker?.reason !== undefined) {
    // The reaper's word for what no eviction in budget can clear (excluded namespace, budget).
    return `${pod} is not evicted: ${blocker.reason}`;
  }
  if (!owner) {
    return `${pod} keeps the pin until it exits; nothing is reaped until a lease waits for ${device.name}`;
  }
  const end = graceEnd(owner);
  if (end === undefined) {
    return `the reaper will evict ${pod} if the pin outlasts the grace period of ${owner.spec.revocation.gracePeriodSeconds}s`;
  }
  if (now < end) {
    return `the reaper will evict ${pod} when the grace period ends at ${clock(end, now)}`;
  }
  return `the reaper will evict ${pod}`;
}

function pinLink(pin: Pin, ctx: PinContext): PinLink {
  const { owner } = ctx;
  const pod = pin.pod ? `${pin.pod.namespace}/${pin.pod.name}` : null;
  const canRevoke = revocable(pin, ctx.device.profile, ctx.exports);
  const record = pod && owner ? recordFor(pod, owner.status?.evictions ?? []) : undefined;
  const next = pinNext(pin, ctx, pod, canRevoke, record);

  return {
    epoch: pin.epoch,
    since: pin.since,
    buffer: bufferOf(pin),
    export: pin.export ?? null,
    importer: pin.importer ?? null,
    kind: pin.kind,
    revocable: canRevoke,
    pod,
    pid: pin.pid,
    comm: pin.comm ?? null,
    eviction: record
      ? {
          lease: owner ? leaseKey(owner) : '',
          result: record.result,
          message: record.message ?? null,
          started: record.started ?? null,
          finished: record.finished ?? null,
        }
      : null,
    next,
  };
}

/** " (its last heartbeat was 5m ago: is the agent running?)" when the agent went quiet. */
function quietAgent(device: DeviceLink, now: number): string {
  const beat = timeMs(device.heartbeatTime ?? undefined);
  if (beat === undefined || now - beat < STALE_HEARTBEAT_MS) return '';
  return `; its last heartbeat was ${span(now - beat)} ago: is the agent running?`;
}

/** A verdict and its next steps, most pressing first; `queue` only for a lease waiting in line. */
interface Finding {
  verdict: Verdict;
  next: string[];
  queue?: WhyChain['queue'];
}

/** The lease on its device, as every verdict after placement reads it. */
interface HandoffView {
  readonly lease: AcceleratorLease;
  readonly link: LeaseLink;
  readonly accelerator: Accelerator;
  readonly device: DeviceLink;
  readonly queue: DeviceQueue;
  /** The uid of the lease spec.owner names, if any. */
  readonly ownerUid: string | undefined;
  readonly pinContext: PinContext;
  /** The stale pins, each with its next step; none once the lease is granted. */
  readonly pins: PinLink[];
  readonly now: number;
}

function chainOf(
  link: LeaseLink,
  found: Finding,
  device: DeviceLink | null = null,
  pins: PinLink[] = [],
): WhyChain {
  return {
    lease: link,
    verdict: found.verdict,
    device,
    queue: found.queue ?? null,
    pins,
    next: [...new Set(found.next)],
  };
}

/**
 * Before there is a device to look at: over the namespace's limit, not placed on one, or placed on
 * one that does not exist. Otherwise the device, for the verdicts that follow.
 */
function placementFinding(
  input: WhyInput,
  link: LeaseLink,
): Finding | { accelerator: Accelerator } {
  const { lease, now } = input;
  // The controller queues no more of a namespace's leases than its policy allows.
  const notQueued = findCondition(lease.status?.conditions, 'Granted');
  if (notQueued?.reason === OVER_NAMESPACE_LIMIT && !link.deleting && !isFinished(lease, now)) {
    return { verdict: 'Waiting', next: [notQueued.message] };
  }
  const target = targetOf(lease);
  if (target === undefined) {
    const placed = findCondition(lease.status?.conditions, 'Granted');
    return {
      verdict: isFinished(lease, now) ? 'Finished' : 'Unplaced',
      next: [
        `not placed on a device: ${placed?.message ?? 'waiting for the controller to place it on a free matching accelerator'}`,
      ],
    };
  }
  if (!input.accelerator) {
    return {
      verdict: 'DeviceMissing',
      next: [
        `accelerator ${target} does not exist; the lease waits until a node agent publishes it (kubectl get accel)`,
      ],
    };
  }
  return { accelerator: input.accelerator };
}

function handoffView(input: WhyInput, link: LeaseLink, accelerator: Accelerator): HandoffView {
  const { lease, now } = input;
  const self = leaseKey(lease);
  const device = deviceLink(accelerator);
  // The lease as read just now stands for its copy in the list (which may predate it).
  const leases = [lease, ...input.leases.filter((l) => leaseKey(l) !== self)];
  const ownerUid = accelerator.spec.owner?.lease?.uid;
  const owner =
    ownerUid === undefined ? undefined : leases.find((l) => l.metadata.uid === ownerUid);
  const stale = stalePins(accelerator, device.epoch);
  const pinContext: PinContext = {
    device,
    exports: input.exports,
    owner,
    hiddenHolder: stale.some((p) => !p.pod),
    now,
  };
  const granted = lease.status?.phase === 'Granted' && !link.deleting;
  return {
    lease,
    link,
    accelerator,
    device,
    queue: deviceQueue(accelerator, leases, now),
    ownerUid,
    pinContext,
    pins: granted ? [] : stale.map((p) => pinLink(p, pinContext)),
    now,
  };
}

/** Granted, being deleted, finished, or not yet seen by the controller. */
function lifecycleFinding(view: HandoffView): Finding | undefined {
  const { lease, link, device, now } = view;
  if (lease.status?.phase === 'Granted' && !link.deleting) {
    return { verdict: 'Granted', next: ['granted: nothing blocks this lease'] };
  }
  if (link.deleting) {
    const epoch = link.epoch ?? device.epoch;
    return {
      verdict: 'Releasing',
      next: [
        `releasing: the finalizer is removed once ${device.name} no longer references epoch ${epoch}`,
      ],
    };
  }
  if (isFinished(lease, now)) {
    const phase =
      lease.status?.phase === 'Failed'
        ? 'failed'
        : lease.status?.phase === 'Released'
          ? 'was released'
          : 'expired';
    const kubectlDelete = `kubectl delete alease -n ${link.namespace} ${link.name}`;
    return {
      verdict: 'Finished',
      next: [
        `the lease ${phase}: it neither holds nor waits for ${device.name}; delete it (${kubectlDelete})`,
      ],
    };
  }
  if (lease.status === undefined) {
    return {
      verdict: 'Waiting',
      next: ['waiting for the controller to see this lease: is accel-lease-controller running?'],
    };
  }
  return undefined;
}

/** Waiting in the device's queue, or first in line and not yet handed the device. */
function queueFinding(view: HandoffView): Finding | undefined {
  const { lease, device, queue, ownerUid } = view;
  const position = queue.waiting.indexOf(lease) + 1;
  if (position > 0) {
    const ahead = [
      ...(queue.next ? [leaseKey(queue.next)] : []),
      ...queue.waiting.slice(0, position - 1).map(leaseKey),
    ];
    return {
      verdict: 'Queued',
      next: [`queued at position ${position} behind ${names(ahead, device.owner)}`],
      queue: { position, ahead },
    };
  }
  const isOwner = ownerUid !== undefined && ownerUid === lease.metadata.uid;
  if (!isOwner) {
    return {
      verdict: 'Waiting',
      next: [
        `waiting for the controller to hand ${device.name} to this lease at epoch ${device.epoch + 1}`,
      ],
    };
  }
  return undefined;
}

/** The owner's device has not applied its epoch, is unhealthy, or is still revoking. */
function agentFinding(view: HandoffView): Finding | undefined {
  const { accelerator, device, now } = view;
  const agent = `the agent on ${device.node}`;
  const quiet = quietAgent(device, now);
  if (device.observedEpoch === null || device.observedEpoch < device.epoch) {
    const reports =
      device.observedEpoch === null
        ? 'it has not reported yet'
        : `it reports epoch ${device.observedEpoch}`;
    return {
      verdict: 'Waiting',
      next: [`waiting for ${agent} to apply epoch ${device.epoch} (${reports})${quiet}`],
    };
  }
  if (device.phase === 'Unhealthy') {
    const applied = findCondition(accelerator.status?.conditions, 'OwnerApplied');
    return {
      verdict: 'Waiting',
      next: [
        `${device.name} is Unhealthy: ${applied?.message ?? 'no reason given'}; check ${agent}`,
      ],
    };
  }
  if (device.phase === 'Revoking') {
    return {
      verdict: 'Waiting',
      next: [`waiting for ${agent} to finish revoking the previous owner's mappings${quiet}`],
    };
  }
  return undefined;
}

/** Stale pins hold the device: the grace period, then each pin's step, unresolvable ones first. */
function pinsFinding(view: HandoffView): Finding | undefined {
  const { lease, pins, pinContext, now } = view;
  if (pins.length === 0) return undefined;
  const next: string[] = [];
  const end = graceEnd(lease);
  // With a holder outside any pod the grace period ends in no eviction: not worth waiting for.
  if (end !== undefined && now < end && !pinContext.hiddenHolder) {
    next.push(`waiting for the grace period to end at ${clock(end, now)} (in ${span(end - now)})`);
  }
  next.push(...pins.map((p) => p.next));
  next.sort((a, b) => Number(b.startsWith('Unresolvable')) - Number(a.startsWith('Unresolvable')));
  const unresolvable =
    pinContext.hiddenHolder ||
    findCondition(lease.status?.conditions, 'Blocked')?.reason === 'Unresolvable';
  return { verdict: unresolvable ? 'Unresolvable' : 'Blocked', next };
}

/** Nothing blocks the owner: the device enforces it (the controller's turn) or not yet (the agent's). */
function enforcementFinding(view: HandoffView): Finding {
  const { device, now } = view;
  if (device.ownerEnforced) {
    return {
      verdict: 'Waiting',
      next: [
        `waiting for the controller to mark the lease Granted (${device.name} enforces it at epoch ${device.epoch})`,
      ],
    };
  }
  return {
    verdict: 'Waiting',
    next: [
      `waiting for the agent on ${device.node} to grant epoch ${device.epoch}${quietAgent(device, now)}`,
    ],
  };
}

/**
 * Explain one lease. Pure: reads only its arguments. A lease is Granted when its status says so;
 * otherwise the chain says which link holds it: the queue, the controller, the agent, or pins.
 */
export function why(input: WhyInput): WhyChain {
  const link = leaseLink(input.lease);
  const placed = placementFinding(input, link);
  if ('verdict' in placed) return chainOf(link, placed);
  const view = handoffView(input, link, placed.accelerator);
  const found =
    lifecycleFinding(view) ??
    queueFinding(view) ??
    agentFinding(view) ??
    pinsFinding(view) ??
    enforcementFinding(view);
  return chainOf(link, found, view.device, view.pins);
}

/** The exit code `why` ends with: 0 granted, 3 the device does not exist, else 1. */
export function whyExitCode(chain: WhyChain): 0 | 1 | 3 {
  if (chain.verdict === 'Granted') return 0;
  return chain.verdict === 'DeviceMissing' ? 3 : 1;
}

function leaseLine(l: LeaseLink, now: number): string {
  const key = `lease ${l.namespace}/${l.name}`;
  const at = (t: string) => clock(timeMs(t) ?? 0, now);
  if (l.accelerator === null) {
    return `${key}: ${l.phase}, not placed (selector ${l.selector ?? '<none>'}, priority ${l.priority})`;
  }
  const placed = l.selector !== null ? `, placed by selector ${l.selector}` : '';
  if (l.deleting) return `${key}: Releasing ${l.accelerator} (deleted; its finalizer holds it)`;
  if (l.phase === 'Granted') {
    const since = l.grantedAt !== null ? ` since ${at(l.grantedAt)}` : '';
    const until = l.expiresAt !== null ? `, expires at ${at(l.expiresAt)}` : '';
    return `${key}: Granted ${l.accelerator} at epoch ${l.epoch ?? '?'}${since}${until}${placed}`;
  }
  return `${key}: ${l.phase} for ${l.accelerator} (priority ${l.priority}${placed})`;
}

function deviceLine(d: DeviceLink): string {
  const epoch =
    d.observedEpoch !== null && d.observedEpoch !== d.epoch
      ? `epoch ${d.epoch} (the device reports ${d.observedEpoch})`
      : `epoch ${d.epoch}`;
  let owner: string;
  if (d.owner === null) owner = 'owned by nobody';
  else if (d.ownerEnforced) owner = `owner ${d.owner}`;
  else
    owner = `owner ${d.owner}, not yet enforced (the device enforces ${d.enforcedOwner ?? 'nobody'})`;
  return `-> accelerator ${d.name} on node ${d.node} (${d.profile}): ${d.phase} at ${epoch}, ${owner}`;
}

function pinLines(p: PinLink, now: number): string[] {
  const importer =
    p.kind === 'fd' ? 'an open fd of the buffer' : `${p.kind} importer ${p.importer ?? '?'}`;
  const holder = p.pod !== null ? `pod ${p.pod}, pid ${p.pid}` : `no pod: pid ${p.pid}`;
  const comm = p.comm !== null ? ` (${p.comm})` : '';
  const eviction =
    p.eviction === null
      ? 'no eviction recorded'
      : `eviction ${p.eviction.result}${p.eviction.message !== null ? `: ${p.eviction.message}` : ''}`;
  return [
    `   -> pin of epoch ${p.epoch} since ${clock(timeMs(p.since) ?? 0, now)}: ${p.buffer}`,
    `      -> ${importer}, ${p.revocable ? 'revocable' : 'not revocable'}`,
    `      -> ${holder}${comm}`,
    ...(p.pod !== null ? [`      -> ${eviction}`] : []),
  ];
}

/** The chain in plain words, one link per line, then one line per next step. */
export function renderWhy(chain: WhyChain, now: number): string {
  const lines = [leaseLine(chain.lease, now)];
  if (chain.device) {
    lines.push(deviceLine(chain.device));
    if (chain.device.cordoned !== null) {
      lines.push(`   cordoned (${CORDON_ANNOTATION}): ${chain.device.cordoned}`);
    }
  } else if (chain.verdict === 'DeviceMissing') {
    lines.push(`-> accelerator ${chain.lease.accelerator ?? '?'}: not found`);
  }
  for (const p of chain.pins) lines.push(...pinLines(p, now));
  for (const step of chain.next) lines.push(`next: ${step}`);
  return lines.join('\n');
}
