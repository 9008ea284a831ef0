// The metric-name scanner the monitoring tests rely on: names, not functions, labels or durations.
import { describe, expect, it } from 'vitest';
import { familyOf, metricNames } from './promql.ts';

describe('metricNames', () => {
  it.each([
    ['up', ['up']],
    ['up offset 5m', ['up']],
    ['1e3 * foo', ['foo']],
    ['max by (accelerator) (time() - a{namespace="x",state="y"}) > 300', ['a']],
    [
      'histogram_quantile(0.99, sum by (le) (rate(h_bucket{n=~"$ns"}[$__rate_interval])))',
      ['h_bucket'],
    ],
    ['max(m{a="1"}) < 1 or absent(m{a="1"})', ['m']],
    [
      '(x > on (node) group_left () 3 * max by (node) (p)) or (x > 300 unless on (node) p)',
      ['x', 'p'],
    ],
    ['count(s{state="RateLimited"} == 1) > 0', ['s']],
  ])('%s -> %j', (expr, names) => {
    expect(metricNames(expr)).toEqual(names);
  });
});

describe('familyOf', () => {
  it('maps a histogram series to its family, and nothing to a family not served', () => {
    const served = new Set(['h', 'c_total']);
    expect(familyOf('h_bucket', served)).toBe('h');
    expect(familyOf('h_count', served)).toBe('h');
    expect(familyOf('c_total', served)).toBe('c_total');
    expect(familyOf('c_total_bucket', new Set(['h']))).toBeUndefined();
    expect(familyOf('nope', served)).toBeUndefined();
  });
});
