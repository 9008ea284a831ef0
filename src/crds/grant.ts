// DmaBufImportGrant: a namespace's consent that exports of other namespaces may name its pods as
// importers (modelled on Gateway API's ReferenceGrant). Without it such an importer never attaches.
import { z } from 'zod';
import { LabelSelector, NamespaceName, type PodRef, resourceObject } from './common.ts';
import { DMABUF_IMPORT_GRANTS } from './resources.ts';
import { matchesSelector } from './selector.ts';

export const DmaBufImportGrantSpec = z
  .object({
    from: z
      .array(z.object({ namespace: NamespaceName }).strict())
      .min(1)
      .max(64)
      .describe('namespaces whose DmaBufExports may name pods of this namespace as importers'),
    podSelector: LabelSelector.optional().describe(
      'which pods of this namespace may be named; absent or empty: all of them',
    ),
  })
  .strict();
export type DmaBufImportGrantSpec = z.infer<typeof DmaBufImportGrantSpec>;

export const DmaBufImportGrant = resourceObject(DMABUF_IMPORT_GRANTS, {
  spec: DmaBufImportGrantSpec,
});
export type DmaBufImportGrant = z.infer<typeof DmaBufImportGrant>;

/** An importer pod as the consent rule needs it: where it is and what it is labelled. */
export interface ImporterPod extends PodRef {
  readonly labels?: Readonly<Record<string, string>> | undefined;
}

export type ImportConsent =
  | { readonly allowed: true; readonly grant?: string }
  | { readonly allowed: false; readonly message: string };

/**
 * May an export in `exportNamespace` name `pod` as an importer? Always within one namespace;
 * across namespaces only if a grant in the pod's namespace lists the export's namespace and
 * selects the pod. `grants` may hold any namespace's grants: only the pod's count.
 */
export function importConsent(
  exportNamespace: string,
  pod: ImporterPod,
  grants: readonly DmaBufImportGrant[],
): ImportConsent {
  if (pod.namespace === exportNamespace) return { allowed: true };
  const listing = grants.filter(
    (g) =>
      g.metadata.namespace === pod.namespace &&
      g.spec.from.some((f) => f.namespace === exportNamespace),
  );
  const granting = listing.find((g) => matchesSelector(g.spec.podSelector ?? {}, pod.labels));
  if (granting) return { allowed: true, grant: `${pod.namespace}/${granting.metadata.name ?? ''}` };
  const key = `${pod.namespace}/${pod.name}`;
  if (listing.length > 0) {
    const names = listing.map((g) => g.metadata.name ?? '').join(', ');
    return {
      allowed: false,
      message:
        `pod ${key} is not selected by the podSelector of DmaBufImportGrant ${names} in ` +
        `namespace ${pod.namespace}: label the pod to match, or widen the grant's podSelector`,
    };
  }
  return {
    allowed: false,
    message:
      `namespace ${pod.namespace} has no DmaBufImportGrant allowing imports from namespace ` +
      `${exportNamespace}: someone who may edit ${pod.namespace} creates one with ` +
      `spec.from: [{namespace: ${exportNamespace}}] (kubectl apply -n ${pod.namespace} -f grant.yaml)`,
  };
}
