// The node agent against a real API server: it publishes Accelerators, applies spec.owner
// (written here as an admin would, until the controller does it), realizes a DmaBufExport for
// pods kwok runs, and keeps every export record across in-process and killed-process restarts.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
import type { Accelerator, DmaBufExport, Pin } from '../src/crds/index.ts';
import { startAgent as startAgentInProcess, type AgentHandle } from '../src/agent/index.ts';
import { createLogger } from '../src/kube/index.ts';
import { applyCrds, clusterInfo, kubeConfig, testNamespace } from './harness/index.ts';
import {
  api,
  createImportGrant,
  createPod,
  startAgent as startAgentProcess,
  testNode,
  waitFor,
} from './stack/index.ts';

const GROUP = '/apis/accel.dmabuf.io/v1alpha1';
const MERGE = 'application/merge-patch+json';
const kwok = clusterInfo().simulatedNodes.length > 0;

/** An in-process agent whose log is shown if the test fails; stopped when the test finishes. */
async function agentInProcess(
  node: string,
  stateFile: string,
  extra: { profile?: 'static' | 'dynamic' | 'revocable'; devices?: number } = {},
): Promise<AgentHandle> {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().trimEnd().split('\n'));
      done();
    },
  });
  const agent = await startAgentInProcess({
    node,
    stateFile,
    profile: extra.profile ?? 'dynamic',
    devices: extra.devices ?? 1,
    adminAddr: { host: '127.0.0.1', port: 0 },
    httpAddr: { host: '127.0.0.1', port: 0 },
    heartbeatMs: 1000,
    kubeConfig: kubeConfig(),
    logger: createLogger({ level: 'debug', destination: sink }),
    onCrash: () => undefined,
  });
  onTestFailed(() => console.log(`--- agent ${node} log ---\n${lines.slice(-80).join('\n')}`));
  onTestFinished(() => agent.stop());
  return agent;
}

const accelerator = (name: string) => api<Accelerator>('GET', `${GROUP}/accelerators/${name}`);
const dbx = (ns: string, name: string) =>
  api<DmaBufExport>('GET', `${GROUP}/namespaces/${ns}/dmabufexports/${name}`);

function setOwner(name: string, owner: Record<string, unknown>) {
  return api('PATCH', `${GROUP}/accelerators/${name}`, { spec: { owner } }, MERGE);
}

async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let last: T | undefined;
  try {
    return await waitFor(
      what,
      async () => {
        last = await read();
        return ok(last) ? last : undefined;
      },
      45_000,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\nlast seen: ${JSON.stringify(last, null, 1)}`);
  }
}

const tmpState = () => join(mkdtempSync(join(tmpdir(), 'agent-e2e-')), 'state.json');
const attachmentStates = (e: DmaBufExport) =>
  Object.fromEntries((e.status?.attachments ?? []).map((a) => [a.name, a.state]));

function runAgent(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const main = join(import.meta.dirname, '..', 'src', 'agent', 'main.ts');
  return new Promise((resolve) => {
    execFile(process.execPath, [main, ...args], { timeout: 30_000 }, (err, _out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr });
    });
  });
}

describe('node agent command line', () => {
  it('a bad flag: one line, exit 2; an unreachable API server: one line, exit 1', async () => {
    const bad = await runAgent(['--node', 'node-a', '--admin-addr', '0.0.0.0:9446']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual([
      'accel-lease-agent: --admin-addr "0.0.0.0:9446": want a loopback host:port like 127.0.0.1:9446: the admin API injects faults and has no authentication',
    ]);

    // A port nothing listens on (fetch refuses a few well-known ports outright, so pick a free one).
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = srv.address() as AddressInfo;
        srv.close(() => resolve(p));
      });
    });
    const dir = mkdtempSync(join(tmpdir(), 'agent-cli-'));
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]`,
        'users: [{name: u, user: {token: t}}]',
        'contexts: [{name: x, context: {cluster: c, user: u}}]',
        'current-context: x',
      ].join('\n'),
    );
    const down = await runAgent([
      '--node=node-a',
      `--kubeconfig=${kubeconfig}`,
      `--state-file=${join(dir, 'state.json')}`,
      '--admin-addr=127.0.0.1:0',
      '--http-addr=127.0.0.1:0',
    ]);
    expect(down.code).toBe(1);
    expect(down.stderr.trim().split('\n')).toEqual([
      `accel-lease-agent: cannot reach the API server at https://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`,
    ]);
  });
});

