// The few bits of the DNS wire format (RFC 1035) the node's cluster DNS needs: one question in,
// an A record for a Service's ClusterIP out, NXDOMAIN for every name that is not a Service.

export interface Query {
  id: number;
  flags: number;
  name: string;
  type: number;
  /** The question section as it came, echoed in the reply. */
  question: Buffer;
}

const TYPE_A = 1;
const CLASS_IN = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_FORMERR = 1;

/** The query's single question, or undefined for anything that is not a plain query. */
export function parseQuery(msg: Buffer): Query | undefined {
  if (msg.length < 12 || (msg.readUInt16BE(2) & 0x8000) !== 0 || msg.readUInt16BE(4) !== 1) {
    return undefined;
  }
  const labels: string[] = [];
  let at = 12;
  while (at < msg.length) {
    const len = msg[at]!;
    if (len === 0) break;
    if (len > 63 || at + 1 + len > msg.length) return undefined;
    labels.push(msg.toString('ascii', at + 1, at + 1 + len));
    at += 1 + len;
  }
  if (at + 5 > msg.length) return undefined;
  return {
    id: msg.readUInt16BE(0),
    flags: msg.readUInt16BE(2),
    name: labels.join('.').toLowerCase(),
    type: msg.readUInt16BE(at + 1),
    question: msg.subarray(12, at + 5),
  };
}

/** `<service>.<namespace>.svc.<domain>` split into its parts; undefined for any other name. */
export function serviceName(
  name: string,
  domain = 'cluster.local',
): { namespace: string; service: string } | undefined {
  const suffix = `.svc.${domain}`;
  if (!name.endsWith(suffix)) return undefined;
  const parts = name.slice(0, -suffix.length).split('.');
  if (parts.length !== 2 || !parts[0] || !parts[1]) return undefined;
  return { service: parts[0], namespace: parts[1] };
}

function reply(query: Query, rcode: number, answers: Buffer[]): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.id, 0);
  // QR, the query's RD echoed, RA (we answer for the whole name space we know), and the rcode.
  header.writeUInt16BE(0x8000 | (query.flags & 0x0100) | 0x0080 | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, query.question, ...answers]);
}

function aRecord(ip: string, ttlSeconds: number): Buffer {
  const rr = Buffer.alloc(16);
  rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  rr.writeUInt16BE(TYPE_A, 2);
  rr.writeUInt16BE(CLASS_IN, 4);
  rr.writeUInt32BE(ttlSeconds, 6);
  rr.writeUInt16BE(4, 10);
  ip.split('.').forEach((octet, i) => rr.writeUInt8(Number(octet), 12 + i));
  return rr;
}

/**
 * The reply to one query: the Service's ClusterIP for an A question, no answer (but no error)
 * for other types of a Service's name, NXDOMAIN for names that are not Services.
 */
export async function answerQuery(
  query: Query,
  serviceIp: (namespace: string, service: string) => Promise<string | undefined>,
): Promise<Buffer> {
  const svc = serviceName(query.name);
  if (!svc) return reply(query, query.name ? RCODE_NXDOMAIN : RCODE_FORMERR, []);
  const ip = await serviceIp(svc.namespace, svc.service);
  if (!ip) return reply(query, RCODE_NXDOMAIN, []);
  return reply(query, 0, query.type === TYPE_A ? [aRecord(ip, 5)] : []);
}
