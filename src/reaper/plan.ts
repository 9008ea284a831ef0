// Who must go so that a stuck device can change hands: the pods its stale pins name, ranked least
// disruptive first and capped by the budget, and every pin no eviction can clear, with why.
import { compareText, podKey, stalePins } from '../crds/index.ts';
import type { Accelerator, DmaBufExport, EvictionRecord, Pin, PodRef } from '../crds/index.ts';
import type { PodLookup, PodState } from './pods.ts';
import { isActive } from './records.ts';

/** 1 holds a non-revocable import; 2 holds only fds of others' exports; 3 only its own export's fds. */
export type Rank = 1 | 2 | 3;

export const RANK_MEANING: Readonly<Record<Rank, string>> = {
  1: 'holders of non-revocable imports',
  2: "holders of other pods' dma-buf fds",
  3: 'exporters holding only their own fds',
};

export interface PlannedEviction {
  readonly pod: PodRef;
  readonly uid: string;
  readonly rank: Rank;
  /** Why this pod: the pins it holds, e.g. "holds rdma-mr importer nic0 of export team-a/buf-1". */
  readonly reason: string;
  readonly pins: readonly Pin[];
}

/**
 * A holder already on its way out: evicted by this handoff (`ours`), by another device's handoff
 * (`elsewhere`), deleted by someone (`terminating`), or gone while its pins are still reported.
 */
export interface HolderInProgress {
  readonly pod: PodRef;
  readonly uid: string | undefined;
  readonly rank: Rank;
  readonly kind: 'ours' | 'elsewhere' | 'terminating' | 'gone';
  readonly reason: string;
  readonly pins: readonly Pin[];
}

export interface UnresolvablePin {
  readonly pin: Pin;
  /**
   * `hidden`, `excluded` and `untrusted` no eviction can ever clear; `budget` more evictions
   * could. `untrusted`: the pin names a pod its node's agent cannot speak for (another node, no
   * node, no uid), so believing it would let one node's report evict pods elsewhere.
   */
  readonly cause: 'hidden' | 'excluded' | 'untrusted' | 'budget';
  readonly reason: string;
}

export interface Plan {
  /** The epoch the device is being handed to. */
  readonly epoch: number;
  /** Pins of earlier epochs: the blocking set is the pods they name. */
  readonly pins: readonly Pin[];
  /** Pods to evict, in order: rank, then namespace/name. Never longer than `budget.left`. */
  readonly evict: readonly PlannedEviction[];
  readonly inProgress: readonly HolderInProgress[];
  readonly unresolvable: readonly UnresolvablePin[];
  readonly budget: { readonly limit: number; readonly used: number; readonly left: number };
}

export interface PlanInput {
  readonly accelerator: Accelerator;
  /** DmaBufExports (any; those of other devices are ignored): they name each buffer's exporter. */
  readonly exports: readonly DmaBufExport[];
  readonly pods: PodLookup;
  readonly excludedNamespaces: readonly string[];
  /** Pods this handoff may evict in all (see evictionBudget). */
  readonly budget: number;
  /** This handoff's eviction records so far. */
  readonly records: readonly EvictionRecord[];
  /** Pod uids whose eviction another handoff already requested: never planned twice. */
  readonly evictingElsewhere: ReadonlySet<string>;
}

/** How a pin's buffer reads in a reason: its export, else its dma-buf name, else its inode. */
export function bufferLabel(pin: Pin): string {
  if (pin.export !== undefined) return `export ${pin.export}`;
  if (pin.buffer !== undefined) return `dma-buf ${pin.buffer} (inode ${pin.inode})`;
  return `dma-buf inode ${pin.inode}`;
}

/** What a pin is, without its holder: "rdma-mr importer nic0 of export team-a/buf-1". */
export function pinLabel(pin: Pin): string {
  return pin.kind === 'fd'
    ? `an fd of ${bufferLabel(pin)}`
    : `${pin.kind} importer ${pin.importer ?? '?'} of ${bufferLabel(pin)}`;
}

