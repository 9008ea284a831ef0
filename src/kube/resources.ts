// A typed REST client for one resource type (custom resources, Leases, Events, Pods...): reads,
// create/replace/delete, merge patch and server-side apply with the content type set explicitly.
import { isDeepStrictEqual } from 'node:util';
import { HttpMethod, PatchStrategy } from '@kubernetes/client-node';
import type { KubeClient } from './client.ts';
import { retryOnConflict, type RetryOnConflictOptions } from './conflict-retry.ts';
import { isNotFound } from './errors.ts';

/**
 * What the plumbing needs of an object: identity and version. client-node's models and the
 * zod-inferred CRD types both fit (the latter keep timestamps as the strings the server sends).
 */
export interface ObjectLike {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
  };
}

export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

export function apiVersionOf(type: ResourceType): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

/**
 * REST path of a collection (no name), an object, or its subresource. Omitting the namespace
 * of a namespaced type addresses all namespaces (list/watch only).
 */
export function resourcePath(
  type: ResourceType,
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  let p = type.group ? `/apis/${type.group}/${type.version}` : `/api/${type.version}`;
  if (type.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${type.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size; the list follows continue tokens until done (default 500). */
  limit?: number;
}

export interface WriteOptions {
  /** Who owns the written fields (managedFields). */
  fieldManager?: string;
  subresource?: 'status';
  signal?: AbortSignal;
}

export interface ApplyOptions {
  fieldManager: string;
  /** Take over fields another manager owns instead of failing with 409. */
  force?: boolean;
  subresource?: 'status';
  signal?: AbortSignal;
}

export interface DeleteOptions {
  /** Delete only if the object still has this uid / resourceVersion (else 409). */
  preconditions?: { uid?: string; resourceVersion?: string };
  propagationPolicy?: 'Orphan' | 'Background' | 'Foreground';
  gracePeriodSeconds?: number;
  signal?: AbortSignal;
}

export interface MutateOptions extends WriteOptions, RetryOnConflictOptions {
  /** A copy to try first (from an informer cache), saving the initial GET. */
  current?: ObjectLike;
}

/** What the server accepts as an apply body: identity plus the fields this manager owns. */
export type ApplyObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string } & Record<string, unknown>;
} & Record<string, unknown>;

export class ResourceClient<T extends ObjectLike> {
  readonly client: KubeClient;
  readonly type: ResourceType;
  private readonly parse: (obj: unknown) => T;

  /** parse validates server replies (pass a zod schema's parse); by default they are trusted. */
  constructor(client: KubeClient, type: ResourceType, parse?: (obj: unknown) => T) {
    this.client = client;
    this.type = type;
    this.parse = parse ?? ((obj) => obj as T);
  }

  path(namespace?: string, name?: string, subresource?: string): string {
    if (this.type.namespaced && name !== undefined && !namespace) {
      throw new Error(`${this.type.kind} ${name}: a namespace is required`);
    }
    return resourcePath(this.type, namespace, name, subresource);
  }

  async get(name: string, namespace?: string, signal?: AbortSignal): Promise<T> {
    const obj = await this.client.request<unknown>({
      method: HttpMethod.GET,
      path: this.path(namespace, name),
      ...(signal ? { signal } : {}),
    });
    return this.parse(obj);
  }

