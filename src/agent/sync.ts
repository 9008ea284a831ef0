// One level-triggered pass over the node: from what the API server says (pods, exports,
// spec.owner) to kernel state. Deterministic and free of I/O; the caller persists and publishes.
import {
  podKey,
  type AcceleratorOwner,
  type DmaBufExport,
  type DmaBufImportGrant,
} from '../crds/index.ts';
import { allPins, type NodePinSource } from './backend.ts';
import { describePin } from '../device-sim/kernel/index.ts';
import {
  applyOwnerDecision,
  decideOwner,
  leaseOfOwner,
  type OwnerDecision,
  type OwnerOutcome,
} from './ownership.ts';
import { exitPod, vanishedPods, type PodView } from './processes.ts';
import {
  attachConsented,
  consentFailure,
  planExport,
  realizeExport,
  releaseExport,
  type ExportPlan,
  type RemotePod,
} from './realize.ts';
import type { AgentState, ExportRecord } from './state.ts';

export interface Observed {
  /** spec.owner of this node's Accelerators by name; a missing key = object not seen yet. */
  readonly owners: ReadonlyMap<string, AcceleratorOwner | undefined>;
  /** This node's pods, by uid. */
  readonly pods: ReadonlyMap<string, PodView>;
  /** Every DmaBufExport the cache holds (the sync keeps the declared ones on its devices). */
  readonly exports: readonly DmaBufExport[];
  /** Importer pods looked up off this node, by `namespace/name`. */
  readonly remote: ReadonlyMap<string, RemotePod>;
  /** Every DmaBufImportGrant: consent for importers in another namespace than the export. */
  readonly grants: readonly DmaBufImportGrant[];
  readonly now: number;
  /** Pins the backend observed beyond the kernel model's (the linux backend); none for sim. */
  readonly nodePins?: NodePinSource;
}

/** An Event the note deserves (events.k8s.io/v1), regarding one of our objects. */
export interface NoteEvent {
  readonly kind: 'Accelerator' | 'DmaBufExport';
  readonly namespace?: string;
  readonly name: string;
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly note: string;
}

export interface Note {
  readonly level: 'info' | 'warn';
  readonly msg: string;
  readonly fields: Readonly<Record<string, unknown>>;
  readonly event?: NoteEvent;
}

export interface DeviceResult {
  readonly decision: OwnerDecision;
  readonly outcome: OwnerOutcome;
}

export interface SyncResult {
  readonly devices: ReadonlyMap<string, DeviceResult>;
  /** Exports on this node not realized yet, by uid, with what they wait for. */
  readonly waiting: ReadonlyMap<string, Extract<ExportPlan, { kind: 'wait' }>>;
  /** Observed exports on this node by uid (for observedGeneration and conditions). */
  readonly exports: ReadonlyMap<string, DmaBufExport>;
  /**
   * Live attachments whose importer's namespace has since withdrawn its consent, by export uid
   * then importer name, with why. The attachment stays (the kernel would not tear it down).
   */
  readonly withdrawn: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** Earliest slow-revoke deadline still ahead, to wake up for. */
  readonly wakeAt: number | undefined;
  readonly notes: readonly Note[];
}

const creation = (e: DmaBufExport) => String(e.metadata.creationTimestamp ?? '');

