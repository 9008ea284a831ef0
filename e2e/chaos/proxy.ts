// A loopback TCP proxy between one controller replica and its API server, which a chaos schedule
// makes stall (half-open: connections stay up and carry nothing) or cut (every connection reset).
// TLS passes through it untouched, so the controller's credentials and checks are the real ones.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface FaultProxy {
  readonly port: number;
  /** Forward nothing either way, and leave new connections unanswered, until resume(). */
  stall(): void;
  resume(): void;
  /** Reset every open connection; new ones are served at once. */
  cut(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

/** Listen on a free loopback port and forward each connection to `127.0.0.1:targetPort`. */
export async function startFaultProxy(targetPort: () => number): Promise<FaultProxy> {
  const pairs = new Set<Pair>();
  let stalled = false;
  // Unpiped as well as paused: a pipe resumes its source on the next 'drain'.
  const pause = (p: Pair) => {
    p.client.unpipe(p.upstream);
    p.upstream.unpipe(p.client);
    p.client.pause();
    p.upstream.pause();
  };
  const flow = (p: Pair) => {
    p.client.pipe(p.upstream);
    p.upstream.pipe(p.client);
  };
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort(), '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    if (!stalled) flow(pair);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('fault proxy has no port');
  return {
    port: address.port,
    stall: () => {
      stalled = true;
      for (const p of pairs) pause(p);
    },
    resume: () => {
      stalled = false;
      for (const p of pairs) flow(p);
    },
    cut: () => {
      for (const p of pairs) {
        p.client.resetAndDestroy();
        p.upstream.destroy();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of pairs) {
          p.client.destroy();
          p.upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
