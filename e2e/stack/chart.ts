// The chart installed for a cluster test as an operator would, and the identities it creates:
// the controller's and agent's ServiceAccounts (as host processes use them) and tenants with the
// built-in edit role. The admission policy guards only objects with the release's guard label.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { expect, onTestFinished } from 'vitest';
import { KubeApiError, KubeClient } from '../../src/kube/index.ts';
import {
  helm,
  kubeConfig,
  kubectl,
  TEST_NAMESPACE_LABEL,
  testNamespace,
} from '../harness/index.ts';
import { nodeBoundPod, serviceAccountKubeconfig } from './identity.ts';
import { adminClient, api } from './index.ts';

export const CHART = join(import.meta.dirname, '..', '..', 'charts', 'accel-lease');
const MERGE = 'application/merge-patch+json';

export interface Release {
  name: string;
  namespace: string;
  /** The admission policy guards only objects with this label, so suites running on the same
   * cluster at the same time (with their controllers as the cluster admin) are left alone. */
  guardLabel: Record<string, string>;
  controllerUser: string;
  /** The chart puts the agent in a namespace of its own (it needs privileged Pod Security). */
  agentNamespace: string;
  agentUser: string;
  /** The release's AcceleratorLeasePolicies are cluster-scoped: each name carries the release's. */
  defaultPolicy: string;
  manifest: Record<string, unknown>[];
}

/** The chart's own values, as values.yaml sets them. */
export function chartValues(): Record<string, unknown> & {
  leasePolicy: { policies: Record<string, Record<string, unknown>> };
} {
  return parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as ReturnType<typeof chartValues>;
}

export interface InstallOptions {
  /** AcceleratorLeasePolicies besides the default, by name suffix (`<release>-<suffix>`). */
  policies?: Record<string, Record<string, unknown>>;
  /** The default policy's spec; the chart's own default unless given. */
  defaultPolicy?: Record<string, unknown>;
  /** More values, as `--set key=value` takes them (dra.enabled=true, say). */
  set?: readonly string[];
}

/**
 * Installs the chart into a fresh namespace as an operator would (CRDs come from the global
 * setup, hence --skip-crds). Its pods would be a second controller and more agents; the test
 * runs the same programs as host processes instead, under the same ServiceAccounts.
 */
export async function installChart(opts: InstallOptions = {}): Promise<Release> {
  const namespace = await testNamespace('helm');
  const name = `al-${randomBytes(3).toString('hex')}`;
  const guardLabel = { 'accel.dmabuf.io/e2e-release': name };
  const defaultPolicy = `${name}-default`;
  const policies = {
    [defaultPolicy]: opts.defaultPolicy ?? chartValues().leasePolicy.policies.default,
    ...Object.fromEntries(
      Object.entries(opts.policies ?? {}).map(([suffix, spec]) => [`${name}-${suffix}`, spec]),
    ),
  };
  onTestFinished(async () => {
    await helm(['uninstall', name, '--namespace', namespace, '--wait=false']);
    // Cluster-scoped leftovers, should the namespace (and the release record in it) go first.
    await kubectl([
      'delete',
      'validatingadmissionpolicybinding,validatingadmissionpolicy,clusterrolebinding,clusterrole,acceleratorleasepolicy',
      '-l',
      `app.kubernetes.io/instance=${name}`,
      '--ignore-not-found',
    ]);
  });
  const install = await helm([
    'install',
    name,
    CHART,
    '--namespace',
    namespace,
    '--skip-crds',
    '--set',
    'controller.replicas=0',
    '--set-json',
    `agent.nodeSelector=${JSON.stringify({ 'accel.dmabuf.io/e2e-no-such-node': 'true' })}`,
    '--set-json',
    `commonLabels=${JSON.stringify({ [TEST_NAMESPACE_LABEL]: 'true' })}`,
    '--set-json',
    `admissionPolicy.objectSelector=${JSON.stringify({ matchLabels: guardLabel })}`,
    // Names of this release only: the chart's `default` would be every release's (null drops it).
    '--set-json',
    `leasePolicy.policies=${JSON.stringify({ default: null, ...policies })}`,
    '--set',
    `leasePolicy.defaultPolicy=${defaultPolicy}`,
    ...(opts.set ?? []).flatMap((v) => ['--set', v]),
  ]);
  expect(install.code, install.stderr).toBe(0);
  expect(install.stdout).toContain('kubectl get accel');
  const got = await helm(['get', 'manifest', name, '--namespace', namespace]);
  expect(got.code, got.stderr).toBe(0);
  const fullname = `${name}-accel-lease`;
  return {
    name,
    namespace,
    guardLabel,
    controllerUser: `system:serviceaccount:${namespace}:${fullname}-controller`,
    agentNamespace: `${namespace}-agent`,
    agentUser: `system:serviceaccount:${namespace}-agent:${fullname}-agent`,
    defaultPolicy,
    manifest: parseManifest(got.stdout),
  };
}

/**
 * A kubeconfig file that authenticates with a TokenRequest token of namespace/sa, and its client.
 * With `boundPod`, the token is bound to that pod, and so to its node, as a pod's own token is.
 */
export async function identityOf(
  namespace: string,
  sa: string,
  boundPod?: { name: string; uid: string },
): Promise<{ file: string; client: KubeClient }> {
  const dir = mkdtempSync(join(tmpdir(), `accel-helm-${sa}-`));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true })); // it holds a token
  const file = await serviceAccountKubeconfig(adminClient(), kubeConfig(), {
    namespace,
    serviceAccount: sa,
    dir,
    ...(boundPod && { boundPod }),
  });
  const fromFile = new KubeConfig();
  fromFile.loadFromFile(file);
  const client = new KubeClient(fromFile);
  const review = await client.request<{ status: { userInfo: { username: string } } }>({
    method: 'POST',
    path: '/apis/authentication.k8s.io/v1/selfsubjectreviews',
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  expect(review.status.userInfo.username).toBe(`system:serviceaccount:${namespace}:${sa}`);
  return { file, client };
}

/** The chart's agent identity for `node`: a token bound to a stand-in pod of its DaemonSet there. */
export async function agentIdentity(release: Release, node: string) {
  const sa = `${release.name}-accel-lease-agent`;
  const pod = await nodeBoundPod(adminClient(), {
    namespace: release.agentNamespace,
    serviceAccount: sa,
    node,
    name: `agent-${node}`,
  });
  return identityOf(release.agentNamespace, sa, pod);
}

/** A tenant: a ServiceAccount in `namespace` bound to the built-in edit role there, nothing else. */
export async function tenantIn(namespace: string): Promise<KubeClient> {
  await api('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, {
    metadata: { name: 'tenant' },
  });
  await api('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/rolebindings`, {
    metadata: { name: 'tenant-edit' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' },
    subjects: [{ kind: 'ServiceAccount', name: 'tenant', namespace }],
  });
  return (await identityOf(namespace, 'tenant')).client;
}

/** The refusal a request met: HTTP code and the API server's message. Fails if it succeeded. */
export async function refusal(call: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call;
  } catch (err) {
    if (err instanceof KubeApiError) return { code: err.code, message: err.status?.message ?? '' };
    throw err;
  }
  throw new Error('the API server allowed a request it should have refused');
}

export function patch(client: KubeClient, path: string, body: unknown) {
  return client.request({ method: 'PATCH', path, body, contentType: MERGE });
}

export function parseManifest(text: string): Record<string, unknown>[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Record<string, unknown> | null)
    .filter((d): d is Record<string, unknown> => d !== null);
}
