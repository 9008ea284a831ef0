// DmaBufExport: one dma-buf exported from a device's memory, and the importers that attach to it.
import { z } from 'zod';
import {
  Bytes,
  Conditions,
  ImporterKind,
  PodRef,
  ResourceName,
  resourceObject,
  withRules,
} from './common.ts';
import { DMABUF_EXPORTS } from './resources.ts';

export const Importer = z
  .object({
    name: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/),
    kind: ImporterKind,
    pod: PodRef,
  })
  .strict();
export type Importer = z.infer<typeof Importer>;

export const DmaBufExportSpec = withRules(
  z
    .object({
      accelerator: ResourceName,
      lease: ResourceName.describe(
        'the AcceleratorLease, in this namespace, under which memory is exported',
      ),
      exporter: z.object({ pod: ResourceName.describe('a pod in this namespace') }).strict(),
      sizeBytes: Bytes.min(1),
      offsetBytes: Bytes.default(0),
      importers: withRules(z.array(Importer).max(64), [
        {
          rule: 'self.all(a, self.exists_one(b, b.name == a.name))',
          message: 'importer names must be unique within an export',
          holds: (list) => new Set(list.map((i) => i.name)).size === list.length,
        },
      ]).default([]),
      source: z
        .enum(['Declared', 'Discovered'])
        .default('Declared')
        .describe(
          'Declared exports are realized by the node agent; Discovered ones were found on the node',
        ),
    })
    .strict(),
  [
    { rule: 'self.accelerator == oldSelf.accelerator', message: 'spec.accelerator is immutable' },
    {
      rule: 'self.sizeBytes == oldSelf.sizeBytes && self.offsetBytes == oldSelf.offsetBytes',
      message: 'spec.sizeBytes and spec.offsetBytes are immutable: a dma-buf cannot be resized',
    },
  ],
);
export type DmaBufExportSpec = z.infer<typeof DmaBufExportSpec>;

export const ExportPhase = z.enum(['Pending', 'Active', 'Revoked', 'Pinned', 'Released', 'Failed']);
export type ExportPhase = z.infer<typeof ExportPhase>;

export const AttachmentState = z.enum([
  'Pending',
  'Attached',
  'Revoked',
  'Pinned',
  'Detached',
  'Failed',
]);

export const AttachmentStatus = z
  .object({
    name: z.string().max(63),
    kind: ImporterKind,
    revocable: z.boolean(),
    pod: PodRef.optional(),
    pid: z.int().min(1).optional(),
    state: AttachmentState,
    message: z.string().max(1024).optional(),
  })
  .strict();
export type AttachmentStatus = z.infer<typeof AttachmentStatus>;

export const DmaBufExportStatus = z
  .object({
    phase: ExportPhase.optional(),
    inode: z.int().min(0).optional(),
    epoch: z.int().min(0).optional().describe('the owner epoch the buffer was exported under'),
    attachments: z.array(AttachmentStatus).max(64).optional(),
    conditions: Conditions.optional(),
    observedGeneration: z.int().min(0).optional(),
  })
  .strict();
export type DmaBufExportStatus = z.infer<typeof DmaBufExportStatus>;

export const DmaBufExport = resourceObject(DMABUF_EXPORTS, {
  spec: DmaBufExportSpec,
  status: DmaBufExportStatus.optional(),
});
export type DmaBufExport = z.infer<typeof DmaBufExport>;
