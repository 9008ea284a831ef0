import { describe, expect, it } from 'vitest';
import { matchesSelector, selectorToString } from './selector.ts';

describe('matchesSelector', () => {
  const labels = { app: 'train', tier: 'gpu' };
  it.each([
    [{}, true],
    [{ matchLabels: { app: 'train' } }, true],
    [{ matchLabels: { app: 'serve' } }, false],
    [
      { matchExpressions: [{ key: 'tier', operator: 'In' as const, values: ['gpu', 'cpu'] }] },
      true,
    ],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn' as const, values: ['gpu'] }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'NotIn' as const, values: ['a'] }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'Exists' as const }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' as const }] }, false],
    [
      {
        matchLabels: { app: 'train' },
        matchExpressions: [{ key: 'x', operator: 'Exists' as const }],
      },
      false,
    ],
  ])('%j -> %s', (selector, expected) => {
    expect(matchesSelector(selector, labels)).toBe(expected);
  });

  it('renders the query syntax the API server takes', () => {
    expect(
      selectorToString({
        matchLabels: { app: 'train' },
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['gpu', 'cpu'] },
          { key: 'zone', operator: 'DoesNotExist' },
        ],
      }),
    ).toBe('app=train,tier in (gpu,cpu),!zone');
  });
});
