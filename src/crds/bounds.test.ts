// The bounds that keep every admitted value one the components can handle: durations a Date
// can add, names the status fields that copy them can hold, messages cut to fit.
import { describe, expect, it } from 'vitest';
import {
  AcceleratorLease,
  AcceleratorOwner,
  AcceleratorLeaseStatus,
  AcceleratorStatus,
  customResourceDefinition,
  DEFINITIONS,
  durationNanos,
  fitText,
  InvalidObjectError,
  MAX_DURATION,
  MAX_OBJECT_KEY,
  parseDuration,
  parseObject,
  setConditions,
} from './index.ts';

const lease = (duration: string) => ({
  apiVersion: 'accel.dmabuf.io/v1alpha1',
  kind: 'AcceleratorLease',
  metadata: { name: 'tenant-a', namespace: 'team-a' },
  spec: { accelerator: 'node-a-hl0', holder: { podSelector: {} }, duration },
});

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidObjectError);
    return (err as Error).message;
  }
  throw new Error('expected the object to be refused');
}

describe('spec.duration', () => {
  it.each(['2h', '1h30m', '1.5h', '90s', '8760h', '525600m', '8759h59m59.999999999s'])(
    'admits %s, at most a year',
    (d) => {
      expect(parseObject(AcceleratorLease, lease(d)).spec.duration).toBe(d);
      expect(parseDuration(d)).toBeLessThanOrEqual(parseDuration(MAX_DURATION) + 1);
    },
  );

  it.each(['8761h', '8760h1ms', '9999999999h', '99999999999999999999s', '4200000000m0s'])(
    'refuses %s with what to do instead',
    (d) => {
      expect(refusal(() => parseObject(AcceleratorLease, lease(d)))).toBe(
        'AcceleratorLease team-a/tenant-a is invalid: spec.duration: must be at most 8760h (one year): ask for a shorter hold, or leave duration out to hold the device until the lease is deleted',
      );
    },
  );

  it('agrees with Go at the boundary: a fraction of a nanosecond is truncated, as CEL does', () => {
    // time.ParseDuration("8760h0.0000001ms") is exactly 8760h: the API server admits it.
    expect(durationNanos('8760h0.0000001ms')).toBe(durationNanos('8760h'));
    expect(parseObject(AcceleratorLease, lease('8760h0.0000001ms')).spec.duration).toBeDefined();
    expect(durationNanos('1.5h')).toBe(5_400_000_000_000n);
    expect(durationNanos('0.000000001s')).toBe(1n);
  });

  it('carries the same rule to the API server, guarded so CEL never overflows', () => {
    const crd = JSON.stringify(customResourceDefinition(DEFINITIONS[1]!));
    expect(crd).toContain("duration(self) <= duration('8760h')");
    expect(crd).toContain('self.size() <= 64 && self.matches(');
  });
});

describe('names copied into status', () => {
  const ns = 'n'.repeat(63);
  const name = 'e'.repeat(253);
  const key = `${ns}/${name}`;

  it('a pin and a blocker hold the longest namespace/name of an export', () => {
    expect(key.length).toBe(MAX_OBJECT_KEY);
    const pin = {
      export: key,
      inode: 1,
      kind: 'fd',
      pid: 1,
      epoch: 1,
      since: '2026-12-01T00:00:00Z',
    };
    expect(parseObject(AcceleratorStatus, { pins: [pin] }).pins?.[0]?.export).toBe(key);
    const blocker = { accelerator: 'node-a-hl0', export: key, kind: 'fd', pid: 1 };
    expect(parseObject(AcceleratorLeaseStatus, { blockedBy: [blocker] }).blockedBy).toHaveLength(1);
  });
});

describe('condition messages', () => {
  it('are cut to the schema maxLength, saying so, wherever they are set', () => {
    const [c] = setConditions(
      undefined,
      [{ type: 'Blocked', status: 'True', reason: 'Pinned', message: 'x'.repeat(40_000) }],
      '2026-12-01T00:00:00Z',
    );
    expect(c?.message).toHaveLength(32768);
    expect(c?.message.endsWith(' [...]')).toBe(true);
    parseObject(AcceleratorLeaseStatus, { conditions: [c] });
  });

  it('never split a surrogate pair', () => {
    // Ten code units: 'a', one emoji, and the high half of the next would fit before the mark.
    expect(fitText('a' + '\u{1F600}'.repeat(10), 10)).toBe('a\u{1F600} [...]');
  });
});

describe('spec.owner.lease.uid', () => {
  it('never holds "/", which would break the agent\'s namespace/name/uid owner key', () => {
    const owner = { lease: { namespace: 'team-a', name: 'tenant-a', uid: 'a/b' }, epoch: 1 };
    expect(refusal(() => parseObject(AcceleratorOwner, owner))).toContain(
      'lease.uid: must not contain "/"',
    );
  });
});
