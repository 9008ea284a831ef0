// AcceleratorLeasePolicy: an empty spec is the safe default, bad bounds are refused, and which
// policy a namespace gets.
import { describe, expect, it } from 'vitest';
import {
  AcceleratorLeasePolicy,
  DEFAULT_LEASE_POLICY,
  LEASE_POLICY_LABEL,
  parseObject,
  policyNameFor,
} from './index.ts';

const policy = (spec?: Record<string, unknown>) => ({
  apiVersion: 'accel.dmabuf.io/v1alpha1',
  kind: 'AcceleratorLeasePolicy',
  metadata: { name: 'default' },
  ...(spec && { spec }),
});

describe('AcceleratorLeasePolicy', () => {
  it('defaults every bound to the safe one', () => {
    expect(parseObject(AcceleratorLeasePolicy, policy()).spec).toEqual({
      priority: { min: -1000, max: 0 },
      minGracePeriodSeconds: 10,
      maxEvictions: 10,
      maxLeasesPerNamespace: 16,
    });
  });

  it('refuses an empty priority range and a malformed duration', () => {
    expect(() =>
      parseObject(AcceleratorLeasePolicy, policy({ priority: { min: 5, max: 0 } })),
    ).toThrow('spec.priority: spec.priority.min must not exceed spec.priority.max');
    expect(() => parseObject(AcceleratorLeasePolicy, policy({ maxDuration: '2 hours' }))).toThrow(
      'spec.maxDuration: must be a duration like 30s, 15m, 2h or 1h30m',
    );
  });
});

describe('policyNameFor', () => {
  it('reads the namespace label, else the default policy', () => {
    expect(policyNameFor({ [LEASE_POLICY_LABEL]: 'research' })).toBe('research');
    expect(policyNameFor({ other: 'x' })).toBe(DEFAULT_LEASE_POLICY);
    expect(policyNameFor(undefined, 'shared')).toBe('shared');
  });
});
