// For unit tests only: a loopback HTTP server that plays the API server, so client, informer
// and recorder behaviour (content types, 410, silent watches) is tested without a cluster.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface RecordedRequest {
  method: string;
  url: URL;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface Reply {
  status?: number;
  body?: unknown;
}

/** An open watch response; send() writes one event line. */
export class WatchStream {
  readonly url: URL;
  private readonly res: ServerResponse;
  closed = false;

  constructor(url: URL, res: ServerResponse) {
    this.url = url;
    this.res = res;
    res.on('close', () => (this.closed = true));
  }

  send(type: string, object: unknown): void {
    if (!this.closed) this.res.write(JSON.stringify({ type, object }) + '\n');
  }

  close(): void {
    this.closed = true;
    this.res.end();
  }
}

export type Handler = (req: RecordedRequest) => Reply | 'watch';

export class TestApiServer {
  readonly requests: RecordedRequest[] = [];
  readonly watches: WatchStream[] = [];
  handler: Handler = () => ({
    status: 404,
    body: { kind: 'Status', code: 404, reason: 'NotFound' },
  });
  private server: Server | undefined;
  private port = 0;

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rec: RecordedRequest = {
          method: req.method ?? 'GET',
          url: new URL(req.url ?? '/', 'http://localhost'),
          headers: req.headers,
          body: Buffer.concat(chunks).toString(),
        };
        this.requests.push(rec);
        const reply = this.handler(rec);
        if (reply === 'watch') {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.flushHeaders();
          this.watches.push(new WatchStream(rec.url, res));
          return;
        }
        res.writeHead(reply.status ?? 200, { 'Content-Type': 'application/json' });
        res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'test', token: 'test-token' }],
      contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
      currentContext: 'test',
    });
    return kc;
  }

  openWatches(): WatchStream[] {
    return this.watches.filter((w) => !w.closed);
  }

  async stop(): Promise<void> {
    for (const w of this.watches) w.close();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

export function status(code: number, reason: string, message = reason): Reply {
  return { status: code, body: { kind: 'Status', status: 'Failure', code, reason, message } };
}