describe.skipIf(!kwok)('node agent on a real API server', () => {
  beforeAll(async () => {
    await applyCrds(['accelerators.accel.dmabuf.io', 'dmabufexports.accel.dmabuf.io']);
  });

  it('publishes its Accelerators with server-side apply, owning spec but never spec.owner', async () => {
    const node = await testNode('agent-pub');
    const agent = await agentInProcess(node, tmpState(), { devices: 2, profile: 'static' });

    const list = await until(
      'two Accelerators with a status',
      () =>
        api<{ items: Accelerator[] }>(
          'GET',
          `${GROUP}/accelerators?labelSelector=${encodeURIComponent(`accel.dmabuf.io/node=${node}`)}`,
        ),
      (l) => l.items.length === 2 && l.items.every((a) => a.status?.phase === 'Free'),
    );
    const hl1 = list.items.find((a) => a.metadata.name === `${node}-hl1`);
    expect(hl1?.metadata.labels).toMatchObject({
      'accel.dmabuf.io/node': node,
      'accel.dmabuf.io/model': 'gaudi2',
    });
    expect(hl1?.spec).toEqual({
      node,
      index: 1,
      model: 'gaudi2',
      memoryBytes: 96 * 2 ** 30,
      exporterProfile: 'static',
    });

    // The controller's field stays the controller's: after an admin sets spec.owner, the agent's
    // periodic apply neither removes it nor takes it over.
    await setOwner(`${node}-hl0`, { lease: { namespace: 'x', name: 'l', uid: 'u-1' }, epoch: 1 });
    await agent.synced();
    const owned = await until(
      'hl0 Owned',
      () => accelerator(`${node}-hl0`),
      (a) => a.status?.phase === 'Owned',
    );
    expect(owned.spec.owner).toEqual({
      lease: { namespace: 'x', name: 'l', uid: 'u-1' },
      epoch: 1,
    });
    const managed =
      (owned.metadata as { managedFields?: Array<Record<string, unknown>> }).managedFields ?? [];
    const agentSpec = managed.find(
      (m) => m.manager === 'accel-lease-agent' && m.subresource === undefined,
    );
    const agentStatus = managed.find(
      (m) => m.manager === 'accel-lease-agent' && m.subresource === 'status',
    );
    expect(agentSpec?.operation).toBe('Apply');
    expect(JSON.stringify(agentSpec?.fieldsV1)).toContain('"f:memoryBytes"');
    expect(JSON.stringify(agentSpec?.fieldsV1)).not.toContain('"f:owner"');
    expect(JSON.stringify(agentStatus?.fieldsV1)).toContain('"f:heartbeatTime"');

    // heartbeatTime moves every --heartbeat (1 s here) even when nothing else changes.
    const first = owned.status?.heartbeatTime;
    await until(
      'a newer heartbeat',
      () => accelerator(`${node}-hl1`),
      (a) => (a.status?.heartbeatTime ?? '') > (first ?? ''),
    );

    // /readyz and /metrics answer on the http address.
    const readyz = await fetch(`${agent.httpUrl}/readyz`);
    expect(readyz.status).toBe(200);
    const metrics = await (await fetch(`${agent.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(
      new RegExp(`accel_agent_device_phase\\{device="${node}-hl0",phase="Owned"\\} 1`),
    );
  });

  it('hands a dynamic device over and loses no export record across restarts', async () => {
    const ns = await testNamespace('agent-a');
    const io = await testNamespace('agent-io');
    const node = await testNode('agent-handoff');
    const device = `${node}-hl0`;
    const stateFile = tmpState();
    let agent = await agentInProcess(node, stateFile);

    // Epoch 1: tenant-a owns the device.
    await until(
      'the Accelerator',
      () => accelerator(device),
      (a) => a.status?.phase === 'Free',
    );
    const tenantA = { namespace: ns, name: 'tenant-a', uid: 'uid-tenant-a' };
    await setOwner(device, { lease: tenantA, epoch: 1 });
    const owned = await until(
      'Owned at epoch 1',
      () => accelerator(device),
      (a) => a.status?.phase === 'Owned',
    );
    expect(owned.status).toMatchObject({
      owner: { lease: tenantA, epoch: 1 },
      observedEpoch: 1,
      pins: [],
    });

    // The workload: trainer exports weights to a peer GPU and to an RDMA NIC in another namespace.
    await createPod(ns, 'trainer-0', node);
    await createPod(ns, 'peer-0', node);
    await createPod(io, 'loader-0', node);
    await createImportGrant(io, [ns]);
    await api('POST', `${GROUP}/namespaces/${ns}/dmabufexports`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufExport',
      metadata: { name: 'weights', namespace: ns },
      spec: {
        accelerator: device,
        lease: 'tenant-a',
        exporter: { pod: 'trainer-0' },
        sizeBytes: 2 ** 30,
        importers: [
          { name: 'p2p', kind: 'dynamic', pod: { namespace: ns, name: 'peer-0' } },
          { name: 'nic0', kind: 'rdma-mr', pod: { namespace: io, name: 'loader-0' } },
        ],
      },
    });
    const active = await until(
      'export Active',
      () => dbx(ns, 'weights'),
      (e) => e.status?.phase === 'Active',
    );
    const inode = active.status?.inode;
    expect(inode).toBeGreaterThan(0);
    expect(active.status).toMatchObject({ epoch: 1 });
    expect(active.status?.attachments?.map((a) => [a.name, a.kind, a.revocable, a.state])).toEqual([
      ['p2p', 'dynamic', true, 'Attached'],
      ['nic0', 'rdma-mr', false, 'Attached'],
    ]);

    // Each step is an Event on the object it happened to.
    await until(
      'an Exported Event on the export',
      () =>
        api<{ items: Array<{ reason?: string; regarding?: { name?: string } }> }>(
          'GET',
          `/apis/events.k8s.io/v1/namespaces/${ns}/events`,
        ),
      (l) => l.items.some((e) => e.reason === 'Exported' && e.regarding?.name === 'weights'),
    );

    // Restart in-process from the state file: same buffer, not exported again.
    await agent.stop();
    agent = await agentInProcess(node, stateFile);
    await agent.synced();
    expect(agent.snapshot().kernel).toMatchObject({ buffers: [{ ino: inode, name: 'weights' }] });
    expect((await dbx(ns, 'weights')).status).toMatchObject({ phase: 'Active', inode });

    // Epoch 2, no lease: dynamic is revoked, rdma-mr pins, the device is Stuck on the loader pod.
    await setOwner(device, { lease: null, epoch: 2 });
    const stuck = await until(
      'Stuck at epoch 2',
      () => accelerator(device),
      (a) => a.status?.phase === 'Stuck',
    );
    expect(stuck.status).toMatchObject({ owner: { epoch: 2 }, observedEpoch: 2 });
    expect(stuck.status?.owner?.lease).toBeUndefined();
    expect(stuck.status?.pins).toEqual([
      expect.objectContaining({
        export: `${ns}/weights`,
        inode,
        importer: 'nic0',
        kind: 'rdma-mr',
        pod: { namespace: io, name: 'loader-0' },
        comm: 'loader',
        epoch: 1,
      }) as Pin,
    ]);
    const pinned = await until(
      'export Pinned',
      () => dbx(ns, 'weights'),
      (e) => e.status?.phase === 'Pinned',
    );
    expect(attachmentStates(pinned)).toEqual({ p2p: 'Revoked', nic0: 'Pinned' });

    // The agent as a process, killed with SIGKILL mid-life, then started again: nothing lost.
    await agent.stop();
    const first = await startAgentProcess({ node, profile: 'dynamic', stateFile, heartbeat: '1s' });
    await first.kill();
    const second = await startAgentProcess({
      node,
      profile: 'dynamic',
      stateFile,
      heartbeat: '1s',
    });
    const admin = `http://127.0.0.1:${second.adminPort}`;
    const restored = (await (await fetch(`${admin}/state`)).json()) as {
      kernel: { buffers: Array<{ ino: number }> };
      exports: Record<string, { ino: number }>;
    };
    expect(restored.kernel.buffers.map((b) => b.ino)).toEqual([inode]);
    expect(Object.values(restored.exports).map((r) => r.ino)).toEqual([inode]);

    // The loader pod goes: its MR goes with its process, the device is Free.
    await api('DELETE', `/api/v1/namespaces/${io}/pods/loader-0?gracePeriodSeconds=0`);
    const free = await until(
      'Free',
      () => accelerator(device),
      (a) => a.status?.phase === 'Free',
    );
    expect(free.status?.pins).toEqual([]);
    const revoked = await until(
      'export Revoked',
      () => dbx(ns, 'weights'),
      (e) => e.status?.phase === 'Revoked',
    );
    expect(attachmentStates(revoked)).toEqual({ p2p: 'Revoked', nic0: 'Detached' });
    expect(revoked.status?.inode).toBe(inode);
    expect(await second.stop()).toBe(0);
  });

  it('refuses a lower epoch after its Accelerator is recreated, and keeps the one it enforces', async () => {
    const node = await testNode('agent-fence');
    const device = `${node}-hl0`;
    const agent = await agentInProcess(node, tmpState());
    await until(
      'the Accelerator',
      () => accelerator(device),
      (a) => a.status?.phase === 'Free',
    );
    const lease = { namespace: 'team-a', name: 'tenant-a', uid: 'uid-a' };
    await setOwner(device, { lease, epoch: 3 });
    await until(
      'Owned at 3',
      () => accelerator(device),
      (a) => a.status?.observedEpoch === 3,
    );

    // Someone deletes the object; the agent publishes it again, and an owner at epoch 1 arrives.
    await api('DELETE', `${GROUP}/accelerators/${device}`);
    await until(
      'recreated',
      () => accelerator(device),
      (a) => a.spec.owner === undefined && a.status?.phase === 'Owned',
    );
    await setOwner(device, { lease: { ...lease, uid: 'uid-old' }, epoch: 1 });
    await agent.synced();
    const refused = await until(
      'StaleEpoch',
      () => accelerator(device),
      (a) =>
        a.status?.conditions?.some((c) => c.type === 'OwnerApplied' && c.reason === 'StaleEpoch') ??
        false,
    );
    expect(refused.status).toMatchObject({
      phase: 'Owned',
      owner: { lease, epoch: 3 },
      observedEpoch: 3,
    });
  });

  it('injects faults through the admin API: slow revoke, hidden holder, crash', async () => {
    const ns = await testNamespace('agent-faults');
    const node = await testNode('agent-faults');
    const device = `${node}-hl0`;
    const stateFile = tmpState();
    const agent = await startAgentProcess({ node, profile: 'dynamic', stateFile, heartbeat: '1s' });
    const admin = `http://127.0.0.1:${agent.adminPort}`;
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${admin}${path}`, {
        method,
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };

    const a = { namespace: ns, name: 'tenant-a', uid: 'uid-a' };
    const b = { namespace: ns, name: 'tenant-b', uid: 'uid-b' };
    await until(
      'the Accelerator',
      () => accelerator(device),
      (x) => x.status?.phase === 'Free',
    );
    await setOwner(device, { lease: a, epoch: 1 });
    await until(
      'Owned',
      () => accelerator(device),
      (x) => x.status?.phase === 'Owned',
    );
    await createPod(ns, 'trainer-0', node);
    await api('POST', `${GROUP}/namespaces/${ns}/dmabufexports`, {
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'DmaBufExport',
      metadata: { name: 'buf', namespace: ns },
      spec: {
        accelerator: device,
        lease: 'tenant-a',
        exporter: { pod: 'trainer-0' },
        sizeBytes: 4096,
      },
    });
    await until(
      'export Active',
      () => dbx(ns, 'buf'),
      (e) => e.status?.phase === 'Active',
    );

    const holder = await call('POST', '/hidden-holders', { export: `${ns}/buf` });
    expect(holder.status).toBe(201);
    expect((await call('PUT', '/slow-revoke', { delayMs: 3000 })).status).toBe(200);

    await setOwner(device, { lease: b, epoch: 2 });
    const revoking = await until(
      'Revoking',
      () => accelerator(device),
      (x) => x.status?.phase === 'Revoking',
    );
    expect(revoking.status?.owner).toEqual({ lease: a, epoch: 1 });
    const stuck = await until(
      'Stuck',
      () => accelerator(device),
      (x) => x.status?.phase === 'Stuck',
    );
    expect(stuck.status?.pins).toEqual([
      expect.objectContaining({
        kind: 'pinned',
        pid: holder.body.pid,
        importer: `hidden-${String(holder.body.pid)}`,
      }) as Pin,
    ]);
    expect(stuck.status?.pins?.[0]?.pod).toBeUndefined();

    expect((await call('DELETE', `/hidden-holders/${String(holder.body.pid)}`)).status).toBe(200);
    const owned = await until(
      'Owned by tenant-b',
      () => accelerator(device),
      (x) => x.status?.phase === 'Owned',
    );
    expect(owned.status?.owner).toEqual({ lease: b, epoch: 2 });

    const crash = await call('POST', '/crash');
    expect(crash.status).toBe(202);
    const code = await new Promise<number | null>((resolve) => {
      if (agent.process.exitCode !== null) resolve(agent.process.exitCode);
      else agent.process.once('exit', (c) => resolve(c));
    });
    expect(code).toBe(137);
  });
});
