// The watches that feed the agent: this node's Accelerators and pods, and every DmaBufExport
// and DmaBufImportGrant. Each change only triggers a sync, which reads these caches, never the event.
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { AcceleratorStatus, DmaBufExportStatus } from '../crds/index.ts';
import { ACCELERATORS, DMABUF_EXPORTS, DMABUF_IMPORT_GRANTS } from '../crds/index.ts';
import { Informer, resourcePath, type ObjectLike } from '../kube/index.ts';
import { NODE_LABEL } from './accelerator-specs.ts';
import { AgentStartError, rootMessage, withTimeout } from './errors.ts';

/** Objects as the informers hold them: unvalidated until parsed with the CRD schemas. */
interface RawObject<Status> extends ObjectLike {
  metadata?: ObjectLike['metadata'] & {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  status?: Status;
}
export type RawAccelerator = RawObject<AcceleratorStatus>;
export type RawExport = RawObject<DmaBufExportStatus>;
export type RawGrant = RawObject<never>;

export class AgentWatches {
  readonly accelerators: Informer<RawAccelerator>;
  readonly pods: Informer<V1Pod>;
  readonly exports: Informer<RawExport>;
  readonly grants: Informer<RawGrant>;
  private readonly all: ReadonlyArray<Informer<ObjectLike>>;

  constructor(kc: KubeConfig, node: string, log: Logger) {
    this.accelerators = new Informer<RawAccelerator>(kc, {
      path: resourcePath(ACCELERATORS),
      labelSelector: `${NODE_LABEL}=${node}`,
      name: 'accelerators',
      logger: log,
    });
    this.pods = new Informer<V1Pod>(kc, {
      path: '/api/v1/pods',
      fieldSelector: `spec.nodeName=${node}`,
      name: 'pods',
      logger: log,
    });
    this.exports = new Informer<RawExport>(kc, {
      path: resourcePath(DMABUF_EXPORTS),
      name: 'dmabufexports',
      logger: log,
    });
    this.grants = new Informer<RawGrant>(kc, {
      path: resourcePath(DMABUF_IMPORT_GRANTS),
      name: 'dmabufimportgrants',
      logger: log,
    });
    this.all = [this.accelerators, this.pods, this.exports, this.grants];
  }

  /** Calls `fn` on every add, update and delete of every watch. */
  onChange(fn: () => void): void {
    for (const inf of this.all) {
      inf.on('add', () => fn());
      inf.on('update', () => fn());
      inf.on('delete', () => fn());
    }
  }

  /** Lists everything, or fails the start if the API server does not answer within 30 s. */
  async start(server: string): Promise<void> {
    try {
      await withTimeout(
        `listing Accelerators, pods, DmaBufExports and DmaBufImportGrants on ${server}`,
        30_000,
        Promise.all(this.all.map((i) => i.start())),
      );
    } catch (err) {
      this.stop();
      throw err instanceof AgentStartError ? err : new AgentStartError(rootMessage(err));
    }
  }

  hasSynced(): boolean {
    return this.all.every((i) => i.hasSynced());
  }

  stop(): void {
    for (const inf of this.all) inf.stop();
  }
}
