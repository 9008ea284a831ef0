// The leases-per-namespace bound: which leases are left out of the queues, and what they are told.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OVER_NAMESPACE_LIMIT, type AcceleratorLease } from '../crds/index.ts';
import { overLimitActions, overNamespaceLimit, type NamespaceLimit } from './namespace-limit.ts';

const T0 = Date.parse('2026-11-25T10:00:00Z');
const NOW = new Date(T0).toISOString();

function mkLease(
  name: string,
  opts: {
    ns?: string;
    created?: number;
    epoch?: number;
    deleted?: boolean;
    phase?: 'Pending' | 'Granted' | 'Expired';
  } = {},
): AcceleratorLease {
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'AcceleratorLease',
    metadata: {
      name,
      namespace: opts.ns ?? 'team-a',
      uid: `uid-${opts.ns ?? 'team-a'}-${name}`,
      generation: 1,
      creationTimestamp: new Date(opts.created ?? T0).toISOString(),
      ...(opts.deleted && { deletionTimestamp: new Date(T0).toISOString() }),
    },
    spec: {
      accelerator: 'node-a-hl0',
      holder: { podSelector: { matchLabels: { app: name } } },
      priority: 0,
      revocation: { gracePeriodSeconds: 30, maxEvictions: 5 },
    },
    ...((opts.epoch !== undefined || opts.phase) && {
      status: {
        ...(opts.phase && { phase: opts.phase }),
        ...(opts.epoch !== undefined && { epoch: opts.epoch }),
      },
    }),
  };
}

const two: NamespaceLimit = { policy: 'strict', maxLeases: 2 };
const names = (m: ReturnType<typeof overNamespaceLimit>) =>
  [...m.values()].map((o) => o.lease.metadata.name).sort();

describe('overNamespaceLimit', () => {
  it('leaves out the leases created after the first maxLeases of a namespace', () => {
    const leases = ['c', 'a', 'b', 'd'].map((n, i) =>
      mkLease(n, { created: T0 + 'abcd'.indexOf(n) * 1000 + i }),
    );
    const over = overNamespaceLimit(leases, () => two, T0);
    expect(names(over)).toEqual(['c', 'd']);
    expect(over.get('uid-team-a-c')).toMatchObject({ limit: two, within: ['a', 'b'] });
  });

  it('breaks a tie of creation time by name, and counts each namespace on its own', () => {
    const leases = [
      mkLease('y'),
      mkLease('x'),
      mkLease('z'),
      mkLease('p', { ns: 'team-b' }),
      mkLease('q', { ns: 'team-b' }),
    ];
    expect(names(overNamespaceLimit(leases, () => two, T0))).toEqual(['z']);
  });

  it('applies no limit where a namespace has no policy', () => {
    const leases = ['a', 'b', 'c'].map((n) => mkLease(n));
    expect(overNamespaceLimit(leases, () => undefined, T0).size).toBe(0);
  });

  it('never leaves out a lease already handed a device, nor a deleted one, when the limit drops', () => {
    const leases = [
      mkLease('early', { created: T0 }),
      mkLease('owner', { created: T0 + 1000, epoch: 3, phase: 'Granted' }),
      mkLease('going', { created: T0 + 2000, deleted: true }),
      mkLease('late', { created: T0 + 3000 }),
    ];
    const one: NamespaceLimit = { policy: 'strict', maxLeases: 1 };
    expect(names(overNamespaceLimit(leases, () => one, T0))).toEqual(['early', 'late']);
  });

  it('gives a finished lease no place', () => {
    const leases = [
      mkLease('old', { created: T0, phase: 'Expired', epoch: 1 }),
      mkLease('a', { created: T0 + 1 }),
      mkLease('b', { created: T0 + 2 }),
    ];
    expect(overNamespaceLimit(leases, () => two, T0).size).toBe(0);
  });

  it('admits exactly max(limit, kept) leases of each namespace, the earliest of the others', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            ns: fc.constantFrom('n1', 'n2'),
            created: fc.integer({ min: 0, max: 20 }),
            kept: fc.boolean(),
          }),
          { maxLength: 20 },
        ),
        fc.integer({ min: 0, max: 5 }),
        (specs, max) => {
          const leases = specs.map((s, i) =>
            mkLease(`l${i}`, {
              ns: s.ns,
              created: T0 + s.created * 1000,
              ...(s.kept && { epoch: 1 }),
            }),
          );
          const over = overNamespaceLimit(leases, (policy) => ({ policy, maxLeases: max }), T0);
          for (const ns of ['n1', 'n2']) {
            const mine = leases.filter((l) => l.metadata.namespace === ns);
            const kept = mine.filter((l) => l.status?.epoch !== undefined);
            const left = mine.filter((l) => over.has(l.metadata.uid ?? ''));
            expect(mine.length - left.length).toBe(
              Math.min(mine.length, Math.max(max, kept.length)),
            );
            for (const l of left) {
              expect(l.status?.epoch).toBeUndefined();
              // Everyone admitted and not kept was created no later than any left-out lease.
              for (const a of mine.filter((m) => !over.has(m.metadata.uid ?? '') && !m.status)) {
                expect(Date.parse(String(a.metadata.creationTimestamp))).toBeLessThanOrEqual(
                  Date.parse(String(l.metadata.creationTimestamp)),
                );
              }
            }
          }
        },
      ),
    );
  });
});

describe('overLimitActions', () => {
  const leases = ['a', 'b', 'c'].map((n, i) => mkLease(n, { created: T0 + i }));
  const over = overNamespaceLimit(leases, () => two, T0);

  it('writes Pending with a condition naming the policy and the limit, and warns once', () => {
    const actions = overLimitActions(over, NOW);
    expect(actions.map((a) => a.type)).toEqual(['leaseStatus', 'event']);
    const [write, event] = actions;
    if (write?.type !== 'leaseStatus' || event?.type !== 'event') throw new Error('unreachable');
    expect(write.status.phase).toBe('Pending');
    const cond = write.status.conditions?.find((c) => c.type === 'Granted');
    expect(cond).toMatchObject({ status: 'False', reason: OVER_NAMESPACE_LIMIT });
    expect(cond?.message).toBe(
      'lease team-a/c is not queued: namespace team-a has 2 leases ahead of it (a, b), and ' +
        'AcceleratorLeasePolicy strict allows 2 per namespace (maxLeasesPerNamespace); it is ' +
        'queued once one of them is deleted or finishes',
    );
    expect(event).toMatchObject({ eventType: 'Warning', reason: OVER_NAMESPACE_LIMIT });

    // Once written, nothing more: neither a write nor a second Event.
    const written = { ...write.lease, status: write.status };
    const again = overNamespaceLimit([leases[0]!, leases[1]!, written], () => two, T0);
    expect(overLimitActions(again, NOW)).toEqual([]);
  });

  it('drops the queue position a lease had before it went over', () => {
    const queued = { ...leases[2]!, status: { phase: 'Pending' as const, queuePosition: 1 } };
    const [write] = overLimitActions(
      overNamespaceLimit([leases[0]!, leases[1]!, queued], () => two, T0),
      NOW,
    );
    expect(write?.type === 'leaseStatus' && write.status.queuePosition).toBe(undefined);
  });
});
