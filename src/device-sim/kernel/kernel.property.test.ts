// Property tests: random operation sequences against the kernel, checked against the invariants
// of docs/design.md section 1 and an independent oracle computed from the plain JSON snapshot.
// Set KERNEL_PROPERTY_SEED to replay a run; fast-check prints the seed and path on failure.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DevicePinnedError,
  Kernel,
  KernelError,
  type AcquireResult,
  type DropReport,
  type ExitReport,
  type ExporterProfile,
  type ImporterKind,
  type KernelOptions,
  type KernelSnapshot,
  type Pin,
} from './index.ts';

const seed = Number(process.env.KERNEL_PROPERTY_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`kernel property tests: seed ${seed} (replay with KERNEL_PROPERTY_SEED=${seed})`);
const params = { seed, numRuns: 1000 };

// The oracle's own copy of the profile table (docs/design.md section 1), not the kernel's.
const REVOCABLE: Record<ExporterProfile, readonly ImporterKind[]> = {
  static: [],
  dynamic: ['dynamic', 'mmap'],
  revocable: ['dynamic', 'mmap', 'rdma-mr'],
};
const DEVICES = [
  { name: 'hl0', profile: 'static' },
  { name: 'gpu0', profile: 'dynamic' },
  { name: 'xe0', profile: 'revocable' },
] as const;
const OWNERS = ['A', 'B', 'C'] as const;
const KINDS = ['dynamic', 'mmap', 'rdma-mr', 'pinned'] as const;
const MEMORY = 64;
const BOGUS_PID = 9999;

// Operations pick their targets by index into whatever exists when they run (an fd of the right
// kind, a live process, an attachment), so most calls hit something real and build up exports,
// importers and pins; about one in ten deliberately misses.
type Op =
  | { op: 'spawn'; label: number }
  | { op: 'open'; p: number; d: number; owner: number }
  | { op: 'export'; t: number; offset: number; size: number }
  | { op: 'pass'; t: number; q: number }
  | { op: 'close'; t: number }
  | { op: 'attach'; t: number; kind: number; name: number }
  | { op: 'detach'; p: number; a: number }
  | { op: 'exit'; p: number }
  | { op: 'drop'; d: number; bump: number }
  | { op: 'acquire'; d: number; owner: number; delta: number };

const sel = fc.nat(1000);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant('spawn'), label: fc.nat(3) }) },
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('open'), p: sel, d: sel, owner: fc.nat(5) }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('export'),
      t: sel,
      offset: fc.nat(MEMORY - 1),
      size: fc.integer({ min: 1, max: 40 }),
    }),
  },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('pass'), t: sel, q: sel }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('close'), t: sel }) },
  {
    weight: 8,
    arbitrary: fc.record({ op: fc.constant('attach'), t: sel, kind: fc.nat(3), name: fc.nat(3) }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('detach'), p: sel, a: sel }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('exit'), p: sel }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('drop'), d: sel, bump: fc.nat(3) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('acquire'),
      d: sel,
      owner: fc.nat(2),
      delta: fc.oneof(
        { weight: 6, arbitrary: fc.constant(1) },
        { weight: 1, arbitrary: fc.integer({ min: -1, max: 2 }) },
      ),
    }),
  },
);
// What a node agent does on a new spec.owner: drop the old owner, then try the new one.
const handoffArb: fc.Arbitrary<Op[]> = fc
  .record({ d: sel, owner: fc.nat(2) })
  .map(({ d, owner }) => [
    { op: 'drop', d, bump: 0 },
    { op: 'acquire', d, owner, delta: 1 },
  ]);
const opsArb: fc.Arbitrary<Op[]> = fc
  .array(
    fc.oneof(
      { weight: 12, arbitrary: opArb.map((o) => [o]) },
      { weight: 1, arbitrary: handoffArb },
    ),
    { minLength: 1, maxLength: 70, size: 'max' },
  )
  .map((groups) => groups.flat());

function pick<T>(items: readonly T[], i: number): T | undefined {
  return items.length === 0 ? undefined : items[i % items.length];
}

const misses = (i: number): boolean => i % 10 === 9;

/** A live pid, or now and then one that never existed. */
function pidOf(k: Kernel, i: number): number {
  if (misses(i)) return BOGUS_PID;
  return pick(k.processes(), i)?.pid ?? BOGUS_PID;
}

/** An open (pid, fd) of the wanted kind anywhere in the kernel; now and then any pid with an fd
 *  number it may have closed, never had, or holds with the other kind. */
