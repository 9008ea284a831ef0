// Turning observations into pins, for an observer that cannot revoke anything. Pure.
//
// Linux never says whether an attachment is pinned or revocable, so every reference to an
// earlier owner's memory counts as a pin (the `static` profile's semantics): a buffer belongs to
// the owner epoch under which it first appeared (the ledger remembers it), and once the device
// has moved past that epoch every process still holding the buffer (fd or mapping), every
// process that held it and now has an RDMA MR (an MR keeps a buffer alive after its fd is
// closed, and the MR table cannot say which buffer backs it), and every process of the old owner
// still holding the device node, is a pin. A buffer seen while the device had no owner belongs
// to no lease: it pins whoever comes next. What the pass could not see blocks the device too.
import { z } from 'zod';
import type {
  Pin as KernelPin,
  DeviceInfo,
  ProcessLabel,
} from '../../../device-sim/kernel/index.ts';
import type { NodeObservation, ObservedBuffer, ProcessRef } from './observe.ts';

/** One accelerator as the observer knows it: its device node(s) and its driver's exp_name. */
export interface LinuxDevice {
  readonly name: string;
  readonly paths: readonly string[];
  readonly exporter: string;
}

const Epoch = z.object({ epoch: z.int().min(0), owner: z.string().nullable(), since: z.number() });

/** What the observer must remember across passes and restarts: when each thing first appeared. */
export const Ledger = z.object({
  version: z.literal(1),
  /** By buffer inode: the epoch it first appeared under, per device it belongs to. */
  buffers: z.record(
    z.string(),
    z.object({
      devices: z.record(z.string(), Epoch),
      /** Every process (`pid:startTime`) ever seen holding it: an MR may outlive the fd. */
      seen: z.array(z.string()),
    }),
  ),
  /** By `device pid:startTime`: the epoch a process was first seen holding the device node. */
  deviceHolders: z.record(z.string(), Epoch.extend({ device: z.string() })),
});
export type Ledger = z.infer<typeof Ledger>;

export const emptyLedger = (): Ledger => ({ version: 1, buffers: {}, deviceHolders: {} });

const processKey = (p: Pick<ProcessRef, 'pid' | 'startTime'>) => `${p.pid}:${p.startTime}`;

/** The devices a buffer belongs to: those of its exporter whose node one of its holders has open. */
function devicesOf(
  buffer: ObservedBuffer,
  devices: readonly LinuxDevice[],
  obs: NodeObservation,
): LinuxDevice[] {
  const mine = devices.filter((d) => d.exporter === buffer.exporter);
  if (mine.length <= 1) return mine;
  const holders = new Set(buffer.holders.map(processKey));
  const open = new Set(
    obs.deviceHolders.filter((h) => holders.has(processKey(h))).map((h) => h.device),
  );
  const narrowed = mine.filter((d) => d.paths.some((p) => open.has(p)));
  // Nothing ties it to one device: it counts against each, never against none.
  return narrowed.length > 0 ? narrowed : mine;
}

/**
 * The ledger after one pass: new buffers and device holders recorded at each device's current
 * epoch and owner, those no longer seen forgotten. A buffer is forgotten only when bufinfo was
 * read and lists it no more: without bufinfo an fd-less buffer might still be alive.
 */
export function recordObservation(
  ledger: Ledger,
  obs: NodeObservation,
  devices: readonly LinuxDevice[],
  deviceInfo: (name: string) => DeviceInfo | undefined,
  now: number,
): Ledger {
  const bufinfoRead = !obs.problems.some((p) => p.kind === 'debugfs-unreadable');
  const epochOf = (name: string) => {
    const info = deviceInfo(name);
    return { epoch: info?.epoch ?? 0, owner: info?.owner ?? null, since: now };
  };
  const buffers: Ledger['buffers'] = {};
  for (const b of obs.buffers) {
    const known = ledger.buffers[String(b.inode)];
    const deviceEpochs = { ...known?.devices };
    for (const d of devicesOf(b, devices, obs)) deviceEpochs[d.name] ??= epochOf(d.name);
    buffers[String(b.inode)] = {
      devices: deviceEpochs,
      seen: [...new Set([...(known?.seen ?? []), ...b.holders.map(processKey)])].sort(),
    };
  }
  if (!bufinfoRead) {
    for (const [ino, rec] of Object.entries(ledger.buffers)) buffers[ino] ??= rec;
  }
  const deviceHolders: Ledger['deviceHolders'] = {};
  for (const h of obs.deviceHolders) {
    const d = devices.find((dev) => dev.paths.includes(h.device));
    if (!d) continue;
    const key = `${d.name} ${processKey(h)}`;
    deviceHolders[key] = ledger.deviceHolders[key] ?? { ...epochOf(d.name), device: d.name };
  }
  return { version: 1, buffers, deviceHolders };
}

