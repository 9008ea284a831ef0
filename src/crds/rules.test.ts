// The rules the API package defines once for every component: which pins are stale, how a pin
// reads as a lease's blocker, and where an idle reap keeps its records.
import { describe, expect, it } from 'vitest';
import {
  Accelerator,
  blockersOf,
  idleEvictionsOf,
  idleEvictionsPatch,
  InvalidObjectError,
  isBlockerOf,
  MAX_BLOCKERS,
  parseObject,
  stalePins,
  type EvictionRecord,
  type Pin,
} from './index.ts';

const pin = (epoch: number, pid: number, extra: Partial<Pin> = {}): Pin => ({
  inode: 7,
  kind: 'rdma-mr',
  importer: 'nic0',
  pod: { namespace: 'team-io', name: 'loader-0' },
  podUID: 'uid-loader-0',
  pid,
  epoch,
  since: '2026-11-25T10:00:00Z',
  ...extra,
});

const accel = (ownerEpoch: number | undefined, pins: Pin[]): Accelerator => ({
  apiVersion: 'accel.dmabuf.io/v1alpha1',
  kind: 'Accelerator',
  metadata: { name: 'node-a-hl0' },
  spec: {
    node: 'node-a',
    index: 0,
    model: 'gaudi2',
    memoryBytes: 1,
    exporterProfile: 'static',
    ...(ownerEpoch !== undefined && { owner: { epoch: ownerEpoch } }),
  },
  status: { pins },
});

describe('stalePins', () => {
  it("keeps only pins of an epoch older than spec.owner's", () => {
    const a = accel(3, [pin(1, 10), pin(2, 11), pin(3, 12), pin(4, 13)]);
    expect(stalePins(a).map((p) => p.pid)).toEqual([10, 11]);
  });

  it('judges against the epoch given (an owner about to be written)', () => {
    const a = accel(3, [pin(2, 11), pin(3, 12)]);
    expect(stalePins(a, 4).map((p) => p.pid)).toEqual([11, 12]);
  });

  it('finds none on a device that never had an owner', () => {
    expect(stalePins(accel(undefined, [pin(0, 10)]))).toEqual([]);
  });
});

describe('blockersOf', () => {
  it('names each pin with its reason, cut to the schema bounds', () => {
    const pins = [pin(1, 10), pin(1, 11, { kind: 'fd', importer: undefined, export: 'a/b' })];
    const out = blockersOf('node-a-hl0', pins, (p) =>
      p.pid === 10 ? 'x'.repeat(2000) : undefined,
    );
    expect(out[0]).toMatchObject({ accelerator: 'node-a-hl0', kind: 'rdma-mr', pid: 10 });
    expect(out[0]?.reason).toHaveLength(1024);
    expect(out[1]).toEqual({
      accelerator: 'node-a-hl0',
      export: 'a/b',
      kind: 'fd',
      pod: { namespace: 'team-io', name: 'loader-0' },
      pid: 11,
    });
    expect(
      blockersOf(
        'd',
        Array.from({ length: 300 }, (_, i) => pin(1, i + 1)),
      ),
    ).toHaveLength(MAX_BLOCKERS);
  });

  it('is found again from the pin it was written for, and only from it', () => {
    const p = pin(1, 10);
    const [b] = blockersOf('d', [p]);
    expect(b && isBlockerOf(b, p)).toBe(true);
    expect(b && isBlockerOf(b, { ...p, pid: 11 })).toBe(false);
    expect(b && isBlockerOf(b, { ...p, importer: 'nic1' })).toBe(false);
  });
});

describe('idle evictions', () => {
  const record: EvictionRecord = {
    pod: { namespace: 'team-io', name: 'loader-0' },
    uid: 'uid-loader-0',
    reason: 'holds rdma-mr importer nic0',
    result: 'Evicting',
    started: '2026-11-25T10:00:31Z',
    attempts: 2,
    lastAttemptTime: '2026-11-25T10:00:41Z',
    lastOutcome: 'Refused',
  };
  const withRecords = (records: EvictionRecord[] | undefined): Accelerator => {
    const a = accel(3, []);
    return {
      ...a,
      metadata: { ...a.metadata, resourceVersion: '42' },
      spec: { ...a.spec, owner: { epoch: 3, ...(records && { idleEvictions: records }) } },
    };
  };

  it('reads the records stored with the owner, none when there are none', () => {
    expect(idleEvictionsOf(withRecords([record]))).toEqual([record]);
    expect(idleEvictionsOf(withRecords(undefined))).toEqual([]);
    expect(idleEvictionsOf(accel(undefined, []))).toEqual([]);
  });

  it('writes them conditionally on the version read, and removes the field for none', () => {
    expect(idleEvictionsPatch(withRecords(undefined), [record])).toEqual({
      metadata: { resourceVersion: '42' },
      spec: { owner: { idleEvictions: [record] } },
    });
    expect(idleEvictionsPatch(withRecords([record]), []).spec.owner.idleEvictions).toBeNull();
  });

  it('round-trips through the schema, and a record it rejects is reported, not dropped', () => {
    const stored = withRecords([record]);
    expect(idleEvictionsOf(parseObject(Accelerator, stored))).toEqual([record]);
    const bad = withRecords([{ ...record, lastOutcome: 'Maybe' as EvictionRecord['lastOutcome'] }]);
    expect(() => idleEvictionsOf(parseObject(Accelerator, bad))).toThrow(InvalidObjectError);
  });
});