function fdOf(k: Kernel, i: number, kind?: 'device' | 'dmabuf'): { pid: number; fd: number } {
  const procs = k.processes();
  if (misses(i)) return { pid: pick(procs, i)?.pid ?? BOGUS_PID, fd: 3 + (i % 4) };
  const pairs = procs.flatMap((p) =>
    p.fds
      .filter((f) => kind === undefined || f.kind === kind)
      .map((f) => ({ pid: p.pid, fd: f.fd })),
  );
  return pick(pairs, i) ?? { pid: pick(procs, i)?.pid ?? BOGUS_PID, fd: 3 };
}

function deviceOf(i: number): (typeof DEVICES)[number] {
  return DEVICES[i % DEVICES.length] as (typeof DEVICES)[number];
}

/** Three devices, one per profile, owned by A at epoch 1; three processes: two pods and a
 *  hidden holder. */
function newKernel(options?: KernelOptions): Kernel {
  let clock = 0;
  let pid = 100;
  // The clock moves on every reading, so `since` values tell operations apart.
  const k = new Kernel(options ?? { now: () => (clock += 10), allocatePid: () => pid++ });
  for (const d of DEVICES) k.addDevice({ name: d.name, memoryBytes: MEMORY, profile: d.profile });
  k.spawn({ comm: 'trainer', label: { namespace: 'team-a', name: 'trainer-0' } });
  k.spawn({ comm: 'loader', label: { namespace: 'team-io', name: 'loader-0' } });
  k.spawn({ comm: 'hidden', label: null });
  for (const d of DEVICES) k.acquire(d.name, 'A', 1);
  return k;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: KernelError };

function apply(k: Kernel, o: Op): Outcome {
  try {
    return { ok: true, value: applyRaw(k, o) };
  } catch (error) {
    // Anything but a typed refusal is a bug in the model.
    if (!(error instanceof KernelError)) throw error;
    return { ok: false, error };
  }
}

function applyRaw(k: Kernel, o: Op): unknown {
  switch (o.op) {
    case 'spawn': {
      const label = o.label === 0 ? null : { namespace: `ns${o.label}`, name: `pod${o.label}` };
      return k.spawn({ comm: `c${o.label}`, label });
    }
    case 'open': {
      const dev = deviceOf(o.d);
      const current = k.device(dev.name)?.owner;
      const owner = o.owner < 4 && current ? current : (OWNERS[o.owner % 3] ?? 'A');
      return k.openDevice(pidOf(k, o.p), dev.name, owner);
    }
    case 'export': {
      const { pid, fd } = fdOf(k, o.t, 'device');
      return k.exportBuffer(pid, fd, { offset: o.offset, size: o.size });
    }
    case 'pass': {
      const { pid, fd } = fdOf(k, o.t);
      return k.passFd(pid, fd, pidOf(k, o.q));
    }
    case 'close': {
      const { pid, fd } = fdOf(k, o.t);
      return k.close(pid, fd);
    }
    case 'attach': {
      const { pid, fd } = fdOf(k, o.t, 'dmabuf');
      return k.attach(pid, fd, KINDS[o.kind] ?? 'dynamic', `imp${o.name}`);
    }
    case 'detach': {
      const atts = k.buffers().flatMap((b) => b.attachments);
      const att = pick(atts, o.a);
      // Mostly the holder detaches; sometimes someone else tries.
      const pid = att && o.p % 4 !== 3 ? att.pid : pidOf(k, o.p);
      return k.detach(pid, att?.id ?? 1);
    }
    case 'exit':
      return k.exit(pidOf(k, o.p));
    case 'drop': {
      const dev = deviceOf(o.d);
      const epoch = k.device(dev.name)?.epoch ?? 0;
      return k.drop(dev.name, o.bump === 0 ? {} : { epoch: epoch + o.bump - 1 });
    }
    case 'acquire': {
      const dev = deviceOf(o.d);
      const epoch = k.device(dev.name)?.epoch ?? 0;
      return k.acquire(dev.name, OWNERS[o.owner] ?? 'A', epoch + o.delta);
    }
  }
}

/** One line per pin, from the snapshot alone: what the profile table says must still pin. */
function oraclePins(s: KernelSnapshot, device: string, allDropped: boolean): string[] {
  const dev = s.devices.find((d) => d.name === device);
  if (!dev) throw new Error(`oracle: no device ${device}`);
  const out: string[] = [];
  for (const b of s.buffers) {
    if (b.device !== device) continue;
    if (!allDropped && dev.owner === b.owner && dev.epoch === b.epoch) continue;
    if (dev.profile === 'static') {
      for (const p of s.processes) {
        for (const f of p.fds) {
          if (f.kind === 'dmabuf' && f.ino === b.ino) {
            out.push(`fd ino=${b.ino} pid=${p.pid} fd=${f.fd} ${labelOf(p.label)}`);
          }
        }
      }
    }
    for (const a of s.attachments) {
      if (a.ino !== b.ino || REVOCABLE[dev.profile].includes(a.kind)) continue;
      const holder = s.processes.find((p) => p.pid === a.pid);
      out.push(`${a.kind} ino=${b.ino} pid=${a.pid} id=${a.id} ${labelOf(holder?.label ?? null)}`);
    }
  }
  return out.sort();
}

