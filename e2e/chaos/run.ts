// One chaos schedule on the local control plane: set the stories up, release tenant A's leases,
// inject the faults at their times while the handoffs run, then judge what the recorder saw and
// what the audit log says the controllers did. Runs inside a vitest test (the stack's processes
// and namespaces are cleaned up when it finishes).
import type { ApiServerReplica } from '../harness/index.ts';
import { kubeConfig, testNamespace } from '../harness/index.ts';
import {
  api,
  createActiveExport,
  createImportGrant,
  createLease,
  createPod,
  getLease,
  GROUP,
  sleep,
  testNode,
  waitFor,
} from '../stack/index.ts';
import { controllerLists, isConditional, podCalls, readAudit, writesAfter } from './audit.ts';
import { Recorder, type Violation } from './recorder.ts';
import { describeSchedule, type DeviceStory, type Fault, type Schedule } from './schedule.ts';
import {
  AgentSlot,
  ControllerSlot,
  kubeconfigFile,
  leaderIdentity,
  removeKubeconfig,
} from './world.ts';

export interface ChaosEnv {
  readonly replica: ApiServerReplica;
  readonly auditLog: string;
}

/** What one schedule did and what was wrong with it. */
export interface ChaosReport {
  readonly schedule: string;
  readonly violations: readonly Violation[];
  /** Each fault as carried out, with what it found (who led, how long a takeover took). */
  readonly faults: readonly string[];
  readonly evictions: number;
  readonly controllerExits: number;
  readonly ms: number;
}

const GRACE_SECONDS = 2;
const MAX_EVICTIONS = 5;
/** I3's bound: every handoff ends this long after the last fault has ended, at the latest. */
export const SETTLE_MS = 120_000;

interface Namespaces {
  sys: string;
  a: string;
  io: string;
  b: string;
  c: string;
}

interface Device {
  readonly story: DeviceStory;
  readonly node: string;
  readonly name: string;
  readonly agent: AgentSlot;
}

interface World {
  readonly ns: Namespaces;
  readonly devices: readonly Device[];
  readonly controllers: readonly ControllerSlot[];
  readonly env: ChaosEnv;
  /** A stopped leader and when it was let go, for the fence check. */
  readonly resumed: { identity: string; at: number }[];
  /** Each handoff's end, as a line for the report. */
  readonly ended: string[];
  /** Restarts still under way (an agent coming back), awaited before the verdict. */
  readonly pending: Promise<void>[];
  /** When etcd was compacted, for counting the relists that followed. */
  readonly compactedAt: number[];
  /** Set when the schedule ends: the stories stop polling. */
  over: boolean;
}

/** Poll `check` every half second until it holds, or until the schedule is over. */
async function until(w: World, check: () => Promise<boolean>): Promise<void> {
  while (!w.over) {
    if (await check().catch(() => false)) return;
    await sleep(500);
  }
}

