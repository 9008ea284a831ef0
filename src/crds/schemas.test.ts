// Example objects that must pass and must fail, with the message an operator would see.
import { describe, expect, it } from 'vitest';
import {
  Accelerator,
  AcceleratorLease,
  DmaBufExport,
  ExporterProfile,
  ImporterKind,
  InvalidObjectError,
  parseObject,
} from './index.ts';

const lease = (spec: Record<string, unknown>) => ({
  apiVersion: 'accel.dmabuf.io/v1alpha1',
  kind: 'AcceleratorLease',
  metadata: { name: 'tenant-a', namespace: 'team-a' },
  spec: { holder: { podSelector: { matchLabels: { app: 'train' } } }, ...spec },
});

const dbx = (spec: Record<string, unknown>) => ({
  apiVersion: 'accel.dmabuf.io/v1alpha1',
  kind: 'DmaBufExport',
  metadata: { name: 'weights', namespace: 'team-a' },
  spec: {
    accelerator: 'node-a-hl0',
    lease: 'tenant-a',
    exporter: { pod: 'trainer-0' },
    sizeBytes: 1073741824,
    ...spec,
  },
});

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidObjectError);
    return (err as Error).message;
  }
  throw new Error('expected the object to be rejected');
}

describe('AcceleratorLease', () => {
  it('accepts the design example and fills in the defaults', () => {
    const parsed = parseObject(
      AcceleratorLease,
      lease({ accelerator: 'node-a-hl0', duration: '2h', revocation: { gracePeriodSeconds: 10 } }),
    );
    expect(parsed.spec.priority).toBe(0);
    expect(parsed.spec.revocation).toEqual({ gracePeriodSeconds: 10, maxEvictions: 5 });
  });

  it('accepts a selector instead of a device name', () => {
    const parsed = parseObject(
      AcceleratorLease,
      lease({ selector: { matchLabels: { 'accel.dmabuf.io/model': 'gaudi2' } } }),
    );
    expect(parsed.spec.revocation).toEqual({ gracePeriodSeconds: 30, maxEvictions: 5 });
  });

  it('rejects a lease with both accelerator and selector', () => {
    expect(
      messageOf(() =>
        parseObject(AcceleratorLease, lease({ accelerator: 'x', selector: { matchLabels: {} } })),
      ),
    ).toBe(
      'AcceleratorLease team-a/tenant-a is invalid: spec: exactly one of spec.accelerator or spec.selector must be set',
    );
  });

  it('rejects a lease with neither', () => {
    expect(messageOf(() => parseObject(AcceleratorLease, lease({})))).toContain(
      'exactly one of spec.accelerator or spec.selector must be set',
    );
  });

  it('rejects a malformed duration with a hint', () => {
    expect(
      messageOf(() =>
        parseObject(AcceleratorLease, lease({ accelerator: 'x', duration: 'two hours' })),
      ),
    ).toContain('spec.duration: must be a duration like 30s, 15m, 2h or 1h30m');
  });

  it('rejects a negative eviction budget, naming the field', () => {
    expect(
      messageOf(() =>
        parseObject(
          AcceleratorLease,
          lease({ accelerator: 'x', revocation: { maxEvictions: -1 } }),
        ),
      ),
    ).toContain('spec.revocation.maxEvictions:');
  });

  it('rejects In without values in a selector', () => {
    expect(
      messageOf(() =>
        parseObject(
          AcceleratorLease,
          lease({ selector: { matchExpressions: [{ key: 'model', operator: 'In' }] } }),
        ),
      ),
    ).toContain(
      'spec.selector.matchExpressions[0]: values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist',
    );
  });

  it('rejects unknown fields (a typo must not silently vanish)', () => {
    expect(
      messageOf(() => parseObject(AcceleratorLease, lease({ accelerator: 'x', priorty: 3 }))),
    ).toContain('priorty');
  });
});

describe('DmaBufExport', () => {
  const importers = [
    { name: 'nic0', kind: 'rdma-mr', pod: { namespace: 'team-io', name: 'loader-0' } },
    { name: 'view', kind: 'mmap', pod: { namespace: 'team-a', name: 'trainer-0' } },
  ];

  it('accepts the design example', () => {
    const parsed = parseObject(DmaBufExport, dbx({ offsetBytes: 0, importers }));
    expect(parsed.spec.importers.map((i) => i.kind)).toEqual(['rdma-mr', 'mmap']);
    expect(parsed.spec.source).toBe('Declared');
  });

  it('rejects duplicate importer names', () => {
    expect(
      messageOf(() =>
        parseObject(
          DmaBufExport,
          dbx({ importers: [importers[0], { ...importers[1], name: 'nic0' }] }),
        ),
      ),
    ).toContain('spec.importers: importer names must be unique within an export');
  });

  it('rejects a zero size', () => {
    expect(messageOf(() => parseObject(DmaBufExport, dbx({ sizeBytes: 0 })))).toContain(
      'spec.sizeBytes:',
    );
  });

  it('rejects an unknown importer kind, listing the valid ones', () => {
    const msg = messageOf(() =>
      parseObject(DmaBufExport, dbx({ importers: [{ ...importers[0], kind: 'rdma' }] })),
    );
    expect(msg).toContain('spec.importers[0].kind');
    expect(msg).toContain('"rdma-mr"');
  });
});

describe('Accelerator', () => {
  const accel = (spec: Record<string, unknown>) => ({
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'Accelerator',
    metadata: { name: 'node-a-hl0' },
    spec: { node: 'node-a', index: 0, model: 'gaudi2', memoryBytes: 96 * 2 ** 30, ...spec },
  });

  it('defaults the exporter profile to static', () => {
    expect(parseObject(Accelerator, accel({})).spec.exporterProfile).toBe('static');
  });

  it('accepts an owner with no lease (ownership dropped at an epoch)', () => {
    expect(parseObject(Accelerator, accel({ owner: { epoch: 3 } })).spec.owner).toEqual({
      epoch: 3,
    });
  });

  it('rejects an unknown profile', () => {
    expect(
      messageOf(() => parseObject(Accelerator, accel({ exporterProfile: 'magic' }))),
    ).toContain('spec.exporterProfile');
  });

  it('names a cluster-scoped object without a namespace', () => {
    expect(messageOf(() => parseObject(Accelerator, accel({ memoryBytes: 0 })))).toMatch(
      /^Accelerator node-a-hl0 is invalid: spec\.memoryBytes:/,
    );
  });
});

describe('shared vocabulary', () => {
  it('lists the importer kinds and exporter profiles of the design', () => {
    expect(ImporterKind.options).toEqual(['dynamic', 'mmap', 'rdma-mr', 'pinned']);
    expect(ExporterProfile.options).toEqual(['static', 'dynamic', 'revocable']);
  });
});