/** The device cannot be shown free: the pass was incomplete, or references have no holder. */
export interface Blocked {
  readonly reason: 'ObservationIncomplete' | 'UnaccountedReferences';
  readonly message: string;
}

export interface DevicePins {
  readonly pins: readonly KernelPin[];
  readonly blocked: Blocked | undefined;
}

export interface PinInputs {
  readonly ledger: Ledger;
  readonly observation: NodeObservation;
  readonly devices: readonly LinuxDevice[];
  /** The pod of a uid, from the agent's own-node pod cache; undefined = not a pod we know. */
  readonly podOf: (uid: string) => ProcessLabel | undefined;
}

/** Pins on `device` as it is now (`info`: its epoch and owner after this sync's owner change). */
export function devicePins(inputs: PinInputs, device: string, info: DeviceInfo): DevicePins {
  const { ledger, observation: obs } = inputs;
  const pins: KernelPin[] = [];
  const label = (p: ProcessRef): ProcessLabel | null =>
    p.pod ? (inputs.podOf(p.pod.uid) ?? null) : null;
  const stale = (e: z.infer<typeof Epoch>) => e.epoch < info.epoch || e.owner === null;
  const unaccounted: string[] = [];
  for (const b of obs.buffers) {
    const rec = ledger.buffers[String(b.inode)];
    const at = rec?.devices[device];
    if (!rec || !at || !stale(at)) continue;
    const base = {
      device,
      owner: at.owner ?? '',
      epoch: at.epoch,
      ino: b.inode,
      buffer: b.name,
      attachmentId: null,
      since: at.since,
    };
    const before = pins.length;
    for (const h of b.holders) {
      pins.push({
        ...base,
        kind: h.fds.length > 0 ? 'fd' : 'mmap',
        attachment: h.fds.length > 0 ? null : 'cpu-mapping',
        fd: h.fds[0] ?? null,
        pid: h.pid,
        comm: h.comm,
        holder: label(h),
      });
    }
    const holding = new Set(b.holders.map(processKey));
    for (const m of obs.mrHolders) {
      if (holding.has(processKey(m)) || !rec.seen.includes(processKey(m))) continue;
      pins.push({
        ...base,
        kind: 'rdma-mr',
        attachment: 'mr',
        fd: null,
        pid: m.pid,
        comm: m.comm,
        holder: label(m),
      });
    }
    if (pins.length === before && b.count > 0) {
      unaccounted.push(
        `inode ${b.inode}${b.name ? ` (${b.name})` : ''} of epoch ${at.epoch} has ${b.count} reference(s) held by no process the agent can see (an attachment, an fd in flight in a socket, a kernel reference)`,
      );
    }
  }
  for (const [key, at] of Object.entries(ledger.deviceHolders)) {
    if (at.device !== device || at.owner === null || at.epoch >= info.epoch) continue;
    const h = obs.deviceHolders.find((d) => `${device} ${processKey(d)}` === key);
    if (!h) continue;
    pins.push({
      device,
      owner: at.owner,
      epoch: at.epoch,
      ino: 0,
      buffer: h.device,
      kind: 'fd',
      attachment: null,
      attachmentId: null,
      fd: h.fds[0] ?? null,
      pid: h.pid,
      comm: h.comm,
      holder: label(h),
      since: at.since,
    });
  }
  let blocked: Blocked | undefined;
  if (obs.problems.length > 0) {
    blocked = {
      reason: 'ObservationIncomplete',
      message: obs.problems.map((p) => p.message).join('; '),
    };
  } else if (unaccounted.length > 0) {
    blocked = { reason: 'UnaccountedReferences', message: unaccounted.join('; ') };
  }
  return { pins: pins.sort((a, b) => a.pid - b.pid || a.ino - b.ino), blocked };
}
