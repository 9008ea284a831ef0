import type { V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  allowedSince,
  disruptionLookup,
  selectsPod,
  type PodDisruptionBudget,
} from './disruption-budgets.ts';

const T = Date.parse('2026-11-25T10:00:00Z');

const pod = (name: string, labels: Record<string, string>, namespace = 'team-io'): V1Pod => ({
  metadata: { name, namespace, uid: `uid-${name}`, labels },
  spec: { containers: [] },
});

function pdb(
  name: string,
  selector: V1LabelSelector | undefined,
  allowed: number,
  opts: { since?: number; generation?: number; observed?: number; namespace?: string } = {},
): PodDisruptionBudget {
  return {
    metadata: { name, namespace: opts.namespace ?? 'team-io', generation: opts.generation ?? 1 },
    spec: { maxUnavailable: 1, ...(selector !== undefined && { selector }) },
    status: {
      currentHealthy: 3,
      desiredHealthy: 2,
      expectedPods: 3,
      disruptionsAllowed: allowed,
      observedGeneration: opts.observed ?? 1,
      conditions: [
        {
          type: 'DisruptionAllowed',
          status: allowed > 0 ? 'True' : 'False',
          reason: allowed > 0 ? 'SufficientPods' : 'InsufficientPods',
          message: '',
          lastTransitionTime: new Date(opts.since ?? T).toISOString() as unknown as Date,
        },
      ],
    },
  };
}

const store = <T>(items: T[], key: (t: T) => string) => ({
  get: (k: string) => items.find((i) => key(i) === k),
  list: () => items,
});

describe('selectsPod', () => {
  const loader = pod('loader-0', { app: 'loader', tier: 'io' });
  it.each([
    ['matchLabels that match', { matchLabels: { app: 'loader' } }, true],
    ['matchLabels that do not', { matchLabels: { app: 'trainer' } }, false],
    ['In', { matchExpressions: [{ key: 'app', operator: 'In', values: ['loader', 'x'] }] }, true],
    ['In, no value', { matchExpressions: [{ key: 'app', operator: 'In', values: ['x'] }] }, false],
    ['NotIn', { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['x'] }] }, true],
    [
      'NotIn, the value',
      { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['loader'] }] },
      false,
    ],
    ['Exists', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, true],
    ['Exists, absent', { matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, false],
    ['DoesNotExist', { matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, true],
    [
      'DoesNotExist, present',
      { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] },
      false,
    ],
    ['an unknown operator', { matchExpressions: [{ key: 'app', operator: 'Gt' }] }, false],
    ['the empty selector (every pod)', {}, true],
    ['no selector (no pod)', undefined, false],
  ])('%s', (_, selector, want) => {
    expect(selectsPod(pdb('b', selector, 1), loader)).toBe(want);
  });

  it('never a pod of another namespace', () => {
    const b = pdb('b', { matchLabels: { app: 'loader' } }, 1, { namespace: 'team-a' });
    expect(selectsPod(b, loader)).toBe(false);
  });
});

describe('allowedSince', () => {
  it('is the DisruptionAllowed transition while a disruption is allowed', () => {
    expect(allowedSince(pdb('b', {}, 1, { since: T + 5000 }))).toBe(T + 5000);
  });
  it('is undefined while none is allowed', () => {
    expect(allowedSince(pdb('b', {}, 0))).toBeUndefined();
  });
  it('is undefined while the status lags the spec (the API server refuses then)', () => {
    expect(allowedSince(pdb('b', {}, 1, { generation: 2, observed: 1 }))).toBeUndefined();
  });
  it('is undefined without a condition that says since when', () => {
    const b = pdb('b', {}, 1);
    expect(allowedSince({ ...b, status: { ...b.status!, conditions: [] } })).toBeUndefined();
  });
});

describe('disruptionLookup', () => {
  const pods = store(
    [pod('loader-0', { app: 'loader' }), pod('free-0', { app: 'free' })],
    (p) => `${p.metadata?.namespace}/${p.metadata?.name}`,
  );
  const key = (b: PodDisruptionBudget) => `${b.metadata?.namespace}/${b.metadata?.name}`;

  it("answers with the one budget that selects the pod, by the pod's labels", () => {
    const lookup = disruptionLookup(
      store([pdb('loaders', { matchLabels: { app: 'loader' } }, 1, { since: T + 1000 })], key),
      pods,
    );
    expect(lookup.allowedSince('team-io/loader-0')).toBe(T + 1000);
    expect(lookup.allowedSince('team-io/free-0')).toBeUndefined();
    expect(lookup.allowedSince('team-io/gone-0')).toBeUndefined();
  });

  it('answers nothing for a pod two budgets select (its eviction fails with 500)', () => {
    const lookup = disruptionLookup(
      store(
        [
          pdb('a', { matchLabels: { app: 'loader' } }, 1),
          pdb('b', { matchExpressions: [{ key: 'app', operator: 'Exists' }] }, 1),
        ],
        key,
      ),
      pods,
    );
    expect(lookup.allowedSince('team-io/loader-0')).toBeUndefined();
  });
});