  /** get(), but undefined instead of a 404. */
  async find(name: string, namespace?: string, signal?: AbortSignal): Promise<T | undefined> {
    try {
      return await this.get(name, namespace, signal);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list(opts: ListOptions = {}): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.client.request<{
        items?: unknown[];
        metadata?: { resourceVersion?: string; continue?: string };
      }>({
        method: HttpMethod.GET,
        verb: 'list',
        path: this.path(opts.namespace),
        query: {
          labelSelector: opts.labelSelector,
          fieldSelector: opts.fieldSelector,
          limit: opts.limit ?? 500,
          continue: cont,
        },
      });
      for (const item of page.items ?? []) items.push(this.parse(withKind(item, this.type)));
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return { items, resourceVersion };
  }

  async create(obj: T, opts: WriteOptions = {}): Promise<T> {
    const out = await this.client.request<unknown>({
      method: HttpMethod.POST,
      path: this.path(obj.metadata?.namespace),
      query: { fieldManager: opts.fieldManager },
      body: { apiVersion: apiVersionOf(this.type), kind: this.type.kind, ...obj },
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return this.parse(out);
  }

  /** PUT; fails with 409 if obj.metadata.resourceVersion is stale (that is the point). */
  async replace(obj: T, opts: WriteOptions = {}): Promise<T> {
    const { name, namespace } = nameOf(obj);
    const out = await this.client.request<unknown>({
      method: HttpMethod.PUT,
      path: this.path(namespace, name, opts.subresource),
      query: { fieldManager: opts.fieldManager },
      body: obj,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return this.parse(out);
  }

  /** Returns false when the object was already gone. */
  async delete(name: string, namespace?: string, opts: DeleteOptions = {}): Promise<boolean> {
    try {
      await this.client.request<unknown>({
        method: HttpMethod.DELETE,
        path: this.path(namespace, name),
        query: { gracePeriodSeconds: opts.gracePeriodSeconds },
        body: {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          ...(opts.preconditions ? { preconditions: opts.preconditions } : {}),
          ...(opts.propagationPolicy ? { propagationPolicy: opts.propagationPolicy } : {}),
        },
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * JSON merge patch (RFC 7386). Custom resources reject strategic merge patch, and
   * client-node's own default is JSON Patch, so the content type is always set here.
   * Put metadata.resourceVersion in the patch to make it conditional.
   */
  async mergePatch(
    name: string,
    namespace: string | undefined,
    patch: Record<string, unknown>,
    opts: WriteOptions = {},
  ): Promise<T> {
    const out = await this.client.request<unknown>({
      method: HttpMethod.PATCH,
      path: this.path(namespace, name, opts.subresource),
      query: { fieldManager: opts.fieldManager },
      body: patch,
      contentType: PatchStrategy.MergePatch,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return this.parse(out);
  }

  /** Merge-patches the status subresource: `{status}` is merged into the current status. */
  patchStatus(
    name: string,
    namespace: string | undefined,
    status: Record<string, unknown>,
    opts: Omit<WriteOptions, 'subresource'> & { resourceVersion?: string } = {},
  ): Promise<T> {
    const patch: Record<string, unknown> = { status };
    if (opts.resourceVersion) patch.metadata = { resourceVersion: opts.resourceVersion };
    return this.mergePatch(name, namespace, patch, { ...opts, subresource: 'status' });
  }

  /**
   * Server-side apply: the server merges obj's fields as owned by opts.fieldManager and
   * creates the object if absent. Send only the fields this manager means to own.
   */
  async apply(obj: ApplyObject, opts: ApplyOptions): Promise<T> {
    const out = await this.client.request<unknown>({
      method: HttpMethod.PATCH,
      path: this.path(obj.metadata.namespace, obj.metadata.name, opts.subresource),
      query: { fieldManager: opts.fieldManager, force: opts.force ? true : undefined },
      body: obj,
      contentType: PatchStrategy.ServerSideApply,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return this.parse(out);
  }

  /** Server-side apply to the status subresource. */
  applyStatus(obj: ApplyObject, opts: Omit<ApplyOptions, 'subresource'>): Promise<T> {
    return this.apply(obj, { ...opts, subresource: 'status' });
  }

  /**
   * Read-modify-write under optimistic concurrency: change edits a copy of the object in
   * place; the copy is PUT with its resourceVersion, and a 409 re-reads and edits again.
   * No request is sent when change leaves the object as it was. Returns what the server holds.
   */
  async mutate(
    name: string,
    namespace: string | undefined,
    change: (draft: T) => void,
    opts: MutateOptions = {},
  ): Promise<T> {
    return retryOnConflict(async (attempt) => {
      const current =
        attempt === 0 && opts.current
          ? (opts.current as T)
          : await this.get(name, namespace, opts.signal);
      const draft = structuredClone(current);
      change(draft);
      if (isDeepStrictEqual(draft, current)) return current;
      return this.replace(draft, opts);
    }, opts);
  }
}

function nameOf(obj: ObjectLike): { name: string; namespace: string | undefined } {
  const name = obj.metadata?.name;
  if (!name) throw new Error('object has no metadata.name');
  return { name, namespace: obj.metadata?.namespace };
}

// Items of a list reply carry no apiVersion/kind; fill them in so cached objects are whole.
function withKind(item: unknown, type: ResourceType): unknown {
  if (typeof item !== 'object' || item === null) return item;
  return { apiVersion: apiVersionOf(type), kind: type.kind, ...item };
}
