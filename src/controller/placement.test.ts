import { describe, expect, it } from 'vitest';
import {
  CORDON_ANNOTATION,
  LAST_HANDOFF_ANNOTATION,
  type Accelerator,
  type AcceleratorLease,
} from '../crds/index.ts';
import { place } from './placement.ts';

const NOW = '2026-11-25T10:00:00Z';

function accel(
  name: string,
  opts: { model?: string; phase?: 'Free' | 'Owned'; last?: string; cordon?: boolean } = {},
): Accelerator {
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'Accelerator',
    metadata: {
      name,
      labels: { 'accel.dmabuf.io/model': opts.model ?? 'gaudi2' },
      annotations: {
        ...(opts.last && { [LAST_HANDOFF_ANNOTATION]: opts.last }),
        ...(opts.cordon && { [CORDON_ANNOTATION]: 'pins cannot be cleared' }),
      },
    },
    spec: { node: 'node-a', index: 0, model: 'gaudi2', memoryBytes: 1, exporterProfile: 'static' },
    status: { phase: opts.phase ?? 'Free' },
  };
}

function lease(name: string, created = NOW): AcceleratorLease {
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'AcceleratorLease',
    metadata: { name, namespace: 't', uid: name, creationTimestamp: created },
    spec: {
      selector: { matchLabels: { 'accel.dmabuf.io/model': 'gaudi2' } },
      holder: { podSelector: {} },
      priority: 0,
      revocation: { gracePeriodSeconds: 30, maxEvictions: 5 },
    },
  };
}

describe('place', () => {
  it('prefers the free matching device idle longest, one lease per device', () => {
    const devices = [
      accel('b', { last: '2026-11-25T09:00:00Z' }),
      accel('a', { last: '2026-11-25T09:30:00Z' }),
      accel('c', { model: 'mi300' }),
      accel('d', { phase: 'Owned' }),
      accel('e', { cordon: true }),
    ];
    const out = place(
      [lease('x'), lease('y', '2026-11-25T10:00:01Z'), lease('z', '2026-11-25T10:00:02Z')],
      devices,
      new Set(),
      NOW,
    );
    expect(out.map((p) => [p.lease.metadata.name, p.status.accelerator])).toEqual([
      ['x', 'b'],
      ['y', 'a'],
      ['z', undefined],
    ]);
    expect(out[2]!.status.conditions?.[0]).toMatchObject({ reason: 'NoFreeAccelerator' });
  });

  it('skips devices that already have a queue', () => {
    const out = place([lease('x')], [accel('a'), accel('b')], new Set(['a']), NOW);
    expect(out[0]!.status.accelerator).toBe('b');
  });

  it('says so when nothing matches the selector', () => {
    const out = place([lease('x')], [accel('c', { model: 'mi300' })], new Set(), NOW);
    expect(out[0]!.status).toMatchObject({ phase: 'Pending' });
    expect(out[0]!.status.conditions?.[0]).toMatchObject({ reason: 'NoMatchingAccelerator' });
  });
});
