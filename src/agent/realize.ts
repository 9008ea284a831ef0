// Declared DmaBufExports made real on the simulated kernel: the exporter pod's process opens the
// device and exports the range, each importer pod's process receives the fd and attaches.
// Whether an export can be realized now is a pure plan; realizing and releasing are kernel calls.
import {
  importConsent,
  type DmaBufExport,
  type DmaBufImportGrant,
  type Importer,
  type PodRef,
  podKey,
} from '../crds/index.ts';
import { KernelError, type DeviceInfo } from '../device-sim/kernel/index.ts';
import { leaseOfOwner } from './ownership.ts';
import { isTerminal, podProcess, type PodView } from './processes.ts';
import type { AgentState, AttachmentRecord, ExportRecord } from './state.ts';

/** A pod looked up by name because it is not in this node's pod cache. */
export type RemotePod = { readonly nodeName: string | undefined } | 'missing';

export type ImporterPlan =
  | { readonly importer: Importer; readonly pod: PodView }
  | {
      readonly importer: Importer;
      readonly failure: string;
      /** Failed only for want of its namespace's consent: attached if a grant comes later. */
      readonly awaitingConsent?: true;
    };

export type ExportPlan =
  | {
      readonly kind: 'wait';
      readonly reason:
        | 'WaitingForOwner'
        | 'ExporterNotOnNode'
        | 'ExporterNotRunning'
        | 'ImporterNotRunning'
        | 'ImporterNotScheduled';
      readonly message: string;
    }
  | { readonly kind: 'realize'; readonly exporter: PodView; readonly importers: ImporterPlan[] };

export interface PlanContext {
  readonly node: string;
  readonly device: DeviceInfo;
  /** This node's pods by `namespace/name`. */
  readonly pods: ReadonlyMap<string, PodView>;
  /** Importer pods not on this node, by `namespace/name`, as looked up; absent = not looked up. */
  readonly remote: ReadonlyMap<string, RemotePod>;
  /** Every DmaBufImportGrant: an importer in another namespace needs one in its own. */
  readonly grants: readonly DmaBufImportGrant[];
}

/**
 * Why `importer` of `exp` may not attach, when its namespace has not consented to imports from
 * the export's namespace; undefined when it may. A pod off this node is judged without labels.
 */
export function consentFailure(
  exp: DmaBufExport,
  importer: Importer,
  pods: ReadonlyMap<string, PodView>,
  grants: readonly DmaBufImportGrant[],
): string | undefined {
  const labels = pods.get(podKey(importer.pod))?.labels;
  const consent = importConsent(exp.metadata.namespace ?? '', { ...importer.pod, labels }, grants);
  return consent.allowed ? undefined : consent.message;
}

/**
 * Importer pods of `exports` that this node's cache does not have and that may import: the caller
 * looks them up. Importers without consent fail without a look-up.
 */
export function importersOffNode(
  exports: readonly DmaBufExport[],
  pods: ReadonlyMap<string, PodView>,
  grants: readonly DmaBufImportGrant[],
): PodRef[] {
  const refs = new Map<string, PodRef>();
  for (const exp of exports) {
    for (const imp of exp.spec.importers) {
      if (pods.has(podKey(imp.pod))) continue;
      if (consentFailure(exp, imp, pods, grants) !== undefined) continue;
      refs.set(podKey(imp.pod), imp.pod);
    }
  }
  return [...refs.values()];
}