function labelOf(l: { namespace: string; name: string } | null): string {
  return l ? `${l.namespace}/${l.name}` : '-';
}

function pinLines(pins: readonly Pin[]): string[] {
  return pins
    .map((p) =>
      p.kind === 'fd'
        ? `fd ino=${p.ino} pid=${p.pid} fd=${p.fd} ${labelOf(p.holder)}`
        : `${p.kind} ino=${p.ino} pid=${p.pid} id=${p.attachmentId} ${labelOf(p.holder)}`,
    )
    .sort();
}

/** Run `ops`, calling `check` after each with the outcome and, for the ops `snapshotBefore`
 *  selects (snapshots cost more than the operations), the state before it. */
function run(
  ops: readonly Op[],
  snapshotBefore: (o: Op) => boolean,
  check: (o: Op, before: KernelSnapshot | null, outcome: Outcome, k: Kernel) => void,
): void {
  const k = newKernel();
  for (const o of ops) {
    const before = snapshotBefore(o) ? k.toJSON() : null;
    check(o, before, apply(k, o), k);
  }
}

const always = (): boolean => true;

/** A cheap assertion for checks that run after every operation (expect() is costly there). */
function invariant(ok: boolean, why: () => string): void {
  if (!ok) throw new Error(`invariant broken: ${why()}`);
}
const only =
  (...names: Op['op'][]) =>
  (o: Op): boolean =>
    names.includes(o.op);

