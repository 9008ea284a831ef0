// Shapes shared by the three resources: conditions, label selectors, references, durations.
import { z } from 'zod';

export const GROUP = 'accel.dmabuf.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Importer kinds of a dma-buf attachment (docs/design.md section 1). */
export const ImporterKind = z.enum(['dynamic', 'mmap', 'rdma-mr', 'pinned']);
export type ImporterKind = z.infer<typeof ImporterKind>;

/** What a device revokes on owner drop, and what it leaves pinning the old owner. */
export const ExporterProfile = z.enum(['static', 'dynamic', 'revocable']);
export type ExporterProfile = z.infer<typeof ExporterProfile>;

/**
 * A rule the API server enforces with CEL. When `holds` is given the same rule also runs in zod,
 * so objects validated at runtime fail with the message the API server would give.
 * Transition rules (those reading oldSelf) have no `holds`: only the server sees both versions.
 */
export interface CelRule<T> {
  rule: string;
  message: string;
  holds?: (value: T) => boolean;
}

/** Attach CEL rules to a schema: as `x-kubernetes-validations` for the CRD, as refinements for zod. */
export function withRules<S extends z.ZodType>(schema: S, rules: CelRule<z.output<S>>[]): S {
  let out = schema;
  for (const { holds, message } of rules) {
    if (holds) out = out.refine(holds, { message });
  }
  return out.meta({
    'x-kubernetes-validations': rules.map(({ rule, message }) => ({ rule, message })),
  });
}

// DNS-1123 label / subdomain, as the API server checks them for names.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const ResourceName = z.string().min(1).max(253).regex(DNS_SUBDOMAIN);
export const NamespaceName = z.string().min(1).max(63).regex(DNS_LABEL);

/** A time as the API server writes it (RFC 3339). */
export const Timestamp = z.iso.datetime({ offset: true });

/** Go-style duration, the subset operators write: 90s, 15m, 2h, 1h30m. */
export const Duration = z
  .string()
  .max(64)
  .regex(/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/, 'must be a duration like 30s, 15m, 2h or 1h30m');

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds in a duration that `Duration` accepted ("1h30m" -> 5400000). */
export function parseDuration(text: string): number {
  let total = 0;
  for (const [, num, unit] of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) {
    total += Number(num) * (UNIT_MS[unit ?? 's'] ?? 0);
  }
  return total;
}

/** Bytes: non-negative integers up to 2^53 (no JavaScript precision loss). */
export const Bytes = z.int().min(0);

export const PodRef = z
  .object({
    namespace: NamespaceName,
    name: ResourceName,
  })
  .strict();
export type PodRef = z.infer<typeof PodRef>;

export const LeaseRef = z
  .object({
    namespace: NamespaceName,
    name: ResourceName,
    uid: z.string().min(1).max(64),
  })
  .strict();
export type LeaseRef = z.infer<typeof LeaseRef>;

export const LabelSelectorRequirement = withRules(
  z
    .object({
      key: z.string().min(1).max(317),
      operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
      values: z.array(z.string().max(63)).max(64).optional(),
    })
    .strict(),
  [
    {
      rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
      message: 'values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist',
      holds: (r) =>
        r.operator === 'In' || r.operator === 'NotIn'
          ? (r.values?.length ?? 0) > 0
          : (r.values?.length ?? 0) === 0,
    },
  ],
);

/** metav1.LabelSelector: matchLabels and matchExpressions are ANDed. */
export const LabelSelector = z
  .object({
    matchLabels: z.record(z.string().max(317), z.string().max(63)).optional(),
    matchExpressions: z.array(LabelSelectorRequirement).max(32).optional(),
  })
  .strict();
export type LabelSelector = z.infer<typeof LabelSelector>;

/** A status condition in the KEP-1623 shape (metav1.Condition). */
export const Condition = z
  .object({
    type: z
      .string()
      .max(316)
      .regex(
        /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
      ),
    status: z.enum(['True', 'False', 'Unknown']),
    observedGeneration: z.int().min(0).optional(),
    lastTransitionTime: Timestamp,
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
    message: z.string().max(32768),
  })
  .strict();
export type Condition = z.infer<typeof Condition>;

export const Conditions = z
  .array(Condition)
  .max(16)
  .meta({
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  });

/** Object metadata: the API server owns its validation; we keep what we read. */
export const ObjectMeta = z
  .object({
    name: z.string().optional(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    generation: z.int().optional(),
    creationTimestamp: z.union([Timestamp, z.date()]).optional(),
    deletionTimestamp: z.union([Timestamp, z.date()]).optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    finalizers: z.array(z.string()).optional(),
  })
  .loose();
