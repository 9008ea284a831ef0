// The Helm chart on a real API server: it lints, every object it renders passes server-side
// validation, and once installed the controller and a node agent, run as host processes with
// tokens of the chart's ServiceAccounts, hand a device over; what RBAC and the admission policy
// forbid each identity, the API server refuses.
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
import type { Accelerator, AcceleratorLease } from '../src/crds/index.ts';
import { KubeApiError } from '../src/kube/index.ts';
import { RELEASE } from '../deploy/render.ts';
import { helm, kubectl, testNamespace } from './harness/index.ts';
import { adminClient, api, freePort, nodeBoundPod, testNode, waitFor } from './stack/index.ts';
import {
  identityOf,
  installChart,
  parseManifest,
  patch,
  refusal,
  tenantIn,
} from './stack/chart.ts';

const ROOT = join(import.meta.dirname, '..');
const CHART = join(ROOT, 'charts', 'accel-lease');
const GROUP = '/apis/accel.dmabuf.io/v1alpha1';
const MERGE = 'application/merge-patch+json';
const leasePath = (ns: string) => `${GROUP}/namespaces/${ns}/acceleratorleases/train`;
const getLease = (ns: string) => api<AcceleratorLease>('GET', leasePath(ns));

async function leaseGone(ns: string): Promise<boolean> {
  try {
    await getLease(ns);
    return false;
  } catch (err) {
    if (err instanceof KubeApiError && err.code === 404) return true;
    throw err;
  }
}
/** The oldest Kubernetes the chart supports: rendering for it shows that nothing needs newer. */
const KUBE_VERSION = '1.30.0';

/** A workload's container args in a chart manifest, by workload kind. */
function chartArgs(
  manifest: Record<string, unknown>[],
  kind: 'Deployment' | 'DaemonSet',
): string[] {
  const workload = manifest.find((o) => o.kind === kind) as
    { spec: { template: { spec: { containers: { args: string[] }[] } } } } | undefined;
  const args = workload?.spec.template.spec.containers[0]?.args;
  if (!args) throw new Error(`the chart installed no ${kind} with container args`);
  return args;
}

/**
 * Runs `node <args>` as a host process with only --kubeconfig to reach the cluster (KUBECONFIG is
 * unset), waits for /readyz on `port`, and kills it when the test finishes.
 */
async function runAs(name: string, args: string[], port: number, env: Record<string, string>) {
  const logFile = join(mkdtempSync(join(tmpdir(), `accel-helm-${name}-`)), 'log');
  const out = openSync(logFile, 'a');
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.KUBECONFIG;
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: childEnv,
    stdio: ['ignore', out, out],
  });
  let exit: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.on('exit', (code) => {
      exit = code;
      resolve();
    }),
  );
  const log = () => readFileSync(logFile, 'utf8');
  onTestFailed(() =>
    console.log(`--- ${name} log ---\n${log().split('\n').slice(-60).join('\n')}`),
  );
  onTestFinished(async () => {
    if (exit === undefined) child.kill('SIGKILL');
    await exited;
  });
  const ready = waitFor(`${name} ready`, async () => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    return res?.status === 200;
  });
  await Promise.race([
    ready,
    exited.then(() => {
      throw new Error(`${name} exited ${exit}: ${log().slice(-1500)}`);
    }),
  ]);
}

/** Runs `node <args>` to its exit: code and stderr. */
function runToExit(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

/** The flags a program lists in --help. */
async function helpFlags(script: string): Promise<Set<string>> {
  const help = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, [script, '--help'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', () => resolve(out));
  });
  return new Set([...help.matchAll(/^ {2}--([a-z][a-z0-9-]*)/gm)].map((m) => m[1]!));
}

/**
 * args without the flags a program does not know (yet); see the test that requires them all.
 * node's own flags, before the script, are node's and stay.
 */
