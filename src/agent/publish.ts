// What the node tells the API server, computed from the kernel and the agent's maps alone:
// each Accelerator's status (phase, enforced owner, pins) and each realized export's status.
// Pure; the same code will serve the read-only /proc scanner.
import {
  setConditions,
  type AcceleratorOwner,
  type AcceleratorPhase,
  type AcceleratorStatus,
  type AttachmentStatus,
  type Condition,
  type ConditionInput,
  type DmaBufExport,
  type DmaBufExportStatus,
  type ExportPhase,
  type Pin,
  preciseTime,
} from '../crds/index.ts';
import {
  describePin,
  pinsOnDrop,
  type AttachmentState,
  type BufferState,
  type Pin as KernelPin,
} from '../device-sim/kernel/index.ts';
import { allPins, type NodePinSource } from './backend.ts';
import { leaseOfOwner } from './ownership.ts';
import type { ExportPlan } from './realize.ts';
import type { AgentState, ExportRecord } from './state.ts';
import type { SyncResult } from './sync.ts';

/** The API server holds at most this many pins per Accelerator (schema maxItems). */
const MAX_PINS = 1024;

export interface PublishContext {
  /** The last sync's result: refusals, errors and what unrealized exports wait for. */
  readonly sync: SyncResult;
  /** Conditions the objects carry now, so lastTransitionTime only moves on a real change. */
  readonly previousConditions: {
    readonly accelerators: ReadonlyMap<string, readonly Condition[] | undefined>;
    readonly exports: ReadonlyMap<string, readonly Condition[] | undefined>;
  };
  readonly now: number;
  /** Pins the backend observed beyond the kernel model's (the linux backend); none for sim. */
  readonly nodePins?: NodePinSource;
}

export interface ExportStatusUpdate {
  readonly namespace: string;
  readonly name: string;
  readonly status: DmaBufExportStatus;
}

export interface Published {
  /** By Accelerator name; heartbeatTime is the caller's to add. */
  readonly acceleratorStatuses: Map<string, AcceleratorStatus>;
  /** By DmaBufExport uid. */
  readonly exportStatuses: Map<string, ExportStatusUpdate>;
}

export function publish(state: AgentState, ctx: PublishContext): Published {
  const exportByIno = new Map<number, string>();
  for (const r of Object.values(state.exports)) {
    if (r.ino !== undefined) exportByIno.set(r.ino, `${r.namespace}/${r.name}`);
  }
  const acceleratorStatuses = new Map<string, AcceleratorStatus>();
  for (const device of state.kernel.devices()) {
    acceleratorStatuses.set(device.name, acceleratorStatus(state, device.name, exportByIno, ctx));
  }
  const exportStatuses = new Map<string, ExportStatusUpdate>();
  for (const [uid, exp] of ctx.sync.exports) {
    const record = state.exports[uid];
    const previous = ctx.previousConditions.exports.get(uid);
    const status = record
      ? realizedStatus(state, record, exp, previous, ctx.now, ctx.sync.withdrawn.get(uid))
      : pendingStatus(ctx.sync.waiting.get(uid), exp, previous, ctx.now);
    if (status) {
      exportStatuses.set(uid, {
        namespace: exp.metadata.namespace ?? '',
        name: exp.metadata.name ?? '',
        status,
      });
    }
  }
  return { acceleratorStatuses, exportStatuses };
}

/** Pod uids by the pid of their process: what a pin's holder is, beyond its name. */
export function podUidsByPid(state: AgentState): Map<number, string> {
  return new Map(Object.entries(state.pods).map(([uid, p]) => [p.pid, uid]));
}

/**
 * A kernel pin as Accelerator.status.pins[] shows it. `podUid` is the uid of the holder's pod,
 * so that the reaper can refuse to evict another pod that took the same name.
 */
export function statusPin(
  pin: KernelPin,
  exportKey: string | undefined,
  podUid: string | undefined,
): Pin {
  return {
    ...(exportKey !== undefined && { export: exportKey }),
    ...(pin.buffer !== null && { buffer: pin.buffer }),
    inode: pin.ino,
    ...(pin.attachment !== null && { importer: pin.attachment }),
    kind: pin.kind,
    ...(pin.holder !== null && { pod: { namespace: pin.holder.namespace, name: pin.holder.name } }),
    ...(pin.holder !== null && podUid !== undefined && { podUID: podUid }),
    pid: pin.pid,
    comm: pin.comm.slice(0, 64),
    epoch: pin.epoch,
    since: preciseTime(pin.since),
  };
}

