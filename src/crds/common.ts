// Shapes shared by the three resources: conditions, label selectors, references, durations.
import { z } from 'zod';
import { MAX_CONDITION_MESSAGE } from './text.ts';

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

/** The longest `namespace/name` of a namespaced object: a status field that copies one needs it. */
export const MAX_OBJECT_KEY = 63 + 1 + 253;

/** A time as the API server writes it (RFC 3339). */
export const Timestamp = z.iso.datetime({ offset: true });

/** The last instant a Timestamp can hold (RFC 3339 has four-digit years): clamp computed times to it. */
export const MAX_TIME_MS = Date.parse('9999-12-31T23:59:59Z');

/**
 * The longest duration a lease may ask for. A year is far beyond any real hold, and keeps
 * grantedAt + duration a date every component can compute, store and print.
 */
export const MAX_DURATION = '8760h';

const NS: Record<string, bigint> = {
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/**
 * Durations whose value in Go (time.ParseDuration, which CEL's duration() uses) cannot overflow
 * int64 nanoseconds, even 64 characters of them: at most 5 digits of hours, 7 of minutes, 9 of
 * seconds or 12 of milliseconds per part, 9 after the point. Every longer form is beyond
 * MAX_DURATION anyway; this only keeps CEL from failing with an overflow error instead of
 * saying what to fix. Written without backslashes, so that it reads the same as a CEL string
 * literal, to RE2 and to JavaScript.
 */
const NO_OVERFLOW =
  '^(([0-9]{1,5}([.][0-9]{1,9})?h)|([0-9]{1,7}([.][0-9]{1,9})?m)|([0-9]{1,9}([.][0-9]{1,9})?s)|([0-9]{1,12}([.][0-9]{1,9})?ms))+$';
const NO_OVERFLOW_RE = new RegExp(NO_OVERFLOW);

/**
 * Nanoseconds in a duration, exactly as Go's time.ParseDuration computes them (fractions
 * through float64, truncated), so that zod and the API server's CEL agree at the boundary.
 */
export function durationNanos(text: string): bigint {
  let total = 0n;
  for (const [, int, frac, unit] of text.matchAll(/([0-9]+)(?:\.([0-9]+))?(ms|s|m|h)/g)) {
    const ns = NS[unit ?? 's'] ?? 0n;
    total += BigInt(int ?? '0') * ns;
    if (frac) total += BigInt(Math.trunc(Number(frac) * (Number(ns) / 10 ** frac.length)));
  }
  return total;
}

const MAX_DURATION_NS = durationNanos(MAX_DURATION);

/** Go-style duration, the subset operators write: 90s, 15m, 2h, 1h30m; at most MAX_DURATION. */
export const Duration = withRules(
  z
    .string()
    .max(64)
    .regex(/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/, 'must be a duration like 30s, 15m, 2h or 1h30m'),
  [
    {
      rule: `self.size() <= 64 && self.matches('${NO_OVERFLOW}') && duration(self) <= duration('${MAX_DURATION}')`,
      message: `must be at most ${MAX_DURATION} (one year): ask for a shorter hold, or leave duration out to hold the device until the lease is deleted`,
      holds: (s) => s.length <= 64 && NO_OVERFLOW_RE.test(s) && durationNanos(s) <= MAX_DURATION_NS,
    },
  ],
);

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds in a duration that `Duration` accepted ("1h30m" -> 5400000). */
export function parseDuration(text: string): number {
  let total = 0;
  for (const [, num, unit] of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) {
    total += Number(num) * (UNIT_MS[unit ?? 's'] ?? 0);
  }
  return total;
}

/**
 * The largest integer any field holds: the largest a JavaScript number (and so zod's z.int())
 * represents exactly. The CRDs carry it as `maximum` so that the API server refuses what the
 * components could only read back rounded. The fencing epoch stops here too (see the arbiter).
 */
export const MAX_INT = Number.MAX_SAFE_INTEGER;
export const MAX_EPOCH = MAX_INT;

/** Bytes: non-negative integers up to 2^53 - 1 (no JavaScript precision loss). */
export const Bytes = z.int().min(0);

export const PodRef = z
  .object({
    namespace: NamespaceName,
    name: ResourceName,
  })
  .strict();
export type PodRef = z.infer<typeof PodRef>;

/** A pod's namespace/name: the key pods are cached and compared by. */
export const podKey = (ref: PodRef): string => `${ref.namespace}/${ref.name}`;

export const LeaseRef = z
  .object({
    namespace: NamespaceName,
    name: ResourceName,
    // No '/': the node agent keys a device's owner as namespace/name/uid and splits it back.
    uid: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[^/]+$/, 'must not contain "/" (an object uid never does)'),
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
    message: z.string().max(MAX_CONDITION_MESSAGE),
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

/**
 * A whole object of one of our kinds, as the API server sends it: apiVersion and kind fixed,
 * metadata, then the kind's own fields (spec, status).
 */
export function resourceObject<const K extends string, S extends z.ZodRawShape>(
  type: { kind: K },
  fields: S,
) {
  return z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(type.kind),
    metadata: ObjectMeta,
    ...fields,
  });
}
