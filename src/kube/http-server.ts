// The process's HTTP face for kubelet and Prometheus: /healthz (alive), /readyz (every named
// readiness check passes, else 503 naming the failing ones and why) and /metrics.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/** A readiness check: true when ready; a string explains why not. */
export type ReadinessCheck = () => boolean | string | Promise<boolean | string>;

export interface ReadinessReport {
  ready: boolean;
  failing: string[];
  details: Array<{ name: string; ok: boolean; reason?: string }>;
}

/** Named checks, e.g. `informer/acceleratorleases` (cache synced), `leader-election`. */
export class ReadinessChecks {
  private readonly checks = new Map<string, ReadinessCheck>();

  add(name: string, check: ReadinessCheck): this {
    this.checks.set(name, check);
    return this;
  }

  remove(name: string): void {
    this.checks.delete(name);
  }

  async evaluate(): Promise<ReadinessReport> {
    const details = await Promise.all(
      [...this.checks].map(async ([name, check]) => {
        try {
          const r = await check();
          return r === true ? { name, ok: true } : { name, ok: false, reason: r || 'not ready' };
        } catch (err) {
          return { name, ok: false, reason: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    const failing = details.filter((d) => !d.ok).map((d) => d.name);
    return { ready: failing.length === 0, failing, details };
  }
}

/** ":8080" (all interfaces), "127.0.0.1:8080", "[::1]:8080", or "0" for an ephemeral port. */
export function parseBindAddress(addr: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr) ?? /^()()(\d+)$/.exec(addr);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(
      `bind address must look like :8080 or 127.0.0.1:8080, got ${JSON.stringify(addr)}`,
    );
  }
  return { host: m[1] || m[2] || undefined, port };
}

export interface HttpServerOptions {
  /** Default ":8080". */
  bindAddress?: string;
  registry: Registry;
  readiness: ReadinessChecks;
  logger?: Logger;
}

export interface RunningHttpServer {
  server: Server;
  /** The port actually bound (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

export async function startHttpServer(opts: HttpServerOptions): Promise<RunningHttpServer> {
  const { host, port } = parseBindAddress(opts.bindAddress ?? ':8080');
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const send = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(code, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, 'method not allowed\n');
      return;
    }
    void (async () => {
      switch (url.pathname) {
        case '/healthz':
        case '/livez':
          send(200, 'ok\n');
          return;
        case '/readyz': {
          const report = await opts.readiness.evaluate();
          // A failing check always says why, so `curl /readyz` alone tells a person what to fix.
          const verbose = url.searchParams.has('verbose');
          const lines = report.details
            .filter((d) => verbose || !d.ok)
            .map((d) => (d.ok ? `[+]${d.name} ok` : `[-]${d.name} failed: ${d.reason ?? ''}`));
          const summary = report.ready ? 'ok' : `not ready: ${report.failing.join(', ')}`;
          send(report.ready ? 200 : 503, [...lines, summary].join('\n') + '\n');
          return;
        }
        case '/metrics':
          send(200, await opts.registry.metrics(), opts.registry.contentType);
          return;
        default:
          send(404, 'not found\n');
      }
    })().catch((err: unknown) => {
      opts.logger?.error({ err, path: url.pathname }, 'http handler failed');
      if (!res.headersSent) send(500, 'internal error\n');
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  opts.logger?.info({ address: host ?? '*', port: bound }, 'serving /healthz, /readyz, /metrics');
  return {
    server,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