function acceleratorStatus(
  state: AgentState,
  name: string,
  exportByIno: ReadonlyMap<number, string>,
  ctx: PublishContext,
): AcceleratorStatus {
  const device = state.kernel.device(name);
  if (!device) throw new Error(`device ${name} vanished from the kernel`);
  const { pins, blocked } = allPins(state, name, ctx.nodePins);
  const uidByPid = podUidsByPid(state);
  const result = ctx.sync.devices.get(name);
  const outcome = result?.outcome;
  const revoke = state.revokes[name];
  const lease = leaseOfOwner(device.owner);
  const owner: AcceleratorOwner = { ...(lease && { lease }), epoch: device.epoch };
  const enforced = lease ? `lease ${lease.namespace}/${lease.name}` : 'nobody';

  let phase: AcceleratorPhase;
  if (revoke) phase = 'Revoking';
  else if (outcome?.kind === 'error') phase = 'Unhealthy';
  else if (device.owner !== null) phase = 'Owned';
  else if (pins.length > 0) phase = 'Stuck';
  // Never a false Free: what the backend could not see or account for keeps the device off.
  else if (blocked) phase = 'Unhealthy';
  else phase = 'Free';

  let applied: ConditionInput;
  if (outcome?.kind === 'refused') {
    applied = {
      type: 'OwnerApplied',
      status: 'False',
      reason: outcome.reason,
      message: outcome.message,
    };
  } else if (outcome?.kind === 'error') {
    applied = {
      type: 'OwnerApplied',
      status: 'False',
      reason: 'KernelRefused',
      message: outcome.message,
    };
  } else if (revoke) {
    applied = {
      type: 'OwnerApplied',
      status: 'False',
      reason: 'Revoking',
      message: `revoking ${enforced} (epoch ${device.epoch}) before applying epoch ${revoke.epoch}; done at ${preciseTime(revoke.deadline)}`,
    };
  } else if (
    result?.decision.action === 'wait-pins' ||
    (result?.decision.action === 'drop' && result.decision.lease && device.owner === null)
  ) {
    const want = result.decision.lease;
    applied = {
      type: 'OwnerApplied',
      status: 'False',
      reason: 'Pinned',
      message: `lease ${want ? `${want.namespace}/${want.name}` : '?'} waits for epoch ${device.epoch}: pins of an earlier owner remain`,
    };
  } else {
    applied = {
      type: 'OwnerApplied',
      status: 'True',
      reason: 'Applied',
      message: `the device enforces ${enforced} at epoch ${device.epoch}`,
    };
  }
  const pinned: ConditionInput =
    pins.length > 0
      ? {
          type: 'Pinned',
          status: 'True',
          reason: 'EarlierEpochPinned',
          message: pins.map(describePin).join('; ').slice(0, 32768),
        }
      : {
          type: 'Pinned',
          status: 'False',
          reason: 'NoPins',
          message: "nothing keeps an earlier owner's memory alive",
        };

  return {
    phase,
    owner,
    observedEpoch: device.epoch,
    pins: pins
      .slice(0, MAX_PINS)
      .map((p) => statusPin(p, exportByIno.get(p.ino), uidByPid.get(p.pid))),
    conditions: setConditions(
      ctx.previousConditions.accelerators.get(name),
      [applied, pinned, ...observedCondition(ctx.nodePins, blocked)],
      preciseTime(ctx.now),
    ),
  };
}

/** An observing backend says whether it saw the whole node; the simulator has nothing to say. */
function observedCondition(
  source: NodePinSource | undefined,
  blocked: ReturnType<NodePinSource>['blocked'],
): ConditionInput[] {
  if (!source) return [];
  if (blocked)
    return [
      {
        type: 'Observed',
        status: 'False',
        reason: blocked.reason,
        message: blocked.message.slice(0, 32768),
      },
    ];
  return [
    {
      type: 'Observed',
      status: 'True',
      reason: 'Complete',
      message: 'every holder of the device and its buffers is accounted for',
    },
  ];
}

const ATTACHMENT_STATE: Record<AttachmentState, AttachmentStatus['state']> = {
  attached: 'Attached',
  revoked: 'Revoked',
  pinned: 'Pinned',
  detached: 'Detached',
  failed: 'Failed',
};

/** A condition of the export's current generation. */
function withGeneration(
  exp: DmaBufExport,
  c: Omit<ConditionInput, 'observedGeneration'>,
): ConditionInput {
  const generation = exp.metadata.generation;
  return { ...c, ...(generation !== undefined && { observedGeneration: generation }) };
}