/** Can `exp` be realized now, and how? Pure. */
export function planExport(exp: DmaBufExport, ctx: PlanContext): ExportPlan {
  const ns = exp.metadata.namespace ?? '';
  const owner = leaseOfOwner(ctx.device.owner);
  if (!owner || owner.namespace !== ns || owner.name !== exp.spec.lease) {
    const held = owner ? `lease ${owner.namespace}/${owner.name}` : 'nobody';
    return {
      kind: 'wait',
      reason: 'WaitingForOwner',
      message:
        `accelerator ${ctx.device.name} is owned by ${held} at epoch ${ctx.device.epoch}; ` +
        `the export waits until lease ${ns}/${exp.spec.lease} owns it`,
    };
  }
  const exporterKey = `${ns}/${exp.spec.exporter.pod}`;
  const exporter = ctx.pods.get(exporterKey);
  if (!exporter) {
    return {
      kind: 'wait',
      reason: 'ExporterNotOnNode',
      message: `exporter pod ${exporterKey} is not on node ${ctx.node} (the node of ${ctx.device.name})`,
    };
  }
  if (exporter.phase !== 'Running') {
    return {
      kind: 'wait',
      reason: 'ExporterNotRunning',
      message: `exporter pod ${exporterKey} is ${exporter.phase}, not Running`,
    };
  }
  const importers: ImporterPlan[] = [];
  for (const importer of exp.spec.importers) {
    const refused = consentFailure(exp, importer, ctx.pods, ctx.grants);
    if (refused !== undefined) {
      importers.push({ importer, failure: refused, awaitingConsent: true });
      continue;
    }
    const key = podKey(importer.pod);
    const local = ctx.pods.get(key);
    if (local) {
      if (local.phase === 'Running') {
        importers.push({ importer, pod: local });
      } else if (isTerminal(local)) {
        importers.push({ importer, failure: `importer pod ${key} has finished (${local.phase})` });
      } else {
        return {
          kind: 'wait',
          reason: 'ImporterNotRunning',
          message: `importer ${importer.name}: pod ${key} is ${local.phase}, not Running`,
        };
      }
      continue;
    }
    const remote = ctx.remote.get(key);
    if (remote === 'missing') {
      importers.push({ importer, failure: `importer pod ${key} does not exist` });
    } else if (remote?.nodeName !== undefined && remote.nodeName !== ctx.node) {
      importers.push({
        importer,
        failure:
          `importer pod ${key} runs on node ${remote.nodeName}, not ${ctx.node}: ` +
          'a dma-buf fd can only be passed to a process on the same node',
      });
    } else if (remote?.nodeName === ctx.node) {
      return {
        kind: 'wait',
        reason: 'ImporterNotRunning',
        message: `importer ${importer.name}: pod ${key} is bound to ${ctx.node} but not seen running yet`,
      };
    } else {
      return {
        kind: 'wait',
        reason: 'ImporterNotScheduled',
        message:
          remote === undefined
            ? `importer ${importer.name}: looking up pod ${key}`
            : `importer ${importer.name}: pod ${key} is not scheduled to a node yet`,
      };
    }
  }
  return { kind: 'realize', exporter, importers };
}

function failureOf(err: unknown): string {
  if (err instanceof KernelError) return err.message;
  throw err;
}

/**
 * Realize a planned export once: open the device (reusing an open fd of the current owner
 * context), export the range, pass the fd to each importer and attach it with its kind.
 * An importer the kernel refuses (mmap on a static device) is recorded as failed, with the
 * kernel's reason; the rest proceeds. Records the result under the export's uid.
 */
export function realizeExport(
  state: AgentState,
  exp: DmaBufExport,
  plan: Extract<ExportPlan, { kind: 'realize' }>,
): ExportRecord {
  const { kernel } = state;
  const uid = exp.metadata.uid ?? '';
  const device = exp.spec.accelerator;
  const owner = kernel.device(device)?.owner ?? '';
  const base = {
    namespace: exp.metadata.namespace ?? '',
    name: exp.metadata.name ?? '',
    accelerator: device,
  };
  const pid = podProcess(state, plan.exporter);
  let exported: { fd: number; ino: number };
  try {
    const open = kernel
      .process(pid)
      ?.fds.find((f) => f.kind === 'device' && f.device === device && !f.revoked);
    const devFd = open ? open.fd : kernel.openDevice(pid, device, owner);
    exported = kernel.exportBuffer(pid, devFd, {
      offset: exp.spec.offsetBytes,
      size: exp.spec.sizeBytes,
      name: base.name,
    });
  } catch (err) {
    const record: ExportRecord = { ...base, attachments: [], failed: failureOf(err) };
    state.exports[uid] = record;
    return record;
  }
  const epoch = kernel.device(device)?.epoch ?? 0;
  const attachments: AttachmentRecord[] = plan.importers.map((p) => {
    if ('failure' in p) {
      const rec = { name: p.importer.name, kind: p.importer.kind, pod: p.importer.pod };
      return { ...rec, failed: p.failure, ...(p.awaitingConsent && { awaitingConsent: true }) };
    }
    return attachImporter(state, { pid, fd: exported.fd }, p.importer, p.pod);
  });
  const record: ExportRecord = {
    ...base,
    ino: exported.ino,
    epoch,
    exporter: { pod: plan.exporter.name, pid, fd: exported.fd },
    attachments,
  };
  state.exports[uid] = record;
  return record;
}

