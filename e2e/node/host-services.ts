// What a cluster's add-ons give pods, served from the host for the real node's pods, as one
// daemon: cluster DNS for Services (`<svc>.<ns>.svc.cluster.local` -> its ClusterIP), and a
// way to the API server, which listens on loopback only, at the address it advertises in the
// `kubernetes` Service. Both answer only the pod network.
//   node e2e/node/host-services.ts --kubeconfig F --dns IP --api HOST:PORT --pod-cidr CIDR
import { createSocket } from 'node:dgram';
import { BlockList, connect, createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { rawRequest } from '../cluster/raw-api.ts';
import { answerQuery, parseQuery } from './dns.ts';

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    dns: { type: 'string' },
    api: { type: 'string' },
    'pod-cidr': { type: 'string' },
  },
});
const { kubeconfig, dns, api, 'pod-cidr': podCidr } = values;
if (!kubeconfig || !dns || !api || !podCidr) {
  process.stderr.write(
    'usage: host-services.ts --kubeconfig F --dns IP --api HOST:PORT --pod-cidr CIDR\n',
  );
  process.exit(2);
}
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const upstream = new URL(kc.getCurrentCluster()!.server);
const [cidrNet, cidrBits] = podCidr.split('/');
const pods = new BlockList();
pods.addSubnet(cidrNet!, Number(cidrBits), 'ipv4');
const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);

/** The ClusterIP of a Service, or undefined when there is no such Service (or it is headless). */
async function serviceIp(namespace: string, name: string): Promise<string | undefined> {
  const res = await rawRequest(kc, 'GET', `/api/v1/namespaces/${namespace}/services/${name}`);
  if (res.status !== 200) return undefined;
  const ip = (JSON.parse(res.body) as { spec?: { clusterIP?: string } }).spec?.clusterIP;
  return ip && ip !== 'None' ? ip : undefined;
}

const udp = createSocket('udp4');
udp.on('message', (msg, from) => {
  if (!pods.check(from.address, 'ipv4')) return;
  const query = parseQuery(msg);
  if (!query) return;
  void answerQuery(query, serviceIp)
    .then((reply) => udp.send(reply, from.port, from.address))
    .catch((err: Error) => log(`dns ${query.name}: ${err.message}`));
});
udp.bind(53, dns, () => log(`dns on ${dns}:53 for ${podCidr}`));

const [apiHost, apiPort] = api.split(':');
const forwarder = createServer((socket) => {
  if (!socket.remoteAddress || !pods.check(socket.remoteAddress.replace(/^::ffff:/, ''), 'ipv4')) {
    socket.destroy();
    return;
  }
  const to = connect(Number(upstream.port), upstream.hostname);
  socket.pipe(to).pipe(socket);
  const close = () => {
    socket.destroy();
    to.destroy();
  };
  socket.on('error', close);
  to.on('error', close);
});
forwarder.listen(Number(apiPort), apiHost, () =>
  log(`api server ${upstream.host} at ${api} for ${podCidr}`),
);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    udp.close();
    forwarder.close();
    process.exit(0);
  });
}
