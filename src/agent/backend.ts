// The node agent's backend port: what exists on this node. `sim` is the simulated kernel (the
// agent realizes declared exports in it and its pins are the kernel's own); `linux` observes a
// real node read-only and adds the pins it sees. Publishing, owner bookkeeping (the kernel
// model's devices, owners and epochs) and the pin rules of the status stay shared.
import type { PodView } from './processes.ts';
import type { AgentState } from './state.ts';
import type { Pin as KernelPin } from '../device-sim/kernel/index.ts';

export const BACKEND_KINDS = ['sim', 'linux'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

/** Pins beyond the kernel model's, on one device, judged at its epoch at the time of the call. */
export interface NodePins {
  readonly pins: readonly KernelPin[];
  /** Set when the device cannot be shown free of earlier references: gates acquire like a pin. */
  readonly blocked?: { readonly reason: string; readonly message: string };
}

export type NodePinSource = (device: string) => NodePins;

export interface NodeBackend {
  readonly kind: BackendKind;
  /** Whether declared DmaBufExports are carried out on this node (only a simulator can). */
  readonly realizesExports: boolean;
  /** Look at the node once, before a sync; the pods are this node's, by uid. */
  observe(input: {
    readonly state: AgentState;
    readonly pods: ReadonlyMap<string, PodView>;
    readonly now: number;
  }): void;
  /** The pins of the last observation; undefined when the kernel model holds them all. */
  readonly pins: NodePinSource | undefined;
}

/** The simulated kernel of DESIGN.md section 5: nothing to observe, its pins are the kernel's. */
export const simBackend: NodeBackend = {
  kind: 'sim',
  realizesExports: true,
  observe: () => undefined,
  pins: undefined,
};

/** Every pin on `device`: the kernel model's own, then the backend's. */
export function allPins(
  state: AgentState,
  device: string,
  source: NodePinSource | undefined,
): { pins: KernelPin[]; blocked: NodePins['blocked'] } {
  const extra = source?.(device);
  return { pins: [...state.kernel.pins(device), ...(extra?.pins ?? [])], blocked: extra?.blocked };
}
