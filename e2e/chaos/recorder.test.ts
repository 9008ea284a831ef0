// The chaos witness's checks, on objects shaped as the watches deliver them: each check must
// report the breach it exists for and stay quiet on the same story told right.
import { describe, expect, it } from 'vitest';
import type { Accelerator, AcceleratorLease } from '../../src/crds/index.ts';
import { accel, lease, owned, pin } from '../../test/fixtures/cli.ts';
import type { AuditEvent } from './audit.ts';
import { isConditional, podCalls, writesAfter } from './audit.ts';
import { Witness } from './recorder.ts';

const DEV = 'node-a-hl0';
const T = Date.parse('2026-12-01T10:00:00Z');
const withRv = <T extends Accelerator | AcceleratorLease>(o: T, rv: number): T => ({
  ...o,
  metadata: { ...o.metadata, resourceVersion: String(rv) },
});
const granted = (ns: string, name: string, epoch: number, rv: number) =>
  withRv(lease(ns, name, { status: { phase: 'Granted', accelerator: DEV, epoch } }), rv);
const released = (l: AcceleratorLease, rv: number) =>
  withRv({ ...l, status: { ...l.status, phase: 'Released' } }, rv);

const a = lease('team-a', 'tenant-a');
const b = lease('team-b', 'tenant-b');
const loaderPin = pin({
  kind: 'rdma-mr',
  pid: 4711,
  epoch: 1,
  pod: { namespace: 'team-io', name: 'loader-0' },
  podUID: 'uid-loader',
});
/** The device moved to B at epoch 2 while the loader still pins epoch 1's buffer. */
const stuck = withRv(
  accel(DEV, { owner: { lease: b, epoch: 2 }, status: { ...owned(a, 1), pins: [loaderPin] } }),
  20,
);
const freed = withRv(accel(DEV, { owner: { lease: b, epoch: 2 }, status: owned(b, 2) }), 30);

function witness(): Witness {
  const w = new Witness(new Set(['team-a', 'team-b', 'team-io']), new Set([DEV]));
  w.pod({ metadata: { namespace: 'team-io', name: 'loader-0', uid: 'uid-loader' } });
  w.pod({ metadata: { namespace: 'team-io', name: 'bystander-0', uid: 'uid-bystander' } });
  return w;
}

function eviction(pod: string, atMs: number, code = 201): AuditEvent {
  const [namespace, name] = pod.split('/');
  return {
    stage: 'ResponseComplete',
    verb: 'create',
    userAgent: 'accel-lease-controller (ctl-a-0)',
    requestURI: `/api/v1/namespaces/${namespace}/pods/${name}/eviction`,
    objectRef: { resource: 'pods', subresource: 'eviction', namespace, name },
    responseStatus: { code },
    requestReceivedTimestamp: new Date(atMs).toISOString(),
  };
}

describe('Witness', () => {
  it('I1: two leases Granted on one device at once, and not when the first let go first', () => {
    const w = witness();
    const first = granted('team-a', 'tenant-a', 1, 10);
    w.lease(first, undefined);
    w.lease(released(first, 11), first);
    w.lease(granted('team-b', 'tenant-b', 2, 12), undefined);
    expect(w.violations).toEqual([]);
    w.lease(granted('team-a', 'tenant-c', 3, 13), undefined);
    expect(w.violations.map((v) => v.invariant)).toEqual(['I1']);
    expect(w.violations[0]?.message).toContain('team-b/tenant-b and team-a/tenant-c');
  });

  it('I2: a grant written while the device still reported a pin of the earlier epoch', () => {
    const early = witness();
    early.accelerator(stuck, T);
    early.lease(granted('team-b', 'tenant-b', 2, 25), undefined);
    early.checkGrants();
    expect(early.violations.map((v) => v.invariant)).toEqual(['I2']);

    const right = witness();
    right.accelerator(stuck, T);
    right.accelerator(freed, T + 5000);
    right.lease(granted('team-b', 'tenant-b', 2, 31), undefined);
    right.checkGrants();
    expect(right.violations).toEqual([]);
  });

  it('I4: an eviction of a pod no stale pin named, or inside the grace period', () => {
    const w = witness();
    w.accelerator(stuck, T);
    w.checkPodCalls(
      [eviction('team-io/bystander-0', T + 5000), eviction('team-io/loader-0', T + 500)],
      3000,
      5,
    );
    expect(w.violations.map((v) => [v.invariant, v.message.split(' ')[0]])).toEqual([
      ['I4', 'create'],
      ['I4', 'team-io/loader-0'],
    ]);
  });

  it('I4: the pin must carry the uid of the pod evicted, not just its name', () => {
    const w = witness();
    w.pod({ metadata: { namespace: 'team-io', name: 'loader-0', uid: 'uid-impostor' } });
    w.accelerator(stuck, T);
    w.checkPodCalls([eviction('team-io/loader-0', T + 5000)], 3000, 5);
    expect(w.violations.map((v) => v.invariant)).toEqual(['I4']);
  });

  it('I5 and the budget: a pod evicted twice, and more evictions than the handoff allows', () => {
    const w = witness();
    w.accelerator(stuck, T);
    const calls = [eviction('team-io/loader-0', T + 5000), eviction('team-io/loader-0', T + 9000)];
    w.checkPodCalls(calls, 3000, 1);
    expect(w.violations.map((v) => v.invariant).sort()).toEqual(['I4', 'I5']);
    const once = witness();
    once.accelerator(stuck, T);
    once.checkPodCalls([eviction('team-io/loader-0', T + 5000)], 3000, 1);
    expect(once.violations).toEqual([]);
  });
});

describe('audit log', () => {
  it('counts accepted pod calls only, and a replica’s writes after a time by its identity', () => {
    const refused = eviction('team-io/loader-0', T + 1000, 429);
    const accepted = eviction('team-io/loader-0', T + 3000);
    const lease: AuditEvent = {
      ...accepted,
      requestURI: '/apis/coordination.k8s.io/v1/namespaces/sys/leases/accel-lease-controller',
      verb: 'update',
      objectRef: { resource: 'leases', namespace: 'sys', name: 'accel-lease-controller' },
    };
    const other = { ...accepted, userAgent: 'accel-lease-controller (ctl-b-0)' };
    expect(podCalls([refused, accepted], new Set(['team-io']))).toEqual([accepted]);
    const after = writesAfter([refused, accepted, lease, other], 'ctl-a-0', T);
    expect(after.accepted).toEqual([accepted]);
    expect(after.refused).toEqual([refused]);
    expect(writesAfter([refused, accepted], 'ctl-a-0', T + 5000).accepted).toEqual([]);
  });

  it('tells a stale write that could only land on the version read from one that could land anywhere', () => {
    const write = (verb: string, resource: string, subresource?: string): AuditEvent => ({
      ...eviction('team-io/loader-0', T),
      verb,
      objectRef: { resource, ...(subresource && { subresource }) },
    });
    expect(isConditional(write('update', 'acceleratorleases', 'status'))).toBe(true);
    expect(isConditional(write('patch', 'acceleratorleases'))).toBe(true);
    expect(isConditional(write('create', 'pods', 'eviction'))).toBe(true);
    // The cordon mark is a merge patch without resourceVersion.
    expect(isConditional(write('patch', 'accelerators'))).toBe(false);
    expect(isConditional(write('create', 'acceleratorleases'))).toBe(false);
  });
});
