// A raw HTTPS call to the API server with a kubeconfig's credentials, for health endpoints and
// for tests that assert on status codes rather than on typed client results.
import { request } from 'node:https';
import type { RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export interface RawResponse {
  status: number;
  body: string;
}

export async function rawRequest(
  kc: KubeConfig,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 10_000,
): Promise<RawResponse> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(path, cluster.server);
  const options: RequestOptions = {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
  };
  await kc.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

/** True when /readyz answers 200 within a short timeout; false on any error. */
export async function isReady(kc: KubeConfig): Promise<boolean> {
  try {
    const res = await rawRequest(kc, 'GET', '/readyz', undefined, 3_000);
    return res.status === 200;
  } catch {
    return false;
  }
}