export async function runSchedule(schedule: Schedule, env: ChaosEnv): Promise<ChaosReport> {
  const started = Date.now();
  const ns: Namespaces = {
    sys: await testNamespace('chaos-sys'),
    a: await testNamespace('chaos-a'),
    io: await testNamespace('chaos-io'),
    b: await testNamespace('chaos-b'),
    c: await testNamespace('chaos-c'),
  };
  const replicaKubeconfig = kubeconfigFile(env.replica.port);
  const devices: Device[] = [];
  for (const story of schedule.devices) {
    const node = await testNode(`chaos${story.node}`);
    devices.push({
      story,
      node,
      name: `${node}-hl0`,
      agent: new AgentSlot(node, story.profile, replicaKubeconfig),
    });
  }
  const tenants = new Set([ns.a, ns.io, ns.b, ns.c]);
  const recorder = new Recorder(kubeConfig(), tenants, new Set(devices.map((d) => d.name)));
  await recorder.start();
  const controllers: ControllerSlot[] = [];
  const world: World = {
    ns,
    devices,
    controllers,
    env,
    resumed: [],
    ended: [],
    pending: [],
    compactedAt: [],
    over: false,
  };
  try {
    for (const d of devices) await d.agent.start();
    controllers.push(await ControllerSlot.start('chaos-ctl-a', ns.sys, env.replica));
    controllers.push(await ControllerSlot.start('chaos-ctl-b', ns.sys, env.replica));
    await waitFor('a controller leading', () => leaderIdentity(ns.sys), 60_000);
    await createImportGrant(ns.io, [ns.a]);
    for (const d of devices) await setUp(world, d);

    const t0 = Date.now();
    for (const d of devices) {
      await api('DELETE', `${GROUP}/namespaces/${ns.a}/acceleratorleases/tenant-a-${d.story.node}`);
    }
    const stories = Promise.all(devices.map((d) => playOut(world, d, t0)));
    const done: string[] = [];
    for (const f of schedule.faults) {
      await sleep(Math.max(0, t0 + f.atMs - Date.now()));
      done.push(await inject(world, f, t0));
    }
    const settled = await Promise.race([
      stories.then(() => !world.over),
      sleep(SETTLE_MS).then(() => false),
    ]);
    world.over = true;
    await Promise.all(world.pending);
    const late = settled ? [] : await unsettled(world);
    await sleep(1_000); // the audit log is written as each request completes
    const audit = readAudit(env.auditLog);
    const calls = podCalls(audit, tenants).filter(
      (e) => Date.parse(e.requestReceivedTimestamp) >= started,
    );
    recorder.witness.checkGrants();
    recorder.witness.checkPodCalls(calls, GRACE_SECONDS * 1000, MAX_EVICTIONS);
    const violations: Violation[] = [...recorder.witness.violations, ...late];
    // A resumed leader sends nothing once the fence says no; what still arrives left the process
    // (or its HTTP/2 framing) before the pause. Such a write is harmless if it could only land on
    // the version its sender read and I1-I5, judged on the watch, held: both are checked here.
    for (const r of world.resumed) {
      const { accepted, refused } = writesAfter(audit, r.identity, r.at);
      const conditional = accepted.filter(isConditional);
      done.push(
        `${r.identity} after SIGCONT: ${accepted.length} writes accepted (${conditional.length} conditional on the version read: ${conditional.map((w) => `${w.verb} ${w.objectRef?.resource}${w.objectRef?.subresource ? `/${w.objectRef.subresource}` : ''}`).join(', ') || 'none'}), ${refused.length} refused`,
      );
      for (const w of accepted.filter((x) => !isConditional(x))) {
        violations.push({
          invariant: 'fence',
          message: `stale leader ${r.identity} wrote ${w.verb} ${w.requestURI} (HTTP ${w.responseStatus?.code}), unconditionally, after losing the lease`,
        });
      }
    }
    for (const at of world.compactedAt) {
      done.push(`controller lists after the compaction: ${controllerLists(audit, at)}`);
    }
    if (recorder.relists() > 0) done.push(`recorder relisted ${recorder.relists()} time(s)`);
    return {
      schedule: describeSchedule(schedule),
      violations,
      faults: [...done, ...world.ended],
      evictions: calls.length,
      controllerExits: controllers.reduce((n, c) => n + c.exits.length, 0),
      ms: Date.now() - started,
    };
  } finally {
    world.over = true;
    recorder.stop();
    for (const c of controllers) await c.stop();
    for (const d of devices) await d.agent.kill();
    removeKubeconfig(replicaKubeconfig);
  }
}

/**
 * Tenant A holds the device; its trainer exports a buffer that the loader (team-io) pins as an
 * RDMA MR; a bystander holds nothing; a PDB may guard the loader and a hidden holder may pin
 * the buffer too; tenant B (and C) queue.
 */
