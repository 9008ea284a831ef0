// The simulation's API server: the requests the controller's own writes and pod calls make
// (clusterWrites, clusterPods), answered in memory as kube-apiserver answers them: JSON merge
// patch, resourceVersion preconditions (409), the status subresource, schema validation (422),
// the Accelerator's owner rules, evictions under PodDisruptionBudgets (429, with the Retry-After
// the budget's model names, and the budget's allowance taken by an accepted one), UID preconditions,
// finalizers and graceful deletion. Every change goes to a watch log the caches read with lag.
import type { V1Pod } from '@kubernetes/client-node';
import { Accelerator, AcceleratorLease, parseObject } from '../../src/crds/index.ts';
import { KubeApiError, type KubeClient, type RequestOptions } from '../../src/kube/index.ts';

export type Resource = 'accelerators' | 'leases' | 'exports' | 'pods' | 'pdbs';

export interface WatchEvent {
  readonly resource: Resource;
  readonly type: 'add' | 'update' | 'delete';
  readonly obj: Stored;
  readonly old?: Stored;
}

/** What every stored object has; the rest is the resource's own. */
export interface Stored {
  metadata: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    finalizers?: string[];
    deletionTimestamp?: Date | string;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/** A PodDisruptionBudget's refusal (429): its message, and the Retry-After it names, if any. */
export interface Refusal {
  readonly message: string;
  readonly retryAfterSeconds?: number;
}

/** How the pods' side answers: what PDBs allow, how long a pod takes to go. */
export interface PodPolicy {
  /** An eviction of this pod now: undefined to accept it (the PDB's allowance is taken), else the PDB's refusal. */
  refuseEviction(pod: V1Pod): Refusal | undefined;
  /** A pod deleted with a grace period (or its own) is gone after this long. */
  terminationMs(pod: V1Pod): number;
}

/** Raised by a request from a process the world has just crashed: nothing was applied. */
export class ProcessDown extends Error {
  override name = 'ProcessDown';
}

const clone = <T>(x: T): T => structuredClone(x);
const keyOf = (o: Stored) =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata.name ?? '');

