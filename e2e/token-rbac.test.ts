// A ServiceAccount token from the TokenRequest API authenticates, and is authorized by RBAC for
// exactly what its Role grants.
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { kubeConfig, rawRequest, testNamespace } from './harness/index.ts';

function withToken(admin: KubeConfig, token: string): KubeConfig {
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'reader', token }],
    contexts: [{ name: 'reader', cluster: cluster.name, user: 'reader' }],
    currentContext: 'reader',
  });
  return kc;
}

describe('TokenRequest and RBAC', () => {
  it('a ServiceAccount token gets exactly the verbs its Role grants', async () => {
    const ns = await testNamespace('rbac');
    const admin = kubeConfig();
    const core = admin.makeApiClient(CoreV1Api);
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);

    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'reader' } },
    });
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: 'configmap-reader' },
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmap-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }],
      },
    });
    const request = await core.createNamespacedServiceAccountToken({
      namespace: ns,
      name: 'reader',
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const token = request.status?.token;
    expect(token).toMatch(/^ey/);
    const reader = withToken(admin, token!);

    const review = await rawRequest(
      reader,
      'POST',
      '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'SelfSubjectReview',
      },
    );
    expect(review.status, review.body).toBe(201);
    const who = JSON.parse(review.body) as { status: { userInfo: { username: string } } };
    expect(who.status.userInfo.username).toBe(`system:serviceaccount:${ns}:reader`);

    // The RBAC authorizer sees new bindings through its cache: allow it a moment.
    await vi.waitFor(
      async () => {
        const list = await rawRequest(reader, 'GET', `/api/v1/namespaces/${ns}/configmaps`);
        expect(list.status, list.body).toBe(200);
      },
      { timeout: 30_000, interval: 250 },
    );

    const create = await rawRequest(reader, 'POST', `/api/v1/namespaces/${ns}/configmaps`, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'not-allowed' },
    });
    expect(create.status, create.body).toBe(403);
    const secrets = await rawRequest(reader, 'GET', `/api/v1/namespaces/${ns}/secrets`);
    expect(secrets.status, secrets.body).toBe(403);
    const elsewhere = await rawRequest(reader, 'GET', '/api/v1/namespaces/default/configmaps');
    expect(elsewhere.status, elsewhere.body).toBe(403);

    // A token whose signature does not verify is not a user at all.
    const forged = withToken(admin, `${token!.slice(0, -4)}AAAA`);
    const rejected = await rawRequest(forged, 'GET', `/api/v1/namespaces/${ns}/configmaps`);
    expect(rejected.status).toBe(401);
  });
});
