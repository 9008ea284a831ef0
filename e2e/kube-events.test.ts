// The event recorder against a real API server: repeats of one event become a single
// events.k8s.io/v1 Event whose series counts them.
import type { V1ConfigMap } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  EventRecorder,
  EVENTS,
  eventSchema,
  KubeClient,
  ResourceClient,
} from '../src/kube/index.ts';
import { kubeConfig, testNamespace } from './harness/index.ts';

describe('EventRecorder on a real API server', () => {
  it('aggregates repeats into one Event with series.count', async () => {
    const ns = await testNamespace('kube-events');
    const client = new KubeClient(kubeConfig());
    const cms = new ResourceClient<V1ConfigMap>(client, {
      group: '',
      version: 'v1',
      plural: 'configmaps',
      kind: 'ConfigMap',
      namespaced: true,
    });
    const cm = await cms.create({ metadata: { name: 'subject', namespace: ns } });
    const regarding = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      namespace: ns,
      name: 'subject',
      uid: cm.metadata?.uid,
    };

    const recorder = new EventRecorder(client, {
      reportingController: 'accel.dmabuf.io/e2e',
      reportingInstance: 'e2e-0',
    });
    for (let i = 0; i < 3; i++) {
      recorder.event(
        regarding,
        'Warning',
        'Blocked',
        'Handoff',
        'export buf-1 is pinned by rdma-mr nic0',
      );
      await recorder.flush();
      await new Promise((r) => setTimeout(r, 50));
    }
    recorder.event(regarding, 'Normal', 'Granted', 'Grant', 'granted at epoch 2');
    await recorder.flush();

    const events = new ResourceClient(client, EVENTS, (o) => eventSchema.parse(o));
    const { items } = await events.list({ namespace: ns });
    const blocked = items.filter((e) => e.reason === 'Blocked');
    expect(blocked).toHaveLength(1);
    expect(blocked[0]?.series?.count).toBe(3);
    expect(blocked[0]).toMatchObject({
      type: 'Warning',
      action: 'Handoff',
      reportingController: 'accel.dmabuf.io/e2e',
      regarding: { name: 'subject', uid: cm.metadata?.uid },
    });
    const granted = items.filter((e) => e.reason === 'Granted');
    expect(granted).toHaveLength(1);
    expect(granted[0]?.series).toBeUndefined();
  });
});
