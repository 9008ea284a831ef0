// `status` rows: owner and epoch as the device enforces them, pins by holder, the queue in order.
import { describe, expect, it } from 'vitest';
import { CORDON_ANNOTATION } from '../crds/index.ts';
import { accel, at, lease, owned, pin, T0 } from '../../test/fixtures/cli.ts';
import { status, statusTable } from './status.ts';

const now = T0 + 120_000;
const tenantA = lease('team-a', 'tenant-a', { status: { phase: 'Granted', epoch: 1 } });
const tenantB = lease('team-b', 'tenant-b', { created: 10, status: { phase: 'Pending' } });
const urgent = lease('team-c', 'urgent', {
  created: 20,
  priority: 5,
  status: { phase: 'Pending' },
});
const other = lease('team-d', 'other', { accelerator: 'node-b-hl0', status: { phase: 'Pending' } });
const expired = lease('team-e', 'old', { created: 1, status: { phase: 'Expired' } });
const leaving = lease('team-f', 'leaving', { deleting: true, status: { phase: 'Releasing' } });

const owner2 = lease('team-b', 'tenant-b', { status: { phase: 'Pending', epoch: 2 } });
const devices = [
  accel('node-b-hl0', { node: 'node-b', profile: 'static' }),
  accel('node-a-hl1', {
    index: 1,
    owner: { lease: owner2, epoch: 2 },
    annotations: { [CORDON_ANNOTATION]: 'hidden holder pid 4711' },
    status: {
      phase: 'Stuck',
      owner: { epoch: 2 },
      observedEpoch: 2,
      pins: [
        pin({
          kind: 'rdma-mr',
          importer: 'nic0',
          pod: { namespace: 'team-io', name: 'loader-0' },
          pid: 10,
        }),
        pin({ kind: 'fd', pod: { namespace: 'team-io', name: 'loader-0' }, pid: 10 }),
        pin({ kind: 'pinned', importer: 'hidden-4711', pid: 4711, since: at(40) }),
      ],
    },
  }),
  accel('node-a-hl0', { owner: { lease: tenantA, epoch: 1 }, status: owned(tenantA, 1) }),
];
const leases = [tenantB, other, tenantA, urgent, expired, leaving];

describe('status', () => {
  it('gives one row per device: owner, epoch, pins by holder, and the live queue in order', () => {
    const rows = status({ accelerators: devices, leases, now });
    expect(rows.map((r) => r.device)).toEqual(['node-a-hl0', 'node-a-hl1', 'node-b-hl0']);
    expect(rows[0]).toEqual({
      node: 'node-a',
      device: 'node-a-hl0',
      model: 'gaudi2',
      profile: 'dynamic',
      phase: 'Owned',
      cordoned: null,
      owner: 'team-a/tenant-a',
      ownerEnforced: true,
      epoch: 1,
      observedEpoch: 1,
      pins: { count: 0, holders: [] },
      // Priority before age; expired and deleted leases wait for nothing.
      queue: ['team-c/urgent', 'team-b/tenant-b'],
    });
    expect(rows[1]).toMatchObject({
      phase: 'Stuck',
      cordoned: 'hidden holder pid 4711',
      owner: 'team-b/tenant-b',
      ownerEnforced: false,
      pins: { count: 3, holders: ['team-io/loader-0', 'pid 4711'] },
      queue: [],
    });
    // Nobody owns node-b-hl0 yet: the first in line is still in the queue.
    expect(rows[2]).toMatchObject({ owner: null, phase: 'Unknown', queue: ['team-d/other'] });
  });

  it('renders a kubectl-style table', () => {
    const lagging = accel('node-c-hl0', {
      node: 'node-c',
      owner: { lease: tenantA, epoch: 3 },
      status: owned(tenantA, 2),
    });
    const crowd = ['q1', 'q2', 'q3', 'q4', 'q5'].map((n, i) =>
      lease('team-q', n, { accelerator: 'node-c-hl0', created: i }),
    );
    const rows = status({
      accelerators: [...devices, lagging],
      leases: [...leases, ...crowd],
      now,
    });
    expect(statusTable(rows)).toBe(
      [
        'NODE     DEVICE       PROFILE   PHASE            OWNER             EPOCH             PINS                             QUEUE',
        'node-a   node-a-hl0   dynamic   Owned            team-a/tenant-a   1                 0                                team-c/urgent, team-b/tenant-b',
        'node-a   node-a-hl1   dynamic   Stuck,Cordoned   team-b/tenant-b   2                 3 (team-io/loader-0, pid 4711)   <none>',
        'node-b   node-b-hl0   static    Unknown          <none>            0                 0                                team-d/other',
        'node-c   node-c-hl0   dynamic   Owned            team-a/tenant-a   3 (device at 2)   0                                team-q/q1, team-q/q2, team-q/q3 +2 more',
      ].join('\n'),
    );
  });
});