async function setUp(w: World, d: Device): Promise<void> {
  const { ns } = w;
  const i = d.story.node;
  await createLease(ns.a, `tenant-a-${i}`, { accelerator: d.name });
  await waitFor(
    `tenant-a-${i} Granted`,
    async () => (await getLease(ns.a, `tenant-a-${i}`)).status?.phase === 'Granted',
    60_000,
  );
  await createPod(ns.a, `trainer-${i}`, d.node, { app: `tenant-a-${i}` });
  await createPod(ns.io, `loader-${i}`, d.node, { role: `loader-${i}` });
  await createPod(ns.io, `bystander-${i}`, d.node);
  await createActiveExport(ns.a, `weights-${i}`, {
    accelerator: d.name,
    lease: `tenant-a-${i}`,
    exporter: { pod: `trainer-${i}` },
    sizeBytes: 1 << 30,
    importers: [{ name: 'nic0', kind: 'rdma-mr', pod: { namespace: ns.io, name: `loader-${i}` } }],
  });
  if (d.story.pdbSeconds !== undefined) await guardLoader(ns.io, i);
  if (d.story.hiddenHolder) {
    const res = await fetch(d.agent.adminUrl('/hidden-holders'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ export: `${ns.a}/weights-${i}`, comm: 'rdma-agent' }),
    });
    if (res.status !== 201)
      throw new Error(`hidden holder: HTTP ${res.status} ${await res.text()}`);
  }
  const revocation = { gracePeriodSeconds: GRACE_SECONDS, maxEvictions: MAX_EVICTIONS };
  await createLease(ns.b, `tenant-b-${i}`, { accelerator: d.name, revocation });
  if (d.story.queued === 2) {
    await createLease(ns.c, `tenant-c-${i}`, { accelerator: d.name, revocation });
  }
}

async function guardLoader(io: string, i: number): Promise<void> {
  await api('POST', `/apis/policy/v1/namespaces/${io}/poddisruptionbudgets`, {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: `loader-${i}`, namespace: io },
    spec: { minAvailable: 1, selector: { matchLabels: { role: `loader-${i}` } } },
  });
  await waitFor('the PDB counts the loader', async () => {
    const p = await api<{ status?: { expectedPods?: number } }>(
      'GET',
      `/apis/policy/v1/namespaces/${io}/poddisruptionbudgets/loader-${i}`,
    );
    return p.status?.expectedPods === 1;
  });
}

const blockedReason = async (ns: string, name: string) =>
  (await getLease(ns, name)).status?.conditions?.find((c) => c.type === 'Blocked')?.reason;

/**
 * The device's handoffs, from A's release to the last queued lease (or to Unresolvable);
 * records when each ended, counted from the release.
 */
