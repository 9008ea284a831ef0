// `why` explains a lease in exact words: granted, queued, stuck on pins (with the reaper's
// records), unresolvable, a missing device, and the controller's or agent's pending steps.
import { describe, expect, it } from 'vitest';
import type { AcceleratorLease, Condition } from '../crds/index.ts';
import { CORDON_ANNOTATION } from '../crds/index.ts';
import { accel, at, lease, owned, pin, T0, weights } from '../../test/fixtures/cli.ts';
import { renderWhy, why, whyExitCode, type WhyInput } from './why.ts';

const cond = (type: string, status: 'True' | 'False', reason: string, ltt: number): Condition => ({
  type,
  status,
  reason,
  message: reason,
  lastTransitionTime: at(ltt),
  observedGeneration: 1,
});

function explain(input: Omit<WhyInput, 'exports' | 'now'> & Partial<WhyInput>) {
  const full: WhyInput = { exports: [], now: T0 + 120_000, ...input };
  const chain = why(full);
  return { chain, text: renderWhy(chain, full.now), code: whyExitCode(chain) };
}

const tenantA = lease('team-a', 'tenant-a', {
  status: { phase: 'Granted', accelerator: 'node-a-hl0', epoch: 1, grantedAt: at(5) },
});

describe('why', () => {
  it('says a granted lease is not blocked, and exits 0', () => {
    const device = accel('node-a-hl0', {
      owner: { lease: tenantA, epoch: 1 },
      status: owned(tenantA, 1),
    });
    const { chain, text, code } = explain({
      lease: tenantA,
      accelerator: device,
      leases: [tenantA],
    });
    expect(text).toBe(
      [
        'lease team-a/tenant-a: Granted node-a-hl0 at epoch 1 since 10:00:05 UTC',
        '-> accelerator node-a-hl0 on node node-a (dynamic): Owned at epoch 1, owner team-a/tenant-a',
        'next: granted: nothing blocks this lease',
      ].join('\n'),
    );
    expect(code).toBe(0);
    expect(chain.verdict).toBe('Granted');
  });

  it('gives the queue position and who is ahead, in priority and age order', () => {
    const device = accel('node-a-hl0', {
      owner: { lease: tenantA, epoch: 1 },
      status: owned(tenantA, 1),
    });
    const b = lease('team-b', 'tenant-b', { created: 10, status: { phase: 'Pending' } });
    const c = lease('team-c', 'tenant-c', { created: 20, status: { phase: 'Pending' } });
    const { chain, text, code } = explain({
      lease: c,
      accelerator: device,
      leases: [c, tenantA, b],
    });
    expect(text).toBe(
      [
        'lease team-c/tenant-c: Pending for node-a-hl0 (priority 0)',
        '-> accelerator node-a-hl0 on node node-a (dynamic): Owned at epoch 1, owner team-a/tenant-a',
        'next: queued at position 2 behind team-a/tenant-a (the owner) and team-b/tenant-b',
      ].join('\n'),
    );
    expect(code).toBe(1);
    expect(chain.queue).toEqual({ position: 2, ahead: ['team-a/tenant-a', 'team-b/tenant-b'] });

    // A higher priority goes ahead of an older lease, never ahead of the owner.
    const urgent = lease('team-c', 'tenant-c', {
      created: 20,
      priority: 10,
      status: { phase: 'Pending' },
    });
    const first = explain({ lease: urgent, accelerator: device, leases: [urgent, tenantA, b] });
    expect(first.chain.next).toEqual(['queued at position 1 behind team-a/tenant-a (the owner)']);
  });

  describe('a handoff stuck on a dynamic device by an rdma-mr pin', () => {
    const b = (evictions: NonNullable<AcceleratorLease['status']>['evictions']) =>
      lease('team-b', 'tenant-b', {
        created: 10,
        status: {
          phase: 'Pending',
          accelerator: 'node-a-hl0',
          epoch: 2,
          queuePosition: 0,
          conditions: [cond('Blocked', 'True', 'Pinned', 60)],
          ...(evictions && { evictions }),
        },
      });
    const stuck = (holder: AcceleratorLease) =>
      accel('node-a-hl0', {
        owner: { lease: holder, epoch: 2 },
        status: {
          phase: 'Stuck',
          owner: { epoch: 2 },
          observedEpoch: 2,
          pins: [
            pin({
              export: 'team-a/weights',
              importer: 'nic0',
              kind: 'rdma-mr',
              pod: { namespace: 'team-io', name: 'loader-0' },
              pid: 4711,
              comm: 'ib_write_bw',
            }),
          ],
          heartbeatTime: at(118),
        },
      });
    const exports = [
      weights([
        {
          name: 'nic0',
          kind: 'rdma-mr',
          revocable: false,
          pod: { namespace: 'team-io', name: 'loader-0' },
          pid: 4711,
          state: 'Pinned',
        },
      ]),
    ];

    it('follows the pin to its pod and the Evicting record, and says what comes next', () => {
      const tenantB = b([
        {
          pod: { namespace: 'team-io', name: 'loader-0' },
          uid: 'uid-loader-0',
          reason: 'holds rdma-mr importer nic0 of export team-a/weights',
          started: at(91),
          result: 'Evicting',
          message: 'attempt 1 at 2026-11-25T10:01:31Z: eviction accepted',
        },
      ]);
      const { chain, text, code } = explain({
        lease: tenantB,
        accelerator: stuck(tenantB),
        exports,
        leases: [tenantB],
      });
      expect(text).toBe(
        [
          'lease team-b/tenant-b: Pending for node-a-hl0 (priority 0)',
          '-> accelerator node-a-hl0 on node node-a (dynamic): Stuck at epoch 2, owner team-b/tenant-b, not yet enforced (the device enforces nobody)',
          '   -> pin of epoch 1 since 10:00:30 UTC: export team-a/weights',
          '      -> rdma-mr importer nic0, not revocable',
          '      -> pod team-io/loader-0, pid 4711 (ib_write_bw)',
          '      -> eviction Evicting: attempt 1 at 2026-11-25T10:01:31Z: eviction accepted',
          'next: waiting for team-io/loader-0 to exit after its eviction',
        ].join('\n'),
      );
      expect(code).toBe(1);
      expect(chain.verdict).toBe('Blocked');
      expect(chain.pins[0]).toMatchObject({
        kind: 'rdma-mr',
        revocable: false,
        pod: 'team-io/loader-0',
        eviction: { lease: 'team-b/tenant-b', result: 'Evicting', started: at(91) },
      });
    });

    it('before the grace period ends, says when it ends and whom the reaper evicts then', () => {
      const tenantB = b(undefined);
      const { chain, code } = explain({
        lease: tenantB,
        accelerator: stuck(tenantB),
        exports,
        leases: [tenantB],
        now: T0 + 70_000,
      });
      expect(chain.next).toEqual([
        'waiting for the grace period to end at 10:01:30 UTC (in 20s)',
        'the reaper will evict team-io/loader-0 when the grace period ends at 10:01:30 UTC',
      ]);
      expect(code).toBe(1);
    });

    it('for each eviction result, names the step the reaper or the pod takes next', () => {
      const steps = (['Planned', 'Refused', 'Failed', 'Deleted', 'DryRun'] as const).map(
        (result) => {
          const tenantB = b([
            {
              pod: { namespace: 'team-io', name: 'loader-0' },
              uid: 'uid-loader-0',
              reason: 'holds rdma-mr importer nic0',
              result,
            },
          ]);
          return explain({ lease: tenantB, accelerator: stuck(tenantB), leases: [tenantB] }).chain
            .next;
        },
      );
      expect(steps).toEqual([
        ['the reaper will evict team-io/loader-0'],
        [
          'a PodDisruptionBudget refuses the eviction of team-io/loader-0; the reaper retries with backoff',
        ],
        ['the eviction of team-io/loader-0 failed; the reaper retries with backoff'],
        [
          'waiting for team-io/loader-0 to terminate: the reaper deleted it after its eviction deadline',
        ],
        ['dry run: the reaper would evict team-io/loader-0, and sends nothing'],
      ]);
    });

    it("passes on the reaper's reason for a pod no eviction in budget may clear", () => {
      const tenantB = lease('team-b', 'tenant-b', {
        created: 10,
        status: {
          phase: 'Pending',
          epoch: 2,
          conditions: [cond('Blocked', 'True', 'Pinned', 60)],
          blockedBy: [
            {
              accelerator: 'node-a-hl0',
              export: 'team-a/weights',
              importer: 'nic0',
              kind: 'rdma-mr',
              pod: { namespace: 'team-io', name: 'loader-0' },
              pid: 4711,
              reason: 'pod team-io/loader-0 is in an excluded namespace',
            },
          ],
        },
      });
      expect(
        explain({ lease: tenantB, accelerator: stuck(tenantB), leases: [tenantB] }).chain.next,
      ).toEqual([
        'team-io/loader-0 is not evicted: pod team-io/loader-0 is in an excluded namespace',
      ]);
    });

    it('shows a queued lease the pins that hold up the owner ahead of it', () => {
      const tenantB = b(undefined);
      const c = lease('team-c', 'tenant-c', { created: 20, status: { phase: 'Pending' } });
      const { chain } = explain({ lease: c, accelerator: stuck(tenantB), leases: [tenantB, c] });
      expect(chain.verdict).toBe('Queued');
      expect(chain.pins.map((p) => p.next)).toEqual(['the reaper will evict team-io/loader-0']);
      expect(chain.next).toEqual(['queued at position 1 behind team-b/tenant-b (the owner)']);
    });
  });

  it('calls a pin held outside any pod Unresolvable and says what the operator must do', () => {
    // The grace period still runs, but ends in no eviction: it is not offered as a next step.
    const tenantB = lease('team-b', 'tenant-b', {
      gracePeriodSeconds: 300,
      status: {
        phase: 'Pending',
        accelerator: 'node-a-hl0',
        epoch: 2,
        queuePosition: 0,
        conditions: [cond('Blocked', 'True', 'Unresolvable', 60)],
        blockedBy: [
          {
            accelerator: 'node-a-hl0',
            export: 'team-a/weights',
            importer: 'nic0',
            kind: 'rdma-mr',
            pod: { namespace: 'team-io', name: 'loader-0' },
            pid: 4800,
            reason:
              'pod team-io/loader-0 holds it, but no eviction can free node-a-hl0 while 1 pin(s) held outside any pod or in an excluded namespace remain',
          },
        ],
      },
    });
    const device = accel('node-a-hl0', {
      owner: { lease: tenantB, epoch: 2 },
      annotations: {
        [CORDON_ANNOTATION]: 'node-a-hl0 cannot be granted at epoch 2: hidden holder pid 4711',
      },
      status: {
        phase: 'Stuck',
        owner: { epoch: 2 },
        observedEpoch: 2,
        pins: [
          pin({ export: 'team-a/weights', importer: 'hidden-4711', kind: 'pinned', pid: 4711 }),
          pin({
            export: 'team-a/weights',
            importer: 'nic0',
            kind: 'rdma-mr',
            pod: { namespace: 'team-io', name: 'loader-0' },
            pid: 4800,
          }),
        ],
      },
    });
    const { chain, text, code } = explain({ lease: tenantB, accelerator: device, leases: [] });
    expect(text).toBe(
      [
        'lease team-b/tenant-b: Pending for node-a-hl0 (priority 0)',
        '-> accelerator node-a-hl0 on node node-a (dynamic): Stuck at epoch 2, owner team-b/tenant-b, not yet enforced (the device enforces nobody)',
        '   cordoned (accel.dmabuf.io/cordoned): node-a-hl0 cannot be granted at epoch 2: hidden holder pid 4711',
        '   -> pin of epoch 1 since 10:00:30 UTC: export team-a/weights',
        '      -> pinned importer hidden-4711, not revocable',
        '      -> no pod: pid 4711',
        '   -> pin of epoch 1 since 10:00:30 UTC: export team-a/weights',
        '      -> rdma-mr importer nic0, not revocable',
        '      -> pod team-io/loader-0, pid 4800',
        '      -> no eviction recorded',
        'next: Unresolvable: pid 4711 holds a pinned attachment outside any pod; an operator must kill it on node-a, then remove the annotation accel.dmabuf.io/cordoned from the Accelerator (kubectl annotate accel node-a-hl0 accel.dmabuf.io/cordoned-)',
        'next: team-io/loader-0 is not evicted while a pin held outside any pod remains: evicting it alone cannot free node-a-hl0',
      ].join('\n'),
    );
    expect(chain.verdict).toBe('Unresolvable');
    expect(code).toBe(1);
  });

  it('says a lease waits for a device that does not exist, and exits 3', () => {
    const orphan = lease('team-a', 'tenant-a', {
      accelerator: 'node-x-hl0',
      status: { phase: 'Pending' },
    });
    const { chain, text, code } = explain({
      lease: orphan,
      accelerator: undefined,
      leases: [orphan],
    });
    expect(text).toBe(
      [
        'lease team-a/tenant-a: Pending for node-x-hl0 (priority 0)',
        '-> accelerator node-x-hl0: not found',
        'next: accelerator node-x-hl0 does not exist; the lease waits until a node agent publishes it (kubectl get accel)',
      ].join('\n'),
    );
    expect(chain.verdict).toBe('DeviceMissing');
    expect(code).toBe(3);
  });

  it('says a lease beyond its namespace limit is not queued, rather than a queue position', () => {
    const note =
      'lease team-a/tenant-c is not queued: namespace team-a has 2 leases ahead of it (tenant-a, tenant-b), and AcceleratorLeasePolicy default allows 2 per namespace (maxLeasesPerNamespace); it is queued once one of them is deleted or finishes';
    const over = lease('team-a', 'tenant-c', {
      created: 20,
      status: {
        phase: 'Pending',
        conditions: [{ ...cond('Granted', 'False', 'OverNamespaceLimit', 20), message: note }],
      },
    });
    const { chain, text, code } = explain({
      lease: over,
      accelerator: accel('node-a-hl0', {
        owner: { lease: tenantA, epoch: 1 },
        status: owned(tenantA, 1),
      }),
      leases: [tenantA, over],
    });
    expect(text).toBe(
      ['lease team-a/tenant-c: Pending for node-a-hl0 (priority 0)', `next: ${note}`].join('\n'),
    );
    expect(chain.verdict).toBe('Waiting');
    expect(chain.queue).toBeNull();
    expect(code).toBe(1);
  });

  it('points at the agent when the device has not applied the new epoch, and at its heartbeat', () => {
    const tenantB = lease('team-b', 'tenant-b', {
      status: { phase: 'Pending', accelerator: 'node-a-hl0', epoch: 2, queuePosition: 0 },
    });
    const device = accel('node-a-hl0', {
      owner: { lease: tenantB, epoch: 2 },
      status: { ...owned(tenantA, 1), heartbeatTime: at(-180) },
    });
    const { chain } = explain({ lease: tenantB, accelerator: device, leases: [tenantB] });
    expect(chain.verdict).toBe('Waiting');
    expect(chain.next).toEqual([
      'waiting for the agent on node-a to apply epoch 2 (it reports epoch 1); its last heartbeat was 5m ago: is the agent running?',
    ]);
  });

  it('points at the controller for a lease it has not seen, or has not handed the device to', () => {
    const fresh = lease('team-b', 'tenant-b');
    const free = accel('node-a-hl0', {
      status: { phase: 'Free', owner: { epoch: 0 }, observedEpoch: 0 },
    });
    expect(explain({ lease: fresh, accelerator: free, leases: [] }).chain.next).toEqual([
      'waiting for the controller to see this lease: is accel-lease-controller running?',
    ]);
    const seen = lease('team-b', 'tenant-b', { status: { phase: 'Pending' } });
    expect(explain({ lease: seen, accelerator: free, leases: [seen] }).chain.next).toEqual([
      'waiting for the controller to hand node-a-hl0 to this lease at epoch 1',
    ]);
  });

  it('explains a deleted lease, a finished one and an unplaced selector lease', () => {
    const device = accel('node-a-hl0', { status: { phase: 'Free', observedEpoch: 2 } });
    const releasing = lease('team-a', 'tenant-a', {
      deleting: true,
      status: { phase: 'Releasing', accelerator: 'node-a-hl0', epoch: 1 },
    });
    expect(explain({ lease: releasing, accelerator: device, leases: [] }).chain).toMatchObject({
      verdict: 'Releasing',
      next: ['releasing: the finalizer is removed once node-a-hl0 no longer references epoch 1'],
    });
    const expired = lease('team-a', 'tenant-a', { status: { phase: 'Expired', epoch: 1 } });
    expect(explain({ lease: expired, accelerator: device, leases: [] }).chain.next).toEqual([
      'the lease expired: it neither holds nor waits for node-a-hl0; delete it (kubectl delete alease -n team-a tenant-a)',
    ]);
    const bySelector: AcceleratorLease = {
      ...lease('team-a', 'any'),
      spec: {
        ...lease('team-a', 'any').spec,
        accelerator: undefined,
        selector: { matchLabels: { 'accel.dmabuf.io/model': 'gaudi3' } },
      },
      status: {
        phase: 'Pending',
        conditions: [
          {
            ...cond('Granted', 'False', 'NoMatchingAccelerator', 0),
            message: 'no accelerator matches spec.selector (kubectl get accel --show-labels)',
          },
        ],
      },
    };
    const unplaced = explain({ lease: bySelector, accelerator: undefined, leases: [] });
    expect(unplaced.text).toBe(
      [
        'lease team-a/any: Pending, not placed (selector accel.dmabuf.io/model=gaudi3, priority 0)',
        'next: not placed on a device: no accelerator matches spec.selector (kubectl get accel --show-labels)',
      ].join('\n'),
    );
    expect(unplaced.code).toBe(1);
  });
});
