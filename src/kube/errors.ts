// API failures as one typed error carrying the HTTP code and the server's Status reason,
// so callers branch on `isConflict(err)` instead of parsing messages.

/** The fields of a metav1.Status the server sends with a failure. */
export interface ApiStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    kind?: string;
    causes?: Array<{ message?: string; field?: string }>;
    /** With 429 (and some 5xx): how long to wait before asking again; also sent as Retry-After. */
    retryAfterSeconds?: number;
  };
}

export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  /** HTTP status code (0 when no response arrived). */
  readonly code: number;
  /** Machine-readable reason from the Status, e.g. Conflict, NotFound, AlreadyExists. */
  readonly reason: string | undefined;
  readonly status: ApiStatus | undefined;
  readonly method: string;
  readonly path: string;

  constructor(method: string, path: string, code: number, status?: ApiStatus, cause?: unknown) {
    const detail = status?.message ?? (cause instanceof Error ? cause.message : 'no response');
    super(
      `${method} ${path}: ${code ? `${code} ${status?.reason ?? ''}`.trim() + ': ' : ''}${detail}`,
      {
        cause,
      },
    );
    this.code = code;
    this.reason = status?.reason;
    this.status = status;
    this.method = method;
    this.path = path;
  }
}

/** HTTP status of an error from this module or from client-node's generated clients. */
export function statusCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

export const isNotFound = (err: unknown): boolean => statusCode(err) === 404;
export const isConflict = (err: unknown): boolean => statusCode(err) === 409;
export const isAlreadyExists = (err: unknown): boolean =>
  statusCode(err) === 409 && (err as KubeApiError).reason === 'AlreadyExists';
export const isGone = (err: unknown): boolean => statusCode(err) === 410;
export const isTooManyRequests = (err: unknown): boolean => statusCode(err) === 429;

/** The Retry-After (s) the server's Status named with a failure; undefined when it named none. */
export function retryAfterSeconds(err: unknown): number | undefined {
  if (!(err instanceof KubeApiError)) return undefined;
  const s = err.status?.details?.retryAfterSeconds;
  return typeof s === 'number' && s > 0 ? s : undefined;
}