async function playOut(w: World, d: Device, t0: number): Promise<void> {
  const ended = (what: string) =>
    w.ended.push(`${d.name}: ${what} at ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  const { ns } = w;
  const i = d.story.node;
  if (d.story.pdbSeconds !== undefined) {
    await sleep(Math.max(0, t0 + d.story.pdbSeconds * 1000 - Date.now()));
    await api('DELETE', `/apis/policy/v1/namespaces/${ns.io}/poddisruptionbudgets/loader-${i}`);
  }
  const granted = (lns: string, name: string) => async () =>
    (await getLease(lns, name)).status?.phase === 'Granted';
  if (d.story.hiddenHolder) {
    await until(w, async () => (await blockedReason(ns.b, `tenant-b-${i}`)) === 'Unresolvable');
    if (!w.over) ended('tenant-b Unresolvable');
    return;
  }
  await until(w, granted(ns.b, `tenant-b-${i}`));
  if (w.over) return;
  ended('tenant-b Granted');
  if (d.story.queued === 1) return;
  await api('DELETE', `${GROUP}/namespaces/${ns.b}/acceleratorleases/tenant-b-${i}`);
  await until(w, granted(ns.c, `tenant-c-${i}`));
  if (!w.over) ended('tenant-c Granted');
}

/** I3: each device's last lease, when the schedule did not settle within its bound. */
async function unsettled(w: World): Promise<Violation[]> {
  const out: Violation[] = [];
  for (const d of w.devices) {
    const i = d.story.node;
    const [ns, name] =
      d.story.queued === 2 && !d.story.hiddenHolder
        ? [w.ns.c, `tenant-c-${i}`]
        : [w.ns.b, `tenant-b-${i}`];
    const l = await getLease(ns, name).catch(() => undefined);
    const blocked = l?.status?.conditions?.find((c) => c.type === 'Blocked');
    out.push({
      invariant: 'I3',
      message: `${ns}/${name} on ${d.name} neither Granted nor Unresolvable ${SETTLE_MS / 1000}s after the faults: phase ${l?.status?.phase ?? 'gone'}, Blocked ${blocked?.reason ?? '-'}: ${blocked?.message ?? ''}`,
    });
  }
  return out;
}

/**
 * The replica slot that leads now, waiting for one if the election is between leaders (after an
 * API server restart, the replicas come back one crash-loop step at a time). None within the
 * bound is a liveness failure of its own.
 */
async function leading(w: World, timeoutMs = 90_000): Promise<ControllerSlot> {
  return waitFor(
    'a controller replica to lead (none did)',
    async () => {
      const id = await leaderIdentity(w.ns.sys);
      return w.controllers.find((c) => c.identity === id && c.pid() !== undefined);
    },
    timeoutMs,
  );
}

/** Carry out one fault; returns a line saying what was done. */
async function inject(w: World, f: Fault, t0: number): Promise<string> {
  const at = `${f.kind} at ${((Date.now() - t0) / 1000).toFixed(1)}s`;
  switch (f.kind) {
    case 'kill-leader': {
      const slot = await leading(w);
      await slot.current?.kill();
      return `${at}: killed leader ${slot.identity}`;
    }
    case 'kill-standby': {
      const leader = await leading(w);
      const standby = w.controllers.find((c) => c !== leader);
      await standby?.current?.kill();
      return `${at}: killed standby ${standby?.identity ?? 'none'}`;
    }
    case 'stop-leader':
      return `${at}: ${await stopLeader(w)}`;
    case 'kill-agent': {
      const d = w.devices[f.agent ?? 0]!;
      await d.agent.kill();
      w.pending.push(d.agent.restart());
      return `${at}: killed the agent of ${d.node}; it starts again from its state file`;
    }
    case 'apiserver-restart': {
      const down = Date.now();
      await w.env.replica.stop();
      await sleep(2_000);
      await w.env.replica.start();
      return `${at}: API server down ${((Date.now() - down) / 1000).toFixed(1)}s`;
    }
    case 'compaction': {
      const revision = await compact(w.env.replica.etcd);
      w.compactedAt.push(Date.now());
      await w.env.replica.stop();
      await w.env.replica.start();
      return `${at}: etcd compacted at revision ${revision}, API server restarted so watches resume below it`;
    }
    case 'proxy-stall': {
      const slot = await leading(w);
      slot.proxy.stall();
      await sleep(f.stallMs ?? 3_000);
      slot.proxy.resume();
      return `${at}: stalled ${slot.identity}'s connections for ${((f.stallMs ?? 3_000) / 1000).toFixed(1)}s`;
    }
    case 'proxy-cut':
      for (const c of w.controllers) c.proxy.cut();
      return `${at}: reset every controller connection`;
  }
}

/**
 * SIGSTOP the leader until another replica holds the election Lease, then SIGCONT it: from then
 * on the audit log must show no write of it accepted.
 */
async function stopLeader(w: World): Promise<string> {
  const slot = await leading(w);
  const pid = slot.pid();
  if (pid === undefined) return 'no leader process to stop';
  const identity = slot.identity;
  const stoppedAt = Date.now();
  process.kill(pid, 'SIGSTOP');
  let takenOver: string | undefined;
  try {
    takenOver = await waitFor(
      'another replica to take over',
      async () => {
        const id = await leaderIdentity(w.ns.sys);
        return id && id !== identity ? id : undefined;
      },
      45_000,
    ).catch(() => undefined);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  const took = ((Date.now() - stoppedAt) / 1000).toFixed(1);
  if (!takenOver) return `stopped leader ${identity} ${took}s; nobody took over`;
  w.resumed.push({ identity, at: Date.now() });
  return `stopped leader ${identity}; ${takenOver} took over after ${took}s; resumed it`;
}

/** Compact etcd's history at its current revision (physically), through its JSON gateway. */
async function compact(etcd: string): Promise<number> {
  const range = await fetch(`${etcd}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: 'AA==', limit: 1 }),
  });
  const revision = Number(
    ((await range.json()) as { header: { revision: string } }).header.revision,
  );
  const res = await fetch(`${etcd}/v3/kv/compaction`, {
    method: 'POST',
    body: JSON.stringify({ revision: String(revision), physical: true }),
  });
  if (!res.ok) throw new Error(`etcd compaction: HTTP ${res.status} ${await res.text()}`);
  return revision;
}
