// What one sync starts from: the watches' caches parsed into an `Observed` (spec.owners, pods,
// exports, grants), the backend's view of the node, and importer pods looked up off this node.
import { HttpMethod, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { z } from 'zod';
import {
  Accelerator,
  DmaBufExport,
  DmaBufImportGrant,
  parseObject,
  podKey,
  type AcceleratorOwner,
} from '../crds/index.ts';
import { isNotFound, type Informer, type KubeClient, type ObjectLike } from '../kube/index.ts';
import type { NodeBackend } from './backend.ts';
import { rootMessage } from './errors.ts';
import { leaseOfOwner } from './ownership.ts';
import type { PodView } from './processes.ts';
import { importersOffNode, type RemotePod } from './realize.ts';
import type { StateStore } from './state-store.ts';
import { exportsOnNode, type Observed } from './sync.ts';
import type { AgentWatches } from './watches.ts';

/** How long a looked-up importer pod is trusted before it is asked for again. */
const REMOTE_POD_TTL_MS = 5_000;

function podView(pod: V1Pod): PodView {
  return {
    uid: pod.metadata?.uid ?? '',
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    nodeName: pod.spec?.nodeName,
    phase: pod.status?.phase ?? 'Pending',
    comm: pod.spec?.containers[0]?.name ?? pod.metadata?.name ?? 'pod',
    labels: pod.metadata?.labels,
  };
}

export class NodeObserver {
  private readonly remoteCache = new Map<string, { at: number; pod: RemotePod }>();
  /** Uids of exports and grants already warned about as invalid. */
  private readonly invalidSeen = new Set<string>();
  /** The last invalid-Accelerator message logged per device, so each is logged once. */
  private readonly invalidAccelerator = new Map<string, string>();

  private readonly client: KubeClient;
  private readonly watches: AgentWatches;
  private readonly backend: NodeBackend;
  private readonly store: StateStore;
  private readonly log: Logger;

  constructor(
    client: KubeClient,
    watches: AgentWatches,
    backend: NodeBackend,
    store: StateStore,
    log: Logger,
  ) {
    this.client = client;
    this.watches = watches;
    this.backend = backend;
    this.store = store;
    this.log = log;
  }

  async observe(): Promise<Observed> {
    const { state } = this.store;
    const owners = this.owners();
    const pods = new Map<string, PodView>();
    for (const pod of this.watches.pods.list()) {
      const view = podView(pod);
      pods.set(view.uid, view);
    }
    this.backend.observe({ state, pods, now: Date.now() });
    // Only the simulator can carry out a declared export; an observer reports what it sees.
    const exports = this.backend.realizesExports
      ? this.parsedAll(DmaBufExport, this.watches.exports, 'DmaBufExport')
      : [];
    const grants = this.parsedAll(DmaBufImportGrant, this.watches.grants, 'DmaBufImportGrant');
    const remote = await this.remoteImporters(owners, pods, exports, grants);
    return {
      owners,
      pods,
      exports,
      remote,
      grants,
      now: Date.now(),
      nodePins: this.backend.pins,
    };
  }

  /** spec.owner of each device whose Accelerator is cached and valid. */
  private owners(): Map<string, AcceleratorOwner | undefined> {
    const owners = new Map<string, AcceleratorOwner | undefined>();
    for (const name of this.store.deviceNames()) {
      const obj = this.watches.accelerators.get(name);
      if (!obj) continue;
      try {
        owners.set(name, parseObject(Accelerator, obj).spec.owner);
      } catch (err) {
        const msg = (err as Error).message;
        if (this.invalidAccelerator.get(name) !== msg) {
          this.invalidAccelerator.set(name, msg);
          this.log.warn({ device: name, err: msg }, 'ignoring an invalid Accelerator');
        }
      }
    }
    return owners;
  }

  /**
   * Importer pods of exports about to be realized that are not on this node, looked up so
   * that an importer elsewhere fails with a reason instead of waiting forever.
   */
  private async remoteImporters(
    owners: ReadonlyMap<string, AcceleratorOwner | undefined>,
    pods: ReadonlyMap<string, PodView>,
    exports: readonly DmaBufExport[],
    grants: readonly DmaBufImportGrant[],
  ): Promise<Map<string, RemotePod>> {
    const { state } = this.store;
    const candidates = exportsOnNode(state, exports).filter((e) => {
      if (state.exports[e.metadata.uid ?? '']) return false;
      const named = (l: { namespace: string; name: string } | undefined) =>
        l !== undefined && l.namespace === e.metadata.namespace && l.name === e.spec.lease;
      return (
        named(leaseOfOwner(state.kernel.device(e.spec.accelerator)?.owner ?? null)) ||
        named(owners.get(e.spec.accelerator)?.lease)
      );
    });
    const byKey = new Map([...pods.values()].map((p) => [podKey(p), p]));
    const remote = new Map<string, RemotePod>();
    for (const ref of importersOffNode(candidates, byKey, grants)) {
      const found = await this.lookupRemote(ref);
      if (found !== undefined) remote.set(podKey(ref), found);
    }
    return remote;
  }

  /** The pod's node, 'missing' if it does not exist, undefined if the lookup failed. */
  private async lookupRemote(ref: {
    namespace: string;
    name: string;
  }): Promise<RemotePod | undefined> {
    const key = podKey(ref);
    const hit = this.remoteCache.get(key);
    if (hit && Date.now() - hit.at < REMOTE_POD_TTL_MS) return hit.pod;
    try {
      const pod = await this.client.request<V1Pod>({
        method: HttpMethod.GET,
        path: `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/pods/${encodeURIComponent(ref.name)}`,
      });
      const found: RemotePod = { nodeName: pod.spec?.nodeName };
      this.remoteCache.set(key, { at: Date.now(), pod: found });
      return found;
    } catch (err) {
      if (isNotFound(err)) {
        this.remoteCache.set(key, { at: Date.now(), pod: 'missing' });
        return 'missing';
      }
      this.log.warn({ pod: key, err: rootMessage(err) }, 'looking up an importer pod failed');
      return undefined;
    }
  }

  /**
   * The cached objects that parse, each invalid one logged once and skipped. A grant that does
   * not parse grants nothing: an importer it would allow fails instead.
   */
  private parsedAll<S extends z.ZodType>(
    schema: S,
    informer: Informer<ObjectLike>,
    kind: string,
  ): z.output<S>[] {
    const out: z.output<S>[] = [];
    for (const obj of informer.list()) {
      try {
        out.push(parseObject(schema, obj));
      } catch (err) {
        const uid = obj.metadata?.uid ?? '';
        if (!this.invalidSeen.has(uid)) {
          this.invalidSeen.add(uid);
          this.log.warn({ err: (err as Error).message }, `skipping an invalid ${kind}`);
        }
      }
    }
    return out;
  }
}
