// Item 2's round with PodDisruptionBudgets: a third of the holders belong to ReplicaSets of
// `size` pods, each under a PDB that allows one disruption at a time (maxUnavailable 1), so the
// reaper's evictions of them are refused (429) until the previous one's replacement is Ready.
// The figure: from the last time a PDB allowed the eviction that cleared it to the device cleared.
import { performance } from 'node:perf_hooks';
import { reaperClears, clearingStages } from './reaper.ts';
import type { Stage } from './stages.ts';
import type { Bench } from './stack.ts';
import { waitFor } from './stack.ts';
import { bareHolders, type HolderPods, stuckScenario } from './stuck.ts';

/**
 * The Retry-After (s) kube-apiserver names on an eviction a PDB refuses while the budget's status
 * lags its spec (pkg/registry/core/pod/storage/eviction.go); a refusal by an exhausted budget
 * carries none, so this is the only wait the server ever asks of an evicting client.
 */
export const PDB_RETRY_AFTER_S = 10;

export interface PdbRound {
  holders: number;
  /** Holders under a PDB, in `pdbs` budgets of `size` pods each. */
  pdbHolders: number;
  size: number;
  pdbs: number;
  /** Stuck seen to Granted seen. */
  reaperMs: number;
  /** The last PDB-allowed moment before the last PDB-covered eviction, to the device cleared. */
  lastAllowToClearedMs: number;
  retryAfterMs: number;
  /** lastAllowToClearedMs over retryAfterMs: target <= 1. */
  overRetryAfter: number;
  /** Per PDB-covered holder: from its budget allowing an eviction to its eviction taken. */
  waitAfterAllowMs: { p50: number; max: number };
  /** Evictions refused per covered holder would show in the lease's records; the stages here. */
  stages: Stage[];
}

/** A budget's allowing moments, and a covered pod's eviction taken. */
export interface Taken {
  pdb: string;
  at: number;
}

/**
 * For each covered eviction, the latest moment (not before `notBefore`, when evicting became
 * possible at all) at which its budget allowed a disruption, and how long the eviction came after
 * it; and that moment for the last eviction.
 */
export function pdbWaits(
  allowedAt: ReadonlyMap<string, readonly number[]>,
  taken: readonly Taken[],
  notBefore: number,
): { waitsMs: number[]; lastAllowAt: number; lastTakenAt: number } {
  if (taken.length === 0) throw new Error('no eviction of a PDB-covered pod was seen');
  const allowFor = (t: Taken) => {
    const before = (allowedAt.get(t.pdb) ?? []).filter((a) => a <= t.at);
    if (before.length === 0)
      throw new Error(`${t.pdb}: eviction taken with no allowing status seen`);
    return Math.max(notBefore, ...before);
  };
  const last = taken.reduce((a, t) => (t.at > a.at ? t : a));
  return {
    waitsMs: taken.map((t) => t.at - allowFor(t)),
    lastAllowAt: allowFor(last),
    lastTakenAt: last.at,
  };
}

