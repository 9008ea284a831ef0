// The CustomResourceDefinitions, built from the zod schemas: names, columns, categories.
import type { z } from 'zod';
import type { ResourceType } from '../kube/index.ts';
import { AcceleratorSpec, AcceleratorStatus } from './accelerator.ts';
import { GROUP, VERSION } from './common.ts';
import { DmaBufExportSpec, DmaBufExportStatus } from './export.ts';
import { DmaBufImportGrantSpec } from './grant.ts';
import { AcceleratorLeaseSpec, AcceleratorLeaseStatus } from './lease.ts';
import { AcceleratorLeasePolicySpec } from './policy.ts';
import {
  ACCELERATORS,
  ACCELERATOR_LEASES,
  ACCELERATOR_LEASE_POLICIES,
  DMABUF_EXPORTS,
  DMABUF_IMPORT_GRANTS,
} from './resources.ts';
import { toStructural, type JsonSchema } from './structural.ts';

export const CATEGORY = 'dmabuf';

interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'date' | 'number' | 'boolean';
  jsonPath: string;
  description?: string;
  priority?: number;
}

interface Definition {
  /** Kind, plural and scope. */
  type: ResourceType;
  shortNames: string[];
  description: string;
  spec: z.ZodType;
  /** Absent: the kind has no status (nor status subresource): a grant, a policy. */
  status?: z.ZodType;
  columns: PrinterColumn[];
}

const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export const DEFINITIONS: readonly Definition[] = [
  {
    type: ACCELERATORS,
    shortNames: ['accel'],
    description:
      'An accelerator device on a node: its exporter profile, its desired owner and fencing epoch (spec.owner), and what the device enforces and what pins it (status).',
    spec: AcceleratorSpec,
    status: AcceleratorStatus,
    columns: [
      { name: 'Node', type: 'string', jsonPath: '.spec.node' },
      { name: 'Model', type: 'string', jsonPath: '.spec.model' },
      { name: 'Profile', type: 'string', jsonPath: '.spec.exporterProfile' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      {
        name: 'Owner',
        type: 'string',
        jsonPath: '.status.owner.lease.name',
        description: 'lease the device enforces',
      },
      { name: 'Epoch', type: 'integer', jsonPath: '.status.observedEpoch' },
      { name: 'Pinned-By', type: 'string', jsonPath: '.status.pins[*].pod.name' },
      AGE,
    ],
  },
  {
    type: ACCELERATOR_LEASES,
    shortNames: ['alease'],
    description:
      "A tenant's claim for exclusive ownership of an accelerator, queued per device by priority then age. Delete it to release the device.",
    spec: AcceleratorLeaseSpec,
    status: AcceleratorLeaseStatus,
    columns: [
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Accelerator', type: 'string', jsonPath: '.status.accelerator' },
      { name: 'Epoch', type: 'integer', jsonPath: '.status.epoch' },
      { name: 'Queue', type: 'integer', jsonPath: '.status.queuePosition' },
      { name: 'Blocked-By', type: 'string', jsonPath: '.status.blockedBy[*].pod.name' },
      { name: 'Priority', type: 'integer', jsonPath: '.spec.priority', priority: 1 },
      AGE,
    ],
  },
  {
    type: DMABUF_EXPORTS,
    shortNames: ['dbx'],
    description:
      'A dma-buf exported from an accelerator under a lease, and the importers (peer devices, CPU mappings, RDMA memory regions) attached to it.',
    spec: DmaBufExportSpec,
    status: DmaBufExportStatus,
    columns: [
      { name: 'Accelerator', type: 'string', jsonPath: '.spec.accelerator' },
      { name: 'Lease', type: 'string', jsonPath: '.spec.lease' },
      { name: 'Size', type: 'integer', jsonPath: '.spec.sizeBytes' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Inode', type: 'integer', jsonPath: '.status.inode', priority: 1 },
      AGE,
    ],
  },
  {
    type: DMABUF_IMPORT_GRANTS,
    shortNames: ['dbig'],
    description:
      "A namespace's consent that DmaBufExports in the listed namespaces may name its pods as importers. Without one, such an importer fails and never attaches, so it can never pin a device or be evicted.",
    spec: DmaBufImportGrantSpec,
    columns: [{ name: 'From', type: 'string', jsonPath: '.spec.from[*].namespace' }, AGE],
  },
  {
    type: ACCELERATOR_LEASE_POLICIES,
    shortNames: ['alpol'],
    description:
      "The administrator's bounds on the leases of the namespaces that select it (label accel.dmabuf.io/lease-policy; without it, the policy named default): priority range, least grace for the previous tenant, most evictions, longest duration, most leases per namespace.",
    spec: AcceleratorLeasePolicySpec,
    columns: [
      { name: 'Min-Priority', type: 'integer', jsonPath: '.spec.priority.min' },
      { name: 'Max-Priority', type: 'integer', jsonPath: '.spec.priority.max' },
      { name: 'Min-Grace', type: 'integer', jsonPath: '.spec.minGracePeriodSeconds' },
      { name: 'Max-Evictions', type: 'integer', jsonPath: '.spec.maxEvictions' },
      { name: 'Max-Duration', type: 'string', jsonPath: '.spec.maxDuration' },
      { name: 'Max-Leases', type: 'integer', jsonPath: '.spec.maxLeasesPerNamespace' },
      AGE,
    ],
  },
];

/** The apiextensions.k8s.io/v1 CustomResourceDefinition object for one definition. */
export function customResourceDefinition(def: Definition): JsonSchema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.type.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      scope: def.type.namespaced ? 'Namespaced' : 'Cluster',
      names: {
        kind: def.type.kind,
        listKind: `${def.type.kind}List`,
        plural: def.type.plural,
        singular: def.type.kind.toLowerCase(),
        shortNames: def.shortNames,
        categories: [CATEGORY],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          ...(def.status && { subresources: { status: {} } }),
          additionalPrinterColumns: def.columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: def.description,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: toStructural(def.spec),
                ...(def.status && { status: toStructural(def.status) }),
              },
            },
          },
        },
      ],
    },
  };
}