export function hiddenReason(pin: Pin): string {
  const comm = pin.comm !== undefined ? ` (comm ${pin.comm})` : '';
  return `hidden holder pid ${pin.pid}${comm} is in no pod`;
}

/** The exporter pod (`namespace/name`) of the buffer a pin holds, when an export names it. */
function exporterFinder(
  accelerator: string,
  exports: readonly DmaBufExport[],
): (pin: Pin) => string | undefined {
  const byKey = new Map<string, string>();
  const byInode = new Map<number, string>();
  for (const e of exports) {
    if (e.spec.accelerator !== accelerator) continue;
    const ns = e.metadata.namespace ?? '';
    const exporter = `${ns}/${e.spec.exporter.pod}`;
    byKey.set(`${ns}/${e.metadata.name ?? ''}`, exporter);
    if (e.status?.inode !== undefined) byInode.set(e.status.inode, exporter);
  }
  return (pin) => (pin.export !== undefined ? byKey.get(pin.export) : byInode.get(pin.inode));
}

function rankAndReason(
  key: string,
  pins: readonly Pin[],
  exporterOf: (pin: Pin) => string | undefined,
): { rank: Rank; reason: string } {
  const clauses: string[] = [];
  let rank: Rank = 3;
  // Non-revocable pins first: they are why the pod is where it is in the order.
  const ordered = [...pins.filter((p) => p.kind !== 'fd'), ...pins.filter((p) => p.kind === 'fd')];
  for (const pin of ordered) {
    let clause: string;
    if (pin.kind !== 'fd') {
      rank = 1;
      clause = `holds ${pinLabel(pin)}`;
    } else if (exporterOf(pin) === key) {
      clause = `exported ${bufferLabel(pin).replace(/^export /, '')} and still holds its fd`;
    } else {
      if (rank === 3) rank = 2;
      clause = `holds ${pinLabel(pin)}`;
    }
    if (!clauses.includes(clause)) clauses.push(clause);
  }
  return { rank, reason: clauses.join('; ').slice(0, 1024) };
}

/**
 * Plan the evictions that clear the stale pins of `input.accelerator`. Pure and deterministic:
 * the order of pins, exports and records in the input does not change the plan.
 */
