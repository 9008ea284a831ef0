// Which lease a pod is held by, for `why pod/NAME`: the lease of a ResourceClaim it uses (DRA
// mode: same name as the claim), else the lease whose holder selector picks it. Pure.
import type { V1Pod } from '@kubernetes/client-node';
import { isClaimLease, matchesSelector, type AcceleratorLease } from '../crds/index.ts';

/** What the plugin reads of a claim: that it exists. */
export interface ClaimRef {
  metadata?: { name?: string; namespace?: string };
}

/** The claims a pod uses, by name: named in its spec, or generated from a template (its status). */
export function claimsOfPod(pod: V1Pod): string[] {
  const generated = new Map(
    (pod.status?.resourceClaimStatuses ?? []).map((s) => [s.name, s.resourceClaimName]),
  );
  return (pod.spec?.resourceClaims ?? []).flatMap((c) => {
    const name = c.resourceClaimName ?? generated.get(c.name);
    return name ? [name] : [];
  });
}

/** The lease that holds `pod`, among the leases of its namespace, and how it was found. */
export function leaseOfPod(
  pod: V1Pod,
  leases: readonly AcceleratorLease[],
): { lease: string; via: string[] } | undefined {
  const ns = pod.metadata?.namespace ?? '';
  const podName = `pod ${ns}/${pod.metadata?.name ?? ''}`;
  const byName = new Map(leases.map((l) => [l.metadata.name ?? '', l]));
  for (const claim of claimsOfPod(pod)) {
    const l = byName.get(claim);
    if (l && isClaimLease(l))
      return {
        lease: claim,
        via: [`${podName} uses ResourceClaim ${ns}/${claim} -> lease ${ns}/${claim}`],
      };
  }
  const selecting = leases
    .filter(
      (l) => !isClaimLease(l) && matchesSelector(l.spec.holder.podSelector, pod.metadata?.labels),
    )
    .map((l) => l.metadata.name ?? '')
    .sort();
  const [first] = selecting;
  if (first === undefined) return undefined;
  const others = selecting.length > 1 ? ` (also selected by ${selecting.slice(1).join(', ')})` : '';
  return { lease: first, via: [`${podName} is a holder of lease ${ns}/${first}${others}`] };
}
