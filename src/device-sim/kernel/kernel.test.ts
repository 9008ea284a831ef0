// Unit tests: every transition of the kernel, and every refusal with its message and the
// guarantee that a refused call leaves the model exactly as it was.

import { describe, expect, it } from 'vitest';
import {
  AttachmentExistsError,
  BufferRevokedError,
  DeviceExistsError,
  DevicePinnedError,
  DoubleCloseError,
  ExportRangeError,
  InvalidArgumentError,
  Kernel,
  KernelError,
  MmapUnsupportedError,
  NotHolderError,
  NotOwnerError,
  OwnerStillCurrentError,
  PidInUseError,
  StaleEpochError,
  UnknownAttachmentError,
  UnknownDeviceError,
  UnknownFdError,
  UnknownProcessError,
  WrongFdKindError,
  describePin,
  type ExporterProfile,
} from './index.ts';

const GiB = 1024 ** 3;

function setup(profile: ExporterProfile = 'static') {
  let clock = 1_000;
  const k = new Kernel({ now: () => clock });
  k.addDevice({ name: 'hl0', memoryBytes: 4 * GiB, profile });
  k.acquire('hl0', 'A', 1);
  const trainer = k.spawn({ comm: 'trainer', label: { namespace: 'team-a', name: 'trainer-0' } });
  const loader = k.spawn({ comm: 'loader', label: { namespace: 'team-io', name: 'loader-0' } });
  const devFd = k.openDevice(trainer.pid, 'hl0', 'A');
  const buf = k.exportBuffer(trainer.pid, devFd, { offset: 0, size: GiB, name: 'weights' });
  const loaderFd = k.passFd(trainer.pid, buf.fd, loader.pid);
  return {
    k,
    trainer: trainer.pid,
    loader: loader.pid,
    devFd,
    buf,
    loaderFd,
    tick: (ms: number) => (clock += ms),
  };
}