/**
 * The exporter (`pid` holding the buffer as `fd`) passes it to `pod`'s process, which attaches as
 * `importer` says. An importer the kernel refuses is recorded as failed, with the kernel's reason.
 */
function attachImporter(
  state: AgentState,
  exporter: { readonly pid: number; readonly fd: number },
  importer: Importer,
  pod: PodView,
): AttachmentRecord {
  const { kernel } = state;
  const rec = { name: importer.name, kind: importer.kind, pod: importer.pod };
  const ipid = podProcess(state, pod);
  const ownsFd = ipid !== exporter.pid;
  const fd = ownsFd ? kernel.passFd(exporter.pid, exporter.fd, ipid) : exporter.fd;
  try {
    const att = kernel.attach(ipid, fd, importer.kind, importer.name);
    return { ...rec, pid: ipid, fd, ownsFd, attachmentId: att.id };
  } catch (err) {
    // The importer could not use the fd it was sent, so it does not keep it either.
    if (ownsFd) kernel.close(ipid, fd);
    return { ...rec, pid: ipid, failed: failureOf(err) };
  }
}

/**
 * Importers that failed only for want of consent and now have it attach to the live export, as
 * the workload would once allowed: the buffer still active, its owner the one it was exported
 * under, the exporter still holding it and the importer's pod running here. Returns their names.
 */
export function attachConsented(
  state: AgentState,
  exp: DmaBufExport,
  ctx: Pick<PlanContext, 'pods' | 'grants'>,
): string[] {
  const record = state.exports[exp.metadata.uid ?? ''];
  const exporter = record?.exporter;
  if (!record || !exporter || record.ino === undefined) return [];
  const { kernel } = state;
  const device = kernel.device(record.accelerator);
  if (kernel.buffer(record.ino)?.state !== 'active' || device?.epoch !== record.epoch) return [];
  if (!holdsBufferFd(state, exporter.pid, exporter.fd, record.ino)) return [];
  const attached: string[] = [];
  record.attachments = record.attachments.map((att) => {
    if (!att.awaitingConsent || consentFailure(exp, att, ctx.pods, ctx.grants) !== undefined)
      return att;
    const pod = ctx.pods.get(podKey(att.pod));
    if (pod?.phase !== 'Running') return att;
    attached.push(att.name);
    return attachImporter(state, exporter, att, pod);
  });
  return attached;
}

/** Does `pid` still hold `fd`, open on buffer `ino`? (Guards against a reused fd number.) */
function holdsBufferFd(state: AgentState, pid: number, fd: number, ino: number): boolean {
  return (
    state.kernel
      .process(pid)
      ?.fds.some((f) => f.fd === fd && f.kind === 'dmabuf' && f.ino === ino) ?? false
  );
}

/**
 * The workload lets go of an export whose DmaBufExport was deleted: each importer deregisters
 * (detach) and closes its fd, then the exporter closes its own. Processes that already exited
 * have nothing left to release. Hidden holders are not part of the workload and keep theirs.
 */
export function releaseExport(state: AgentState, uid: string): void {
  const record = state.exports[uid];
  if (!record) return;
  delete state.exports[uid];
  const { kernel } = state;
  const ino = record.ino;
  if (ino === undefined) return;
  for (const att of record.attachments) {
    if (att.pid === undefined) continue;
    if (att.attachmentId !== undefined && kernel.attachment(att.attachmentId)?.pid === att.pid) {
      kernel.detach(att.pid, att.attachmentId);
    }
    if (att.ownsFd && att.fd !== undefined && holdsBufferFd(state, att.pid, att.fd, ino)) {
      kernel.close(att.pid, att.fd);
    }
  }
  const exp = record.exporter;
  if (exp && holdsBufferFd(state, exp.pid, exp.fd, ino)) kernel.close(exp.pid, exp.fd);
}
