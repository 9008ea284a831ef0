// Holder pods without DRA, as a pure decision: a pod created with the scheduling gate
// accel.dmabuf.io/lease is released, pinned to the device's node, once a Granted lease of its
// namespace selects it. Nothing else about a pod is ever changed, and no pod is gated again.
import type { V1NodeSelectorTerm, V1Pod } from '@kubernetes/client-node';
import { isClaimLease, LEASE_GATE, matchesSelector, type AcceleratorLease } from '../crds/index.ts';
import type { Action } from './arbiter.ts';

/** A write a holder gate decides: release the pod onto `node`, or an Event. */
export type GateAction =
  Extract<Action, { type: 'event' }> | { type: 'ungatePod'; pod: V1Pod; node: string };

export const isGated = (pod: V1Pod): boolean =>
  (pod.spec?.schedulingGates ?? []).some((g) => g.name === LEASE_GATE);

export interface GateInput {
  readonly pod: V1Pod;
  /** The leases of the pod's namespace. */
  readonly leases: readonly AcceleratorLease[];
  /** The node of an Accelerator (its spec.node), undefined if unknown. */
  readonly nodeOf: (accelerator: string) => string | undefined;
}

/**
 * The pod's writes: none unless it carries our gate and a live, Granted lease of its namespace
 * selects it. Then one write: the gate goes and the device's node joins its required node
 * affinity (the API server allows both on a gated pod). Leases granted on different nodes
 * cannot all be honoured: the pod stays gated, and an Event on each lease says why.
 */
export function decideGate(input: GateInput): GateAction[] {
  const { pod } = input;
  if (!isGated(pod) || pod.metadata?.deletionTimestamp) return [];
  const ns = pod.metadata?.namespace;
  const holding = input.leases.filter(
    (l) =>
      l.metadata.namespace === ns &&
      !l.metadata.deletionTimestamp &&
      !isClaimLease(l) &&
      l.status?.phase === 'Granted' &&
      l.status.accelerator !== undefined &&
      matchesSelector(l.spec.holder.podSelector, pod.metadata?.labels),
  );
  const nodes = new Set(holding.map((l) => input.nodeOf(l.status?.accelerator ?? '') ?? ''));
  nodes.delete('');
  if (nodes.size === 0) return [];
  const [node] = [...nodes];
  if (nodes.size > 1 || node === undefined) {
    return holding.map((lease) => ({
      type: 'event',
      regarding: lease,
      eventType: 'Warning',
      reason: 'HolderOnTwoNodes',
      note: `pod ${ns}/${pod.metadata?.name} stays gated: the leases that select it hold devices on nodes ${[...nodes].sort().join(', ')}`,
    }));
  }
  return [{ type: 'ungatePod', pod, node }];
}

/** The required node terms of `pod` with `node` added: a new term, or ANDed into each term. */
export function withNode(pod: V1Pod, node: string): V1NodeSelectorTerm[] {
  const pin = { key: 'metadata.name', operator: 'In', values: [node] };
  const terms =
    pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution
      ?.nodeSelectorTerms ?? [];
  if (terms.length === 0) return [{ matchFields: [pin] }];
  return terms.map((t) => ({ ...t, matchFields: [...(t.matchFields ?? []), pin] }));
}

/**
 * The merge patch that releases `pod` onto `node`: conditional on the version read (lists are
 * replaced whole by a merge patch), our gate removed, any other gate kept.
 */
export function ungatePatch(pod: V1Pod, node: string): Record<string, unknown> {
  return {
    metadata: { resourceVersion: pod.metadata?.resourceVersion },
    spec: {
      schedulingGates: (pod.spec?.schedulingGates ?? []).filter((g) => g.name !== LEASE_GATE),
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: withNode(pod, node),
          },
        },
      },
    },
  };
}
