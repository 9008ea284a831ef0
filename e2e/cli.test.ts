// The kubectl plugin on a real API server, run as users run it (a child process, and through
// kubectl's plugin lookup): the device table, a granted, a queued and a stuck lease, exit codes.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Accelerator, AcceleratorLease } from '../src/crds/index.ts';
import type { DeviceStatus, WhyChain } from '../src/cli/index.ts';
import { CORDON_ANNOTATION } from '../src/crds/index.ts';
import { clusterInfo, kubeConfig, kubectl, testNamespace } from './harness/index.ts';
import {
  api,
  createActiveExport,
  createImportGrant,
  createPod,
  ready,
  startAgent,
  startController,
  testNode,
  waitFor,
} from './stack/index.ts';

const ROOT = join(import.meta.dirname, '..');
const GROUP = '/apis/accel.dmabuf.io/v1alpha1';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { env: { ...process.env, KUBECONFIG: clusterInfo().kubeconfig, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `kubectl dmabuf ARGS` as the plugin's entry point runs it. */
const dmabuf = (args: string[], env?: Record<string, string>) =>
  run(process.execPath, [join(ROOT, 'src/cli/main.ts'), ...args], env);

/** The table row of one device, split into its columns (cells are three spaces apart). */
function row(table: string, device: string): string[] | undefined {
  return table
    .split('\n')
    .map((line) => line.split(/ {3,}/))
    .find((cells) => cells[1] === device);
}

function createLease(ns: string, name: string, accelerator: string, gracePeriodSeconds = 30) {
  return api<AcceleratorLease>('POST', `${GROUP}/namespaces/${ns}/acceleratorleases`, {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'AcceleratorLease',
    metadata: { name, namespace: ns },
    spec: {
      accelerator,
      holder: { podSelector: { matchLabels: { app: name } } },
      revocation: { gracePeriodSeconds },
    },
  });
}

const getLease = (ns: string, name: string) =>
  api<AcceleratorLease>('GET', `${GROUP}/namespaces/${ns}/acceleratorleases/${name}`);

/** A kubeconfig file next to the harness's, adding a context; removed after the test. */
function extraKubeconfig(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cli-kubeconfig-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config');
  writeFileSync(file, yaml);
  return `${file}${delimiter}${clusterInfo().kubeconfig}`;
}

/** A loopback port nothing listens on (it was free a moment ago). */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 9));
    });
  });
}

function currentContext(): { cluster: string; user: string } {
  const kc = kubeConfig();
  const ctx = kc.getContextObject(kc.getCurrentContext());
  if (!ctx) throw new Error('the harness kubeconfig has no current context');
  return { cluster: ctx.cluster, user: ctx.user };
}

const getAccel = (name: string) => api<Accelerator>('GET', `${GROUP}/accelerators/${name}`);

/**
 * A dynamic device granted to a/tenant-a, with an export a/weights whose importers are given,
 * and a/trainer-0 as its exporter. Returns the agent's admin URL.
 */
async function grantedWithExport(
  node: string,
  a: string,
  importers: { name: string; kind: string; pod: { namespace: string; name: string } }[],
): Promise<string> {
  const accel = `${node}-hl0`;
  const agent = await startAgent({ node, profile: 'dynamic' });
  await ready(await startController());
  await createLease(a, 'tenant-a', accel);
  await waitFor('tenant-a Granted', async () => {
    return (await getLease(a, 'tenant-a')).status?.phase === 'Granted';
  });
  await createPod(a, 'trainer-0', node);
  for (const ns of new Set(importers.map((i) => i.pod.namespace))) {
    if (ns !== a) await createImportGrant(ns, [a]);
  }
  await createActiveExport(a, 'weights', {
    accelerator: accel,
    lease: 'tenant-a',
    exporter: { pod: 'trainer-0' },
    sizeBytes: 1 << 30,
    importers,
  });
  return `http://127.0.0.1:${agent.adminPort}`;
}