function realizedStatus(
  state: AgentState,
  record: ExportRecord,
  exp: DmaBufExport,
  previous: readonly Condition[] | undefined,
  now: number,
  withdrawn: ReadonlyMap<string, string> | undefined,
): DmaBufExportStatus {
  const generation = exp.metadata.generation;
  const observedGeneration = generation !== undefined && { observedGeneration: generation };
  if (record.failed !== undefined || record.ino === undefined) {
    const failed = withGeneration(exp, {
      type: 'Realized',
      status: 'False',
      reason: 'ExportFailed',
      message: record.failed ?? 'not exported',
    });
    return {
      phase: 'Failed',
      conditions: setConditions(previous, [failed], preciseTime(now)),
      ...observedGeneration,
    };
  }
  const buffer = state.kernel.buffer(record.ino);
  const attachments = attachmentStatuses(state, record, withdrawn);
  const exporter = record.exporter;
  const realized = withGeneration(exp, {
    type: 'Realized',
    status: 'True',
    reason: 'Exported',
    message:
      `exported ${exp.spec.sizeBytes} bytes at offset ${exp.spec.offsetBytes} of ${record.accelerator} ` +
      `as inode ${record.ino} at epoch ${record.epoch ?? '?'}` +
      (exporter ? ` by pid ${exporter.pid} (pod ${record.namespace}/${exporter.pod})` : ''),
  });
  return {
    phase: exportPhase(buffer?.state),
    inode: record.ino,
    ...(record.epoch !== undefined && { epoch: record.epoch }),
    attachments,
    conditions: setConditions(
      previous,
      [
        realized,
        withGeneration(exp, degradedCondition(record)),
        ...consentConditions(record, attachments, withdrawn).map((c) => withGeneration(exp, c)),
      ],
      preciseTime(now),
    ),
    ...observedGeneration,
  };
}

/** A realized export's phase from its buffer's state; a buffer gone is Released. */
function exportPhase(buffer: BufferState | undefined): ExportPhase {
  return !buffer
    ? 'Released'
    : buffer === 'active'
      ? 'Active'
      : buffer === 'pinned'
        ? 'Pinned'
        : 'Revoked';
}

/** Each importer as the kernel has it now; `withdrawn` names those attached without consent. */
function attachmentStatuses(
  state: AgentState,
  record: ExportRecord,
  withdrawn: ReadonlyMap<string, string> | undefined,
): AttachmentStatus[] {
  const profile = state.kernel.device(record.accelerator)?.profile ?? 'static';
  const buffer = record.ino === undefined ? undefined : state.kernel.buffer(record.ino);
  const live = new Map((buffer?.attachments ?? []).map((a) => [a.id, a]));
  return record.attachments.map((a) => {
    const att = a.attachmentId === undefined ? undefined : live.get(a.attachmentId);
    const shown =
      a.failed !== undefined ? 'Failed' : att ? ATTACHMENT_STATE[att.state] : 'Detached';
    const unconsented = shown === 'Detached' ? undefined : withdrawn?.get(a.name);
    const message =
      a.failed ??
      (unconsented !== undefined
        ? `attached before its namespace withdrew consent; it stays until the importer detaches: ${unconsented}`
        : undefined);
    return {
      name: a.name,
      kind: a.kind,
      revocable: !pinsOnDrop(profile, a.kind),
      pod: a.pod,
      ...(a.pid !== undefined && { pid: a.pid }),
      state: shown,
      ...(message !== undefined && { message: message.slice(0, 1024) }),
    };
  });
}

function degradedCondition(record: ExportRecord): Omit<ConditionInput, 'observedGeneration'> {
  const failed = record.attachments.filter((a) => a.failed !== undefined);
  return failed.length > 0
    ? {
        type: 'Degraded',
        status: 'True',
        reason: 'ImporterFailed',
        message: failed
          .map((a) => `${a.name}: ${a.failed ?? ''}`)
          .join('; ')
          .slice(0, 32768),
      }
    : {
        type: 'Degraded',
        status: 'False',
        reason: 'AllImported',
        message: 'every importer attached',
      };
}

/** ImportConsent, only for an export with importers in another namespace. */
function consentConditions(
  record: ExportRecord,
  attachments: readonly AttachmentStatus[],
  withdrawn: ReadonlyMap<string, string> | undefined,
): Omit<ConditionInput, 'observedGeneration'>[] {
  const crossNamespace = record.attachments.some((a) => a.pod.namespace !== record.namespace);
  if (!crossNamespace) return [];
  const stillWithout = attachments.filter(
    (a) => a.state !== 'Failed' && a.state !== 'Detached' && withdrawn?.has(a.name),
  );
  return [
    stillWithout.length > 0
      ? {
          type: 'ImportConsent',
          status: 'False',
          reason: 'ConsentWithdrawn',
          message: stillWithout
            .map((a) => `${a.name}: ${withdrawn?.get(a.name) ?? ''}`)
            .join('; ')
            .slice(0, 32768),
        }
      : {
          type: 'ImportConsent',
          status: 'True',
          reason: 'Consented',
          message:
            'every live importer in another namespace is allowed by a DmaBufImportGrant there',
        },
  ];
}

function pendingStatus(
  wait: Extract<ExportPlan, { kind: 'wait' }> | undefined,
  exp: DmaBufExport,
  previous: readonly Condition[] | undefined,
  now: number,
): DmaBufExportStatus | undefined {
  if (!wait) return undefined;
  const generation = exp.metadata.generation;
  return {
    phase: 'Pending',
    conditions: setConditions(
      previous,
      [
        {
          type: 'Realized',
          status: 'False',
          reason: wait.reason,
          message: wait.message,
          ...(generation !== undefined && { observedGeneration: generation }),
        },
      ],
      preciseTime(now),
    ),
    ...(generation !== undefined && { observedGeneration: generation }),
  };
}
