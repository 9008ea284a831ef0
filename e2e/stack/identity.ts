// ServiceAccount identities for processes run outside pods (tests, the demo): a kubeconfig file
// with a TokenRequest token, optionally bound to a pod so that, as in a real pod's projected
// token, the API server puts the pod's node into the user's extra (node-name).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeClient } from '../../src/kube/index.ts';
import { waitFor } from './wait.ts';

export interface IdentityOptions {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Bind the token to this pod (it must run as the ServiceAccount): its node enters the token. */
  readonly boundPod?: { readonly name: string; readonly uid: string };
  /** Where the kubeconfig goes; a fresh temporary directory by default. It holds a live token. */
  readonly dir?: string;
}

/** Writes a kubeconfig authenticating as namespace/serviceAccount; returns its path. */
export async function serviceAccountKubeconfig(
  admin: KubeClient,
  adminConfig: KubeConfig,
  opts: IdentityOptions,
): Promise<string> {
  const { namespace, serviceAccount: sa } = opts;
  const request = await admin.request<{ status: { token: string } }>({
    method: 'POST',
    path: `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`,
    body: {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        expirationSeconds: 3600,
        ...(opts.boundPod && {
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', ...opts.boundPod },
        }),
      },
    },
  });
  const cluster = adminConfig.getCurrentCluster();
  if (!cluster) throw new Error('the admin kubeconfig has no current cluster');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ ...cluster, name: 'cluster' }],
    users: [{ name: sa, token: request.status.token }],
    contexts: [{ name: sa, cluster: 'cluster', user: sa }],
    currentContext: sa,
  });
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), `accel-${sa}-`));
  const file = join(dir, `${sa}.kubeconfig`);
  writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
  return file;
}

/**
 * A stand-in for the agent's DaemonSet pod on `node`: a pod running as the agent's
 * ServiceAccount that kwok keeps Running, so that a token bound to it carries the node.
 */
export async function nodeBoundPod(
  admin: KubeClient,
  opts: { namespace: string; serviceAccount: string; node: string; name: string },
): Promise<{ name: string; uid: string }> {
  const pod = await admin.request<{ metadata: { uid: string } }>({
    method: 'POST',
    path: `/api/v1/namespaces/${opts.namespace}/pods`,
    body: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: opts.name, namespace: opts.namespace },
      spec: {
        nodeName: opts.node,
        serviceAccountName: opts.serviceAccount,
        automountServiceAccountToken: false,
        containers: [{ name: 'agent', image: 'registry.example/accel-lease:host-process' }],
        tolerations: [{ operator: 'Exists' }],
      },
    },
  });
  await waitFor(`pod ${opts.namespace}/${opts.name} Running`, async () => {
    const p = await admin.request<{ status?: { phase?: string } }>({
      method: 'GET',
      path: `/api/v1/namespaces/${opts.namespace}/pods/${opts.name}`,
    });
    return p.status?.phase === 'Running';
  });
  return { name: opts.name, uid: pod.metadata.uid };
}