/** The call must throw `type` with a message matching `message`, and change nothing at all. */
function expectRefused(
  k: Kernel,
  call: () => unknown,
  type: abstract new (...args: never[]) => KernelError,
  message: string | RegExp,
): KernelError {
  const before = JSON.stringify(k);
  let caught: unknown;
  try {
    call();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(type);
  expect(caught).toBeInstanceOf(KernelError);
  expect((caught as Error).message).toMatch(message);
  expect(JSON.stringify(k)).toBe(before);
  return caught as KernelError;
}

describe('devices', () => {
  it('starts free at epoch 0 with the static profile by default', () => {
    const k = new Kernel({ now: () => 5 });
    expect(k.addDevice({ name: 'hl1', memoryBytes: 100 })).toEqual({
      name: 'hl1',
      memoryBytes: 100,
      profile: 'static',
      owner: null,
      epoch: 0,
      since: 5,
    });
    expect(k.devices().map((d) => d.name)).toEqual(['hl1']);
    expect(k.device('nope')).toBeUndefined();
  });

  it('refuses a duplicate name, a bad size and an unknown profile', () => {
    const { k } = setup();
    expectRefused(
      k,
      () => k.addDevice({ name: 'hl0', memoryBytes: 1 }),
      DeviceExistsError,
      'device hl0 already exists',
    );
    expectRefused(
      k,
      () => k.addDevice({ name: 'hl9', memoryBytes: 0 }),
      InvalidArgumentError,
      'memoryBytes must be an integer >= 1, got 0',
    );
    expectRefused(
      k,
      () => k.addDevice({ name: 'hl9', memoryBytes: 1, profile: 'magic' as ExporterProfile }),
      InvalidArgumentError,
      'exporter profile must be one of static, dynamic, revocable',
    );
  });

  it('names the unknown device', () => {
    const { k, trainer } = setup();
    expectRefused(k, () => k.pins('hl7'), UnknownDeviceError, 'no device named hl7');
    expectRefused(k, () => k.acquire('hl7', 'A', 1), UnknownDeviceError, 'hl7');
    expectRefused(k, () => k.drop('hl7'), UnknownDeviceError, 'hl7');
    expectRefused(k, () => k.openDevice(trainer, 'hl7', 'A'), UnknownDeviceError, 'hl7');
    expectRefused(k, () => k.buffers('hl7'), UnknownDeviceError, 'hl7');
  });
});

describe('processes and fds', () => {
  it('allocates pids from 100, skipping live ones, and honours an explicit pid', () => {
    const k = new Kernel({ now: () => 0 });
    expect(k.spawn({ comm: 'a' }).pid).toBe(100);
    expect(k.spawn({ comm: 'b', pid: 101, label: null }).pid).toBe(101);
    expect(k.spawn({ comm: 'c' }).pid).toBe(102);
    expect(k.process(101)).toEqual({
      pid: 101,
      comm: 'b',
      label: null,
      fds: [],
      attachments: [],
    });
    expect(k.processes().map((p) => p.pid)).toEqual([100, 101, 102]);
  });

  it('uses the injected pid allocator and refuses a pid that is in use', () => {
    const pids = [7, 7];
    const k = new Kernel({ now: () => 0, allocatePid: () => pids.shift() ?? 0 });
    expect(k.spawn({ comm: 'a' }).pid).toBe(7);
    expectRefused(
      k,
      () => k.spawn({ comm: 'b' }),
      PidInUseError,
      'pid 7 is already in use by a live process',
    );
    expectRefused(k, () => k.spawn({ comm: 'b', pid: 7 }), PidInUseError, 'pid 7');
    expectRefused(k, () => k.spawn({ comm: '' }), InvalidArgumentError, 'comm must be');
    expectRefused(
      k,
      () => k.spawn({ comm: 'x', label: { namespace: 'ns', name: '' } }),
      InvalidArgumentError,
      'label name must be a non-empty string',
    );
  });

  it('hands out the lowest free fd from 3 and records when', () => {
    const { k, trainer, devFd, buf, tick } = setup();
    expect([devFd, buf.fd]).toEqual([3, 4]);
    k.close(trainer, devFd);
    tick(500);
    expect(k.openDevice(trainer, 'hl0', 'A')).toBe(3);
    expect(k.process(trainer)?.fds).toEqual([
      {
        fd: 3,
        kind: 'device',
        device: 'hl0',
        owner: 'A',
        epoch: 1,
        revoked: false,
        since: 1_500,
      },
      { fd: 4, kind: 'dmabuf', ino: buf.ino, since: 1_000 },
    ]);
  });

  it('passes an fd as a new number to the same buffer (SCM_RIGHTS)', () => {
    const { k, trainer, loader, buf, loaderFd } = setup();
    expect(loaderFd).toBe(3);
    expect(k.process(loader)?.fds).toEqual([{ fd: 3, kind: 'dmabuf', ino: buf.ino, since: 1_000 }]);
    expect(k.passFd(trainer, buf.fd, trainer)).toBe(5);
    expect(k.buffer(buf.ino)?.fds.map((f) => [f.pid, f.fd])).toEqual([
      [trainer, 4],
      [trainer, 5],
      [loader, 3],
    ]);
  });

  it('refuses passing from or to an unknown process, or an unknown fd', () => {
    const { k, trainer, buf } = setup();
    expectRefused(
      k,
      () => k.passFd(trainer, buf.fd, 999),
      UnknownProcessError,
      'no process with pid 999 (never spawned, or already exited)',
    );
    expectRefused(k, () => k.passFd(999, buf.fd, trainer), UnknownProcessError, 'pid 999');
    expectRefused(
      k,
      () => k.passFd(trainer, 42, trainer),
      UnknownFdError,
      'pid 100 has no open fd 42',
    );
  });

  it('tells a double close from a bad fd, and forgets the close when the number is reused', () => {
    const { k, trainer, devFd } = setup();
    expect(k.close(trainer, devFd)).toEqual({ released: null });
    expectRefused(
      k,
      () => k.close(trainer, devFd),
      DoubleCloseError,
      'pid 100 closed fd 3 twice: it was already closed and has not been reused',
    );
    expectRefused(k, () => k.close(trainer, 9), UnknownFdError, 'pid 100 has no open fd 9');
    expectRefused(k, () => k.close(999, 3), UnknownProcessError, 'pid 999');
    expect(k.openDevice(trainer, 'hl0', 'A')).toBe(devFd);
    expect(k.close(trainer, devFd)).toEqual({ released: null });
  });

  it('releases a buffer with its last reference', () => {
    const { k, trainer, loader, buf, loaderFd } = setup();
    expect(k.close(trainer, buf.fd)).toEqual({ released: null });
    expect(k.buffer(buf.ino)).toBeDefined();
    expect(k.close(loader, loaderFd)).toEqual({ released: buf.ino });
    expect(k.buffer(buf.ino)).toBeUndefined();
    expect(k.buffers()).toEqual([]);
  });

  it('exit closes exactly that process fds and detaches exactly its attachments', () => {
    const { k, trainer, loader, buf, loaderFd } = setup('dynamic');
    const mine = k.attach(loader, loaderFd, 'rdma-mr', 'nic0');
    const theirs = k.attach(trainer, buf.fd, 'mmap', 'view');
    const report = k.exit(loader);
    expect(report).toEqual({
      pid: loader,
      closedFds: [3],
      detached: [{ ...mine, state: 'detached' }],
      released: [],
    });
    expect(k.process(loader)).toBeUndefined();
    expect(k.attachment(mine.id)).toBeUndefined();
    expect(k.attachment(theirs.id)).toEqual(theirs);
    expect(k.process(trainer)?.fds.map((f) => f.fd)).toEqual([3, 4]);
    expect(k.exit(trainer)).toEqual({
      pid: trainer,
      closedFds: [3, 4],
      detached: [{ ...theirs, state: 'detached' }],
      released: [buf.ino],
    });
    expectRefused(k, () => k.exit(trainer), UnknownProcessError, `pid ${trainer}`);
  });
});

describe('ownership', () => {
  it('opens the device only for its current owner, bound to that context', () => {
    const { k, trainer } = setup();
    expectRefused(
      k,
      () => k.openDevice(trainer, 'hl0', 'B'),
      NotOwnerError,
      'device hl0 is owned by A at epoch 1: pid 100 (team-a/trainer-0) cannot open it for B',
    );
    k.drop('hl0');
    expectRefused(
      k,
      () => k.openDevice(trainer, 'hl0', 'A'),
      NotOwnerError,
      'device hl0 has no owner (epoch 1): pid 100',
    );
  });

  it('acquire is idempotent for the same owner and epoch', () => {
    const { k } = setup();
    const before = JSON.stringify(k);
    expect(k.acquire('hl0', 'A', 1)).toEqual({
      device: 'hl0',
      owner: 'A',
      epoch: 1,
      changed: false,
    });
    expect(JSON.stringify(k)).toBe(before);
  });

  it('acquire refuses a lower or already held epoch', () => {
    const { k } = setup('dynamic');
    k.drop('hl0', { epoch: 3 });
    expectRefused(
      k,
      () => k.acquire('hl0', 'B', 2),
      StaleEpochError,
      'device hl0 cannot be acquired at epoch 2: it is at epoch 3 and never accepts a lower or already used epoch',
    );
    // Epoch 3 was only a "no owner" assignment, so an owner may take it.
    expect(k.acquire('hl0', 'B', 3).changed).toBe(true);
    k.drop('hl0');
    expectRefused(k, () => k.acquire('hl0', 'C', 3), StaleEpochError, 'at epoch 3');
    expectRefused(k, () => k.acquire('hl0', 'B', 3), StaleEpochError, 'at epoch 3');
    expectRefused(k, () => k.acquire('hl0', 'B', -1), InvalidArgumentError, 'epoch must be');
    expectRefused(k, () => k.acquire('hl0', '', 4), InvalidArgumentError, 'owner must be');
  });

  it('acquire refuses while another owner is current: drop first', () => {
    const { k } = setup();
    expectRefused(
      k,
      () => k.acquire('hl0', 'B', 2),
      OwnerStillCurrentError,
      'device hl0 cannot be acquired by B at epoch 2: it is still owned by A at epoch 1; drop that owner first',
    );
    expectRefused(
      k,
      () => k.acquire('hl0', 'A', 2),
      OwnerStillCurrentError,
      'drop that owner first',
    );
  });

  it('drop refuses a lower epoch and is idempotent on a free device', () => {
    const { k } = setup('revocable');
    expectRefused(
      k,
      () => k.drop('hl0', { epoch: 0 }),
      StaleEpochError,
      'cannot be dropped at epoch 0',
    );
    k.drop('hl0');
    const again = k.drop('hl0');
    expect(again).toMatchObject({ previousOwner: null, revoked: [], revokedFds: [], epoch: 1 });
    expect(k.drop('hl0', { epoch: 5 }).epoch).toBe(5);
    expect(k.device('hl0')).toMatchObject({ owner: null, epoch: 5 });
  });

  it('names every pin in an operator-readable refusal', () => {
    let clock = 0;
    const k = new Kernel({ now: () => clock });
    k.addDevice({ name: 'hl0', memoryBytes: GiB, profile: 'dynamic' });
    k.acquire('hl0', 'team-a/tenant-a', 3);
    const trainer = k.spawn({ comm: 'trainer', label: { namespace: 'team-a', name: 'trainer-0' } });
    const loader = k.spawn({
      comm: 'loader',
      pid: 4711,
      label: { namespace: 'team-io', name: 'loader-0' },
    });
    const devFd = k.openDevice(trainer.pid, 'hl0', 'team-a/tenant-a');
    for (let i = 0; i < 11; i++) {
      k.close(trainer.pid, k.exportBuffer(trainer.pid, devFd, { offset: 0, size: 1 }).fd);
    }
    const buf = k.exportBuffer(trainer.pid, devFd, { offset: 0, size: 1024, name: 'weights' });
    clock = 7_000;
    k.attach(loader.pid, k.passFd(trainer.pid, buf.fd, loader.pid), 'rdma-mr', 'nic0');
    k.drop('hl0');
    const err = expectRefused(
      k,
      () => k.acquire('hl0', 'team-b/tenant-b', 4),
      DevicePinnedError,
      /^device hl0 cannot be acquired at epoch 4: buffer weights \(ino 12\) is pinned by rdma-mr attachment nic0 held by pid 4711 \(team-io\/loader-0\)$/,
    );
    expect((err as DevicePinnedError).pins).toEqual([
      {
        device: 'hl0',
        owner: 'team-a/tenant-a',
        epoch: 3,
        ino: 12,
        buffer: 'weights',
        kind: 'rdma-mr',
        attachment: 'nic0',
        attachmentId: 1,
        fd: null,
        pid: 4711,
        comm: 'loader',
        holder: { namespace: 'team-io', name: 'loader-0' },
        since: 7_000,
      },
    ]);
    expect(k.pins('hl0')).toEqual((err as DevicePinnedError).pins);
  });

  it('describes a hidden holder and an unnamed buffer', () => {
    const k = new Kernel({ now: () => 0 });
    k.addDevice({ name: 'hl0', memoryBytes: 10 });
    k.acquire('hl0', 'A', 1);
    const p = k.spawn({ comm: 'ghost', label: null });
    const b = k.exportBuffer(p.pid, k.openDevice(p.pid, 'hl0', 'A'), { offset: 0, size: 10 });
    const [pin] = k.drop('hl0').pins;
    expect(pin && describePin(pin)).toBe(
      `buffer ino ${b.ino} is pinned by fd ${b.fd} held by pid ${p.pid} (comm ghost, no pod)`,
    );
  });
});

describe('exports', () => {
  it('exports a range with a fresh inode and the exporter holding its first fd', () => {
    const { k, trainer, devFd, buf } = setup();
    const second = k.exportBuffer(trainer, devFd, { offset: GiB, size: 3 * GiB });
    expect(second.ino).toBe(buf.ino + 1);
    expect(k.buffer(second.ino)).toEqual({
      ino: second.ino,
      name: null,
      device: 'hl0',
      offset: GiB,
      size: 3 * GiB,
      owner: 'A',
      epoch: 1,
      exporterPid: trainer,
      state: 'active',
      since: 1_000,
      fds: [{ pid: trainer, fd: second.fd, since: 1_000 }],
      attachments: [],
    });
  });

  it('refuses a range beyond device memory and a malformed range', () => {
    const { k, trainer, devFd } = setup();
    expectRefused(
      k,
      () => k.exportBuffer(trainer, devFd, { offset: 3 * GiB, size: GiB + 1 }),
      ExportRangeError,
      `cannot export ${GiB + 1} bytes at offset ${3 * GiB} from device hl0: the range ends at ${4 * GiB + 1}, beyond its ${4 * GiB} bytes of memory`,
    );
    expectRefused(
      k,
      () => k.exportBuffer(trainer, devFd, { offset: 0, size: 0 }),
      InvalidArgumentError,
      'size must be an integer >= 1, got 0',
    );
    expectRefused(
      k,
      () => k.exportBuffer(trainer, devFd, { offset: -1, size: 1 }),
      InvalidArgumentError,
      'offset must be',
    );
    expectRefused(
      k,
      () => k.exportBuffer(trainer, devFd, { offset: 0.5, size: 1 }),
      InvalidArgumentError,
      'offset must be',
    );
  });

  it('refuses exporting through a dma-buf fd or an unknown fd', () => {
    const { k, trainer, buf } = setup();
    expectRefused(
      k,
      () => k.exportBuffer(trainer, buf.fd, { offset: 0, size: 1 }),
      WrongFdKindError,
      'fd 4 of pid 100 is not a device fd',
    );
    expectRefused(
      k,
      () => k.exportBuffer(trainer, 77, { offset: 0, size: 1 }),
      UnknownFdError,
      'fd 77',
    );
  });

  it('refuses exporting through a device fd whose owner context was torn down', () => {
    const { k, trainer, devFd } = setup('dynamic');
    k.drop('hl0');
    expect(k.process(trainer)?.fds[0]).toMatchObject({ fd: devFd, revoked: true });
    expectRefused(
      k,
      () => k.exportBuffer(trainer, devFd, { offset: 0, size: 1 }),
      NotOwnerError,
      'device hl0 has no owner (epoch 1): fd 3 of pid 100 was opened under A at epoch 1 and no longer reaches it',
    );
    k.acquire('hl0', 'A', 2);
    expectRefused(
      k,
      () => k.exportBuffer(trainer, devFd, { offset: 0, size: 1 }),
      NotOwnerError,
      'device hl0 is owned by A at epoch 2: fd 3 of pid 100 was opened under A at epoch 1',
    );
  });
});

describe('attachments', () => {
  it('attaches through an fd the process holds; the attachment outlives the fd', () => {
    const { k, loader, loaderFd, buf, trainer, tick } = setup();
    tick(250);
    const att = k.attach(loader, loaderFd, 'rdma-mr', 'nic0');
    expect(att).toEqual({
      id: 1,
      ino: buf.ino,
      buffer: 'weights',
      device: 'hl0',
      name: 'nic0',
      kind: 'rdma-mr',
      pid: loader,
      state: 'attached',
      since: 1_250,
    });
    k.close(loader, loaderFd);
    k.close(trainer, buf.fd);
    expect(k.buffer(buf.ino)?.attachments).toEqual([att]);
    expect(k.process(loader)?.attachments).toEqual([att.id]);
    expect(k.detach(loader, att.id)).toEqual({
      attachment: { ...att, state: 'detached' },
      released: buf.ino,
    });
    expect(k.buffer(buf.ino)).toBeUndefined();
  });

  it('refuses mmap on a static exporter (no CPU mapping) but accepts it on others', () => {
    const { k, trainer, buf } = setup('static');
    expectRefused(
      k,
      () => k.attach(trainer, buf.fd, 'mmap', 'view'),
      MmapUnsupportedError,
      'cannot mmap buffer weights (ino 1): device hl0 has a static exporter with no CPU mapping',
    );
    const dyn = setup('dynamic');
    expect(dyn.k.attach(dyn.trainer, dyn.buf.fd, 'mmap', 'view').state).toBe('attached');
  });

  it('refuses a duplicate importer name, a device fd, a bad kind and a revoked buffer', () => {
    const { k, trainer, loader, loaderFd, devFd, buf } = setup('revocable');
    k.attach(loader, loaderFd, 'pinned', 'nic0');
    expectRefused(
      k,
      () => k.attach(trainer, buf.fd, 'dynamic', 'nic0'),
      AttachmentExistsError,
      'buffer weights (ino 1) already has an attachment named nic0',
    );
    expectRefused(
      k,
      () => k.attach(trainer, devFd, 'dynamic', 'x'),
      WrongFdKindError,
      'fd 3 of pid 100 is not a dma-buf fd',
    );
    expectRefused(
      k,
      () => k.attach(trainer, buf.fd, 'tcp' as 'mmap', 'x'),
      InvalidArgumentError,
      'importer kind must be one of dynamic, mmap, rdma-mr, pinned',
    );
    k.drop('hl0');
    expectRefused(
      k,
      () => k.attach(trainer, buf.fd, 'dynamic', 'late'),
      BufferRevokedError,
      'buffer weights (ino 1) cannot take new importers: its owner A (epoch 1) no longer owns device hl0',
    );
  });

  it('detach refuses an unknown attachment and one held by another process', () => {
    const { k, trainer, loader, loaderFd } = setup();
    const att = k.attach(loader, loaderFd, 'rdma-mr', 'nic0');
    expectRefused(
      k,
      () => k.detach(trainer, att.id),
      NotHolderError,
      `attachment nic0 (id ${att.id}) belongs to pid ${loader}, not pid ${trainer}`,
    );
    expectRefused(
      k,
      () => k.detach(loader, 99),
      UnknownAttachmentError,
      'no attachment with id 99 (never made, or already detached)',
    );
    k.detach(loader, att.id);
    expectRefused(k, () => k.detach(loader, att.id), UnknownAttachmentError, `id ${att.id}`);
  });
});

describe('drop revokes per profile', () => {
  function handoff(profile: ExporterProfile) {
    const s = setup(profile);
    const { k, trainer, loader, loaderFd, buf } = s;
    const atts = {
      dynamic: k.attach(loader, loaderFd, 'dynamic', 'p2p'),
      mmap: profile === 'static' ? null : k.attach(trainer, buf.fd, 'mmap', 'view'),
      rdma: k.attach(loader, loaderFd, 'rdma-mr', 'nic0'),
      pinned: k.attach(trainer, buf.fd, 'pinned', 'legacy'),
    };
    return { ...s, atts, report: k.drop('hl0') };
  }

  it('static: revokes nothing but the context; every fd and attachment pins', () => {
    const { k, report, trainer, loader } = handoff('static');
    expect(report.previousOwner).toBe('A');
    expect(report.revokedFds).toEqual([{ pid: trainer, fd: 3 }]);
    expect(report.revoked).toEqual([]);
    expect(report.pins.map((p) => [p.kind, p.pid, p.fd ?? p.attachment])).toEqual([
      ['fd', trainer, 4],
      ['fd', loader, 3],
      ['pinned', trainer, 'legacy'],
      ['dynamic', loader, 'p2p'],
      ['rdma-mr', loader, 'nic0'],
    ]);
    expect(k.buffers('hl0').map((b) => b.state)).toEqual(['pinned']);
  });

  it('dynamic: revokes dynamic and mmap; rdma-mr and pinned pin; bare fds do not', () => {
    const { k, report, atts } = handoff('dynamic');
    expect(report.revoked.map((r) => r.name)).toEqual(['p2p', 'view']);
    expect(report.pins.map((p) => p.attachment)).toEqual(['legacy', 'nic0']);
    expect(k.attachment(atts.dynamic.id)?.state).toBe('revoked');
    expect(k.attachment(atts.rdma.id)?.state).toBe('pinned');
  });

  it('revocable: only legacy pinned attachments pin', () => {
    const { k, report, atts, trainer, loader, loaderFd } = handoff('revocable');
    expect(report.revoked.map((r) => r.name)).toEqual(['p2p', 'view', 'nic0']);
    expect(report.pins.map((p) => p.attachment)).toEqual(['legacy']);
    expectRefused(k, () => k.acquire('hl0', 'B', 2), DevicePinnedError, 'pinned attachment legacy');
    k.detach(trainer, atts.pinned.id);
    expect(k.buffers('hl0').map((b) => b.state)).toEqual(['revoked']);
    expect(k.acquire('hl0', 'B', 2).changed).toBe(true);
    // The old buffer lingers, revoked, until its holders let go; it never pins the new owner.
    expect(k.pins('hl0')).toEqual([]);
    expect(k.close(loader, loaderFd).released).toBeNull();
  });
});

describe('snapshot', () => {
  it('round-trips mid-handoff and keeps behaving identically', () => {
    const { k, loader, loaderFd, trainer, buf } = setup('dynamic');
    k.attach(loader, loaderFd, 'rdma-mr', 'nic0');
    k.attach(trainer, buf.fd, 'mmap', 'view');
    k.close(trainer, 3);
    k.drop('hl0');
    const json = JSON.stringify(k);
    const restored = Kernel.fromJSON(json, { now: () => 1_000 });
    expect(JSON.stringify(restored)).toBe(json);
    expect(restored.pins('hl0')).toEqual(k.pins('hl0'));
    expect(Kernel.fromJSON(k.toJSON()).toJSON()).toEqual(k.toJSON());
    for (const kernel of [k, restored]) {
      expect(() => kernel.close(trainer, 3)).toThrow(DoubleCloseError);
      expect(() => kernel.acquire('hl0', 'B', 2)).toThrow(DevicePinnedError);
      kernel.exit(loader);
      kernel.acquire('hl0', 'B', 2);
      kernel.spawn({ comm: 'next' });
    }
    expect(JSON.stringify(restored)).toBe(JSON.stringify(k));
  });

  it('refuses a foreign version and broken references with the path', () => {
    const { k } = setup();
    const snap = k.toJSON();
    expect(() => Kernel.fromJSON({ ...snap, version: 2 })).toThrow(
      'kernel snapshot is invalid at $.version: expected 1, got 2',
    );
    expect(() =>
      Kernel.fromJSON({ ...snap, buffers: snap.buffers.map((b) => ({ ...b, device: 'gone' })) }),
    ).toThrow('unknown device gone');
    expect(() => Kernel.fromJSON({ ...snap, processes: [], attachments: [] })).toThrow(
      'no fd or attachment holds it',
    );
    expect(() =>
      Kernel.fromJSON({ ...snap, devices: snap.devices.map((d) => ({ ...d, profile: 'x' })) }),
    ).toThrow('$.devices[0].profile: expected one of static, dynamic, revocable');
    expect(() => Kernel.fromJSON('null')).toThrow('at $: expected an object');
  });
});
