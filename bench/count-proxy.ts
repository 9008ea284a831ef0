// Counts the API requests of one process: a loopback HTTP proxy to the API server that the
// process reaches through its own kubeconfig. The controller serves no request counter of its
// own, so this is how the bench counts requests per handoff without changing the controller.
import { writeFileSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';

export interface CountingProxy {
  /** A kubeconfig for the proxied process (plain HTTP to the proxy, no credentials). */
  kubeconfig: string;
  /** Requests seen so far (a watch counted when it opens). */
  count(): number;
  /** The same, by verb and resource. */
  byVerb(): Record<string, number>;
  close(): Promise<void>;
}

/** "VERB resource[/subresource]", e.g. "PATCH acceleratorleases/status". */
function verbOf(method: string, url: string): string {
  const path = (url.split('?')[0] ?? '').replace(/^\/(api\/v1|apis\/[^/]+\/[^/]+)\//, '');
  const parts = path.replace(/^namespaces\/[^/]+\/(?=.)/, '').split('/');
  const resource = parts[0] ?? '';
  const sub = parts.length > 2 ? `/${parts[2]}` : '';
  const verb = method === 'GET' && /[?&]watch=(1|true)/.test(url) ? 'WATCH' : method;
  return `${verb} ${resource}${sub}`;
}

export async function startCountingProxy(kc: KubeConfig, dir: string): Promise<CountingProxy> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const upstream = new URL(cluster.server);
  const tls: RequestOptions = {};
  await kc.applyToHTTPSOptions(tls);
  const counts = new Map<string, number>();
  let total = 0;
  const server: Server = createServer((req, res) => {
    total++;
    const verb = verbOf(req.method ?? 'GET', req.url ?? '');
    counts.set(verb, (counts.get(verb) ?? 0) + 1);
    const up = httpsRequest(
      {
        ...tls,
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (typeof addr !== 'object' || !addr) throw new Error('counting proxy has no address');
  const kubeconfig = join(dir, 'counted.kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{ name: counted, cluster: { server: "http://127.0.0.1:${addr.port}", insecure-skip-tls-verify: true } }]`,
      'users: [{ name: counted, user: {} }]',
      'contexts: [{ name: counted, context: { cluster: counted, user: counted } }]',
      'current-context: counted',
      '',
    ].join('\n'),
  );
  return {
    kubeconfig,
    count: () => total,
    byVerb: () => Object.fromEntries(counts),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
