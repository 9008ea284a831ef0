// The controller's command line: every flag with its meaning and default, for main.ts and --help.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { DEFAULT_LEASE_POLICY } from '../crds/index.ts';
import { commonFlags, flag, leaderElectionFlags } from '../kube/index.ts';
import { DEFAULT_REAPER_POLICY } from '../reaper/index.ts';

export const CONTROLLER_FLAGS = {
  ...commonFlags,
  ...leaderElectionFlags,
  leaderElectionNamespace: flag.string(
    'namespace of the coordination.k8s.io Lease used for leader election',
    process.env.POD_NAMESPACE ?? 'accel-lease-system',
  ),
  leaderElectionId: flag.string('name of that Lease', 'accel-lease-controller'),
  identity: {
    ...flag.string(
      'this replica in leader election and Events',
      `${process.env.POD_NAME ?? hostname()}_${randomBytes(3).toString('hex')}`,
    ),
    defaultText: '$POD_NAME or the hostname, _, 6 random hex digits',
  },
  workers: flag.int('accelerators reconciled concurrently', 4, 1),
  excludedNamespaces: flag.string(
    "comma-separated namespaces whose pods are never evicted (the controller's own is always added)",
    'kube-system',
  ),
  maxEvictionsPerHandoff: flag.int(
    'cap on pods evicted to free one device, whatever a lease asks',
    DEFAULT_REAPER_POLICY.maxEvictionsPerHandoff,
  ),
  maxEvictionsPerMinute: flag.int(
    'cluster-wide cap on eviction calls per minute',
    DEFAULT_REAPER_POLICY.maxEvictionsPerMinute,
    1,
  ),
  evictionDeadline: flag.duration('how long an evicted pod may take to be gone', '5m'),
  evictionRetryInitial: flag.duration(
    'backoff before retrying a refused or failed eviction, doubled per attempt; a refusal is retried sooner when its Retry-After or its PodDisruptionBudget allows',
    `${DEFAULT_REAPER_POLICY.retryInitialMs / 1000}s`,
  ),
  evictionRetryMax: flag.duration(
    'cap on that backoff',
    `${DEFAULT_REAPER_POLICY.retryMaxMs / 60_000}m`,
  ),
  onDeadline: flag.oneOf(
    'after the deadline: keep waiting, delete the pod (its own grace), or delete with grace 0',
    ['Wait', 'Delete', 'ForceDelete'] as const,
    'Wait',
  ),
  dryRun: flag.boolean('plan and report evictions, evict nothing'),
  reapWhenIdle: flag.boolean('also evict holders of pins on a device nobody waits for'),
  defaultLeasePolicy: flag.string(
    'AcceleratorLeasePolicy whose maxLeasesPerNamespace applies to namespaces without the accel.dmabuf.io/lease-policy label',
    DEFAULT_LEASE_POLICY,
  ),
  dra: flag.boolean(
    'DRA mode: a ResourceClaim allocated a device of driver accel.dmabuf.io becomes a lease, and its device conditions gate the pod',
  ),
  holderGates: flag.boolean(
    'release pods gated with accel.dmabuf.io/lease onto the device node once a Granted lease selects them',
  ),
  logFormat: flag.oneOf('log format', ['json', 'pretty'] as const, 'json'),
};
