// How every component reaches the API server: kubeconfig loading, one JSON request helper on
// client-node's transport (auth, TLS, exec plugins), and a per-KubeConfig request counter.
import { existsSync } from 'node:fs';
import {
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  KubeConfig,
  RequestContext,
} from '@kubernetes/client-node';
import { Counter, type Registry } from 'prom-client';
import { getGlobalDispatcher, type Dispatcher } from 'undici';
import { KubeApiError, type ApiStatus } from './errors.ts';

export interface LoadKubeConfigOptions {
  /** Path from --kubeconfig; wins over KUBECONFIG and in-cluster config. */
  kubeconfig?: string | undefined;
  /** Context to use instead of the file's current-context. */
  context?: string | undefined;
}

/**
 * --kubeconfig, else $KUBECONFIG, else the in-cluster service account, else ~/.kube/config.
 * Throws an error naming what was tried when none yields a cluster.
 */
export function loadKubeConfig(opts: LoadKubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  let source: string;
  if (opts.kubeconfig) {
    if (!existsSync(opts.kubeconfig)) {
      throw new Error(`kubeconfig ${opts.kubeconfig} does not exist`);
    }
    kc.loadFromFile(opts.kubeconfig);
    source = opts.kubeconfig;
  } else if (process.env.KUBECONFIG) {
    // Several files: the first current-context wins, as with kubectl.
    kc.loadFromDefault({}, true);
    source = `KUBECONFIG=${process.env.KUBECONFIG}`;
  } else if (process.env.KUBERNETES_SERVICE_HOST) {
    kc.loadFromCluster();
    source = 'in-cluster service account';
  } else {
    kc.loadFromDefault();
    source = '~/.kube/config';
  }
  if (opts.context) kc.setCurrentContext(opts.context);
  if (!kc.getCurrentCluster()) {
    throw new Error(
      `no cluster in ${source}: pass --kubeconfig, set KUBECONFIG, or run in a pod with a service account`,
    );
  }
  return kc;
}

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

/** Requests sent with one KubeConfig, by verb: what "API requests per handoff" counts. */
export class RequestStats {
  total = 0;
  readonly byVerb: Record<Verb, number> = {
    get: 0,
    list: 0,
    watch: 0,
    create: 0,
    update: 0,
    patch: 0,
    delete: 0,
  };
  /** Responses by HTTP code (0: no response). */
  readonly byCode = new Map<number, number>();
  private readonly listeners: Array<(verb: Verb, code: number, resource: string) => void> = [];

  record(verb: Verb, code: number, resource = ''): void {
    this.total++;
    this.byVerb[verb]++;
    this.byCode.set(code, (this.byCode.get(code) ?? 0) + 1);
    for (const l of this.listeners) l(verb, code, resource);
  }

  /** Calls fn for every request recorded from now on. */
  onRecord(fn: (verb: Verb, code: number, resource: string) => void): void {
    this.listeners.push(fn);
  }

  /** Writes only (create, update, patch, delete). */
  writes(): number {
    const v = this.byVerb;
    return v.create + v.update + v.patch + v.delete;
  }
}

const statsByConfig = new WeakMap<KubeConfig, RequestStats>();

/** The counter shared by every KubeClient and Informer built on kc. */
export function requestStats(kc: KubeConfig): RequestStats {
  let s = statsByConfig.get(kc);
  if (!s) {
    s = new RequestStats();
    statsByConfig.set(kc, s);
  }
  return s;
}

const requestCounters = new WeakMap<Registry, Counter<'verb' | 'code' | 'resource'>>();

/**
 * The resource a request path addresses, with its subresource: "acceleratorleases/status",
 * "pods/eviction", "events". Namespaces themselves are "namespaces".
 */
export function resourceOf(path: string): string {
  const rest = path.replace(/^\/(api\/v1|apis\/[^/]+\/[^/]+)\/?/, '');
  const parts = rest.replace(/^namespaces\/[^/]+\/(?=.)/, '').split('/');
  const sub = parts.length > 2 ? `/${parts[2]}` : '';
  return `${parts[0] ?? ''}${sub}`;
}

