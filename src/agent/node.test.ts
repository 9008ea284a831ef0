// The node as the API server sees it: sync + publish over a simulated node, per exporter
// profile, through handoffs, deletions, faults and restarts. No cluster; each test is a story.
import { describe, expect, it } from 'vitest';
import {
  findCondition,
  parseObject,
  AcceleratorStatus,
  DmaBufExportStatus,
} from '../crds/index.ts';
import { addHiddenHolder, removeHiddenHolder } from './faults.ts';
import { FakeNode, GiB, importer, lease } from '../../test/fixtures/agent.ts';

const A = lease('tenant-a');
const B = lease('tenant-b', 'team-b');

/** trainer-0 exports `weights` under tenant-a to a peer GPU, an RDMA NIC and a CPU view. */
function handoffScene(profile: 'static' | 'dynamic' | 'revocable') {
  const n = new FakeNode(profile);
  n.pod('team-a', 'trainer-0');
  n.pod('team-a', 'peer-0');
  n.pod('team-io', 'loader-0');
  n.grant('team-io', ['team-a']);
  n.own({ lease: A, epoch: 1 });
  n.declare('weights', {
    lease: 'tenant-a',
    exporter: 'trainer-0',
    importers: [
      importer('p2p', 'dynamic', 'team-a', 'peer-0'),
      importer('nic0', 'rdma-mr', 'team-io', 'loader-0'),
      importer('view', 'mmap', 'team-a', 'trainer-0'),
    ],
  });
  return n;
}

const states = (s: ReturnType<FakeNode['step']>) =>
  Object.fromEntries((s.exportStatus('weights')?.attachments ?? []).map((a) => [a.name, a.state]));

describe('owner handoff as published', () => {
  it('free device at epoch 0 publishes Free with no owner lease', () => {
    const n = new FakeNode();
    const { device } = n.step();
    expect(device).toMatchObject({
      phase: 'Free',
      owner: { epoch: 0 },
      observedEpoch: 0,
      pins: [],
    });
    expect(device?.owner?.lease).toBeUndefined();
  });

  it('spec.owner at epoch 1 -> Owned, status.owner = spec.owner', () => {
    const n = new FakeNode();
    n.own({ lease: A, epoch: 1 });
    const { device } = n.step();
    expect(device).toMatchObject({
      phase: 'Owned',
      owner: { lease: A, epoch: 1 },
      observedEpoch: 1,
    });
    expect(device?.conditions?.find((c) => c.type === 'OwnerApplied')).toMatchObject({
      status: 'True',
      reason: 'Applied',
    });
    // What the agent writes must pass the schema the CRD is generated from.
    expect(() => parseObject(AcceleratorStatus, device)).not.toThrow();
  });

  it('a lower epoch is refused with a condition and changes nothing', () => {
    const n = new FakeNode();
    n.own({ lease: A, epoch: 3 });
    n.step();
    const before = JSON.stringify(n.kernel());
    n.own({ lease: B, epoch: 2 });
    const { device } = n.step();
    expect(JSON.stringify(n.kernel())).toBe(before);
    expect(device).toMatchObject({
      phase: 'Owned',
      owner: { lease: A, epoch: 3 },
      observedEpoch: 3,
    });
    expect(device?.conditions?.find((c) => c.type === 'OwnerApplied')).toMatchObject({
      status: 'False',
      reason: 'StaleEpoch',
    });
    expect(n.last?.notes.map((x) => x.msg)).toContain('spec.owner refused');
  });

  it('a lease at epoch 0 is refused: epoch 0 names no owner', () => {
    const n = new FakeNode();
    n.own({ lease: A, epoch: 0 });
    const { device } = n.step();
    expect(device?.phase).toBe('Free');
    expect(device?.conditions?.find((c) => c.type === 'OwnerApplied')?.reason).toBe('StaleEpoch');
  });

  it('owner to owner with nothing exported: Owned by the new lease in one sync', () => {
    const n = new FakeNode();
    n.own({ lease: A, epoch: 1 });
    n.step();
    n.own({ lease: B, epoch: 2 });
    const { device } = n.step();
    expect(device).toMatchObject({ phase: 'Owned', owner: { lease: B, epoch: 2 }, pins: [] });
  });
});

