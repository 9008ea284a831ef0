// Leader election between two electors on a real coordination.k8s.io/v1 Lease: one leads; when
// it stops, the other takes over, and the old leader's signal has already fired.
import { describe, expect, it, vi } from 'vitest';
import {
  KubeClient,
  LeaderElector,
  LEASES,
  leaseSchema,
  ResourceClient,
} from '../src/kube/index.ts';
import { kubeConfig, testNamespace } from './harness/index.ts';

// Short timings keep the test quick; the ratios match the defaults (15/10/2).
const TIMING = { leaseDurationMs: 6_000, renewDeadlineMs: 4_000, retryPeriodMs: 1_000 };

function candidate(ns: string, identity: string, releaseOnCancel = false) {
  const state = { signal: undefined as AbortSignal | undefined, started: 0, stopped: 0 };
  const elector = new LeaderElector(new KubeClient(kubeConfig()), {
    namespace: ns,
    name: 'accel-lease-controller',
    identity,
    releaseOnCancel,
    ...TIMING,
    onStartedLeading: (signal) => {
      state.signal = signal;
      state.started++;
    },
    onStoppedLeading: () => state.stopped++,
  });
  return { elector, state };
}

describe('LeaderElector on a real API server', () => {
  it('elects one leader; the other takes over after the leader stops, and never both', async () => {
    const ns = await testNamespace('kube-leader');
    const a = candidate(ns, 'replica-a');
    const b = candidate(ns, 'replica-b');
    let bothLeading = 0;
    const watch = setInterval(() => {
      if (a.elector.isLeader() && b.elector.isLeader()) bothLeading++;
    }, 50);
    try {
      void a.elector.run();
      await vi.waitFor(() => expect(a.elector.isLeader()).toBe(true), { timeout: 15_000 });
      void b.elector.run();
      await vi.waitFor(() => expect(b.elector.leader()).toBe('replica-a'), { timeout: 15_000 });
      await new Promise((r) => setTimeout(r, 3 * TIMING.retryPeriodMs));
      expect(b.elector.isLeader()).toBe(false);
      expect(b.elector.ready()).toBe(true);

      const stoppedAt = Date.now();
      await a.elector.stop();
      expect(a.state.signal?.aborted).toBe(true);
      expect(a.state.stopped).toBe(1);

      await vi.waitFor(() => expect(b.elector.isLeader()).toBe(true), {
        timeout: 30_000,
        interval: 100,
      });
      // Without release, the successor waits out the lease (judged by its own clock).
      expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(
        TIMING.leaseDurationMs - TIMING.retryPeriodMs,
      );
      expect(b.state.signal?.aborted).toBe(false);

      const leases = new ResourceClient(new KubeClient(kubeConfig()), LEASES, (o) =>
        leaseSchema.parse(o),
      );
      const lease = await leases.get('accel-lease-controller', ns);
      expect(lease.spec).toMatchObject({
        holderIdentity: 'replica-b',
        leaseDurationSeconds: 6,
        leaseTransitions: 1,
      });
      expect(lease.spec?.renewTime).toMatch(/\.\d{6}Z$/);
      expect(bothLeading).toBe(0);
    } finally {
      clearInterval(watch);
      await a.elector.stop();
      await b.elector.stop();
    }
  });

  it('with releaseOnCancel the successor takes over without waiting out the lease', async () => {
    const ns = await testNamespace('kube-leader-release');
    const a = candidate(ns, 'replica-a', true);
    const b = candidate(ns, 'replica-b');
    try {
      void a.elector.run();
      await vi.waitFor(() => expect(a.elector.isLeader()).toBe(true), { timeout: 15_000 });
      void b.elector.run();
      await vi.waitFor(() => expect(b.elector.leader()).toBe('replica-a'), { timeout: 15_000 });
      const stoppedAt = Date.now();
      await a.elector.stop();
      await vi.waitFor(() => expect(b.elector.isLeader()).toBe(true), {
        timeout: 15_000,
        interval: 100,
      });
      expect(Date.now() - stoppedAt).toBeLessThan(TIMING.leaseDurationMs);
    } finally {
      await a.elector.stop();
      await b.elector.stop();
    }
  });
});
