// Exporter profiles: what each kind of exporter can take back from its importers on owner drop.
// The one table the revoke and pin logic reads; docs/design.md section 1 is its specification.

import type { ExporterProfile, ImporterKind } from './types.ts';

export interface ProfileSemantics {
  /** Importer kinds the exporter can revoke (move_notify, unmap_mapping_range, revocable umem). */
  readonly revocable: ReadonlySet<ImporterKind>;
  /** Every dma-buf fd holds a reference on the device file, so bare fds pin the old owner too. */
  readonly fdsPin: boolean;
  /** The exporter offers a CPU mapping; without one an mmap importer is refused. */
  readonly mmap: boolean;
}

export const PROFILES: Readonly<Record<ExporterProfile, ProfileSemantics>> = {
  // habanalabs: no pin/move_notify, no CPU mapping; exports reference the device file.
  static: { revocable: new Set(), fdsPin: true, mmap: false },
  // amdgpu/xe-like: dynamic exporter; pinned importers cannot be invalidated.
  dynamic: { revocable: new Set(['dynamic', 'mmap']), fdsPin: false, mmap: true },
  // 2026 kernels: revocable pinned attachments; only legacy dma_buf_pin users remain.
  revocable: { revocable: new Set(['dynamic', 'mmap', 'rdma-mr']), fdsPin: false, mmap: true },
};

/** Whether an importer of `kind` survives its exporter's owner drop (and so blocks the next owner). */
export function pinsOnDrop(profile: ExporterProfile, kind: ImporterKind): boolean {
  return !PROFILES[profile].revocable.has(kind);
}