describe('exports per exporter profile', () => {
  it('dynamic: realized Active with an inode; on drop p2p and mmap are revoked, rdma-mr pins', () => {
    const n = handoffScene('dynamic');
    let s = n.step();
    const active = s.exportStatus('weights');
    expect(active).toMatchObject({ phase: 'Active', epoch: 1 });
    expect(active?.inode).toBeGreaterThan(0);
    expect(states(s)).toEqual({ p2p: 'Attached', nic0: 'Attached', view: 'Attached' });
    expect(active?.attachments?.map((a) => [a.name, a.revocable])).toEqual([
      ['p2p', true],
      ['nic0', false],
      ['view', true],
    ]);
    expect(() => parseObject(DmaBufExportStatus, active)).not.toThrow();

    n.own({ epoch: 2 });
    s = n.step();
    expect(states(s)).toEqual({ p2p: 'Revoked', nic0: 'Pinned', view: 'Revoked' });
    expect(s.exportStatus('weights')?.phase).toBe('Pinned');
    expect(s.device).toMatchObject({ phase: 'Stuck', owner: { epoch: 2 }, observedEpoch: 2 });
    expect(s.device?.owner?.lease).toBeUndefined();
    expect(s.device?.pins).toEqual([
      {
        export: 'team-a/weights',
        buffer: 'weights',
        inode: active?.inode,
        importer: 'nic0',
        kind: 'rdma-mr',
        pod: { namespace: 'team-io', name: 'loader-0' },
        podUID: 'pod-team-io-loader-0',
        pid: n.state.pods['pod-team-io-loader-0']?.pid,
        comm: 'loader',
        epoch: 1,
        since: expect.any(String) as string,
      },
    ]);
    expect(() => parseObject(AcceleratorStatus, s.device)).not.toThrow();

    // The loader pod goes: its MR goes with its process, the device is Free.
    n.deletePod('team-io', 'loader-0');
    s = n.step();
    expect(s.device).toMatchObject({ phase: 'Free', pins: [] });
    expect(states(s)).toEqual({ p2p: 'Revoked', nic0: 'Detached', view: 'Revoked' });
    expect(s.exportStatus('weights')?.phase).toBe('Revoked');
  });

  it('static: mmap is refused at export time; on drop every fd and attachment pins', () => {
    const n = handoffScene('static');
    let s = n.step();
    expect(states(s)).toEqual({ p2p: 'Attached', nic0: 'Attached', view: 'Failed' });
    const view = s.exportStatus('weights')?.attachments?.find((a) => a.name === 'view');
    expect(view?.message).toMatch(
      /cannot mmap buffer weights .* static exporter with no CPU mapping/,
    );
    expect(s.exportStatus('weights')?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject(
      {
        status: 'True',
        reason: 'ImporterFailed',
      },
    );
    expect(s.exportStatus('weights')?.phase).toBe('Active');

    n.own({ epoch: 2 });
    s = n.step();
    expect(states(s)).toEqual({ p2p: 'Pinned', nic0: 'Pinned', view: 'Failed' });
    // Nothing revocable: the exporter's own fd, both passed fds and both attachments pin.
    const pins = (s.device?.pins ?? []).map((p) => `${p.kind}:${p.importer ?? '-'}:${p.pod?.name}`);
    expect(pins.sort()).toEqual(
      [
        'dynamic:p2p:peer-0',
        'fd:-:loader-0',
        'fd:-:peer-0',
        'fd:-:trainer-0',
        'rdma-mr:nic0:loader-0',
      ].sort(),
    );
    expect(s.device?.phase).toBe('Stuck');

    // Killing only the RDMA holder is not enough on a static device.
    n.deletePod('team-io', 'loader-0');
    expect(n.step().device?.phase).toBe('Stuck');
    n.deletePod('team-a', 'peer-0');
    n.deletePod('team-a', 'trainer-0');
    s = n.step();
    expect(s.device).toMatchObject({ phase: 'Free', pins: [] });
    expect(s.exportStatus('weights')?.phase).toBe('Released');
  });

  it('revocable: dynamic, mmap and rdma-mr are revoked; only a legacy pinned importer pins', () => {
    const n = handoffScene('revocable');
    n.pod('team-io', 'legacy-0');
    n.exports[0]?.spec.importers.push(importer('old', 'pinned', 'team-io', 'legacy-0'));
    n.step();
    n.own({ epoch: 2 });
    const s = n.step();
    expect(states(s)).toEqual({ p2p: 'Revoked', nic0: 'Revoked', view: 'Revoked', old: 'Pinned' });
    expect(s.device?.pins?.map((p) => [p.kind, p.importer, p.pod?.name])).toEqual([
      ['pinned', 'old', 'legacy-0'],
    ]);
  });

  it('Stuck with a waiting lease: acquires at the same epoch once the pin goes', () => {
    const n = handoffScene('dynamic');
    n.step();
    n.own({ lease: B, epoch: 2 });
    let s = n.step();
    expect(s.device).toMatchObject({ phase: 'Stuck', owner: { epoch: 2 } });
    expect(s.device?.conditions?.find((c) => c.type === 'OwnerApplied')).toMatchObject({
      status: 'False',
      reason: 'Pinned',
    });
    n.deletePod('team-io', 'loader-0');
    s = n.step();
    expect(s.device).toMatchObject({ phase: 'Owned', owner: { lease: B, epoch: 2 }, pins: [] });
  });

  it('an importer on another node fails with the reason; the rest proceeds', () => {
    const n = new FakeNode('dynamic');
    n.pod('team-a', 'trainer-0');
    n.pod('team-io', 'remote-0', { node: 'node-b' });
    n.pod('team-a', 'peer-0');
    n.grant('team-io', ['team-a']);
    n.own({ lease: A, epoch: 1 });
    n.declare('weights', {
      lease: 'tenant-a',
      exporter: 'trainer-0',
      importers: [
        importer('far', 'rdma-mr', 'team-io', 'remote-0'),
        importer('near', 'dynamic', 'team-a', 'peer-0'),
      ],
    });
    const s = n.step();
    const far = s.exportStatus('weights')?.attachments?.find((a) => a.name === 'far');
    expect(far).toMatchObject({ state: 'Failed' });
    expect(far?.message).toMatch(/runs on node node-b, not node-a/);
    expect(states(s)).toEqual({ far: 'Failed', near: 'Attached' });
  });

  it('waits (Pending, with the reason) for the owner, then for the exporter pod to run', () => {
    const n = new FakeNode('dynamic');
    n.declare('weights', { lease: 'tenant-a', exporter: 'trainer-0' });
    let s = n.step();
    expect(s.exportStatus('weights')).toMatchObject({ phase: 'Pending' });
    expect(s.exportStatus('weights')?.conditions?.[0]).toMatchObject({
      type: 'Realized',
      status: 'False',
      reason: 'WaitingForOwner',
    });
    n.own({ lease: A, epoch: 1 });
    n.pod('team-a', 'trainer-0', { phase: 'Pending' });
    s = n.step();
    expect(s.exportStatus('weights')?.conditions?.[0]?.reason).toBe('ExporterNotRunning');
    n.pod('team-a', 'trainer-0');
    s = n.step();
    expect(s.exportStatus('weights')?.phase).toBe('Active');
  });

  it('an export of another lease never realizes on the device', () => {
    const n = new FakeNode('dynamic');
    n.pod('team-a', 'trainer-0');
    n.own({ lease: A, epoch: 1 });
    n.declare('theirs', { lease: 'someone-else', exporter: 'trainer-0' });
    expect(n.step().exportStatus('theirs')?.phase).toBe('Pending');
    expect(n.kernel().buffers()).toEqual([]);
  });

  it('a range beyond device memory fails the export for good', () => {
    const n = new FakeNode('dynamic');
    n.pod('team-a', 'trainer-0');
    n.own({ lease: A, epoch: 1 });
    n.declare('huge', { lease: 'tenant-a', exporter: 'trainer-0', sizeBytes: 9 * GiB });
    const s = n.step();
    expect(s.exportStatus('huge')).toMatchObject({ phase: 'Failed' });
    expect(s.exportStatus('huge')?.conditions?.[0]?.message).toMatch(/beyond its 8589934592 bytes/);
  });

  it('realizes each export once: later syncs reuse the same inode', () => {
    const n = handoffScene('dynamic');
    const ino = n.step().exportStatus('weights')?.inode;
    n.step();
    n.step();
    expect(
      n
        .kernel()
        .buffers()
        .map((b) => b.ino),
    ).toEqual([ino]);
  });

  it('a deleted export is released by the workload: importers detach, fds close', () => {
    const n = handoffScene('dynamic');
    n.step();
    n.own({ epoch: 2 });
    expect(n.step().device?.phase).toBe('Stuck');
    n.undeclare('weights');
    const s = n.step();
    expect(s.device).toMatchObject({ phase: 'Free', pins: [] });
    expect(n.kernel().buffers()).toEqual([]);
    expect(n.state.exports).toEqual({});
    expect(s.exportStatus('weights')).toBeUndefined();
  });

  it('a pod that finished (Succeeded) exits like a deleted one', () => {
    const n = handoffScene('dynamic');
    n.step();
    n.own({ epoch: 2 });
    n.step();
    n.pod('team-io', 'loader-0', { phase: 'Succeeded' });
    expect(n.step().device?.phase).toBe('Free');
  });
});

describe('events and logs', () => {
  it('says what happened once, with an Event on the object it happened to', () => {
    const n = handoffScene('dynamic');
    n.sync();
    const events = () => (n.last?.notes ?? []).flatMap((x) => (x.event ? [x.event] : []));
    expect(events().map((e) => [e.kind, e.type, e.reason])).toEqual([
      ['Accelerator', 'Normal', 'Acquired'],
      ['DmaBufExport', 'Normal', 'Exported'],
    ]);
    n.sync();
    expect(n.last?.notes).toEqual([]);
    n.own({ lease: B, epoch: 2 });
    n.sync();
    const [pinned] = events();
    expect(pinned).toMatchObject({
      kind: 'Accelerator',
      name: 'node-a-hl0',
      type: 'Warning',
      reason: 'Pinned',
    });
    expect(pinned?.note).toMatch(
      /^dropped lease team-a\/tenant-a \(epoch 1\) at epoch 2; buffer weights \(ino 1\) is pinned by rdma-mr attachment nic0 held by pid \d+ \(team-io\/loader-0\)$/,
    );
  });
});

describe('faults', () => {
  it('a hidden holder pins with no pod; removing it lets the waiting lease in', () => {
    const n = handoffScene('dynamic');
    n.step();
    const holder = addHiddenHolder(n.state, { export: 'team-a/weights' });
    n.own({ lease: B, epoch: 2 });
    n.deletePod('team-io', 'loader-0');
    let s = n.step();
    expect(s.device?.phase).toBe('Stuck');
    expect(s.device?.pins).toEqual([
      expect.objectContaining({
        export: 'team-a/weights',
        importer: `hidden-${holder.pid}`,
        kind: 'pinned',
        pid: holder.pid,
        comm: 'hidden-holder',
      }),
    ]);
    expect(s.device?.pins?.[0]?.pod).toBeUndefined();
    removeHiddenHolder(n.state, holder.pid);
    s = n.step();
    expect(s.device).toMatchObject({ phase: 'Owned', owner: { lease: B, epoch: 2 } });
  });

  it('a slow revoke publishes Revoking with the old owner until its deadline, then drops', () => {
    const n = handoffScene('dynamic');
    n.step();
    n.state.slowRevokeMs = 5000;
    n.own({ lease: B, epoch: 2 });
    let s = n.step();
    expect(s.device).toMatchObject({ phase: 'Revoking', owner: { lease: A, epoch: 1 } });
    expect(states(s)).toEqual({ p2p: 'Attached', nic0: 'Attached', view: 'Attached' });
    expect(n.last?.wakeAt).toBe(n.clock + 5000);
    n.clock += 5000;
    s = n.step();
    expect(s.device?.phase).toBe('Stuck');
    expect(states(s)).toEqual({ p2p: 'Revoked', nic0: 'Pinned', view: 'Revoked' });
    expect(n.state.revokes).toEqual({});
  });
});

describe('restart from the state file', () => {
  it('restores exactly: same kernel, same export records, no re-realization', () => {
    const n = handoffScene('dynamic');
    n.step();
    n.own({ epoch: 2 });
    const before = n.step();
    const kernelBefore = JSON.stringify(n.kernel());
    const mapsBefore = JSON.stringify([n.state.pods, n.state.exports]);
    n.restart();
    expect(JSON.stringify(n.kernel())).toBe(kernelBefore);
    expect(JSON.stringify([n.state.pods, n.state.exports])).toBe(mapsBefore);
    const after = n.step();
    expect(after.device).toEqual(before.device);
    expect(after.exportStatus('weights')).toEqual(before.exportStatus('weights'));
  });

  it('a pod that vanished while the agent was down: its process exits on the first sync', () => {
    const n = handoffScene('dynamic');
    n.step();
    n.own({ epoch: 2 });
    expect(n.step().device?.phase).toBe('Stuck');
    const loaderPid = n.state.pods['pod-team-io-loader-0']?.pid as number;
    n.restart();
    n.deletePod('team-io', 'loader-0');
    const s = n.step();
    expect(n.kernel().process(loaderPid)).toBeUndefined();
    expect(n.state.pods['pod-team-io-loader-0']).toBeUndefined();
    expect(s.device).toMatchObject({ phase: 'Free', pins: [] });
  });

  it('a pending slow revoke survives the restart', () => {
    const n = handoffScene('dynamic');
    n.step();
    n.state.slowRevokeMs = 60_000;
    n.own({ epoch: 2 });
    expect(n.step().device?.phase).toBe('Revoking');
    n.restart();
    expect(n.step().device?.phase).toBe('Revoking');
    n.clock += 60_000;
    expect(n.step().device?.phase).toBe('Stuck');
  });
});

describe('consent for importers in another namespace (DmaBufImportGrant)', () => {
  /** Tenant A's trainer exports `weights` to an RDMA NIC in team-io, with whatever grants exist. */
  function crossNamespace(labels?: Record<string, string>) {
    const n = new FakeNode('dynamic');
    n.pod('team-a', 'trainer-0');
    n.pod('team-io', 'loader-0', labels ? { labels } : {});
    n.own({ lease: A, epoch: 1 });
    n.declare('weights', {
      lease: 'tenant-a',
      exporter: 'trainer-0',
      importers: [
        importer('nic0', 'rdma-mr', 'team-io', 'loader-0'),
        importer('view', 'dynamic', 'team-a', 'trainer-0'),
      ],
    });
    return n;
  }

  it('without a grant the importer fails with what to create, never attaches and never pins', () => {
    const n = crossNamespace();
    let s = n.step();
    const nic = s.exportStatus('weights')?.attachments?.find((a) => a.name === 'nic0');
    expect(nic).toMatchObject({ state: 'Failed' });
    expect(nic?.message).toBe(
      'namespace team-io has no DmaBufImportGrant allowing imports from namespace team-a: ' +
        'someone who may edit team-io creates one with spec.from: [{namespace: team-a}] ' +
        '(kubectl apply -n team-io -f grant.yaml)',
    );
    expect(n.state.pods['pod-team-io-loader-0']).toBeUndefined();
    // Same-namespace importers need no grant.
    expect(states(s)).toEqual({ nic0: 'Failed', view: 'Attached' });
    n.own({ lease: B, epoch: 2 });
    s = n.step();
    expect(s.device).toMatchObject({ phase: 'Owned', pins: [] });
  });

  it('a grant created after the export attaches the importer then, and it pins like any other', () => {
    const n = crossNamespace();
    expect(states(n.step())).toEqual({ nic0: 'Failed', view: 'Attached' });
    n.grant('team-io', ['team-a']);
    const s = n.step();
    expect(states(s)).toEqual({ nic0: 'Attached', view: 'Attached' });
    expect(n.last?.notes.map((x) => x.event?.reason)).toContain('ImportersAttached');
    n.own({ lease: B, epoch: 2 });
    expect(n.step().device?.pins?.map((p) => p.importer)).toEqual(['nic0']);
  });

  it('a grant that comes after the owner changed attaches nothing to the old buffer', () => {
    const n = crossNamespace();
    n.step();
    n.own({ epoch: 2 });
    n.step();
    n.grant('team-io', ['team-a']);
    n.step();
    expect(n.state.pods['pod-team-io-loader-0']).toBeUndefined();
    expect(n.step().device).toMatchObject({ phase: 'Free', pins: [] });
  });

  it('a grant whose podSelector leaves the pod out allows nothing to it', () => {
    const n = crossNamespace({ app: 'other' });
    n.grant('team-io', ['team-a'], { matchLabels: { app: 'loader' } });
    const nic = n
      .step()
      .exportStatus('weights')
      ?.attachments?.find((a) => a.name === 'nic0');
    expect(nic).toMatchObject({ state: 'Failed' });
    expect(nic?.message).toMatch(
      /^pod team-io\/loader-0 is not selected by the podSelector of DmaBufImportGrant from-team-a in namespace team-io/,
    );
  });

  it('a grant from another namespace than the export does not count', () => {
    const n = crossNamespace();
    n.grant('team-io', ['team-b']);
    expect(states(n.step())).toEqual({ nic0: 'Failed', view: 'Attached' });
  });

  it('with a matching grant the importer attaches, and its pin names the pod and its uid', () => {
    const n = crossNamespace({ app: 'loader' });
    n.grant('team-io', ['team-a'], { matchLabels: { app: 'loader' } });
    expect(states(n.step())).toEqual({ nic0: 'Attached', view: 'Attached' });
    n.own({ epoch: 2 });
    const s = n.step();
    expect(s.device?.phase).toBe('Stuck');
    expect(s.device?.pins).toEqual([
      expect.objectContaining({
        kind: 'rdma-mr',
        pod: { namespace: 'team-io', name: 'loader-0' },
        podUID: 'pod-team-io-loader-0',
      }),
    ]);
  });

  it('a grant withdrawn after the attach keeps the attachment and says so in the status', () => {
    const n = crossNamespace();
    n.grant('team-io', ['team-a']);
    let s = n.step();
    expect(findCondition(s.exportStatus('weights')?.conditions, 'ImportConsent')).toMatchObject({
      status: 'True',
    });
    n.grants = [];
    s = n.step();
    const nic = s.exportStatus('weights')?.attachments?.find((a) => a.name === 'nic0');
    expect(nic?.state).toBe('Attached');
    expect(nic?.message).toMatch(/^attached before its namespace withdrew consent/);
    expect(findCondition(s.exportStatus('weights')?.conditions, 'ImportConsent')).toMatchObject({
      status: 'False',
      reason: 'ConsentWithdrawn',
    });
    // The kernel would not tear a live MR down: it still pins the old owner.
    n.own({ epoch: 2 });
    expect(n.step().device?.pins?.map((p) => p.importer)).toEqual(['nic0']);
  });
});
