// The node's cluster DNS: what a pod's resolver sends, and what it must get back.
import { describe, expect, it } from 'vitest';
import { answerQuery, parseQuery, serviceName } from './dns.ts';

/** A query as glibc or Node's resolver sends it: one question, recursion desired. */
function query(name: string, type = 1, id = 0x1234): Buffer {
  const labels = name
    .split('.')
    .map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, type, 0, 1])]);
}

const services: Record<string, string> = { 'team-a/metrics': '10.0.0.42' };
const lookup = (ns: string, svc: string) => Promise.resolve(services[`${ns}/${svc}`]);

describe('node DNS', () => {
  it('names only <service>.<namespace>.svc.cluster.local', () => {
    expect(serviceName('metrics.team-a.svc.cluster.local')).toEqual({
      service: 'metrics',
      namespace: 'team-a',
    });
    // What a search list makes of "metrics.team-a.svc" before it tries the right suffix.
    expect(serviceName('metrics.team-a.svc.team-a.svc.cluster.local')).toBeUndefined();
    expect(serviceName('team-a.svc.cluster.local')).toBeUndefined();
    expect(serviceName('registry.npmjs.org')).toBeUndefined();
  });

  it("answers a Service's A record with its ClusterIP, echoing id and question", async () => {
    const q = query('metrics.team-a.svc.cluster.local');
    const reply = await answerQuery(parseQuery(q)!, lookup);
    expect(reply.readUInt16BE(0)).toBe(0x1234);
    const flags = reply.readUInt16BE(2);
    expect(flags & 0x8000).toBe(0x8000); // a response
    expect(flags & 0x000f).toBe(0); // NOERROR
    expect(reply.readUInt16BE(6)).toBe(1); // one answer
    expect(reply.subarray(12, q.length)).toEqual(q.subarray(12));
    expect([...reply.subarray(reply.length - 4)]).toEqual([10, 0, 0, 42]);
  });

  it('gives no answer but no error for AAAA of a Service, NXDOMAIN for anything else', async () => {
    const aaaa = await answerQuery(
      parseQuery(query('metrics.team-a.svc.cluster.local', 28))!,
      lookup,
    );
    expect(aaaa.readUInt16BE(2) & 0x000f).toBe(0);
    expect(aaaa.readUInt16BE(6)).toBe(0);
    for (const name of ['other.team-a.svc.cluster.local', 'metrics.team-a.svc.svc.cluster.local']) {
      const reply = await answerQuery(parseQuery(query(name))!, lookup);
      expect(reply.readUInt16BE(2) & 0x000f, name).toBe(3);
      expect(reply.readUInt16BE(6)).toBe(0);
    }
  });

  it('ignores what is not a query with one question', () => {
    const response = query('metrics.team-a.svc.cluster.local');
    response[2] = 0x81; // QR set
    expect(parseQuery(response)).toBeUndefined();
    expect(parseQuery(Buffer.alloc(5))).toBeUndefined();
    const truncated = query('metrics.team-a.svc.cluster.local').subarray(0, 20);
    expect(parseQuery(truncated)).toBeUndefined();
  });
});