describe('kernel properties', () => {
  it('keeps at most one owner, and one live owner context, per device', () => {
    fc.assert(
      fc.property(opsArb, (ops) => {
        run(ops, only('acquire'), (o, before, outcome, k) => {
          // A grant only ever lands on a free device: there is never a second owner to evict.
          if (o.op === 'acquire' && outcome.ok && (outcome.value as AcquireResult).changed) {
            const name = (outcome.value as AcquireResult).device;
            expect(before?.devices.find((d) => d.name === name)?.owner).toBeNull();
          }
          // What the kernel reports as live (active buffers, unrevoked device fds) must all
          // belong to the device's current owner context.
          const live = new Map<string, Set<string>>();
          const see = (device: string, ctx: string) =>
            live.set(device, (live.get(device) ?? new Set()).add(ctx));
          for (const b of k.buffers())
            if (b.state === 'active') see(b.device, `${b.owner}@${b.epoch}`);
          for (const p of k.processes()) {
            for (const f of p.fds)
              if (f.kind === 'device' && !f.revoked) see(f.device, `${f.owner}@${f.epoch}`);
          }
          for (const dev of k.devices()) {
            const ctxs = [...(live.get(dev.name) ?? [])];
            const current = `${dev.owner}@${dev.epoch}`;
            invariant(
              ctxs.length === 0 || (ctxs.length === 1 && ctxs[0] === current),
              () => `${dev.name} at ${current} has live contexts ${ctxs.join(', ')}`,
            );
          }
        });
      }),
      params,
    );
  });

  it('never grants while a pin from an earlier epoch survives, and names exactly those pins', () => {
    fc.assert(
      fc.property(opsArb, (ops) => {
        run(ops, only('acquire'), (o, before, outcome, k) => {
          if (o.op !== 'acquire' || !before) return;
          const name = deviceOf(o.d).name;
          const expected = oraclePins(before, name, false);
          if (outcome.ok && (outcome.value as { changed: boolean }).changed) {
            expect(expected).toEqual([]);
            expect(k.pins(name)).toEqual([]);
          }
          if (!outcome.ok && outcome.error instanceof DevicePinnedError) {
            expect(pinLines(outcome.error.pins)).toEqual(expected);
            expect(expected.length).toBeGreaterThan(0);
          }
        });
      }),
      params,
    );
  });

  it('drop leaves nothing the profile can revoke and reports exactly the pins it cannot', () => {
    fc.assert(
      fc.property(opsArb, (ops) => {
        run(ops, only('drop'), (o, before, outcome, k) => {
          if (o.op !== 'drop' || !before || !outcome.ok) return;
          const report = outcome.value as DropReport;
          const dev = before.devices.find((d) => d.name === report.device);
          if (!dev) throw new Error('dropped an unknown device');
          const revocable = REVOCABLE[dev.profile];
          const wasCurrent = new Set(
            before.buffers
              .filter(
                (b) => b.device === dev.name && b.owner === dev.owner && b.epoch === dev.epoch,
              )
              .map((b) => b.ino),
          );
          const expectRevoked = before.attachments
            .filter((a) => wasCurrent.has(a.ino) && revocable.includes(a.kind))
            .map((a) => a.id);
          expect(report.revoked.map((r) => r.id)).toEqual(expectRevoked);
          expect(pinLines(report.pins)).toEqual(oraclePins(before, dev.name, true));
          expect(pinLines(k.pins(dev.name))).toEqual(pinLines(report.pins));
          for (const b of k.buffers(dev.name)) {
            for (const a of b.attachments) {
              expect(a.state).toBe(revocable.includes(a.kind) ? 'revoked' : 'pinned');
            }
          }
          for (const p of k.processes()) {
            for (const f of p.fds)
              if (f.kind === 'device' && f.device === dev.name) expect(f.revoked).toBe(true);
          }
        });
      }),
      params,
    );
  });

  it('process exit releases exactly that process fds and attachments', () => {
    fc.assert(
      fc.property(opsArb, (ops) => {
        run(ops, only('exit'), (o, before, outcome, k) => {
          if (o.op !== 'exit' || !before || !outcome.ok) return;
          const report = outcome.value as ExitReport;
          const after = k.toJSON();
          const gone = before.processes.find((p) => p.pid === report.pid);
          if (!gone) throw new Error('exited an unknown process');
          expect(report.closedFds).toEqual(gone.fds.map((f) => f.fd));
          expect(report.detached.map((a) => a.id)).toEqual(
            before.attachments.filter((a) => a.pid === gone.pid).map((a) => a.id),
          );
          expect(after.processes).toEqual(before.processes.filter((p) => p.pid !== gone.pid));
          expect(after.attachments).toEqual(before.attachments.filter((a) => a.pid !== gone.pid));
          const stillHeld = new Set([
            ...after.processes.flatMap((p) =>
              p.fds.flatMap((f) => (f.kind === 'dmabuf' ? [f.ino] : [])),
            ),
            ...after.attachments.map((a) => a.ino),
          ]);
          expect(after.buffers).toEqual(before.buffers.filter((b) => stillHeld.has(b.ino)));
          expect(report.released).toEqual(
            before.buffers.filter((b) => !stillHeld.has(b.ino)).map((b) => b.ino),
          );
          expect(after.devices).toEqual(before.devices);
        });
      }),
      params,
    );
  });

  it('never lowers an epoch, and an epoch names at most one owner', () => {
    fc.assert(
      fc.property(opsArb, (ops) => {
        const owners = new Map<string, string>();
        const last = new Map<string, number>();
        run(
          ops,
          () => false,
          (_o, _before, _outcome, k) => {
            for (const dev of k.devices()) {
              const prev = last.get(dev.name) ?? 0;
              invariant(
                dev.epoch >= prev,
                () => `${dev.name} went from epoch ${prev} to ${dev.epoch}`,
              );
              last.set(dev.name, dev.epoch);
              if (dev.owner === null) continue;
              const key = `${dev.name}@${dev.epoch}`;
              const first = owners.get(key) ?? dev.owner;
              invariant(first === dev.owner, () => `${key} named ${first}, then ${dev.owner}`);
              owners.set(key, dev.owner);
            }
          },
        );
      }),
      params,
    );
  });

  it('a refused call changes nothing', () => {
    fc.assert(
      fc.property(opsArb, (ops) => {
        run(ops, always, (o, before, outcome, k) => {
          // Snapshots are canonical, so equal text means equal state.
          if (!outcome.ok && JSON.stringify(k) !== JSON.stringify(before)) {
            expect(k.toJSON(), `${o.op} refused with ${outcome.error.code}`).toEqual(before);
          }
        });
      }),
      params,
    );
  });

  it('round-trips through JSON at any point and carries on identically', () => {
    fc.assert(
      fc.property(opsArb, fc.nat(100), (ops, cut) => {
        // Both kernels read one shared clock and use their own (persisted) pid counter.
        let t = 0;
        const now = () => t;
        const k = newKernel({ now });
        ops.slice(0, cut).forEach((o) => {
          t += 10;
          apply(k, o);
        });
        const restored = Kernel.fromJSON(JSON.stringify(k), { now });
        expect(restored.toJSON()).toEqual(k.toJSON());
        for (const o of ops.slice(cut)) {
          t += 10;
          const a = apply(k, o);
          const b = apply(restored, o);
          invariant(a.ok === b.ok, () => `${o.op} diverged after restore`);
          if (JSON.stringify(restored) !== JSON.stringify(k)) {
            expect(restored.toJSON(), `state after ${o.op}`).toEqual(k.toJSON());
          }
        }
      }),
      params,
    );
  });
});