/** Also counts kc's requests as rest_client_requests_total{verb,code,resource} in registry. */
export function exposeRequestMetrics(kc: KubeConfig, registry: Registry): void {
  let counter = requestCounters.get(registry);
  if (!counter) {
    counter = new Counter({
      name: 'rest_client_requests_total',
      help: 'Number of requests to the API server, by verb, HTTP status code (0: no response) and resource',
      labelNames: ['verb', 'code', 'resource'],
      registers: [registry],
    });
    requestCounters.set(registry, counter);
  }
  const c = counter;
  requestStats(kc).onRecord((verb, code, resource) =>
    c.inc({ verb, code: String(code), resource }),
  );
}

export interface RequestOptions {
  method: HttpMethod;
  /** Absolute API path, e.g. /apis/coordination.k8s.io/v1/namespaces/ns/leases/name. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Serialized as JSON (apply patches too: JSON is valid YAML). */
  body?: unknown;
  contentType?: string;
  /** For the request counter; derived from the method when omitted. */
  verb?: Verb;
  signal?: AbortSignal;
  /** Per-request timeout; defaults to the client's (30 s). Not applied to streams. */
  timeoutMs?: number;
}

export interface KubeClientOptions {
  requestTimeoutMs?: number;
  userAgent?: string;
  /**
   * Asked at the last moment before a request's first byte is written to the socket (after
   * credentials, connection set-up and any wait for a free connection); a no aborts the request
   * unsent with FencedError. Leader election's fence: a request that waited while the process was
   * paused is not sent once the lease may belong to someone else.
   */
  fence?: () => boolean;
}

/** A request its client's fence stopped before any of it reached the API server. */
export class FencedError extends Error {
  constructor() {
    super('not sent: this replica may no longer lead');
    this.name = 'FencedError';
  }
}

/**
 * `base` with `fence` asked in onRequestStart, which undici calls on the connection just before
 * it writes the request: an abort there sends nothing.
 */
function fencedDispatcher(base: Dispatcher, fence: () => boolean): Dispatcher {
  return base.compose(
    (dispatch) => (opts, handler) =>
      dispatch(
        opts,
        new Proxy(handler, {
          get(target, prop) {
            if (prop === 'onRequestStart') {
              return (controller: Dispatcher.DispatchController, context: object) => {
                if (!fence()) return controller.abort(new FencedError());
                return target.onRequestStart?.(controller, context);
              };
            }
            const value: unknown = Reflect.get(target, prop, target);
            return typeof value === 'function' ? (value.bind(target) as unknown) : value;
          },
        }),
      ),
  );
}

/** How long one connection pool serves a KubeConfig before it is rebuilt (rotated certificates). */
const POOL_LIFETIME_MS = 60 * 60_000;
const pools = new WeakMap<KubeConfig, { dispatcher: Dispatcher; until: number }>();

/**
 * Keep-alive connections shared by every client on kc. client-node builds a new undici Agent for
 * every request, which opens a new TLS connection (and handshake) each time; this keeps the
 * first one and hands it to every later request. Credentials sent as headers (tokens, exec
 * plugins) are still applied per request; the pool is rebuilt hourly so that rotated client
 * certificates are picked up, and the old one closes once its requests are done.
 */
function sharedConnections(kc: KubeConfig, ctx: RequestContext): void {
  const fresh = ctx.getDispatcher();
  if (!fresh) return;
  const now = Date.now();
  const pool = pools.get(kc);
  if (pool && now < pool.until) {
    ctx.setDispatcher(pool.dispatcher);
    return;
  }
  pools.set(kc, { dispatcher: fresh, until: now + POOL_LIFETIME_MS });
  if (pool) void pool.dispatcher.close().catch(() => undefined);
}

