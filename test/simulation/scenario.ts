// One seeded scenario: devices handed from an old tenant along a chain of next leases (with
// priorities and expiry), dma-buf exports whose importers pin, pods slow to go or guarded by
// PDBs, hidden holders, a reaper policy, and how often each fault strikes.
import type { ExporterProfile, ImporterKind } from '../../src/crds/index.ts';
import { DEFAULT_REAPER_POLICY, type ReaperPolicy } from '../../src/reaper/index.ts';
import { chance, int, mulberry32, pick } from './random.ts';

export const NODE = 'node-a';

/**
 * The PodDisruptionBudget of a pod with pdbRefuseMs: it allows none until then, and allows one
 * from then on; before, it may allow one for a while (`blip`) until another eviction takes it.
 */
export interface BudgetPlan {
  readonly blip?: { readonly atMs: number; readonly forMs: number };
  /** Refusals name this Retry-After (kube-apiserver: 10 s while the status lags the spec). */
  readonly retryAfterS?: number;
}

export interface PodPlan {
  readonly namespace: string;
  readonly name: string;
  /** The PDB (its own, selecting app=<name>) allows no disruption until this long after the handoff starts. */
  readonly pdbRefuseMs: number;
  /** That PDB's story, when pdbRefuseMs > 0. */
  readonly budget?: BudgetPlan;
  /** Once deleted, it takes this long to go (the kubelet kills it after its grace). */
  readonly termMs: number;
  /** A controller (StatefulSet-like) recreates a pod of the same name once it is gone. */
  readonly replaced: boolean;
}

export interface ExportPlan {
  readonly device: number;
  readonly name: string;
  /** The lease it is exported under: `old-<d>`, or a next lease once it is granted. */
  readonly lease: string;
  readonly namespace: string;
  readonly exporter: string;
  readonly importers: readonly { name: string; kind: ImporterKind; pod: string }[];
}

/** A lease after the old one, on one device: queued at the handoff, in priority order. */
export interface NextLease {
  readonly name: string;
  readonly priority: number;
  /** Expires this long after it is granted; else the tenant releases it (deletes it). */
  readonly duration?: string;
  /** Held this long once granted, then released (unless it is the last or it expires). */
  readonly holdMs: number;
  /** Exported while it holds the device, pinning the next handoff in its turn. */
  readonly export?: ExportPlan;
}

export interface Scenario {
  readonly seed: number;
  readonly profile: ExporterProfile;
  readonly devices: number;
  readonly pods: ReadonlyMap<string, PodPlan>;
  /** The old tenant's exports, realized before the handoff. */
  readonly exports: readonly ExportPlan[];
  /** Per device: the leases that follow the old one (empty when idle). */
  readonly chains: readonly (readonly NextLease[])[];
  /** Hidden holders: on export i, gone after ms (or never). */
  readonly hidden: readonly { exportIndex: number; removeAfterMs: number | undefined }[];
  /** The tenant deletes its DmaBufExports this long after the handoff (a voluntary release). */
  readonly releaseAfterMs: number | undefined;
  readonly idle: boolean;
  readonly grace: number;
  readonly maxEvictions: number;
  readonly policy: ReaperPolicy;
  readonly faults: {
    /** Chance that the controller crashes right after one of its writes is applied. */
    readonly crashAfterWrite: number;
    /** Chance per round that the controller restarts between reconciles. */
    readonly controllerRestart: number;
    readonly agentRestart: number;
    /** Chance per round that the controller's watch delivers only part of what happened. */
    readonly watchLag: number;
    /** Chance that another writer changes an object just before a conditional write of ours. */
    readonly concurrentWrite: number;
  };
}

export const podKeyOf = (ns: string, name: string): string => `${ns}/${name}`;

const IMPORTER_PODS = [
  ['team-io', 'loader-0'],
  ['team-io', 'loader-1'],
  ['team-a', 'viewer-0'],
  ['team-c', 'peer-0'],
] as const;
const EXCLUDED_POD = ['kube-system', 'monitor-0'] as const;
const KINDS: readonly ImporterKind[] = ['dynamic', 'mmap', 'rdma-mr', 'rdma-mr', 'pinned'];