/** The PDB round's holders: ReplicaSets of `size` under their PDBs for a third, bare pods for the rest. */
function pdbHolders(count: number, size: number): HolderPods {
  return async (b, ns, node) => {
    const covered = Math.floor(count / 3);
    const groups = Math.ceil(covered / size);
    const names: string[] = [];
    for (let k = 0; k < groups; k++) {
      const pdb = `pdb-${k}`;
      const replicas = Math.min(size, covered - k * size);
      const labels = { app: 'bench-holder', pdb };
      await b.request('POST', `/apis/apps/v1/namespaces/${ns}/replicasets`, {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: { name: pdb, namespace: ns },
        spec: {
          replicas,
          selector: { matchLabels: { pdb } },
          template: {
            metadata: { labels },
            spec: {
              nodeName: node,
              containers: [{ name: 'work', image: 'registry.example/workload:1' }],
              tolerations: [{ operator: 'Exists' }],
            },
          },
        },
      });
      await b.request('POST', `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`, {
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name: pdb, namespace: ns },
        spec: { maxUnavailable: 1, selector: { matchLabels: { pdb } } },
      });
      const pods = await waitFor(`${replicas} pods of ${pdb} Running`, async () => {
        const list = await b.request<{
          items: { metadata: { name: string }; status?: { phase?: string } }[];
        }>('GET', `/api/v1/namespaces/${ns}/pods?labelSelector=pdb%3D${pdb}`);
        const running = list.items.filter((p) => p.status?.phase === 'Running');
        return running.length === replicas && running.map((p) => p.metadata.name);
      });
      names.push(...pods);
    }
    for (let k = 0; k < groups; k++) {
      await waitFor(`pdb-${k} allows a disruption`, async () => {
        const p = await b.request<{
          metadata: { generation?: number };
          status?: { disruptionsAllowed?: number; observedGeneration?: number };
        }>('GET', `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/pdb-${k}`);
        return (
          p.status?.disruptionsAllowed === 1 &&
          (p.status.observedGeneration ?? 0) >= (p.metadata.generation ?? 1)
        );
      });
    }
    return [...names, ...(await bareHolders(count - covered)(b, ns, node))];
  };
}

interface Budget {
  metadata: { name: string };
  status?: { disruptionsAllowed?: number };
}

export async function benchReaperPdb(
  b: Bench,
  kubeconfig: string,
  holders: number,
  size: number,
  log: (s: string) => void,
): Promise<PdbRound> {
  const s = await stuckScenario(b, kubeconfig, pdbHolders(holders, size), log);
  try {
    // When each budget turned to allowing a disruption, by watch (the initial list included).
    const budgets = await b.watch<Budget>(
      `/apis/policy/v1/namespaces/${s.ns.io}/poddisruptionbudgets`,
      'pdbs',
    );
    const allowedAt = new Map<string, number[]>();
    const allows = new Map<string, boolean>();
    const note = (p: Budget) => {
      const now = (p.status?.disruptionsAllowed ?? 0) >= 1;
      if (now && !allows.get(p.metadata.name))
        allowedAt.set(p.metadata.name, [
          ...(allowedAt.get(p.metadata.name) ?? []),
          performance.now(),
        ]);
      allows.set(p.metadata.name, now);
    };
    for (const p of budgets.informer.list()) note(p);
    budgets.informer.on('add', note);
    budgets.informer.on('update', note);
    const pdbOf = new Map<string, string>();
    for (const name of s.holders) {
      const m = /^(pdb-\d+)-/.exec(name);
      if (m) pdbOf.set(name, m[1] as string);
    }
    log(
      `  releasing tenant-a: ${pdbOf.size} of ${s.holders.length} holders under ${allowedAt.size} PDBs`,
    );
    const run = await reaperClears(b, s, log).finally(() => budgets.stop());
    const taken = [...pdbOf].map(([pod, pdb]) => ({ pdb, at: run.clock.taken.get(pod) ?? NaN }));
    const [tStuck, , , tCleared, tGranted] = run.at as [number, number, number, number, number];
    const w = pdbWaits(allowedAt, taken, tStuck);
    const sorted = [...w.waitsMs].sort((x, y) => x - y);
    const r1 = (x: number) => Math.round(x * 10) / 10;
    const lastAllowToClearedMs = tCleared - w.lastAllowAt;
    return {
      holders: s.holders.length,
      pdbHolders: pdbOf.size,
      size,
      pdbs: allowedAt.size,
      reaperMs: r1(tGranted - tStuck),
      lastAllowToClearedMs: r1(lastAllowToClearedMs),
      retryAfterMs: PDB_RETRY_AFTER_S * 1000,
      overRetryAfter: Math.round((lastAllowToClearedMs / (PDB_RETRY_AFTER_S * 1000)) * 100) / 100,
      waitAfterAllowMs: {
        p50: r1(sorted[Math.ceil(sorted.length / 2) - 1] as number),
        max: r1(sorted.at(-1) as number),
      },
      stages: clearingStages(run.at).map((x) => ({ ...x, ms: r1(x.ms) })),
    };
  } finally {
    await s.stop();
  }
}
