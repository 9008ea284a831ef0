// The generated CRDs apply to a real API server, which enforces their CEL rules.
import { describe, expect, it, vi } from 'vitest';
import { applyCrds, kubeConfig, rawRequest, testNamespace } from './harness/index.ts';

const CRDS = [
  'accelerators.accel.dmabuf.io',
  'acceleratorleases.accel.dmabuf.io',
  'dmabufexports.accel.dmabuf.io',
];
const CEL_MESSAGE = 'exactly one of spec.accelerator or spec.selector must be set';

function lease(name: string, spec: Record<string, unknown>) {
  return {
    apiVersion: 'accel.dmabuf.io/v1alpha1',
    kind: 'AcceleratorLease',
    metadata: { name },
    spec: { holder: { podSelector: { matchLabels: { app: 'trainer' } } }, ...spec },
  };
}

describe('CRDs on a real API server', () => {
  it('apply server-side, and the API server rejects an invalid AcceleratorLease with the CEL message', async () => {
    const applied = await applyCrds(CRDS);
    expect(applied.stderr).toBe('');
    for (const crd of CRDS) expect(applied.stdout).toContain(crd);

    const ns = await testNamespace('crd-cel');
    const kc = kubeConfig();
    const path = `/apis/accel.dmabuf.io/v1alpha1/namespaces/${ns}/acceleratorleases`;

    // A valid lease is accepted (retried: the new resource is served a moment after Established).
    await vi.waitFor(
      async () => {
        const ok = await rawRequest(kc, 'POST', path, lease('valid', { accelerator: 'gpu-0' }));
        expect(ok.status, ok.body).toBe(201);
      },
      { timeout: 30_000, interval: 250 },
    );

    for (const [name, spec] of [
      ['neither', {}],
      ['both', { accelerator: 'gpu-0', selector: { matchLabels: { model: 'h100' } } }],
    ] as const) {
      const res = await rawRequest(kc, 'POST', path, lease(name, spec));
      expect(res.status, res.body).toBe(422);
      const status = JSON.parse(res.body) as { reason: string; message: string };
      expect(status.reason).toBe('Invalid');
      expect(status.message).toContain(CEL_MESSAGE);
    }
  });
});
