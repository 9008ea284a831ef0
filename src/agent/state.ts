// What the agent knows that the API server does not: the simulated kernel and the maps that tie
// its processes and buffers to pods and DmaBufExports. Persisted as one JSON file, atomically.
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { ImporterKind, PodRef, type ExporterProfile } from '../crds/index.ts';
import { Kernel, type KernelOptions } from '../device-sim/kernel/index.ts';

export const STATE_VERSION = 1;

/** A pod on this node that has a simulated process (spawned the first time an export needs it). */
export const PodProcess = z.object({
  namespace: z.string(),
  name: z.string(),
  pid: z.int().min(1),
});
export type PodProcess = z.infer<typeof PodProcess>;

/** One declared importer as realized: the fd it received and its attachment, or why it failed. */
export const AttachmentRecord = z.object({
  name: z.string(),
  kind: ImporterKind,
  pod: PodRef,
  pid: z.int().min(1).optional(),
  /** The fd the importer imported through; `ownsFd` false when it is the exporter's own fd. */
  fd: z.int().min(0).optional(),
  ownsFd: z.boolean().optional(),
  attachmentId: z.int().min(1).optional(),
  failed: z.string().optional(),
  /** Failed only for want of its namespace's consent: it attaches if a grant comes later. */
  awaitingConsent: z.boolean().optional(),
});
export type AttachmentRecord = z.infer<typeof AttachmentRecord>;

/** A DmaBufExport realized once: which buffer it became. Keyed by the export's uid. */
export const ExportRecord = z.object({
  namespace: z.string(),
  name: z.string(),
  accelerator: z.string(),
  ino: z.int().min(1).optional(),
  epoch: z.int().min(0).optional(),
  exporter: z.object({ pod: z.string(), pid: z.int().min(1), fd: z.int().min(0) }).optional(),
  attachments: z.array(AttachmentRecord),
  /** The export itself could not be made (range beyond device memory): terminal. */
  failed: z.string().optional(),
});
export type ExportRecord = z.infer<typeof ExportRecord>;

/** A process outside any pod holding a pinned import, added through the admin API. */
export const HiddenHolder = z.object({
  pid: z.int().min(1),
  ino: z.int().min(1),
  export: z.string().optional(),
  fd: z.int().min(0),
  attachmentId: z.int().min(1),
});
export type HiddenHolder = z.infer<typeof HiddenHolder>;

/** A slow revoke in progress: the owner drop to `epoch` happens at `deadline` (ms). */
export const PendingRevoke = z.object({ epoch: z.int().min(0), deadline: z.number() });
export type PendingRevoke = z.infer<typeof PendingRevoke>;

export const StateFile = z.object({
  version: z.literal(STATE_VERSION),
  node: z.string(),
  kernel: z.unknown(),
  pods: z.record(z.string(), PodProcess),
  exports: z.record(z.string(), ExportRecord),
  hiddenHolders: z.record(z.string(), HiddenHolder),
  revokes: z.record(z.string(), PendingRevoke),
  slowRevokeMs: z.int().min(0),
});
export type StateFile = z.infer<typeof StateFile>;

/** The live state: the kernel plus the maps of the state file (mutated in place by the sync). */
export interface AgentState {
  readonly node: string;
  kernel: Kernel;
  /** pod uid -> its process */
  pods: Record<string, PodProcess>;
  /** DmaBufExport uid -> what it became */
  exports: Record<string, ExportRecord>;
  /** pid -> hidden holder */
  hiddenHolders: Record<string, HiddenHolder>;
  /** device name -> slow revoke in progress */
  revokes: Record<string, PendingRevoke>;
  /** Fault injection: every owner drop of an owned device takes this long (phase Revoking). */
  slowRevokeMs: number;
}

export class StateFileError extends Error {
  override name = 'StateFileError';
}

export function deviceName(node: string, index: number): string {
  return `${node}-hl${index}`;
}

export interface DeviceSetup {
  readonly count: number;
  readonly memoryBytes: number;
  readonly profile: ExporterProfile;
}

/** A fresh node: `count` free devices at epoch 0, no processes. */
export function newState(
  node: string,
  devices: DeviceSetup,
  options: KernelOptions = {},
): AgentState {
  const kernel = new Kernel(options);
  const state: AgentState = {
    node,
    kernel,
    pods: {},
    exports: {},
    hiddenHolders: {},
    revokes: {},
    slowRevokeMs: 0,
  };
  ensureDevices(state, devices);
  return state;
}

/**
 * Add the devices `setup` asks for that the kernel lacks (a restart with a higher --devices).
 * Existing devices keep their memory and profile: those are properties of the hardware, fixed at
 * creation. Returns the devices whose flags disagree with the kernel, for a warning.
 */
export function ensureDevices(state: AgentState, setup: DeviceSetup): string[] {
  const mismatched: string[] = [];
  for (let i = 0; i < setup.count; i++) {
    const name = deviceName(state.node, i);
    const dev = state.kernel.device(name);
    if (!dev) {
      state.kernel.addDevice({ name, memoryBytes: setup.memoryBytes, profile: setup.profile });
    } else if (dev.memoryBytes !== setup.memoryBytes || dev.profile !== setup.profile) {
      mismatched.push(name);
    }
  }
  return mismatched;
}

export function toStateFile(state: AgentState): StateFile {
  return {
    version: STATE_VERSION,
    node: state.node,
    kernel: state.kernel.toJSON(),
    pods: state.pods,
    exports: state.exports,
    hiddenHolders: state.hiddenHolders,
    revokes: state.revokes,
    slowRevokeMs: state.slowRevokeMs,
  };
}

/** Rebuild the state from file text; throws StateFileError naming the file and what is wrong. */
export function parseStateFile(
  text: string,
  node: string,
  source: string,
  options: KernelOptions = {},
): AgentState {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(`state file ${source} is not JSON: ${(err as Error).message}`);
  }
  const parsed = StateFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new StateFileError(
      `state file ${source} is invalid at ${issue?.path.join('.') || '<root>'}: ${issue?.message ?? 'unknown'}`,
    );
  }
  const file = parsed.data;
  if (file.node !== node) {
    throw new StateFileError(
      `state file ${source} belongs to node ${file.node}, not ${node}: pass --state-file for this node`,
    );
  }
  let kernel: Kernel;
  try {
    kernel = Kernel.fromJSON(file.kernel, options);
  } catch (err) {
    throw new StateFileError(`state file ${source}: ${(err as Error).message}`);
  }
  return {
    node,
    kernel,
    pods: file.pods,
    exports: file.exports,
    hiddenHolders: file.hiddenHolders,
    revokes: file.revokes,
    slowRevokeMs: file.slowRevokeMs,
  };
}

/** The file's contents, or undefined when it does not exist yet (a node's first start). */
export function readStateFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateFileError(`cannot read state file ${path}: ${(err as Error).message}`);
  }
}

/**
 * Replace the file atomically: write a temporary file beside it, fsync, rename over the old one,
 * fsync the directory. A crash at any point leaves either the old or the new state, never half.
 */
export function writeStateFile(path: string, text: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${path.slice(dir.length + 1)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  }
}
