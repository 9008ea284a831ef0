// The agent as DRA driver accel.dmabuf.io (--dra): this node's devices as one ResourceSlice,
// each device gated by the handoff's binding conditions, a cordoned one tainted NoSchedule.
// `desiredSlice` is pure; the publisher applies it (server-side apply) when it changes.
import type { Logger } from 'pino';
import {
  CORDON_ANNOTATION,
  CORDON_TAINT,
  DRA_DRIVER,
  HANDOFF_COMPLETE,
  RESOURCE_SLICES,
  sliceDeviceOf,
  sliceName,
  UNRESOLVABLE,
  type ExporterProfile,
} from '../crds/index.ts';
import {
  apiVersionOf,
  ResourceClient,
  type ApplyObject,
  type Informer,
  type KubeClient,
} from '../kube/index.ts';
import { FIELD_MANAGER } from './accelerator-specs.ts';
import { rootMessage } from './errors.ts';
import type { RawAccelerator } from './watches.ts';

/** One device as the slice shows it. */
export interface SliceDeviceInput {
  /** The Accelerator's name, `<node>-<device>`. */
  readonly accelerator: string;
  readonly model: string;
  readonly memoryBytes: number;
  readonly profile: ExporterProfile;
  /** The controller cordoned it (its pins cannot be cleared): no new allocation. */
  readonly cordoned: boolean;
}

/** Re-apply an unchanged slice after this long, in case someone deleted or edited it. */
const REAPPLY_MS = 60_000;

/** A slice device as the API server's JSON has it (client-node's model renames `int` to `_int`). */
interface SliceDevice {
  name: string;
  attributes: Record<string, { string: string } | { int: number }>;
  capacity: Record<string, { value: string }>;
  bindsToNode: boolean;
  bindingConditions: string[];
  bindingFailureConditions: string[];
  taints?: { key: string; value: string; effect: 'NoSchedule' }[];
}

/**
 * The slice of `node`: pool = node, one device per Accelerator, each binding only once the
 * controller says the handoff is complete (or failing over when it says it is unresolvable).
 */
export function desiredSlice(node: string, devices: readonly SliceDeviceInput[]): ApplyObject {
  const out: SliceDevice[] = [];
  for (const d of devices) {
    const name = sliceDeviceOf(d.accelerator, node);
    if (name === undefined) continue;
    out.push({
      name,
      attributes: {
        accelerator: { string: d.accelerator },
        model: { string: d.model },
        profile: { string: d.profile },
        memory: { int: d.memoryBytes },
      },
      capacity: { memory: { value: String(d.memoryBytes) } },
      bindsToNode: true,
      bindingConditions: [HANDOFF_COMPLETE],
      bindingFailureConditions: [UNRESOLVABLE],
      ...(d.cordoned && {
        taints: [{ key: CORDON_TAINT, value: 'true', effect: 'NoSchedule' }],
      }),
    });
  }
  return {
    apiVersion: apiVersionOf(RESOURCE_SLICES),
    kind: RESOURCE_SLICES.kind,
    metadata: { name: sliceName(node) },
    spec: {
      driver: DRA_DRIVER,
      nodeName: node,
      pool: { name: node, generation: 1, resourceSliceCount: 1 },
      devices: out,
    },
  };
}

export class SlicePublisher {
  private readonly slices: ResourceClient<ApplyObject>;
  private readonly node: string;
  private readonly log: Logger;
  private last?: { json: string; at: number };

  constructor(client: KubeClient, node: string, log: Logger) {
    this.slices = new ResourceClient<ApplyObject>(client, RESOURCE_SLICES);
    this.node = node;
    this.log = log;
  }

  /** Apply the slice for `devices` if it changed (or is due again); false if the apply failed. */
  async ensure(devices: readonly SliceDeviceInput[], now = Date.now()): Promise<boolean> {
    const body = desiredSlice(this.node, devices);
    const json = JSON.stringify(body);
    if (this.last?.json === json && now - this.last.at < REAPPLY_MS) return true;
    try {
      await this.slices.apply(body, {
        fieldManager: FIELD_MANAGER,
        force: true,
      });
      this.last = { json, at: now };
      return true;
    } catch (err) {
      this.log.warn({ err: rootMessage(err) }, 'applying the ResourceSlice failed');
      return false;
    }
  }
}

/** Which of this node's Accelerators the controller cordoned, from the agent's cache. */
export function cordoned(cache: Informer<RawAccelerator>, name: string): boolean {
  return cache.get(name)?.metadata?.annotations?.[CORDON_ANNOTATION] !== undefined;
}
