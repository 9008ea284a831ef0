// The agent's listeners: the loopback admin API, and /healthz, /readyz and /metrics on the
// HTTP address (none when it is null).
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { startHttpServer, type ReadinessChecks, type RunningHttpServer } from '../kube/index.ts';
import { listenAdmin, type AdminServer, type AdminTarget } from './admin.ts';
import { AgentStartError, rootMessage } from './errors.ts';
import type { HostPort } from './flags.ts';

export interface AgentServers {
  readonly admin: AdminServer;
  readonly http: RunningHttpServer | undefined;
  /** Where the HTTP server answers; loopback when it listens on every address. */
  readonly httpUrl: string | undefined;
}

function formatHostPort(addr: HostPort): string {
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/** Listens on both; a failure closes what listens already and is a start error. */
export async function serveAgent(opts: {
  readonly adminAddr: HostPort;
  readonly httpAddr: HostPort | null;
  readonly admin: AdminTarget;
  readonly registry: Registry;
  readonly readiness: ReadinessChecks;
  readonly log: Logger;
}): Promise<AgentServers> {
  const { httpAddr } = opts;
  let admin: AdminServer | undefined;
  let http: RunningHttpServer | undefined;
  try {
    admin = await listenAdmin(opts.adminAddr, opts.admin);
    http = httpAddr
      ? await startHttpServer({
          bindAddress: formatHostPort(httpAddr),
          registry: opts.registry,
          readiness: opts.readiness,
          logger: opts.log,
        })
      : undefined;
  } catch (err) {
    await admin?.close();
    throw new AgentStartError(`cannot listen: ${rootMessage(err)}`);
  }
  const httpUrl =
    http &&
    `http://${httpAddr?.host ? formatHostPort({ ...httpAddr, port: http.port }) : `127.0.0.1:${http.port}`}`;
  return { admin, http, httpUrl };
}

/** Closes both. */
export async function closeServers(servers: AgentServers): Promise<void> {
  await Promise.all([servers.admin.close(), servers.http?.close()]);
}