describe('kubectl dmabuf', () => {
  it('shows the owner and epoch, explains a granted lease (0), a queued one (1) and a missing one (3)', async () => {
    const node = await testNode('cli');
    const accel = `${node}-hl0`;
    const [a, b] = [await testNamespace('cli-a'), await testNamespace('cli-b')];
    await startAgent({ node, profile: 'dynamic' });
    await ready(await startController());
    await createLease(a, 'tenant-a', accel);
    await waitFor('tenant-a Granted', async () => {
      return (await getLease(a, 'tenant-a')).status?.phase === 'Granted';
    });
    await createLease(b, 'tenant-b', accel);
    await waitFor('tenant-b queued', async () => {
      return (await getLease(b, 'tenant-b')).status?.queuePosition === 1;
    });

    const table = await dmabuf(['status', '--node', node]);
    console.log(`$ kubectl dmabuf status --node ${node}\n${table.stdout}`);
    expect(table).toMatchObject({ code: 0, stderr: '' });
    expect(table.stdout.split('\n')[0]).toMatch(
      /^NODE +DEVICE +PROFILE +PHASE +OWNER +EPOCH +PINS +QUEUE$/,
    );
    expect(row(table.stdout, accel)).toEqual([
      node,
      accel,
      'dynamic',
      'Owned',
      `${a}/tenant-a`,
      '1',
      '0',
      `${b}/tenant-b`,
    ]);

    const json = await dmabuf(['status', '--node', node, '-o', 'json']);
    expect(json.code).toBe(0);
    const { devices } = JSON.parse(json.stdout) as { devices: DeviceStatus[] };
    expect(devices).toEqual([
      expect.objectContaining({
        node,
        device: accel,
        phase: 'Owned',
        owner: `${a}/tenant-a`,
        ownerEnforced: true,
        epoch: 1,
        observedEpoch: 1,
        pins: { count: 0, holders: [] },
        queue: [`${b}/tenant-b`],
      }),
    ]);

    const granted = await dmabuf(['why', 'tenant-a', '-n', a]);
    console.log(`$ kubectl dmabuf why tenant-a -n ${a}\n${granted.stdout}`);
    expect(granted).toMatchObject({ code: 0, stderr: '' });
    expect(granted.stdout).toMatch(
      new RegExp(
        `^lease ${a}/tenant-a: Granted ${accel} at epoch 1 since \\d\\d:\\d\\d:\\d\\d UTC\n`,
      ),
    );
    expect(granted.stdout).toContain(
      `-> accelerator ${accel} on node ${node} (dynamic): Owned at epoch 1, owner ${a}/tenant-a\n`,
    );
    expect(granted.stdout.trimEnd().split('\n').at(-1)).toBe(
      'next: granted: nothing blocks this lease',
    );

    const queued = await dmabuf(['why', `${b}/tenant-b`]);
    console.log(`$ kubectl dmabuf why ${b}/tenant-b\n${queued.stdout}`);
    expect(queued).toMatchObject({ code: 1, stderr: '' });
    expect(queued.stdout).toContain(
      `next: queued at position 1 behind ${a}/tenant-a (the owner)\n`,
    );
    const chain = JSON.parse(
      (await dmabuf(['why', 'tenant-b', '-n', b, '-o', 'json'])).stdout,
    ) as WhyChain;
    expect(chain).toMatchObject({
      verdict: 'Queued',
      lease: { namespace: b, name: 'tenant-b', phase: 'Pending', accelerator: accel },
      device: { name: accel, epoch: 1, owner: `${a}/tenant-a`, ownerEnforced: true },
      queue: { position: 1, ahead: [`${a}/tenant-a`] },
      pins: [],
    });

    const missing = await dmabuf(['why', 'no-such-lease', '-n', a]);
    expect(missing).toEqual({
      code: 3,
      stdout: '',
      stderr: `error: AcceleratorLease ${a}/no-such-lease not found\n`,
    });
    const noNode = await dmabuf(['status', '--node', `${node}-gone`]);
    expect(noNode).toMatchObject({ code: 3, stdout: '' });
    expect(noNode.stderr.split('\n')).toEqual([
      `error: no Accelerator on node ${node}-gone (kubectl get accel)`,
      '',
    ]);
  });

  it('follows a stuck handoff to the rdma-mr pin and its pod, and calls a hidden holder Unresolvable', async () => {
    const node = await testNode('cli-stuck');
    const accel = `${node}-hl0`;
    const [a, b, io] = [
      await testNamespace('cli-a'),
      await testNamespace('cli-b'),
      await testNamespace('cli-io'),
    ];
    await createPod(io, 'loader-0', node);
    const admin = await grantedWithExport(node, a, [
      { name: 'nic0', kind: 'rdma-mr', pod: { namespace: io, name: 'loader-0' } },
    ]);
    const hidden = (await (
      await fetch(`${admin}/hidden-holders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ export: `${a}/weights`, comm: 'rogue' }),
      })
    ).json()) as { pid: number };

    // A grace period longer than the test: whether a reaper runs or not, nobody is evicted.
    await createLease(b, 'tenant-b', accel, 600);
    await api('DELETE', `${GROUP}/namespaces/${a}/acceleratorleases/tenant-a`);
    await waitFor('tenant-b Blocked by two pins', async () => {
      const l = await getLease(b, 'tenant-b');
      return l.status?.blockedBy?.length === 2;
    });

    const stuck = await dmabuf(['why', 'tenant-b', '-n', b]);
    console.log(`$ kubectl dmabuf why tenant-b -n ${b}\n${stuck.stdout}`);
    expect(stuck).toMatchObject({ code: 1, stderr: '' });
    const lines = stuck.stdout.trimEnd().split('\n');
    expect(lines).toContain(
      `-> accelerator ${accel} on node ${node} (dynamic): Stuck at epoch 2, owner ${b}/tenant-b, not yet enforced (the device enforces nobody)`,
    );
    expect(lines).toContain('      -> rdma-mr importer nic0, not revocable');
    expect(lines.some((l) => new RegExp(`^ {6}-> pod ${io}/loader-0, pid \\d+`).test(l))).toBe(
      true,
    );
    expect(lines).toContain(`      -> pinned importer hidden-${hidden.pid}, not revocable`);
    expect(lines).toContain(`      -> no pod: pid ${hidden.pid} (rogue)`);
    expect(lines.filter((l) => l.startsWith('next: '))).toEqual([
      `next: Unresolvable: pid ${hidden.pid} (rogue) holds a pinned attachment outside any pod; an operator must kill it on ${node}`,
      `next: ${io}/loader-0 is not evicted while a pin held outside any pod remains: evicting it alone cannot free ${accel}`,
    ]);
    const json = JSON.parse(
      (await dmabuf(['why', 'tenant-b', '-n', b, '-o', 'json'])).stdout,
    ) as WhyChain;
    expect(json.verdict).toBe('Unresolvable');
    expect(json.pins.map((p) => [p.kind, p.revocable, p.pod, p.export])).toEqual(
      expect.arrayContaining([
        ['rdma-mr', false, `${io}/loader-0`, `${a}/weights`],
        ['pinned', false, null, `${a}/weights`],
      ]),
    );

    // The operator kills the hidden holder: what is left is a pin the reaper may evict.
    expect(
      (await fetch(`${admin}/hidden-holders/${hidden.pid}`, { method: 'DELETE' })).status,
    ).toBe(200);
    await waitFor('one pin left', async () => {
      const d = await api<Accelerator>('GET', `${GROUP}/accelerators/${accel}`);
      return d.status?.pins?.length === 1;
    });
    const table = await dmabuf(['status', '--node', node]);
    console.log(`$ kubectl dmabuf status --node ${node}\n${table.stdout}`);
    expect(row(table.stdout, accel)).toEqual([
      node,
      accel,
      'dynamic',
      'Stuck',
      `${b}/tenant-b`,
      '2',
      `1 (${io}/loader-0)`,
      '<none>',
    ]);
    const blocked = await dmabuf(['why', 'tenant-b', '-n', b, '-o', 'json']);
    expect(blocked.code).toBe(1);
    const chain = JSON.parse(blocked.stdout) as WhyChain;
    expect(chain.verdict).toBe('Blocked');
    // The grace period may end on the next UTC day: then the time carries the date.
    const clock = '(\\d{4}-\\d\\d-\\d\\d )?\\d\\d:\\d\\d:\\d\\d UTC';
    expect(chain.next).toEqual([
      expect.stringMatching(
        new RegExp(`^waiting for the grace period to end at ${clock} \\(in \\d+m\\)$`),
      ),
      expect.stringMatching(
        new RegExp(`^the reaper will evict ${io}/loader-0 when the grace period ends at ${clock}$`),
      ),
    ]);
  });

  it("shows the reaper's refused eviction, then the grant once the pod is gone", async () => {
    const node = await testNode('cli-pdb');
    const accel = `${node}-hl0`;
    const [a, b, io] = [
      await testNamespace('cli-a'),
      await testNamespace('cli-b'),
      await testNamespace('cli-io'),
    ];
    await createPod(io, 'loader-0', node, { app: 'loader' });
    await api('POST', `/apis/policy/v1/namespaces/${io}/poddisruptionbudgets`, {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'loader', namespace: io },
      spec: { maxUnavailable: 0, selector: { matchLabels: { app: 'loader' } } },
    });
    await grantedWithExport(node, a, [
      { name: 'nic0', kind: 'rdma-mr', pod: { namespace: io, name: 'loader-0' } },
    ]);
    await createLease(b, 'tenant-b', accel, 0);
    await api('DELETE', `${GROUP}/namespaces/${a}/acceleratorleases/tenant-a`);
    await waitFor(
      'the eviction of loader-0 refused',
      async () =>
        (await getLease(b, 'tenant-b')).status?.evictions?.some((r) => r.result === 'Refused'),
      60_000,
    );

    const refused = await dmabuf(['why', 'tenant-b', '-n', b]);
    console.log(`$ kubectl dmabuf why tenant-b -n ${b}\n${refused.stdout}`);
    expect(refused).toMatchObject({ code: 1, stderr: '' });
    const lines = refused.stdout.trimEnd().split('\n');
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^ {6}-> eviction Refused: attempt \d+ at \S+: refused by a PodDisruptionBudget \(429\): /,
      ),
    );
    expect(lines.at(-1)).toBe(
      `next: a PodDisruptionBudget refuses the eviction of ${io}/loader-0; the reaper retries with backoff`,
    );

    await api('DELETE', `/apis/policy/v1/namespaces/${io}/poddisruptionbudgets/loader`);
    await waitFor(
      'tenant-b Granted',
      async () => (await getLease(b, 'tenant-b')).status?.phase === 'Granted',
      90_000,
    );
    const granted = await dmabuf(['why', 'tenant-b', '-n', b]);
    expect(granted.code).toBe(0);
    expect(granted.stdout).toContain(`: Owned at epoch 2, owner ${b}/tenant-b\n`);
  });

  it('tells the operator to kill a hidden holder and lift the cordon, and both instructions work', async () => {
    const node = await testNode('cli-cordon');
    const accel = `${node}-hl0`;
    const [a, b] = [await testNamespace('cli-a'), await testNamespace('cli-b')];
    const admin = await grantedWithExport(node, a, []);
    const hidden = (await (
      await fetch(`${admin}/hidden-holders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ export: `${a}/weights` }),
      })
    ).json()) as { pid: number };
    await createLease(b, 'tenant-b', accel, 0);
    await api('DELETE', `${GROUP}/namespaces/${a}/acceleratorleases/tenant-a`);
    await waitFor(
      'the device cordoned',
      async () => (await getAccel(accel)).metadata.annotations?.[CORDON_ANNOTATION],
      60_000,
    );

    const stuck = await dmabuf(['why', 'tenant-b', '-n', b]);
    console.log(`$ kubectl dmabuf why tenant-b -n ${b}\n${stuck.stdout}`);
    expect(stuck.code).toBe(1);
    const lines = stuck.stdout.trimEnd().split('\n');
    expect(lines).toContainEqual(
      expect.stringMatching(/^ {3}cordoned \(accel\.dmabuf\.io\/cordoned\): .+/),
    );
    const removeCordon = `kubectl annotate accel ${accel} accel.dmabuf.io/cordoned-`;
    expect(lines.at(-1)).toBe(
      `next: Unresolvable: pid ${hidden.pid} (hidden-holder) holds a pinned attachment outside any pod; an operator must kill it on ${node}, then remove the annotation accel.dmabuf.io/cordoned from the Accelerator (${removeCordon})`,
    );
    const table = await dmabuf(['status', '--node', node]);
    console.log(`$ kubectl dmabuf status --node ${node}\n${table.stdout}`);
    expect(row(table.stdout, accel)?.[3]).toBe('Stuck,Cordoned');

    // The operator does as told: kill the process, then run the command printed.
    await fetch(`${admin}/hidden-holders/${hidden.pid}`, { method: 'DELETE' });
    await waitFor(
      'tenant-b Granted',
      async () => (await getLease(b, 'tenant-b')).status?.phase === 'Granted',
      60_000,
    );
    expect((await dmabuf(['why', 'tenant-b', '-n', b])).code).toBe(0);
    const annotate = await kubectl(removeCordon.split(' ').slice(1));
    expect(annotate.code, annotate.stderr).toBe(0);
    expect(row((await dmabuf(['status', '--node', node])).stdout, accel)?.[3]).toBe('Owned');
  });

  it('runs as a kubectl plugin, taking the namespace from the kubeconfig context', async () => {
    const node = await testNode('cli-plugin');
    const accel = `${node}-hl0`;
    const ns = await testNamespace('cli-ctx');
    await startAgent({ node, profile: 'static' });
    await ready(await startController());
    await createLease(ns, 'solo', accel);
    await waitFor(
      'solo Granted',
      async () => (await getLease(ns, 'solo')).status?.phase === 'Granted',
    );

    const { cluster, user } = currentContext();
    const kubeconfig = extraKubeconfig(
      [
        'apiVersion: v1',
        'kind: Config',
        'contexts:',
        `- name: cli-ctx`,
        `  context: {cluster: ${cluster}, user: ${user}, namespace: ${ns}}`,
      ].join('\n'),
    );
    const path = `${join(ROOT, 'bin')}${delimiter}${process.env.PATH ?? ''}`;
    const plugin = await run(
      clusterInfo().kubectl,
      ['dmabuf', 'why', 'solo', '--context', 'cli-ctx'],
      { KUBECONFIG: kubeconfig, PATH: path },
    );
    expect(plugin.stderr).toBe('');
    expect(plugin.code).toBe(0);
    expect(plugin.stdout).toContain(`lease ${ns}/solo: Granted ${accel} at epoch 1`);
    const help = await run(clusterInfo().kubectl, ['dmabuf', '--help'], { PATH: path });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit codes:');
  });

  it('exits 4 with one line when the API server refuses the caller or cannot be reached', async () => {
    const ns = await testNamespace('cli-rbac');
    const core = kubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'nobody' } },
    });
    const token = (
      await core.createNamespacedServiceAccountToken({
        namespace: ns,
        name: 'nobody',
        body: { spec: { audiences: [], expirationSeconds: 600 } },
      })
    ).status?.token;
    expect(token).toBeTruthy();
    const { cluster } = currentContext();
    const kubeconfig = extraKubeconfig(
      [
        'apiVersion: v1',
        'kind: Config',
        'users:',
        `- name: cli-nobody`,
        `  user: {token: ${token}}`,
        'contexts:',
        `- name: cli-nobody`,
        `  context: {cluster: ${cluster}, user: cli-nobody}`,
      ].join('\n'),
    );
    const forbidden = await dmabuf(['status', '--context', 'cli-nobody'], {
      KUBECONFIG: kubeconfig,
    });
    expect(forbidden.code).toBe(4);
    expect(forbidden.stdout).toBe('');
    expect(forbidden.stderr).toMatch(
      /^error: forbidden: .*cannot list resource "(accelerators|acceleratorleases)".*\n$/,
    );
    expect(forbidden.stderr.split('\n')).toHaveLength(2);

    const port = await closedPort();
    const unreachable = extraKubeconfig(
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: cli-nowhere',
        `  cluster: {server: "https://127.0.0.1:${port}"}`,
        'users:',
        '- name: cli-nowhere',
        '  user: {token: none}',
        'contexts:',
        '- name: cli-nowhere',
        '  context: {cluster: cli-nowhere, user: cli-nowhere}',
      ].join('\n'),
    );
    const down = await dmabuf(['why', 'x', '-n', ns, '--context', 'cli-nowhere'], {
      KUBECONFIG: unreachable,
    });
    expect(down).toMatchObject({ code: 4, stdout: '' });
    expect(down.stderr).toBe(
      `error: cannot reach the API server at https://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    );
  });
});