const defaultVerb: Record<string, Verb> = {
  GET: 'get',
  POST: 'create',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

export class KubeClient {
  readonly kc: KubeConfig;
  private readonly http = new IsomorphicFetchHttpLibrary();
  private readonly timeoutMs: number;
  /** Sent with every request; informers built beside this client reuse it. */
  readonly userAgent: string;
  private readonly fence: (() => boolean) | undefined;
  /** The last pool this client fenced, and its fenced form (rebuilt when the pool is). */
  private fencedPool: { base: Dispatcher; fenced: Dispatcher } | undefined;

  constructor(kc: KubeConfig, opts: KubeClientOptions = {}) {
    this.kc = kc;
    this.timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.userAgent = opts.userAgent ?? 'accel-lease';
    this.fence = opts.fence;
  }

  /** The same client (kubeconfig, connections, counters), with `fence` asked before each send. */
  withFence(fence: () => boolean): KubeClient {
    return new KubeClient(this.kc, {
      requestTimeoutMs: this.timeoutMs,
      userAgent: this.userAgent,
      fence,
    });
  }

  /** Requests sent through kc so far (shared with informers on the same KubeConfig). */
  get requests(): RequestStats {
    return requestStats(this.kc);
  }

  /** Sends one request and parses the JSON reply; non-2xx replies throw KubeApiError. */
  async request<T>(opts: RequestOptions): Promise<T> {
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const res = await this.send({ ...opts, signal });
    const text = await res.body.text();
    return parseJson(text) as T;
  }

  /**
   * Opens a streaming GET (a watch). Resolves once the response headers arrive with 200;
   * the caller reads the body and aborts through signal.
   */
  async stream(
    opts: Omit<RequestOptions, 'method' | 'body' | 'timeoutMs'>,
  ): Promise<ReadableStream<Uint8Array>> {
    const res = await this.send({ ...opts, method: HttpMethod.GET });
    const body = res.body.stream();
    if (!body)
      throw new KubeApiError('GET', opts.path, res.httpStatusCode, { message: 'empty body' });
    return body;
  }

  /** The URL a request would go to (for logs; carries no credentials). */
  url(path: string, query?: RequestOptions['query']): string {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const url = new URL(cluster.server.replace(/\/+$/, '') + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    return url.toString();
  }

  private fenced(base: Dispatcher): Dispatcher {
    if (this.fencedPool?.base !== base && this.fence) {
      this.fencedPool = { base, fenced: fencedDispatcher(base, this.fence) };
    }
    return this.fencedPool?.fenced ?? base;
  }

  private async send(opts: RequestOptions) {
    const verb = opts.verb ?? defaultVerb[opts.method] ?? 'get';
    const ctx = new RequestContext(this.url(opts.path, opts.query), opts.method);
    ctx.setHeaderParam('Accept', 'application/json');
    ctx.setHeaderParam('User-Agent', this.userAgent);
    if (opts.body !== undefined) {
      ctx.setHeaderParam('Content-Type', opts.contentType ?? 'application/json');
      ctx.setBody(JSON.stringify(opts.body));
    }
    if (opts.signal) ctx.setSignal(opts.signal);
    await this.kc.applySecurityAuthentication(ctx);
    sharedConnections(this.kc, ctx);
    if (this.fence) ctx.setDispatcher(this.fenced(ctx.getDispatcher() ?? getGlobalDispatcher()));
    let res;
    try {
      res = await this.http.send(ctx).toPromise();
    } catch (err) {
      const fenced = err instanceof FencedError ? err : (err as { cause?: unknown }).cause;
      if (fenced instanceof FencedError) throw fenced; // nothing was sent
      this.requests.record(verb, 0, resourceOf(opts.path));
      throw new KubeApiError(opts.method, opts.path, 0, undefined, err);
    }
    this.requests.record(verb, res.httpStatusCode, resourceOf(opts.path));
    if (res.httpStatusCode < 200 || res.httpStatusCode >= 300) {
      const text = await res.body.text().catch(() => '');
      const parsed = parseJson(text) as ApiStatus | undefined;
      const status: ApiStatus =
        parsed && typeof parsed === 'object' ? parsed : { message: text.slice(0, 500) };
      throw new KubeApiError(opts.method, opts.path, res.httpStatusCode, status);
    }
    return res;
  }
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