function onlyKnown(args: string[], known: Set<string>): string[] {
  const script = args.findIndex((arg) => !arg.startsWith('--'));
  return args.filter((arg, i) => {
    if (i <= script || !arg.startsWith('--')) return true;
    const name = arg.slice(2).split('=')[0]!;
    return known.has(name) || (name.startsWith('no-') && known.has(name.slice(3)));
  });
}

/** Replaces `--flag=value` in args (the chart writes every valued flag that way). */
function withFlag(args: string[], flag: string, value: string): string[] {
  const kept = args.filter((a) => !a.startsWith(`--${flag}=`));
  return [...kept, `--${flag}=${value}`];
}

describe('helm chart', () => {
  it('lints, rejects a misspelt value, and renders only objects the API server accepts', async () => {
    const lint = await helm(['lint', '--strict', CHART, '--kube-version', KUBE_VERSION]);
    expect(lint.code, lint.stdout + lint.stderr).toBe(0);

    const typo = await helm([
      'template',
      RELEASE,
      CHART,
      '--kube-version',
      KUBE_VERSION,
      '--set',
      'controler.replicas=1',
    ]);
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toContain("additional properties 'controler' not allowed");

    // Into a namespace of this test, with the defaults the plain manifests in deploy/ use.
    const ns = await testNamespace('helm-dry-run');
    // The release namespace holds the controller alone: it can enforce restricted.
    await api(
      'PATCH',
      `/api/v1/namespaces/${ns}`,
      // enforce applies to pods; warn also to the Deployment's pod template, which is what a
      // dry run shows.
      {
        metadata: {
          labels: {
            'pod-security.kubernetes.io/enforce': 'restricted',
            'pod-security.kubernetes.io/warn': 'restricted',
          },
        },
      },
      'application/merge-patch+json',
    );
    // A server-side dry run cannot place objects in a namespace it only pretends to create.
    const agentNs = await testNamespace('helm-dry-run-agent');
    const rendered = await helm([
      'template',
      RELEASE,
      CHART,
      '--namespace',
      ns,
      '--set',
      `agent.namespace.name=${agentNs}`,
      '--kube-version',
      KUBE_VERSION,
    ]);
    expect(rendered.code, rendered.stderr).toBe(0);
    const input = join(mkdtempSync(join(tmpdir(), 'accel-helm-render-')), 'all.yaml');
    writeFileSync(input, rendered.stdout);
    const dryRun = await kubectl(['apply', '--dry-run=server', '-f', input]);
    expect(dryRun.code, dryRun.stderr).toBe(0);
    expect(dryRun.stderr).not.toContain('would violate PodSecurity');
    const kinds = dryRun.stdout
      .trim()
      .split('\n')
      .map((line) => line.split('/')[0]);
    expect(kinds.sort()).toEqual([
      'acceleratorleasepolicy.accel.dmabuf.io', // default
      'clusterrole.rbac.authorization.k8s.io',
      'clusterrole.rbac.authorization.k8s.io',
      'clusterrole.rbac.authorization.k8s.io',
      'clusterrole.rbac.authorization.k8s.io',
      'clusterrole.rbac.authorization.k8s.io', // the controller reads lease policies
      'clusterrole.rbac.authorization.k8s.io', // every user reads lease policies
      'clusterrolebinding.rbac.authorization.k8s.io',
      'clusterrolebinding.rbac.authorization.k8s.io',
      'clusterrolebinding.rbac.authorization.k8s.io',
      'clusterrolebinding.rbac.authorization.k8s.io',
      'daemonset.apps',
      'deployment.apps',
      'namespace', // the agent's, Pod Security privileged
      'pod', // the helm test hook
      'poddisruptionbudget.policy',
      'role.rbac.authorization.k8s.io',
      'rolebinding.rbac.authorization.k8s.io',
      'service',
      'service',
      'serviceaccount',
      'serviceaccount',
      'validatingadmissionpolicy.admissionregistration.k8s.io',
      'validatingadmissionpolicy.admissionregistration.k8s.io', // lease bounds
      'validatingadmissionpolicy.admissionregistration.k8s.io', // lease policy known
      'validatingadmissionpolicybinding.admissionregistration.k8s.io',
      'validatingadmissionpolicybinding.admissionregistration.k8s.io', // namespaces selecting default
      'validatingadmissionpolicybinding.admissionregistration.k8s.io', // namespaces without the label
      'validatingadmissionpolicybinding.admissionregistration.k8s.io', // lease policy known
    ]);
  });

  it('hands a device over with the controller and agent running as the chart ServiceAccounts', async () => {
    const release = await installChart();
    const fullname = `${release.name}-accel-lease`;
    const ctl = await identityOf(release.namespace, `${fullname}-controller`);
    // The agent's token is bound to a pod on its node, as its DaemonSet pod's own token would be.
    const node = await testNode('helm');
    const agentPod = await nodeBoundPod(adminClient(), {
      namespace: release.agentNamespace,
      serviceAccount: `${fullname}-agent`,
      node,
      name: `${fullname}-agent-host`,
    });
    const agent = await identityOf(release.agentNamespace, `${fullname}-agent`, agentPod);
    const [nsA, nsB] = [await testNamespace('helm-team-a'), await testNamespace('helm-team-b')];
    const [tenantA, tenantB] = [await tenantIn(nsA), await tenantIn(nsB)];
    // Should the test stop before the controller releases them, the leases' finalizers would
    // keep their namespaces terminating for good.
    onTestFinished(async () => {
      for (const ns of [nsA, nsB]) {
        await api('PATCH', leasePath(ns), { metadata: { finalizers: null } }, MERGE).catch(
          () => undefined,
        );
      }
    });

    const accel = `${node}-hl0`;

    const agentPort = await freePort();
    let agentArgs = chartArgs(release.manifest, 'DaemonSet').map((a) =>
      a.replaceAll('$(NODE_NAME)', node),
    );
    agentArgs = withFlag(agentArgs, 'http-addr', `127.0.0.1:${agentPort}`);
    agentArgs = withFlag(
      agentArgs,
      'state-file',
      join(mkdtempSync(join(tmpdir(), 'accel-helm-state-')), 'agent.json'),
    );
    agentArgs = withFlag(agentArgs, 'admin-addr', `127.0.0.1:${await freePort()}`);
    agentArgs = withFlag(agentArgs, 'kubeconfig', agent.file);
    await runAs('agent', agentArgs, agentPort, { POD_NAMESPACE: release.agentNamespace });

    const accelerator = await waitFor(`${accel} published by the agent`, () =>
      api<Accelerator>('GET', `${GROUP}/accelerators/${accel}`),
    );
    expect(accelerator.status?.phase).toBe('Free');
    // From here on the admission policy guards this device (see Release.guardLabel).
    await api(
      'PATCH',
      `${GROUP}/accelerators/${accel}`,
      { metadata: { labels: release.guardLabel } },
      MERGE,
    );

    const ctlPort = await freePort();
    // Flags the controller does not know yet would stop it; the last test requires them all.
    const known = await helpFlags('src/controller/main.ts');
    let ctlArgs = onlyKnown(chartArgs(release.manifest, 'Deployment'), known);
    ctlArgs = withFlag(ctlArgs, 'http-bind-address', `127.0.0.1:${ctlPort}`);
    ctlArgs = withFlag(ctlArgs, 'kubeconfig', ctl.file);
    await runAs('controller', ctlArgs, ctlPort, {
      POD_NAME: `${fullname}-controller-host`,
      POD_NAMESPACE: release.namespace,
    });

    const lease = (ns: string) => ({
      apiVersion: 'accel.dmabuf.io/v1alpha1',
      kind: 'AcceleratorLease',
      metadata: { name: 'train', namespace: ns, labels: release.guardLabel },
      spec: { accelerator: accel, holder: { podSelector: { matchLabels: { app: 'train' } } } },
    });
    // The edit role gains leases through the chart's aggregated ClusterRole, once the
    // controller-manager has folded it in.
    await waitFor('tenant A may create a lease', () =>
      tenantA.request({
        method: 'POST',
        path: `${GROUP}/namespaces/${nsA}/acceleratorleases`,
        body: lease(nsA),
      }),
    );
    const grantedA = await waitFor('lease A granted', async () => {
      const l = await getLease(nsA);
      return l.status?.phase === 'Granted' ? l : undefined;
    });
    expect(grantedA.status).toMatchObject({ accelerator: accel, epoch: 1 });

    await tenantB.request({
      method: 'POST',
      path: `${GROUP}/namespaces/${nsB}/acceleratorleases`,
      body: lease(nsB),
    });
    await waitFor('lease B queued behind A', async () => {
      const l = await getLease(nsB);
      return l.status?.phase === 'Pending' && l.status.queuePosition === 1;
    });

    await tenantA.request({ method: 'DELETE', path: leasePath(nsA) });
    const grantedB = await waitFor('lease B granted', async () => {
      const l = await getLease(nsB);
      return l.status?.phase === 'Granted' ? l : undefined;
    });
    expect(grantedB.status).toMatchObject({ accelerator: accel, epoch: 2 });
    await waitFor('the device reports B as its owner at epoch 2', async () => {
      const a = await api<Accelerator>('GET', `${GROUP}/accelerators/${accel}`);
      return a.status?.owner?.lease?.namespace === nsB && a.status.observedEpoch === 2;
    });
    await waitFor('lease A released and gone', () => leaseGone(nsA));
    // Both identities may record Events: the controller on the lease, the agent on the device.
    const reporters = async (ns: string, name: string) => {
      const list = await api<{
        items: { reportingController: string; regarding: { name: string } }[];
      }>('GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events`);
      return list.items.filter((e) => e.regarding.name === name).map((e) => e.reportingController);
    };
    await waitFor('an Event from the controller on lease B', async () =>
      (await reporters(nsB, 'train')).includes('accel.dmabuf.io/controller'),
    );
    await waitFor('an Event from the agent on the device', async () =>
      (await reporters('default', accel)).includes('accel.dmabuf.io/agent'),
    );

    // What each identity must not do, refused by the API server.
    const ownerPatch = {
      spec: { owner: { lease: { namespace: nsA, name: 'train', uid: 'x' }, epoch: 3 } },
    };
    const agentOwner = await refusal(
      patch(agent.client, `${GROUP}/accelerators/${accel}`, ownerPatch),
    );
    expect(agentOwner.code).toBe(403);
    expect(agentOwner.message).toContain(
      `spec.owner is written only by the accel-lease controller (${release.controllerUser}), not by ${release.agentUser}`,
    );
    // The policy has no exception for cluster admins.
    const adminOwner = await refusal(
      api('PATCH', `${GROUP}/accelerators/${accel}`, ownerPatch, MERGE),
    );
    expect(adminOwner.code).toBe(403);
    expect(adminOwner.message).toContain(
      'spec.owner is written only by the accel-lease controller',
    );

    const statusPatch = { status: { phase: 'Free' } };
    const ctlStatus = await refusal(
      patch(ctl.client, `${GROUP}/accelerators/${accel}/status`, statusPatch),
    );
    expect(ctlStatus.code).toBe(403); // RBAC: the controller only reads Accelerator status
    const adminStatus = await refusal(
      api('PATCH', `${GROUP}/accelerators/${accel}/status`, statusPatch, MERGE),
    );
    expect(adminStatus.message).toContain(
      `status is reported only by the accel-lease node agent (${release.agentUser})`,
    );

    const tenantStatus = await refusal(
      patch(tenantB, `${leasePath(nsB)}/status`, { status: { phase: 'Released' } }),
    );
    expect(tenantStatus.code).toBe(403); // RBAC: edit grants leases, not their status
    // A user whom RBAC lets write lease status is still no controller.
    await api('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${nsB}/roles`, {
      metadata: { name: 'lease-status' },
      rules: [
        {
          apiGroups: ['accel.dmabuf.io'],
          resources: ['acceleratorleases/status'],
          verbs: ['patch'],
        },
      ],
    });
    await api('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${nsB}/rolebindings`, {
      metadata: { name: 'tenant-lease-status' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'lease-status' },
      subjects: [{ kind: 'ServiceAccount', name: 'tenant', namespace: nsB }],
    });
    const privileged = await waitFor('the lease-status Role in effect', async () => {
      const r = await refusal(
        patch(tenantB, `${leasePath(nsB)}/status`, { status: { phase: 'Released' } }),
      );
      return r.message.includes('written only by the accel-lease controller') ? r : undefined;
    });
    expect(privileged.code).toBe(403);
    expect(privileged.message).toContain(
      `AcceleratorLease ${nsB}/train: status is written only by the accel-lease controller (${release.controllerUser}), not by system:serviceaccount:${nsB}:tenant`,
    );
    expect((await getLease(nsB)).status?.phase).toBe('Granted');

    const agentLease = await refusal(
      agent.client.request({
        method: 'POST',
        path: `${GROUP}/namespaces/${nsB}/acceleratorleases`,
        body: { ...lease(nsB), metadata: { name: 'agent', namespace: nsB } },
      }),
    );
    expect(agentLease.code).toBe(403);
    const secrets = await refusal(
      ctl.client.request({
        method: 'GET',
        path: `/api/v1/namespaces/${release.namespace}/secrets`,
      }),
    );
    expect(secrets.code).toBe(403);
    expect(secrets.message).toContain('cannot list resource "secrets"');
    const otherLease = await refusal(
      ctl.client.request({
        method: 'GET',
        path: `/apis/coordination.k8s.io/v1/namespaces/${release.namespace}/leases/not-the-election`,
      }),
    );
    expect(otherLease.code).toBe(403);

    // Tenant B lets go; the controller, as its ServiceAccount, releases the device and the lease.
    await tenantB.request({ method: 'DELETE', path: leasePath(nsB) });
    await waitFor('lease B released and gone', () => leaseGone(nsB));
  });

  it('renders with no cluster and no --kube-version, as a released helm does', async () => {
    const version = await helm(['version', '--template', '{{ .Version }}']);
    expect(version.stdout, 'helm built with its version').toMatch(/^v3\.\d+\.\d+$/);
    const rendered = await helm(['template', RELEASE, CHART, '--kubeconfig', '/nonexistent']);
    expect(rendered.code, rendered.stderr).toBe(0);
    expect(parseManifest(rendered.stdout).some((o) => o.kind === 'Deployment')).toBe(true);
  });

  it('passes the controller and the agent only flags they accept', async () => {
    // The defaults, and DRA mode with holder gates (their flags appear only then).
    const modes = [[], ['--set', 'dra.enabled=true', '--set', 'holderGates.enabled=true']];
    for (const values of modes) {
      const rendered = await helm([
        'template',
        RELEASE,
        CHART,
        '--kube-version',
        KUBE_VERSION,
        ...values,
      ]);
      expect(rendered.code, rendered.stderr).toBe(0);
      const manifest = parseManifest(rendered.stdout);
      for (const kind of ['Deployment', 'DaemonSet'] as const) {
        const args = chartArgs(manifest, kind).map((a) => a.replaceAll('$(NODE_NAME)', 'node-x'));
        if (values.length > 0) expect(args).toContain('--dra');
        // Every flag parses; the program then stops at the missing kubeconfig (1), not at a flag (2).
        const run = await runToExit([...args, '--kubeconfig=/nonexistent/kubeconfig']);
        expect(run.stderr, `${kind} args: ${args.join(' ')}`).toContain('/nonexistent/kubeconfig');
        expect(run.code).toBe(1);
      }
    }
  });
});
