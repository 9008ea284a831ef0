// Fault injection on the node's kernel, driven by the admin API: hidden holders (a process
// outside any pod that pins an export, as a leaked daemon or a debugger would) and slow revokes.
import { KernelError } from '../device-sim/kernel/index.ts';
import type { AgentState, HiddenHolder } from './state.ts';

export class FaultError extends Error {
  override name = 'FaultError';
  /** HTTP status the admin API answers with. */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface HiddenHolderRequest {
  /** `namespace/name` of a realized DmaBufExport ... */
  readonly export?: string;
  /** ... or the buffer's inode directly. */
  readonly inode?: number;
  readonly comm?: string;
}

/**
 * Spawn a process in no pod, pass it the buffer's fd from a current fd holder (the exporter
 * first), and attach it as a `pinned` importer named `hidden-<pid>`. The buffer must still be
 * active: a revoked buffer takes no new importers.
 */
export function addHiddenHolder(state: AgentState, req: HiddenHolderRequest): HiddenHolder {
  const { kernel } = state;
  let ino = req.inode;
  let exportKey: string | undefined;
  if (req.export !== undefined) {
    const record = Object.values(state.exports).find(
      (r) => `${r.namespace}/${r.name}` === req.export,
    );
    if (record?.ino === undefined) {
      throw new FaultError(404, `no realized DmaBufExport ${req.export} on node ${state.node}`);
    }
    ino = record.ino;
    exportKey = req.export;
  }
  if (ino === undefined) throw new FaultError(400, 'give "export": "namespace/name" or "inode": N');
  const buffer = kernel.buffer(ino);
  if (!buffer) throw new FaultError(404, `no live dma-buf with inode ${ino} on node ${state.node}`);
  if (exportKey === undefined) {
    const record = Object.values(state.exports).find((r) => r.ino === ino);
    if (record) exportKey = `${record.namespace}/${record.name}`;
  }
  const source = buffer.fds.find((f) => f.pid === buffer.exporterPid) ?? buffer.fds[0];
  if (!source) {
    throw new FaultError(409, `dma-buf inode ${ino} has no open fd left to pass to a new holder`);
  }
  const { pid } = kernel.spawn({ comm: req.comm ?? 'hidden-holder', label: null });
  try {
    const fd = kernel.passFd(source.pid, source.fd, pid);
    const att = kernel.attach(pid, fd, 'pinned', `hidden-${pid}`);
    const holder: HiddenHolder = {
      pid,
      ino,
      ...(exportKey !== undefined && { export: exportKey }),
      fd,
      attachmentId: att.id,
    };
    state.hiddenHolders[String(pid)] = holder;
    return holder;
  } catch (err) {
    kernel.exit(pid);
    if (err instanceof KernelError) throw new FaultError(409, err.message);
    throw err;
  }
}

/** The hidden holder exits: its fd closes and its pinned attachment goes with it. */
export function removeHiddenHolder(state: AgentState, pid: number): HiddenHolder {
  const holder = state.hiddenHolders[String(pid)];
  if (!holder) throw new FaultError(404, `pid ${pid} is not a hidden holder on node ${state.node}`);
  delete state.hiddenHolders[String(pid)];
  if (state.kernel.process(pid)) state.kernel.exit(pid);
  return holder;
}

export function setSlowRevoke(state: AgentState, delayMs: unknown): number {
  if (typeof delayMs !== 'number' || !Number.isSafeInteger(delayMs) || delayMs < 0) {
    throw new FaultError(400, '"delayMs" must be a whole number of milliseconds >= 0');
  }
  state.slowRevokeMs = delayMs;
  return delayMs;
}
