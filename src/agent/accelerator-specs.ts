// This node's Accelerators as the agent publishes them: name, labels and spec, applied with
// server-side apply at start and again whenever the cache shows them changed or gone.
import type { Logger } from 'pino';
import { ACCELERATORS, API_VERSION, type ExporterProfile } from '../crds/index.ts';
import { ResourceClient, isNotFound, type Informer, type KubeClient } from '../kube/index.ts';
import { AgentStartError, rootMessage } from './errors.ts';
import type { DeviceSetup } from './state.ts';
import type { StateStore } from './state-store.ts';
import type { RawAccelerator } from './watches.ts';

export const FIELD_MANAGER = 'accel-lease-agent';
export const NODE_LABEL = 'accel.dmabuf.io/node';
export const MODEL_LABEL = 'accel.dmabuf.io/model';

/** A missing Accelerator may just not be in the cache yet: re-apply only after this long. */
const REAPPLY_MISSING_MS = 10_000;

export interface SpecOptions {
  readonly node: string;
  readonly model: string;
  /** What a device the kernel does not have (yet) is published with. */
  readonly setup: DeviceSetup;
}

export class AcceleratorSpecs {
  private readonly accelerators: ResourceClient<RawAccelerator>;
  /** When each spec was last applied, by device. */
  private readonly applied = new Map<string, number>();

  private readonly store: StateStore;
  private readonly options: SpecOptions;
  private readonly log: Logger;

  constructor(client: KubeClient, store: StateStore, options: SpecOptions, log: Logger) {
    this.store = store;
    this.options = options;
    this.log = log;
    this.accelerators = new ResourceClient<RawAccelerator>(client, ACCELERATORS);
  }

  /** Publishes every device; a failure is a start error naming what to fix. */
  async publishAtStart(server: string): Promise<void> {
    for (const name of this.store.deviceNames()) {
      try {
        await this.apply(name);
      } catch (err) {
        const hint = isNotFound(err)
          ? ': is the Accelerator CRD installed? (kubectl apply -f deploy/crds/)'
          : '';
        throw new AgentStartError(
          `cannot publish Accelerator ${name} on ${server}: ${rootMessage(err)}${hint}`,
        );
      }
    }
  }

  /** Re-applies each spec the cache shows differing; false if any apply failed. */
  async ensure(cache: Informer<RawAccelerator>): Promise<boolean> {
    const { node, model } = this.options;
    let ok = true;
    for (const name of this.store.deviceNames()) {
      const cached = cache.get(name);
      const want = this.desired(name);
      const differs = cached
        ? Object.entries(want).some(([k, v]) => cached.spec?.[k] !== v) ||
          cached.metadata?.labels?.[NODE_LABEL] !== node ||
          cached.metadata?.labels?.[MODEL_LABEL] !== model
        : Date.now() - (this.applied.get(name) ?? 0) > REAPPLY_MISSING_MS;
      if (!differs) continue;
      try {
        await this.apply(name);
      } catch (err) {
        ok = false;
        this.log.warn(
          { device: name, err: rootMessage(err) },
          'applying the Accelerator spec failed',
        );
      }
    }
    return ok;
  }

  /** The Accelerator was deleted: recreate it on the next sync. */
  forget(name: string): void {
    this.applied.delete(name);
  }

  /** Each device as this agent publishes it (the DRA slice shows the same). */
  devices(): {
    accelerator: string;
    model: string;
    memoryBytes: number;
    profile: ExporterProfile;
  }[] {
    return this.store.deviceNames().map((name) => {
      const { model, memoryBytes, exporterProfile } = this.desired(name);
      return { accelerator: name, model, memoryBytes, profile: exporterProfile };
    });
  }

  private desired(name: string) {
    const { node, model, setup } = this.options;
    const dev = this.store.state.kernel.device(name);
    return {
      node,
      index: Number(name.slice(node.length + 3)),
      model,
      memoryBytes: dev?.memoryBytes ?? setup.memoryBytes,
      exporterProfile: dev?.profile ?? setup.profile,
    };
  }

  private async apply(name: string): Promise<void> {
    const { node, model } = this.options;
    await this.accelerators.apply(
      {
        apiVersion: API_VERSION,
        kind: 'Accelerator',
        metadata: { name, labels: { [NODE_LABEL]: node, [MODEL_LABEL]: model } },
        spec: this.desired(name),
      },
      { fieldManager: FIELD_MANAGER, force: true },
    );
    this.applied.set(name, Date.now());
  }
}
