import { describe, expect, it } from 'vitest';
import {
  eventNamespace,
  observeOccurrence,
  seriesKey,
  truncateNote,
  type Occurrence,
} from './event-series.ts';
import { eventName } from './events.ts';

const lease = {
  apiVersion: 'accel.dmabuf.io/v1alpha1',
  kind: 'AcceleratorLease',
  namespace: 'team-a',
  name: 'tenant-a',
  uid: 'u1',
};
const occ = (note = 'export team-a/buf-1 is pinned'): Occurrence => ({
  regarding: lease,
  type: 'Warning',
  reason: 'Blocked',
  action: 'Handoff',
  note,
});
const fresh = { name: 'tenant-a.1', namespace: 'team-a' };

describe('observeOccurrence', () => {
  it('starts a series, extends it within the window, and starts over after it', () => {
    const first = observeOccurrence(undefined, 0, 60_000, fresh);
    expect(first).toEqual({ ...fresh, count: 1, firstObserved: 0, lastObserved: 0 });
    const second = observeOccurrence(first, 59_000, 60_000, { name: 'other', namespace: 'team-a' });
    expect(second).toEqual({ ...fresh, count: 2, firstObserved: 0, lastObserved: 59_000 });
    // The window is measured from the latest occurrence, so a steady trickle stays one Event.
    const third = observeOccurrence(second, 118_000, 60_000, {
      name: 'other',
      namespace: 'team-a',
    });
    expect(third.count).toBe(3);
    const later = observeOccurrence(third, 178_001, 60_000, { name: 'next', namespace: 'team-a' });
    expect(later).toEqual({
      name: 'next',
      namespace: 'team-a',
      count: 1,
      firstObserved: 178_001,
      lastObserved: 178_001,
    });
  });

  it('keys by object, type, reason, action and note', () => {
    expect(seriesKey(occ())).toBe(seriesKey(occ()));
    expect(seriesKey(occ())).not.toBe(seriesKey(occ('another note')));
    expect(seriesKey(occ())).not.toBe(seriesKey({ ...occ(), regarding: { ...lease, uid: 'u2' } }));
    expect(seriesKey(occ())).not.toBe(seriesKey({ ...occ(), reason: 'Granted' }));
  });

  it('puts events about cluster-scoped objects in default, and cuts long notes to 1 KiB', () => {
    expect(eventNamespace({ kind: 'Accelerator', name: 'node-a-hl0' })).toBe('default');
    expect(eventNamespace(lease)).toBe('team-a');
    const cut = truncateNote('é'.repeat(2000));
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(1024);
    expect(cut.endsWith('...')).toBe(true);
    expect(truncateNote('short')).toBe('short');
  });
});

describe('eventName', () => {
  it('keeps the name of an Event about a long-named object within 253 characters', () => {
    for (const base of ['a'.repeat(253), `${'a'.repeat(230)}.${'b'.repeat(22)}`, 'short']) {
      const name = eventName(base);
      expect(name.length).toBeLessThanOrEqual(253);
      expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
      expect(name.startsWith(base.slice(0, 200))).toBe(true);
    }
  });
});
