// The plugin's exit codes, and how a failure becomes one of them with a one-line message.
import { InvalidObjectError } from '../crds/index.ts';
import { KubeApiError } from '../kube/index.ts';

export const EXIT = {
  ok: 0,
  /** why: the lease is not granted. */
  notGranted: 1,
  usage: 2,
  notFound: 3,
  /** Unreachable, unauthorized, forbidden, or the API is not installed. */
  api: 4,
  internal: 5,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A bad command line. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The lease asked about, or any accelerator on the node asked about, does not exist. */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

/** The kubeconfig could not be loaded or names no cluster. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const firstLine = (text: string) => text.split('\n')[0]?.trim() ?? '';

/**
 * The exit code and the one line to print for a failure. `server` is the API server's URL, for
 * messages about reaching it.
 */
export function failure(
  err: unknown,
  server = 'the API server',
): { code: ExitCode; message: string } {
  if (err instanceof UsageError) return { code: EXIT.usage, message: firstLine(err.message) };
  if (err instanceof NotFoundError) return { code: EXIT.notFound, message: firstLine(err.message) };
  if (err instanceof ConfigError) return { code: EXIT.api, message: firstLine(err.message) };
  if (err instanceof InvalidObjectError) {
    return {
      code: EXIT.api,
      message: firstLine(`the API server returned ${err.message} (do the CRDs match this plugin?)`),
    };
  }
  if (err instanceof KubeApiError) {
    const said = firstLine(err.status?.message ?? '');
    const cause = err.cause instanceof Error ? err.cause : undefined;
    const detail = firstLine(
      (cause?.cause instanceof Error ? cause.cause.message : undefined) ?? cause?.message ?? '',
    );
    let message: string;
    if (err.code === 0) message = `cannot reach ${server}: ${detail || 'no response'}`;
    else if (err.code === 401)
      message = `unauthorized by ${server}: check the kubeconfig's credentials${said ? ` (${said})` : ''}`;
    else if (err.code === 403) message = `forbidden: ${said || `${err.method} ${err.path}`}`;
    else if (err.code === 404) {
      message = `the accel.dmabuf.io/v1alpha1 API is not served by ${server}: are the CRDs installed? (kubectl apply --server-side -f deploy/crds/)`;
    } else
      message = `${server} answered ${err.code} to ${err.method} ${err.path}${said ? `: ${said}` : ''}`;
    return { code: EXIT.api, message };
  }
  const text = err instanceof Error ? err.message : String(err);
  return { code: EXIT.internal, message: firstLine(`unexpected error: ${text}`) };
}
