// Loaded into the controller with `node --import` by the scale benchmark: counts every HTTP
// request the process sends, by verb and resource, and every connection it opens, from undici's
// diagnostics channels (so inside the client, with no proxy hop), and serves the counts as JSON
// on 127.0.0.1:$ACCEL_BENCH_CENSUS_PORT. The controller's own rest_client_requests_total has
// the verb only.
import { subscribe } from 'node:diagnostics_channel';
import { createServer } from 'node:http';

const counts: Record<string, number> = {};
const bump = (key: string) => (counts[key] = (counts[key] ?? 0) + 1);

/** "PATCH acceleratorleases/status", "LIST dmabufexports", "WATCH pods", "POST events". */
export function requestKind(method: string, path: string): string {
  const [route = '', query = ''] = path.split('?');
  // /api/v1/... or /apis/<group>/<version>/...; the namespace segment says nothing here.
  const parts = route
    .replace(/^\/(api\/[^/]+|apis\/[^/]+\/[^/]+)\/?/, '')
    .replace(/^namespaces\/[^/]+\/(?=.)/, '')
    .split('/')
    .filter(Boolean);
  const [resource = route, name, sub] = parts;
  let verb = method;
  if (method === 'GET' && /(^|&)watch=(1|true)/.test(query)) verb = 'WATCH';
  else if (method === 'GET' && name === undefined) verb = 'LIST';
  return `${verb} ${resource}${sub ? `/${sub}` : ''}`;
}

subscribe('undici:request:create', (message) => {
  const { request } = message as { request: { method: string; path: string } };
  bump(requestKind(request.method, request.path));
});
subscribe('undici:client:connected', () => bump('connections opened'));

const port = Number(process.env.ACCEL_BENCH_CENSUS_PORT);
if (port > 0) {
  createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(counts));
  })
    .listen(port, '127.0.0.1')
    .unref();
}
