// The agent's status writes to the API server: each Accelerator's and DmaBufExport's status
// from the last sync, applied server-side only when it changed (or a heartbeat is due).
import type { Logger } from 'pino';
import {
  ACCELERATORS,
  DMABUF_EXPORTS,
  API_VERSION,
  preciseTime,
  type AcceleratorStatus,
  type Condition,
  type DmaBufExportStatus,
} from '../crds/index.ts';
import { ResourceClient, isNotFound, type KubeClient } from '../kube/index.ts';
import { FIELD_MANAGER } from './accelerator-specs.ts';
import type { NodeBackend } from './backend.ts';
import { rootMessage } from './errors.ts';
import type { AgentMetrics } from './metrics.ts';
import { publish, type PublishContext, type Published } from './publish.ts';
import type { StateStore } from './state-store.ts';
import type { SyncResult } from './sync.ts';
import type { AgentWatches, RawAccelerator, RawExport } from './watches.ts';

/** A status as last applied, and its JSON to compare the next one with. */
interface Applied<Status> {
  readonly key: string;
  readonly status: Status;
}

export class StatusWriter {
  private readonly accelerators: ResourceClient<RawAccelerator>;
  private readonly exports: ResourceClient<RawExport>;
  private readonly appliedAccel = new Map<string, Applied<AcceleratorStatus>>();
  private readonly appliedExport = new Map<string, Applied<DmaBufExportStatus>>();
  /** Every Accelerator status is rewritten, changed or not, to refresh its heartbeatTime. */
  private heartbeatDue = true;

  private readonly store: StateStore;
  private readonly watches: AgentWatches;
  private readonly backend: NodeBackend;
  private readonly metrics: AgentMetrics;
  private readonly log: Logger;

  constructor(
    client: KubeClient,
    store: StateStore,
    watches: AgentWatches,
    backend: NodeBackend,
    metrics: AgentMetrics,
    log: Logger,
  ) {
    this.store = store;
    this.watches = watches;
    this.backend = backend;
    this.metrics = metrics;
    this.log = log;
    this.accelerators = new ResourceClient<RawAccelerator>(client, ACCELERATORS);
    this.exports = new ResourceClient<RawExport>(client, DMABUF_EXPORTS);
  }

  /** The next write refreshes every heartbeat. */
  heartbeat(): void {
    this.heartbeatDue = true;
  }

  /** The Accelerator was deleted: write its status again once it is recreated. */
  forget(name: string): void {
    this.appliedAccel.delete(name);
  }

  /** Writes what `sync` leaves to publish; false if any write failed (a due heartbeat stays due). */
  async write(sync: SyncResult): Promise<boolean> {
    const heartbeat = this.heartbeatDue;
    this.heartbeatDue = false;
    if (this.store.crashed) return true;
    const now = Date.now();
    const published = publish(this.store.state, {
      sync,
      previousConditions: this.previousConditions(sync),
      now,
      nodePins: this.backend.pins,
    });
    const accelOk = await this.writeAccelerators(published, heartbeat, now);
    const exportOk = await this.writeExports(published);
    this.metrics.processes.set(this.store.state.kernel.processes().length);
    const ok = accelOk && exportOk;
    if (!ok && heartbeat) this.heartbeatDue = true;
    return ok;
  }

  /** What we applied last, else what the cache holds: lastTransitionTime moves on change only. */
  private previousConditions(sync: SyncResult): PublishContext['previousConditions'] {
    const cachedExport = new Map(
      this.watches.exports.list().map((o) => [o.metadata?.uid ?? '', o.status] as const),
    );
    return {
      accelerators: new Map(
        this.store
          .deviceNames()
          .map((n): [string, Condition[] | undefined] => [
            n,
            this.appliedAccel.get(n)?.status.conditions ??
              this.watches.accelerators.get(n)?.status?.conditions,
          ]),
      ),
      exports: new Map(
        [...sync.exports.keys()].map((uid): [string, Condition[] | undefined] => [
          uid,
          this.appliedExport.get(uid)?.status.conditions ?? cachedExport.get(uid)?.conditions,
        ]),
      ),
    };
  }

  private async writeAccelerators(
    published: Published,
    heartbeat: boolean,
    now: number,
  ): Promise<boolean> {
    let ok = true;
    for (const [name, status] of published.acceleratorStatuses) {
      const key = JSON.stringify(status);
      this.metrics.device(name, status);
      if (!heartbeat && this.appliedAccel.get(name)?.key === key) continue;
      try {
        await this.applyAcceleratorStatus(name, { ...status, heartbeatTime: preciseTime(now) });
        this.appliedAccel.set(name, { key, status });
        this.metrics.writes.inc({ resource: 'accelerators', result: 'success' });
      } catch (err) {
        ok = false;
        this.appliedAccel.delete(name);
        this.metrics.writes.inc({ resource: 'accelerators', result: 'error' });
        this.log.warn({ device: name, err: rootMessage(err) }, 'writing Accelerator status failed');
      }
    }
    return ok;
  }

  private async applyAcceleratorStatus(name: string, status: AcceleratorStatus): Promise<void> {
    if (this.store.crashed) return;
    await this.accelerators.applyStatus(
      { apiVersion: API_VERSION, kind: 'Accelerator', metadata: { name }, status },
      { fieldManager: FIELD_MANAGER, force: true },
    );
  }

  private async writeExports(published: Published): Promise<boolean> {
    let ok = true;
    for (const [uid, update] of published.exportStatuses) {
      const key = JSON.stringify(update.status);
      if (this.appliedExport.get(uid)?.key === key) continue;
      try {
        await this.exports.applyStatus(
          {
            apiVersion: API_VERSION,
            kind: 'DmaBufExport',
            metadata: { name: update.name, namespace: update.namespace },
            status: update.status,
          },
          { fieldManager: FIELD_MANAGER, force: true },
        );
        this.appliedExport.set(uid, { key, status: update.status });
        this.metrics.writes.inc({ resource: 'dmabufexports', result: 'success' });
      } catch (err) {
        if (isNotFound(err)) continue; // deleted meanwhile: the next sync releases it
        ok = false;
        this.metrics.writes.inc({ resource: 'dmabufexports', result: 'error' });
        this.log.warn(
          { export: `${update.namespace}/${update.name}`, err: rootMessage(err) },
          'writing DmaBufExport status failed',
        );
      }
    }
    for (const uid of this.appliedExport.keys()) {
      if (!published.exportStatuses.has(uid)) this.appliedExport.delete(uid);
    }
    return ok;
  }
}
