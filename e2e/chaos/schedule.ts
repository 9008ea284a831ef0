// A chaos schedule, drawn from a seed: the devices and their stories (pins per exporter profile,
// a PDB that refuses for a while, a hidden holder, queued leases) and the faults injected while
// the handoffs run. Pure, so a seed names one schedule on every machine.
import { mulberry32 as random, pick } from '../../test/simulation/random.ts';

export const FAULT_KINDS = [
  'kill-leader',
  'kill-standby',
  'stop-leader',
  'kill-agent',
  'apiserver-restart',
  'compaction',
  'proxy-stall',
  'proxy-cut',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const PROFILES = ['static', 'dynamic', 'revocable'] as const;
export type Profile = (typeof PROFILES)[number];

export interface DeviceStory {
  /** Index of the node (and its agent); one device per node. */
  readonly node: number;
  readonly profile: Profile;
  /** A PDB on the loader refuses its eviction for this long after the handoff starts, if set. */
  readonly pdbSeconds?: number;
  /** A process outside any pod also pins the buffer: the handoff must end Unresolvable. */
  readonly hiddenHolder: boolean;
  /** Leases queued behind tenant A's: 1 (tenant B) or 2 (B, then C when B is released). */
  readonly queued: 1 | 2;
}

export interface Fault {
  readonly kind: FaultKind;
  /** When it starts, in ms after the first release. */
  readonly atMs: number;
  /** How long a stall lasts; which agent is killed. */
  readonly stallMs?: number;
  readonly agent?: number;
}

export interface Schedule {
  readonly seed: number;
  readonly devices: readonly DeviceStory[];
  readonly faults: readonly Fault[];
}

/** Two devices on two nodes, and three faults within the first ten seconds of the handoffs. */
export function scheduleOf(seed: number): Schedule {
  const r = random(seed);
  const devices: DeviceStory[] = [0, 1].map((node) => {
    // Revocable devices leave nothing to evict: drawn half as often as the pinning profiles.
    const profile = pick(r, ['static', 'static', 'dynamic', 'dynamic', 'revocable'] as const);
    const pdb = r() < 0.35;
    return {
      node,
      profile,
      ...(pdb && { pdbSeconds: 3 + Math.floor(r() * 6) }),
      // A revocable device has no pin left for a hidden holder to join once revoked.
      hiddenHolder: profile !== 'revocable' && r() < 0.2,
      queued: r() < 0.5 ? 2 : 1,
    };
  });
  const faults: Fault[] = [];
  for (let i = 0; i < 3; i++) {
    const kind = pick(r, FAULT_KINDS);
    const atMs = Math.floor(r() * 10_000);
    faults.push({
      kind,
      atMs,
      ...(kind === 'proxy-stall' && { stallMs: 1_000 + Math.floor(r() * 5_000) }),
      ...(kind === 'kill-agent' && { agent: Math.floor(r() * devices.length) }),
    });
  }
  faults.sort((a, b) => a.atMs - b.atMs);
  return { seed, devices, faults };
}

/**
 * Few seeds whose schedules, together, inject every fault kind at least once: greedily, the seed
 * of the first 200 that adds the most kinds not yet covered, until none is missing.
 */
export function coveringSeeds(): number[] {
  const missing = new Set<FaultKind>(FAULT_KINDS);
  const kindsOf = (seed: number) => new Set(scheduleOf(seed).faults.map((f) => f.kind));
  const seeds: number[] = [];
  while (missing.size > 0) {
    let best = 0;
    let gain = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const adds = [...kindsOf(seed)].filter((k) => missing.has(k)).length;
      if (adds > gain) [best, gain] = [seed, adds];
    }
    seeds.push(best);
    for (const k of kindsOf(best)) missing.delete(k);
  }
  return seeds.sort((a, b) => a - b);
}

/** One line for a log: the seed, each device's story, and the faults in order. */
export function describeSchedule(s: Schedule): string {
  const devices = s.devices.map(
    (d) =>
      `node ${d.node} ${d.profile}${d.pdbSeconds ? ` pdb ${d.pdbSeconds}s` : ''}${d.hiddenHolder ? ' hidden-holder' : ''} queue ${d.queued}`,
  );
  const faults = s.faults.map(
    (f) =>
      `${f.kind}@${(f.atMs / 1000).toFixed(1)}s${f.stallMs ? ` for ${(f.stallMs / 1000).toFixed(1)}s` : ''}${f.agent !== undefined ? ` agent ${f.agent}` : ''}`,
  );
  return `seed ${s.seed}: ${devices.join('; ')} | ${faults.join(', ')}`;
}
