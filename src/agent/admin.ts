// Loopback admin API for fault injection (JSON over HTTP, no authentication: loopback only).
//
//   GET    /state                 200 the state file as JSON: {version, node, kernel (the kernel
//                                  snapshot), pods, exports, hiddenHolders, revokes, slowRevokeMs}
//   GET    /hidden-holders        200 [{pid, ino, export?, fd, attachmentId}]
//   POST   /hidden-holders        body {"export": "ns/name"} or {"inode": N}, optional "comm":
//                                  a process in no pod receives the buffer's fd and attaches it
//                                  as `pinned` (name hidden-<pid>); 201 {pid, ino, export?, fd,
//                                  attachmentId}; 404 unknown export, 409 buffer no longer active
//   DELETE /hidden-holders/<pid>  200 {pid, ...}: the holder exits (its pin goes); 404 if unknown
//   GET    /slow-revoke           200 {delayMs}
//   PUT    /slow-revoke           body {"delayMs": N}: every later owner drop of an owned device
//                                  waits N ms with phase Revoking first; 0 turns it off; 200 {delayMs}
//   POST   /crash                 202 {crashing: true}, then the process exits with code 137 at
//                                  once: no persist, no cleanup (the state file is as of the last step)
//
// Errors answer {error: "<message>"} with 400, 404, 405 or 409.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { addHiddenHolder, FaultError, removeHiddenHolder, setSlowRevoke } from './faults.ts';
import type { HostPort } from './flags.ts';
import { toStateFile, type AgentState } from './state.ts';

export interface AdminTarget {
  /** Read-only view of the live state. */
  readonly state: AgentState;
  /** Run a change to the state, then persist it and resync; returns fn's result. */
  mutate<T>(fn: (state: AgentState) => T): T;
  /** Exit at once (code 137), after the response is written. */
  crash(): void;
}

export interface AdminResponse {
  readonly status: number;
  readonly body: unknown;
  /** Run once the response has been sent. */
  readonly after?: () => void;
}

function bodyObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new FaultError(400, 'the request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

/** Route one request. Pure apart from what `target` does. */
export function handleAdmin(
  method: string,
  path: string,
  body: unknown,
  target: AdminTarget,
): AdminResponse {
  try {
    const route = `${method} ${path.replace(/\/+$/, '') || '/'}`;
    if (route === 'GET /state') return { status: 200, body: toStateFile(target.state) };
    if (route === 'GET /hidden-holders') {
      return { status: 200, body: Object.values(target.state.hiddenHolders) };
    }
    if (route === 'POST /hidden-holders') {
      const b = bodyObject(body);
      if (b.export !== undefined && typeof b.export !== 'string') {
        throw new FaultError(400, '"export" must be "namespace/name"');
      }
      if (b.inode !== undefined && !Number.isSafeInteger(b.inode)) {
        throw new FaultError(400, '"inode" must be an integer');
      }
      if (b.comm !== undefined && (typeof b.comm !== 'string' || b.comm === '')) {
        throw new FaultError(400, '"comm" must be a non-empty string');
      }
      const req = {
        ...(typeof b.export === 'string' && { export: b.export }),
        ...(typeof b.inode === 'number' && { inode: b.inode }),
        ...(typeof b.comm === 'string' && { comm: b.comm }),
      };
      return { status: 201, body: target.mutate((s) => addHiddenHolder(s, req)) };
    }
    const holder = /^DELETE \/hidden-holders\/([0-9]+)$/.exec(route);
    if (holder) {
      const pid = Number(holder[1]);
      return { status: 200, body: target.mutate((s) => removeHiddenHolder(s, pid)) };
    }
    if (route === 'GET /slow-revoke') {
      return { status: 200, body: { delayMs: target.state.slowRevokeMs } };
    }
    if (route === 'PUT /slow-revoke') {
      const delayMs = bodyObject(body).delayMs;
      return { status: 200, body: { delayMs: target.mutate((s) => setSlowRevoke(s, delayMs)) } };
    }
    if (route === 'POST /crash') {
      return { status: 202, body: { crashing: true }, after: () => target.crash() };
    }
    const known = ['/state', '/hidden-holders', '/slow-revoke', '/crash'];
    if (known.some((p) => path === p) || path.startsWith('/hidden-holders/')) {
      throw new FaultError(405, `${method} is not allowed on ${path}`);
    }
    throw new FaultError(404, `no admin endpoint ${path}`);
  } catch (err) {
    if (err instanceof FaultError) return { status: err.status, body: { error: err.message } };
    throw err;
  }
}

const MAX_BODY = 64 * 1024;

/** The node:http request listener around handleAdmin. */
export function adminListener(target: AdminTarget) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    let text = '';
    let tooLarge = false;
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > MAX_BODY) tooLarge = true;
    });
    req.on('end', () => {
      let result: AdminResponse;
      if (tooLarge) {
        result = { status: 400, body: { error: `request body over ${MAX_BODY} bytes` } };
      } else {
        let body: unknown;
        try {
          body = text === '' ? undefined : JSON.parse(text);
        } catch {
          body = Symbol('invalid');
        }
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        try {
          result =
            typeof body === 'symbol'
              ? { status: 400, body: { error: 'the request body is not JSON' } }
              : handleAdmin(req.method ?? 'GET', path, body, target);
        } catch (err) {
          result = { status: 500, body: { error: (err as Error).message } };
        }
      }
      res.writeHead(result.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(result.body), () => result.after?.());
    });
  };
}

export interface AdminServer {
  /** http://host:port with the port actually bound (useful with port 0). */
  readonly url: string;
  close(): Promise<void>;
}

/** Serve the admin API on `addr` (the flag parser has already refused non-loopback hosts). */
export function listenAdmin(addr: HostPort, target: AdminTarget): Promise<AdminServer> {
  const server = createServer(adminListener(target));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host || '127.0.0.1', () => {
      server.off('error', reject);
      const bound = server.address() as AddressInfo;
      const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
      resolve({
        url: `http://${host}:${bound.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