/** RFC 7386: objects merge key by key, null deletes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const ROUTES: { re: RegExp; resource: Resource }[] = [
  {
    re: /^\/apis\/accel\.dmabuf\.io\/v1alpha1\/accelerators\/([^/]+)(?:\/(status))?$/,
    resource: 'accelerators',
  },
  {
    re: /^\/apis\/accel\.dmabuf\.io\/v1alpha1\/namespaces\/([^/]+)\/acceleratorleases\/([^/]+)(?:\/(status))?$/,
    resource: 'leases',
  },
  { re: /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)(?:\/(eviction))?$/, resource: 'pods' },
];

export class MemoryApi {
  private rv = 1000;
  private uids = 0;
  readonly objects: Record<Resource, Map<string, Stored>> = {
    accelerators: new Map(),
    leases: new Map(),
    exports: new Map(),
    pods: new Map(),
    pdbs: new Map(),
  };
  /** Every change, in order: what watches deliver. */
  readonly log: WatchEvent[] = [];
  /** Called after each write the controller makes is applied, with what it wrote. */
  afterControllerWrite: (what: string) => void = () => undefined;
  /** Called before an eviction or deletion is applied: the world checks it may be sent. */
  beforePodCall: (call: 'evict' | 'delete', pod: V1Pod, grace: number | undefined) => void = () =>
    undefined;
  /** Asked before each conditional write of the controller: true bumps the object's version first. */
  raceControllerWrite: () => boolean = () => false;
  /** While true, every request the controller makes fails and applies nothing. */
  controllerDown = false;
  now: () => number;
  private readonly pods: PodPolicy;
  /** Pods deleted gracefully: key -> when the kubelet removes them. */
  readonly terminating = new Map<string, number>();

  constructor(now: () => number, pods: PodPolicy) {
    this.now = now;
    this.pods = pods;
  }

  // ---- the store ------------------------------------------------------------------------------

  get<T extends Stored>(resource: Resource, key: string): T | undefined {
    const o = this.objects[resource].get(key);
    return o && (clone(o) as T);
  }

  list<T extends Stored>(resource: Resource): T[] {
    return [...this.objects[resource].values()].map((o) => clone(o) as T);
  }

  /** What is stored, without copying: for checks that only read. */
  peek<T extends Stored>(resource: Resource, key: string): Readonly<T> | undefined {
    return this.objects[resource].get(key) as T | undefined;
  }

  /** Every stored object, without copying: for checks that only read. */
  peekAll<T extends Stored>(resource: Resource): readonly Readonly<T>[] {
    return [...this.objects[resource].values()] as T[];
  }

  /** Store `obj` (created, or replacing what is there) with the next resourceVersion. */
  put<T extends Stored>(resource: Resource, obj: T): T {
    const stored = clone(obj);
    const key = keyOf(stored);
    const old = this.objects[resource].get(key);
    stored.metadata.uid ??= old?.metadata.uid ?? `uid-${resource}-${++this.uids}`;
    stored.metadata.resourceVersion = String(++this.rv);
    // Stored objects are replaced, never changed in place: the log and the caller share them.
    this.objects[resource].set(key, stored);
    this.log.push({ resource, type: old ? 'update' : 'add', obj: stored, ...(old && { old }) });
    return stored;
  }

  remove(resource: Resource, key: string): void {
    const old = this.objects[resource].get(key);
    if (!old) return;
    this.objects[resource].delete(key);
    this.terminating.delete(key);
    const gone = { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.rv) } };
    this.log.push({ resource, type: 'delete', obj: gone });
  }

  /** A DELETE as a user makes it: with finalizers it only marks the object, else it goes. */
  deleteObject(resource: Resource, key: string): void {
    const o = this.objects[resource].get(key);
    if (!o) return;
    if ((o.metadata.finalizers ?? []).length === 0) return this.remove(resource, key);
    if (o.metadata.deletionTimestamp) return;
    this.put(resource, {
      ...o,
      metadata: { ...o.metadata, deletionTimestamp: new Date(this.now()).toISOString() },
    });
  }

  // ---- what the controller's KubeClient sends ---------------------------------------------------

  /** The controller's client: the requests clusterWrites and clusterPods make, nothing else. */
  controllerClient(): KubeClient {
    return {
      request: (opts: RequestOptions) =>
        new Promise((resolve) => {
          if (this.controllerDown)
            throw new ProcessDown(`${opts.method} ${opts.path}: controller is down`);
          const out = this.handle(opts);
          if (opts.method !== 'GET') this.afterControllerWrite(`${opts.method} ${opts.path}`);
          resolve(out);
        }),
    } as unknown as KubeClient;
  }

  private handle(opts: RequestOptions): unknown {
    for (const { re, resource } of ROUTES) {
      const m = re.exec(opts.path);
      if (!m) continue;
      const [ns, name, sub] =
        resource === 'accelerators' ? [undefined, m[1], m[2]] : [m[1], m[2], m[3]];
      const key = ns
        ? `${decodeURIComponent(ns)}/${decodeURIComponent(name ?? '')}`
        : decodeURIComponent(name ?? '');
      if (resource === 'pods') return this.podCall(opts, key, sub);
      if (opts.method === 'GET') return clone(this.existing(opts, resource, key));
      if (opts.method === 'PATCH') return this.patch(opts, resource, key, sub);
      if (opts.method === 'PUT') return this.replace(opts, resource, key, sub);
    }
    throw new KubeApiError(opts.method, opts.path, 405, { reason: 'MethodNotAllowed' });
  }

  private existing(opts: RequestOptions, resource: Resource, key: string): Stored {
    const o = this.objects[resource].get(key);
    if (!o)
      throw new KubeApiError(opts.method, opts.path, 404, {
        reason: 'NotFound',
        message: `${key} not found`,
      });
    return o;
  }

  private precondition(
    opts: RequestOptions,
    resource: Resource,
    stored: Stored,
    rv: string | undefined,
  ): void {
    // Another writer got there first: same content, a newer version.
    if (rv !== undefined && this.raceControllerWrite()) stored = this.put(resource, stored);
    if (rv !== undefined && rv !== stored.metadata.resourceVersion) {
      throw new KubeApiError(opts.method, opts.path, 409, {
        reason: 'Conflict',
        message: `the object has been modified (resourceVersion ${rv}, stored ${stored.metadata.resourceVersion})`,
      });
    }
  }

  private patch(opts: RequestOptions, resource: Resource, key: string, sub?: string): unknown {
    const stored = this.existing(opts, resource, key);
    const body = opts.body as Stored;
    this.precondition(opts, resource, stored, body.metadata?.resourceVersion);
    const meta = { ...body.metadata };
    delete meta.resourceVersion;
    const patched = mergePatch(stored, { ...body, metadata: meta }) as Stored;
    const next =
      sub === 'status'
        ? { ...stored, status: patched.status }
        : { ...patched, status: stored.status };
    return this.admit(opts, resource, stored, next);
  }

  private replace(opts: RequestOptions, resource: Resource, key: string, sub?: string): unknown {
    const stored = this.existing(opts, resource, key);
    const body = opts.body as Stored;
    this.precondition(opts, resource, stored, body.metadata.resourceVersion);
    if (body.metadata.uid !== undefined && body.metadata.uid !== stored.metadata.uid) {
      throw new KubeApiError(opts.method, opts.path, 409, {
        reason: 'Conflict',
        message: 'uid changed',
      });
    }
    const next =
      sub === 'status'
        ? { ...stored, status: clone(body.status) }
        : { ...clone(body), status: stored.status };
    return this.admit(opts, resource, stored, next);
  }

  /** Validate as the CRD's schema and rules would, then store (or finish a deletion). */
  private admit(opts: RequestOptions, resource: Resource, old: Stored, next: Stored): unknown {
    try {
      if (resource === 'leases') parseObject(AcceleratorLease, next);
      if (resource === 'accelerators') parseObject(Accelerator, next);
    } catch (err) {
      throw new KubeApiError(opts.method, opts.path, 422, {
        reason: 'Invalid',
        message: (err as Error).message,
      });
    }
    if (resource === 'accelerators')
      ownerRules(opts, old as unknown as Accelerator, next as unknown as Accelerator);
    const key = keyOf(next);
    if (next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
      this.remove(resource, key);
      return {
        ...clone(next),
        metadata: { ...clone(next.metadata), resourceVersion: old.metadata.resourceVersion },
      };
    }
    return this.put(resource, next);
  }

  // ---- pods: evictions and deletions ------------------------------------------------------------

  private podCall(opts: RequestOptions, key: string, sub?: string): unknown {
    const pod = this.objects.pods.get(key) as V1Pod | undefined;
    const body = opts.body as {
      deleteOptions?: { preconditions?: { uid?: string } };
      preconditions?: { uid?: string };
      gracePeriodSeconds?: number;
    };
    const uid =
      sub === 'eviction' ? body.deleteOptions?.preconditions?.uid : body.preconditions?.uid;
    if (!pod) throw new KubeApiError(opts.method, opts.path, 404, { reason: 'NotFound' });
    if (uid !== undefined && pod.metadata?.uid !== uid) {
      throw new KubeApiError(opts.method, opts.path, 409, {
        reason: 'Conflict',
        message: 'uid precondition failed',
      });
    }
    if (sub === 'eviction' || opts.method === 'DELETE') {
      this.beforePodCall(
        sub === 'eviction' ? 'evict' : 'delete',
        clone(pod),
        body.gracePeriodSeconds,
      );
    }
    if (sub === 'eviction') {
      const refused = this.pods.refuseEviction(pod);
      if (refused)
        throw new KubeApiError(opts.method, opts.path, 429, {
          reason: 'TooManyRequests',
          message: refused.message,
          ...(refused.retryAfterSeconds !== undefined && {
            details: { retryAfterSeconds: refused.retryAfterSeconds },
          }),
        });
      this.terminate(key, pod, undefined);
    } else if (opts.method === 'DELETE') {
      this.terminate(key, pod, body.gracePeriodSeconds);
    } else {
      throw new KubeApiError(opts.method, opts.path, 405, { reason: 'MethodNotAllowed' });
    }
    return { kind: 'Status', status: 'Success' };
  }

  /** Graceful deletion: marked now, gone after its termination time; grace 0 removes it at once. */
  private terminate(key: string, pod: V1Pod, grace: number | undefined): void {
    if (grace === 0) return this.remove('pods', key);
    if (pod.metadata?.deletionTimestamp) return;
    this.put('pods', {
      ...(pod as Stored),
      metadata: {
        ...(pod.metadata as Stored['metadata']),
        deletionTimestamp: new Date(this.now()).toISOString(),
      },
    });
    this.terminating.set(key, this.now() + this.pods.terminationMs(pod));
  }
}

/** The Accelerator CRD's owner rules (x-kubernetes-validations on spec.owner). */
function ownerRules(opts: RequestOptions, old: Accelerator, next: Accelerator): void {
  const was = old.spec.owner;
  const now = next.spec.owner;
  const refuse = (message: string) => {
    throw new KubeApiError(opts.method, opts.path, 422, { reason: 'Invalid', message });
  };
  if (was && !now) refuse('spec.owner cannot be removed once set');
  if (!was || !now) return;
  if (now.epoch < was.epoch) refuse('owner.epoch must never decrease');
  if ((now.lease?.uid ?? '') !== (was.lease?.uid ?? '') && now.epoch <= was.epoch)
    refuse('owner.epoch must increase whenever owner.lease changes');
}
