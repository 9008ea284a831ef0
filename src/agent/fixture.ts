// A node without a cluster, for unit tests: the cluster's view (pods, exports, spec.owner) is
// plain data the test edits, and each step runs the same sync and publish as the agent.
import { createHash } from 'node:crypto';
import {
  DmaBufExport,
  DmaBufImportGrant,
  parseObject,
  type AcceleratorOwner,
  type ExporterProfile,
  type Importer,
  type LabelSelector,
} from '../crds/index.ts';
import type { Kernel } from '../device-sim/kernel/index.ts';
import type { PodView } from './processes.ts';
import { publish, type Published } from './publish.ts';
import type { RemotePod } from './realize.ts';
import { newState, parseStateFile, toStateFile, type AgentState } from './state.ts';
import { syncNode, type SyncResult } from './sync.ts';

export const NODE = 'node-a';
export const DEV = 'node-a-hl0';
export const GiB = 2 ** 30;

export const lease = (name: string, namespace = 'team-a') => ({
  namespace,
  name,
  uid: `uid-${name}`,
});

/**
 * A pod's uid, readable for the short names tests use. The API server's are 36-character UUIDs;
 * names long enough to overflow one get a digest instead, as no real uid is longer.
 */
export function podUid(namespace: string, name: string): string {
  const readable = `pod-${namespace}-${name}`;
  if (readable.length <= 36) return readable;
  return `pod-${createHash('sha256').update(readable).digest('hex').slice(0, 32)}`;
}

export class FakeNode {
  state: AgentState;
  clock = 1_000_000;
  readonly pods = new Map<string, PodView>();
  exports: DmaBufExport[] = [];
  readonly owners = new Map<string, AcceleratorOwner | undefined>();
  readonly remote = new Map<string, RemotePod>();
  grants: DmaBufImportGrant[] = [];
  last: SyncResult | undefined;

  constructor(profile: ExporterProfile = 'static', devices = 1) {
    this.state = newState(
      NODE,
      { count: devices, memoryBytes: 8 * GiB, profile },
      { now: () => this.clock },
    );
  }

  /** A pod on this node (or on `node`), Running unless told otherwise. */
  pod(
    namespace: string,
    name: string,
    opts: { phase?: string; node?: string; comm?: string; labels?: Record<string, string> } = {},
  ): PodView {
    const view: PodView = {
      uid: podUid(namespace, name),
      namespace,
      name,
      nodeName: opts.node ?? NODE,
      phase: opts.phase ?? 'Running',
      comm: opts.comm ?? name.replace(/-[0-9]+$/, ''),
      ...(opts.labels && { labels: opts.labels }),
    };
    if (view.nodeName === NODE) this.pods.set(view.uid, view);
    else this.remote.set(`${namespace}/${name}`, { nodeName: view.nodeName });
    return view;
  }

  deletePod(namespace: string, name: string): void {
    this.pods.delete(podUid(namespace, name));
  }

  declare(
    name: string,
    spec: {
      lease: string;
      exporter: string;
      importers?: Importer[];
      sizeBytes?: number;
      offsetBytes?: number;
      accelerator?: string;
    },
    namespace = 'team-a',
  ): DmaBufExport {
    const exp = parseObject(DmaBufExport, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufExport',
      metadata: {
        name,
        namespace,
        uid: `dbx-${namespace}-${name}`,
        generation: 1,
        creationTimestamp: new Date(this.clock).toISOString(),
      },
      spec: {
        accelerator: spec.accelerator ?? DEV,
        lease: spec.lease,
        exporter: { pod: spec.exporter },
        sizeBytes: spec.sizeBytes ?? GiB,
        offsetBytes: spec.offsetBytes ?? 0,
        importers: spec.importers ?? [],
      },
    });
    this.exports.push(exp);
    return exp;
  }

  undeclare(name: string, namespace = 'team-a'): void {
    this.exports = this.exports.filter(
      (e) => !(e.metadata.name === name && e.metadata.namespace === namespace),
    );
  }

  /** A DmaBufImportGrant in `namespace` allowing exports of `from` (optionally only some pods). */
  grant(namespace: string, from: string[], podSelector?: LabelSelector): void {
    this.grants.push(
      parseObject(DmaBufImportGrant, {
        apiVersion: 'accel.dmabuf.io/v1alpha1',
        kind: 'DmaBufImportGrant',
        metadata: { namespace, name: `from-${from.join('-')}` },
        spec: { from: from.map((ns) => ({ namespace: ns })), ...(podSelector && { podSelector }) },
      }),
    );
  }

  own(owner: AcceleratorOwner | undefined, device = DEV): void {
    this.owners.set(device, owner);
  }

  sync(): SyncResult {
    this.clock += 1000;
    this.last = syncNode(this.state, {
      owners: this.owners,
      pods: this.pods,
      exports: this.exports,
      remote: this.remote,
      grants: this.grants,
      now: this.clock,
    });
    return this.last;
  }

  /** Statuses as last published: their conditions are the next publish's previous ones. */
  private published: Published | undefined;

  publish(): Published {
    if (!this.last) this.sync();
    const prev = this.published;
    this.published = publish(this.state, {
      sync: this.last as SyncResult,
      previousConditions: {
        accelerators: new Map(
          [...(prev?.acceleratorStatuses ?? [])].map(([k, v]) => [k, v.conditions]),
        ),
        exports: new Map(
          [...(prev?.exportStatuses ?? [])].map(([k, v]) => [k, v.status.conditions]),
        ),
      },
      now: this.clock,
    });
    return this.published;
  }

  /** Sync, then the statuses of `device` and of export `name` as they would be written. */
  step(device = DEV) {
    this.sync();
    const out = this.publish();
    return {
      device: out.acceleratorStatuses.get(device),
      exportStatus: (name: string, namespace = 'team-a') =>
        out.exportStatuses.get(`dbx-${namespace}-${name}`)?.status,
    };
  }

  /** A restart: the state file's text read back into a fresh kernel. */
  restart(): void {
    const text = JSON.stringify(toStateFile(this.state));
    this.state = parseStateFile(text, NODE, 'test', { now: () => this.clock });
    this.last = undefined;
  }

  kernel(): Kernel {
    return this.state.kernel;
  }
}

export const importer = (
  name: string,
  kind: Importer['kind'],
  namespace: string,
  pod: string,
): Importer => ({
  name,
  kind,
  pod: { namespace, name: pod },
});