export function scenario(seed: number): Scenario {
  const r = mulberry32(seed);
  const profile = pick<ExporterProfile>(r, ['static', 'static', 'dynamic', 'revocable']);
  const devices = chance(r, 0.25) ? 2 : 1;
  // Budgets draw from a stream of their own, so the rest of each seed stays what it was.
  const rb = mulberry32(seed ^ 0x0b4d6e7);
  const budget = (refuseMs: number): BudgetPlan => {
    const atMs = int(rb, 1, 120) * 1000;
    const blip = chance(rb, 0.4) && atMs < refuseMs;
    const retryAfter = chance(rb, 0.3);
    return {
      ...(blip && { blip: { atMs, forMs: int(rb, 1, 20) * 1000 } }),
      ...(retryAfter && { retryAfterS: pick(rb, [1, 3, 10]) }),
    };
  };
  const pods = new Map<string, PodPlan>();
  const addPod = (namespace: string, name: string) => {
    const k = podKeyOf(namespace, name);
    if (!pods.has(k)) {
      const pdbRefuseMs = chance(r, 0.2) ? int(r, 1, 240) * 1000 : 0;
      pods.set(k, {
        namespace,
        name,
        pdbRefuseMs,
        ...(pdbRefuseMs > 0 && { budget: budget(pdbRefuseMs) }),
        termMs: chance(r, 0.2) ? int(r, 20, 400) * 1000 : int(r, 1, 3) * 1000,
        replaced: chance(r, 0.2),
      });
    }
    return name;
  };
  const importers = (n: number) =>
    Array.from({ length: n }, (_, j) => {
      const [ns, name] = chance(r, 0.08) ? EXCLUDED_POD : pick(r, IMPORTER_PODS);
      return { name: `imp${j}`, kind: pick(r, KINDS), pod: podKeyOf(ns, addPod(ns, name)) };
    });
  const exports: ExportPlan[] = [];
  for (let d = 0; d < devices; d++) {
    for (let i = 0, n = int(r, 1, 2); i < n; i++) {
      exports.push({
        device: d,
        name: `buf-${d}-${i}`,
        lease: `old-${d}`,
        namespace: 'team-a',
        exporter: addPod('team-a', `trainer-${d}-${int(r, 0, 1)}`),
        importers: importers(int(r, 0, 2)),
      });
    }
  }
  addPod('team-a', 'bystander-0');
  addPod('team-io', 'bystander-1');
  const idle = chance(r, 0.1);
  const chains = Array.from({ length: devices }, (_, d) =>
    idle
      ? []
      : Array.from({ length: chance(r, 0.4) ? int(r, 2, 3) : 1 }, (_, k): NextLease => {
          const exported = chance(r, 0.5);
          return {
            name: `next-${d}-${k}`,
            priority: pick(r, [0, 0, 10]),
            ...(chance(r, 0.2) && { duration: `${int(r, 30, 200)}s` }),
            holdMs: int(r, 5, 120) * 1000,
            ...(exported && {
              export: {
                device: d,
                name: `buf-${d}-n${k}`,
                lease: `next-${d}-${k}`,
                namespace: 'team-b',
                exporter: addPod('team-b', `worker-${d}`),
                importers: importers(int(r, 1, 2)),
              },
            }),
          };
        }),
  );
  const hidden: { exportIndex: number; removeAfterMs: number | undefined }[] = [];
  if (chance(r, 0.12)) {
    hidden.push({
      exportIndex: int(r, 0, exports.length - 1),
      removeAfterMs: chance(r, 0.5) ? int(r, 10, 600) * 1000 : undefined,
    });
  }
  return {
    seed,
    profile,
    devices,
    pods,
    exports,
    chains,
    hidden,
    releaseAfterMs: chance(r, 0.15) ? int(r, 5, 300) * 1000 : undefined,
    idle,
    grace: pick(r, [0, 5, 30, 60]),
    maxEvictions: chance(r, 0.1) ? int(r, 0, 1) : int(r, 2, 6),
    policy: {
      ...DEFAULT_REAPER_POLICY,
      excludedNamespaces: ['kube-system'],
      maxEvictionsPerHandoff: int(r, 1, 8),
      maxEvictionsPerMinute: pick(r, [2, 5, 60]),
      evictionDeadlineMs: int(r, 30, 180) * 1000,
      onDeadline: pick(r, ['Wait', 'Delete', 'ForceDelete'] as const),
      dryRun: chance(r, 0.04),
      reapWhenIdle: true,
      idleGracePeriodSeconds: pick(r, [0, 20]),
      retryInitialMs: 5_000,
      retryMaxMs: 60_000,
    },
    faults: {
      crashAfterWrite: chance(r, 0.4) ? pick(r, [0.02, 0.1]) : 0,
      controllerRestart: chance(r, 0.3) ? 0.05 : 0,
      agentRestart: chance(r, 0.2) ? 0.05 : 0,
      watchLag: chance(r, 0.5) ? 0.3 : 0,
      concurrentWrite: chance(r, 0.3) ? 0.05 : 0,
    },
  };
}
