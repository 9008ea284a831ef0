// The chaos schedule's witness: it watches leases, Accelerators and pods on the first API server
// (the one no fault touches) from before the first handoff, and checks the invariants of
// docs/design.md section 5 as the watch delivers each change: I1 at every lease event, I2 on
// every grant against the device as it was just before, I4 and I5 against the API server's own
// audit log of the replica the product talks to. I3 is checked once the schedule ends.
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { stalePins, type Accelerator, type AcceleratorLease } from '../../src/crds/index.ts';
import { Informer } from '../../src/kube/index.ts';
import type { AuditEvent } from './audit.ts';

export interface Violation {
  readonly invariant: 'I1' | 'I2' | 'I3' | 'I4' | 'I5' | 'fence';
  readonly message: string;
}

interface AccelVersion {
  readonly rv: number;
  /** When the recorder received it (ms). */
  readonly seenAt: number;
  readonly accel: Accelerator;
}

interface Grant {
  readonly lease: string;
  readonly device: string;
  readonly epoch: number;
  readonly rv: number;
}

const GROUP = '/apis/accel.dmabuf.io/v1alpha1';
const key = (o: { metadata?: { namespace?: string; name?: string } }) =>
  `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
const rvOf = (o: { metadata?: { resourceVersion?: string } }) =>
  Number(o.metadata?.resourceVersion ?? 0);

/**
 * The judgement, free of any watch so it can be tested on its own: fed each object as the
 * watches deliver it, it keeps what the checks need and records every violation.
 */
export class Witness {
  readonly violations: Violation[] = [];
  private readonly leases = new Map<string, AcceleratorLease>();
  private readonly history = new Map<string, AccelVersion[]>();
  private readonly grants: Grant[] = [];
  /** Pod uid by namespace/name, for every pod seen. */
  private readonly podUids = new Map<string, string>();
  private readonly namespaces: ReadonlySet<string>;
  private readonly devices: ReadonlySet<string>;

  /** Judge what `namespaces` and `devices` hold; nothing else on the cluster. */
  constructor(namespaces: ReadonlySet<string>, devices: ReadonlySet<string>) {
    this.namespaces = namespaces;
    this.devices = devices;
  }

  /** A lease added or changed (`old` is its state before), in the watch's order. */
  lease(l: AcceleratorLease, old: AcceleratorLease | undefined): void {
    if (!this.namespaces.has(l.metadata.namespace ?? '')) return;
    this.leases.set(key(l), l);
    const device = l.status?.accelerator;
    if (l.status?.phase === 'Granted' && old?.status?.phase !== 'Granted' && device) {
      this.grants.push({ lease: key(l), device, epoch: l.status.epoch ?? 0, rv: rvOf(l) });
    }
    // I1, at watch granularity: the lease watch is one stream in resourceVersion order.
    const granted = new Map<string, string[]>();
    for (const each of this.leases.values()) {
      const on = each.status?.accelerator;
      if (each.status?.phase !== 'Granted' || !on) continue;
      granted.set(on, [...(granted.get(on) ?? []), key(each)]);
    }
    for (const [on, holders] of granted) {
      if (holders.length > 1) {
        this.violations.push({
          invariant: 'I1',
          message: `${holders.join(' and ')} Granted on ${on} at once (resourceVersion ${rvOf(l)})`,
        });
      }
    }
  }

  leaseDeleted(l: AcceleratorLease): void {
    this.leases.delete(key(l));
  }

  accelerator(a: Accelerator, seenAt = Date.now()): void {
    const name = a.metadata.name ?? '';
    if (!this.devices.has(name)) return;
    const list = this.history.get(name) ?? [];
    list.push({ rv: rvOf(a), seenAt, accel: a });
    this.history.set(name, list);
  }

  pod(p: V1Pod): void {
    const uid = p.metadata?.uid;
    if (uid && this.namespaces.has(p.metadata?.namespace ?? '')) this.podUids.set(key(p), uid);
  }

  private versions(device: string): readonly AccelVersion[] {
    return this.history.get(device) ?? [];
  }

  /**
   * I2 for every grant seen: the device, as it was at the last version before the grant was
   * written, enforced the lease's epoch and reported no pin of an earlier one.
   */
  checkGrants(): void {
    for (const g of this.grants) {
      const before = [...this.versions(g.device)].reverse().find((v) => v.rv < g.rv);
      if (!before) continue;
      const stale = stalePins(before.accel, g.epoch);
      const enforced = before.accel.status?.owner?.epoch;
      if (stale.length > 0 || enforced !== g.epoch) {
        this.violations.push({
          invariant: 'I2',
          message: `${g.lease} Granted at epoch ${g.epoch} (rv ${g.rv}) while ${g.device} enforced epoch ${enforced ?? 'none'} with ${stale.length} pin(s) of an earlier epoch (rv ${before.rv})`,
        });
      }
    }
  }

  /**
   * I4 and I5 for the pod calls the audit log shows the controllers made: each accepted eviction
   * or deletion hit a pod a stale pin of that device named (with that uid), no earlier than the
   * grace period after the owner moved, at most once per pod, within each handoff's budget.
   */
  checkPodCalls(calls: readonly AuditEvent[], graceMs: number, budget: number): void {
    const perPod = new Map<string, number>();
    const perHandoff = new Map<string, number>();
    for (const c of calls) {
      const pod = `${c.objectRef?.namespace ?? ''}/${c.objectRef?.name ?? ''}`;
      const at = Date.parse(c.requestReceivedTimestamp);
      perPod.set(pod, (perPod.get(pod) ?? 0) + 1);
      const uid = this.podUids.get(pod);
      const blocking = this.blockingDevice(pod, uid, at);
      if (!blocking) {
        this.violations.push({
          invariant: 'I4',
          message: `${c.verb} of ${pod} (uid ${uid ?? '?'}) at ${c.requestReceivedTimestamp}: no device reported a stale pin of it`,
        });
        continue;
      }
      const handoff = `${blocking.device}@${blocking.epoch}`;
      perHandoff.set(handoff, (perHandoff.get(handoff) ?? 0) + 1);
      if (at < blocking.movedAt + graceMs - 1000) {
        this.violations.push({
          invariant: 'I4',
          message: `${pod} evicted ${at - blocking.movedAt} ms after ${blocking.device} moved to epoch ${blocking.epoch}, inside the ${graceMs} ms grace period`,
        });
      }
    }
    for (const [pod, n] of perPod) {
      if (n > 1) {
        this.violations.push({ invariant: 'I5', message: `${pod} evicted or deleted ${n} times` });
      }
    }
    for (const [handoff, n] of perHandoff) {
      if (n > budget) {
        this.violations.push({
          invariant: 'I4',
          message: `handoff ${handoff} evicted ${n} pods, over its budget of ${budget}`,
        });
      }
    }
  }

  /** The device (and epoch, and when the recorder saw the owner move there) a stale pin of `pod` blocked. */
  private blockingDevice(
    pod: string,
    uid: string | undefined,
    at: number,
  ): { device: string; epoch: number; movedAt: number } | undefined {
    for (const [device, versions] of this.history) {
      for (const v of versions) {
        const epoch = v.accel.spec.owner?.epoch ?? 0;
        const pinned = stalePins(v.accel, epoch).some(
          (p) => p.pod && `${p.pod.namespace}/${p.pod.name}` === pod && p.podUID === uid,
        );
        if (!pinned || v.seenAt > at + 5_000) continue;
        const moved = versions.find((w) => (w.accel.spec.owner?.epoch ?? 0) === epoch);
        return { device, epoch, movedAt: moved?.seenAt ?? v.seenAt };
      }
    }
    return undefined;
  }
}

/** The Witness fed by watches on the first API server (the one no fault touches). */
export class Recorder {
  readonly witness: Witness;
  private readonly informers: [Informer<AcceleratorLease>, Informer<Accelerator>, Informer<V1Pod>];

  constructor(kc: KubeConfig, namespaces: ReadonlySet<string>, devices: ReadonlySet<string>) {
    const witness = (this.witness = new Witness(namespaces, devices));
    const leases = new Informer<AcceleratorLease>(kc, { path: `${GROUP}/acceleratorleases` });
    const accels = new Informer<Accelerator>(kc, { path: `${GROUP}/accelerators` });
    const pods = new Informer<V1Pod>(kc, { path: '/api/v1/pods' });
    leases.on('add', (l) => witness.lease(l, undefined));
    leases.on('update', (l, old) => witness.lease(l, old));
    leases.on('delete', (l) => witness.leaseDeleted(l));
    accels.on('add', (a) => witness.accelerator(a));
    accels.on('update', (a) => witness.accelerator(a));
    pods.on('add', (p) => witness.pod(p));
    this.informers = [leases, accels, pods];
  }

  async start(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.start()));
  }

  stop(): void {
    for (const i of this.informers) i.stop();
  }

  /** Relists of the recorder's own watches: each is a window in which it saw only the result. */
  relists(): number {
    return this.informers.reduce((n, i) => n + i.stats().expired, 0);
  }
}