export function planEvictions(input: PlanInput): Plan {
  const { accelerator, pods, records } = input;
  const epoch = accelerator.spec.owner?.epoch ?? 0;
  const pins = stalePins(accelerator);
  const exporterOf = exporterFinder(accelerator.metadata.name ?? '', input.exports);
  const excluded = new Set(input.excludedNamespaces);

  const counted = new Set(records.filter((r) => r.result !== 'DryRun').map((r) => r.uid));
  const limit = Math.max(0, input.budget);
  const used = counted.size;
  const left = Math.max(0, limit - used);
  const activeUids = new Set(records.filter(isActive).map((r) => r.uid));

  const unresolvable: UnresolvablePin[] = [];
  const groups = new Map<string, { pod: PodRef; pins: Pin[] }>();
  for (const pin of pins) {
    if (!pin.pod) {
      unresolvable.push({ pin, cause: 'hidden', reason: hiddenReason(pin) });
      continue;
    }
    const key = podKey(pin.pod);
    if (excluded.has(pin.pod.namespace)) {
      unresolvable.push({
        pin,
        cause: 'excluded',
        reason: `pod ${key} is in an excluded namespace`,
      });
      continue;
    }
    const group = groups.get(key) ?? { pod: pin.pod, pins: [] };
    group.pins.push(pin);
    groups.set(key, group);
  }
  const node = accelerator.spec.node;

  const candidates: PlannedEviction[] = [];
  const inProgress: HolderInProgress[] = [];
  const gone = (pod: PodRef, uid: string | undefined, held: Pin[], reason: string) => {
    const { rank } = rankAndReason(podKey(pod), held, exporterOf);
    inProgress.push({ pod, uid, rank, kind: 'gone', reason, pins: held });
  };
  for (const key of [...groups.keys()].sort(compareText)) {
    const group = groups.get(key) as { pod: PodRef; pins: Pin[] };
    const ref = group.pod;
    const held = sortPins(group.pins);
    const pod = pods.get(key);
    if (!pod) {
      gone(ref, undefined, held, `pod ${key} is gone; waiting for its node to report the exit`);
      continue;
    }
    const distrust = untrusted(key, pod, node, held);
    if (distrust !== undefined) {
      for (const p of held) unresolvable.push({ pin: p, cause: 'untrusted', reason: distrust });
      continue;
    }
    const replacedUid = held.find((p) => p.podUID !== pod.uid)?.podUID;
    if (replacedUid !== undefined) {
      const why = `pod ${key} (uid ${replacedUid}) that holds the pin is gone; pod uid ${pod.uid} of that name is another pod`;
      gone(ref, replacedUid, held, `${why}; waiting for the node to report the exit`);
      continue;
    }
    const { rank, reason } = rankAndReason(key, held, exporterOf);
    const entry = { pod: ref, uid: pod.uid, rank, reason, pins: held };
    if (activeUids.has(pod.uid)) inProgress.push({ ...entry, kind: 'ours' });
    else if (input.evictingElsewhere.has(pod.uid)) inProgress.push({ ...entry, kind: 'elsewhere' });
    else if (pod.deletionTimestamp !== undefined)
      inProgress.push({ ...entry, kind: 'terminating' });
    else candidates.push(entry);
  }

  candidates.sort((a, b) => a.rank - b.rank || compareText(podKey(a.pod), podKey(b.pod)));
  const evict = candidates.slice(0, left);
  for (const over of candidates.slice(left)) {
    const reason =
      left === 0 && used >= limit
        ? `the eviction budget of ${limit} for this handoff is spent`
        : `the eviction budget of ${limit} for this handoff (${left} left) goes to pods ranked ahead of ${podKey(over.pod)}`;
    for (const pin of over.pins) unresolvable.push({ pin, cause: 'budget', reason });
  }
  return {
    epoch,
    pins: sortPins(pins),
    evict,
    inProgress,
    unresolvable: unresolvable.sort((a, b) => comparePins(a.pin, b.pin)),
    budget: { limit, used, left },
  };
}

/**
 * Why a pin's pod cannot be taken at its node's word, if it cannot: the reaper acts only on what
 * the agent of the accelerator's node reported about a pod bound to that node, by uid.
 */
function untrusted(
  key: string,
  pod: PodState,
  node: string,
  held: readonly Pin[],
): string | undefined {
  if (pod.nodeName !== node) {
    const where =
      pod.nodeName === undefined ? 'is bound to no node' : `runs on node ${pod.nodeName}`;
    return (
      `pod ${key} ${where}, not on ${node} where the accelerator is: the agent of ${node} ` +
      'cannot see its processes, so its pin is not believed and the pod is not evicted'
    );
  }
  if (held.some((p) => p.podUID === undefined)) {
    return `the pin names pod ${key} without its uid: the pod is not evicted on a name alone`;
  }
  return undefined;
}

/** A total order on pins, so that no output depends on the order the agent listed them in. */
function comparePins(a: Pin, b: Pin): number {
  return (
    a.inode - b.inode ||
    compareText(a.pod ? podKey(a.pod) : '', b.pod ? podKey(b.pod) : '') ||
    a.pid - b.pid ||
    compareText(a.kind, b.kind) ||
    compareText(a.importer ?? '', b.importer ?? '') ||
    a.epoch - b.epoch ||
    compareText(a.since, b.since) ||
    compareText(a.export ?? '', b.export ?? '') ||
    compareText(a.buffer ?? '', b.buffer ?? '') ||
    compareText(a.comm ?? '', b.comm ?? '') ||
    compareText(a.podUID ?? '', b.podUID ?? '')
  );
}

const sortPins = (pins: readonly Pin[]): Pin[] => [...pins].sort(comparePins);