/** This node's declared exports, oldest first (so realization order is stable). */
export function exportsOnNode(state: AgentState, all: readonly DmaBufExport[]): DmaBufExport[] {
  return all
    .filter(
      (e) =>
        e.spec.source === 'Declared' &&
        state.kernel.device(e.spec.accelerator) !== undefined &&
        !e.metadata.deletionTimestamp,
    )
    .sort(
      (a, b) =>
        creation(a).localeCompare(creation(b)) ||
        `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(
          `${b.metadata.namespace}/${b.metadata.name}`,
        ),
    );
}

/**
 * Bring the kernel in line with the cluster: processes of vanished pods exit, deleted exports
 * are released, each device applies spec.owner, and exports whose owner and pods are ready are
 * realized. Mutates `state`; returns what happened and what still waits.
 */
export function syncNode(state: AgentState, observed: Observed): SyncResult {
  const notes: Note[] = [];
  notes.push(...exitVanishedPods(state, observed.pods));
  const mine = exportsOnNode(state, observed.exports);
  const byUid = new Map(mine.map((e) => [e.metadata.uid ?? '', e]));
  notes.push(...releaseDeletedExports(state, byUid));
  const owned = applyOwners(state, observed);
  notes.push(...owned.notes);
  const pods = new Map([...observed.pods.values()].map((p) => [podKey(p), p]));
  const realized = realizeReadyExports(state, mine, pods, observed);
  notes.push(...realized.notes);
  notes.push(...attachConsentedImporters(state, mine, pods, observed.grants));
  const withdrawn = withdrawnConsents(state, byUid, pods, observed.grants);
  return {
    devices: owned.devices,
    waiting: realized.waiting,
    exports: byUid,
    withdrawn,
    wakeAt: owned.wakeAt,
    notes,
  };
}

/** Processes of pods no longer on the node exit, as the kernel would see them die. */
function exitVanishedPods(state: AgentState, pods: ReadonlyMap<string, PodView>): Note[] {
  const notes: Note[] = [];
  for (const uid of vanishedPods(state, pods)) {
    const proc = state.pods[uid];
    const report = exitPod(state, uid);
    if (proc && report) {
      notes.push({
        level: 'info',
        msg: 'pod gone: its process exited',
        fields: {
          pod: podKey(proc),
          pid: report.pid,
          closedFds: report.closedFds.length,
          detached: report.detached.map((a) => `${a.kind} ${a.name}`),
          released: report.released,
        },
      });
    }
  }
  return notes;
}

/** Realized exports whose DmaBufExport is gone (or no longer on this node) are released. */
function releaseDeletedExports(
  state: AgentState,
  byUid: ReadonlyMap<string, DmaBufExport>,
): Note[] {
  const notes: Note[] = [];
  for (const [uid, record] of Object.entries(state.exports)) {
    if (byUid.has(uid)) continue;
    releaseExport(state, uid);
    notes.push({
      level: 'info',
      msg: 'DmaBufExport deleted: the workload released it',
      fields: { export: `${record.namespace}/${record.name}`, inode: record.ino },
    });
  }
  return notes;
}

/** Each device applies its spec.owner; returns what each did and the earliest revoke deadline. */
function applyOwners(
  state: AgentState,
  observed: Observed,
): { devices: Map<string, DeviceResult>; wakeAt: number | undefined; notes: Note[] } {
  const { kernel } = state;
  const notes: Note[] = [];
  const devices = new Map<string, DeviceResult>();
  let wakeAt: number | undefined;
  // A device the backend cannot show free counts as pinned: it is never handed to a new owner.
  const pinCount = (name: string) => {
    const { pins, blocked } = allPins(state, name, observed.nodePins);
    return pins.length + (blocked ? 1 : 0);
  };
  for (const device of kernel.devices()) {
    const decision = decideOwner({
      desired: observed.owners.get(device.name),
      device,
      pinCount: pinCount(device.name),
      slowRevokeMs: state.slowRevokeMs,
      pendingRevoke: state.revokes[device.name],
      now: observed.now,
    });
    const outcome = applyOwnerDecision(kernel, device.name, decision, state.revokes, () =>
      observed.nodePins ? pinCount(device.name) : 0,
    );
    devices.set(device.name, { decision, outcome });
    notes.push(...ownerNotes(device.name, decision, outcome));
    const revoke = state.revokes[device.name];
    if (revoke && (wakeAt === undefined || revoke.deadline < wakeAt)) wakeAt = revoke.deadline;
  }
  return { devices, wakeAt, notes };
}

/** Exports not realized yet are realized once ready; returns those that still wait, by uid. */
function realizeReadyExports(
  state: AgentState,
  mine: readonly DmaBufExport[],
  pods: ReadonlyMap<string, PodView>,
  observed: Observed,
): { waiting: Map<string, Extract<ExportPlan, { kind: 'wait' }>>; notes: Note[] } {
  const notes: Note[] = [];
  const waiting = new Map<string, Extract<ExportPlan, { kind: 'wait' }>>();
  for (const exp of mine) {
    const uid = exp.metadata.uid ?? '';
    if (state.exports[uid]) continue;
    const device = state.kernel.device(exp.spec.accelerator);
    if (!device) continue;
    const plan = planExport(exp, {
      node: state.node,
      device,
      pods,
      remote: observed.remote,
      grants: observed.grants,
    });
    if (plan.kind === 'wait') {
      waiting.set(uid, plan);
      continue;
    }
    notes.push(...realizedNotes(realizeExport(state, exp, plan)));
  }
  return { waiting, notes };
}

function realizedNotes(record: ExportRecord): Note[] {
  const regarding = {
    kind: 'DmaBufExport' as const,
    namespace: record.namespace,
    name: record.name,
  };
  const failedImporters = record.attachments.filter((a) => a.failed !== undefined);
  const notes: Note[] = [
    {
      level: record.failed ? 'warn' : 'info',
      msg: record.failed ? 'DmaBufExport could not be exported' : 'DmaBufExport realized',
      fields: {
        export: `${record.namespace}/${record.name}`,
        accelerator: record.accelerator,
        inode: record.ino,
        epoch: record.epoch,
        ...(record.failed && { reason: record.failed }),
        failedImporters: failedImporters.map((a) => a.name),
      },
      event: record.failed
        ? { ...regarding, type: 'Warning', reason: 'ExportFailed', note: record.failed }
        : {
            ...regarding,
            type: 'Normal',
            reason: 'Exported',
            note: `exported from ${record.accelerator} as inode ${record.ino} at epoch ${record.epoch}`,
          },
    },
  ];
  for (const a of failedImporters) {
    notes.push({
      level: 'warn',
      msg: 'importer failed',
      fields: {
        export: `${record.namespace}/${record.name}`,
        importer: a.name,
        reason: a.failed,
      },
      event: {
        ...regarding,
        type: 'Warning',
        reason: 'ImporterFailed',
        note: `${a.name}: ${a.failed}`,
      },
    });
  }
  return notes;
}

/** Importers of live exports attach once their namespace consents (a grant appeared). */
function attachConsentedImporters(
  state: AgentState,
  mine: readonly DmaBufExport[],
  pods: ReadonlyMap<string, PodView>,
  grants: readonly DmaBufImportGrant[],
): Note[] {
  const notes: Note[] = [];
  for (const exp of mine) {
    const attached = attachConsented(state, exp, { pods, grants });
    if (attached.length === 0) continue;
    const name = `${exp.metadata.namespace ?? ''}/${exp.metadata.name ?? ''}`;
    notes.push({
      level: 'info',
      msg: 'importers attached once their namespace consented',
      fields: { export: name, importers: attached },
      event: {
        kind: 'DmaBufExport',
        ...(exp.metadata.namespace !== undefined && { namespace: exp.metadata.namespace }),
        name: exp.metadata.name ?? '',
        type: 'Normal',
        reason: 'ImportersAttached',
        note: `${attached.join(', ')} attached once a DmaBufImportGrant allowed them`,
      },
    });
  }
  return notes;
}

/** Attachments realized under a consent that their importer's namespace no longer gives. */
function withdrawnConsents(
  state: AgentState,
  exports: ReadonlyMap<string, DmaBufExport>,
  pods: ReadonlyMap<string, PodView>,
  grants: readonly DmaBufImportGrant[],
): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const [uid, record] of Object.entries(state.exports)) {
    const exp = exports.get(uid);
    if (!exp) continue;
    for (const att of record.attachments) {
      if (att.failed !== undefined || att.attachmentId === undefined) continue;
      const why = consentFailure(exp, att, pods, grants);
      if (why === undefined) continue;
      const byName = out.get(uid) ?? new Map<string, string>();
      byName.set(att.name, why);
      out.set(uid, byName);
    }
  }
  return out;
}

function ownerNotes(device: string, decision: OwnerDecision, outcome: OwnerOutcome): Note[] {
  const on = (type: 'Normal' | 'Warning', reason: string, note: string): NoteEvent => ({
    kind: 'Accelerator',
    name: device,
    type,
    reason,
    note,
  });
  switch (outcome.kind) {
    case 'unchanged':
      return [];
    case 'refused':
      return [
        {
          level: 'warn',
          msg: 'spec.owner refused',
          fields: { device, reason: outcome.reason, message: outcome.message },
          event: on('Warning', outcome.reason, outcome.message),
        },
      ];
    case 'error':
      return [
        {
          level: 'warn',
          msg: 'applying spec.owner failed',
          fields: { device, error: outcome.message },
          event: on('Warning', 'KernelRefused', outcome.message),
        },
      ];
    case 'revoking': {
      const until = new Date(outcome.revoke.deadline).toISOString();
      return [
        {
          level: 'info',
          msg: 'slow revoke in progress',
          fields: { device, epoch: outcome.revoke.epoch, deadline: until },
          event: on(
            'Normal',
            'Revoking',
            `revoking the current owner before epoch ${outcome.revoke.epoch}; done at ${until}`,
          ),
        },
      ];
    }
    case 'applied': {
      const notes: Note[] = [];
      const drop = outcome.drop;
      const pinned = (drop?.pins.length ?? 0) > 0;
      // A free device only records the new epoch: worth a word only if old pins still block it.
      if (drop && (drop.previousOwner !== null || (pinned && drop.previousEpoch !== drop.epoch))) {
        const prev = leaseOfOwner(drop.previousOwner);
        const what =
          drop.previousOwner === null
            ? `moved from epoch ${drop.previousEpoch} to ${drop.epoch} with no owner`
            : `dropped ${prev ? `lease ${prev.namespace}/${prev.name}` : 'nobody'} (epoch ${drop.previousEpoch}) at epoch ${drop.epoch}`;
        notes.push({
          level: pinned ? 'warn' : 'info',
          msg: pinned ? 'owner dropped: pins of an earlier owner remain (Stuck)' : 'owner dropped',
          fields: {
            device,
            previousOwner: prev ? `${prev.namespace}/${prev.name}` : null,
            previousEpoch: drop.previousEpoch,
            epoch: drop.epoch,
            revoked: drop.revoked.map((a) => `${a.kind} ${a.name} (pid ${a.pid})`),
            pins: drop.pins.map(describePin),
          },
          event: pinned
            ? on('Warning', 'Pinned', `${what}; ${drop.pins.map(describePin).join('; ')}`)
            : on('Normal', 'OwnerDropped', `${what}; revoked ${drop.revoked.length} importer(s)`),
        });
      }
      if (outcome.acquired && (decision.action === 'drop' || decision.action === 'acquire')) {
        const lease = decision.lease;
        const name = lease ? `${lease.namespace}/${lease.name}` : '?';
        notes.push({
          level: 'info',
          msg: 'owner acquired',
          fields: { device, lease: name, epoch: decision.epoch },
          event: on(
            'Normal',
            'Acquired',
            `lease ${name} owns the device at epoch ${decision.epoch}`,
          ),
        });
      }
      return notes;
    }
  }
}
