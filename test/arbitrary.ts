// fast-check arbitraries derived from the API's zod schemas, for property tests: any value the
// schema (and so the generated CRD) admits, biased towards the extremes its bounds allow.
// Test-only: it lives outside src/ so that it never ships in the image.
import fc from 'fast-check';
import { z } from 'zod';

type Json = { [key: string]: unknown };

/** Hand-written arbitraries for nodes a JSON Schema cannot describe well enough to generate. */
export interface Overrides {
  /** By property path from the root (`spec.duration`, `status.pins[].export`, `metadata`). */
  readonly [path: string]: fc.Arbitrary<unknown>;
}

// Timestamps the API server accepts (RFC 3339, years 0000-9999), mostly near now, sometimes at
// the ends of the range: a date arithmetic bug shows at year 9999 long before it does today.
const NOW = Date.parse('2026-12-01T00:00:00Z');
const MIN_TIME = Date.parse('0000-01-01T00:00:00Z');
const MAX_TIME = Date.parse('9999-12-31T23:59:59Z');
const seconds = (t: number) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');

export const timestamp: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.integer({ min: NOW - 86_400_000, max: NOW + 86_400_000 }).map(seconds),
  },
  { weight: 2, arbitrary: fc.integer({ min: MIN_TIME, max: MAX_TIME }).map(seconds) },
  { weight: 1, arbitrary: fc.constantFrom(MIN_TIME, MAX_TIME).map(seconds) },
);

/** An integer in [min, max], with the bounds themselves and their neighbours often. */
function integer(min: number, max: number): fc.Arbitrary<number> {
  const edges = [min, min + 1, max - 1, max, 0, 1].filter((n) => n >= min && n <= max);
  return fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...edges) },
    { weight: 2, arbitrary: fc.integer({ min, max: Math.min(max, min + 16) }) },
    { weight: 1, arbitrary: fc.integer({ min, max }) },
  );
}

const LABEL_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** A DNS label or subdomain of exactly `length` characters (the longest names are the risky ones). */
function longName(length: number): fc.Arbitrary<string> {
  const alnum = fc.constantFrom(...LABEL_CHARS);
  const inner = fc.constantFrom(...LABEL_CHARS, '-');
  if (length <= 2) return fc.string({ unit: alnum, minLength: length, maxLength: length });
  return fc
    .tuple(alnum, fc.string({ unit: inner, minLength: 1, maxLength: 6 }), alnum)
    .map(
      ([a, mid, b]) =>
        a + mid.repeat(Math.ceil((length - 2) / mid.length)).slice(0, length - 2) + b,
    );
}

/** A string within [min, max] characters, matching `pattern` when there is one. */
function string(node: Json): fc.Arbitrary<string> {
  const min = typeof node.minLength === 'number' ? node.minLength : 0;
  const max = typeof node.maxLength === 'number' ? node.maxLength : 64;
  const fits = (s: string) => s.length >= min && s.length <= max;
  if (typeof node.pattern === 'string') {
    const re = new RegExp(node.pattern);
    // fast-check's own size bias keeps matches short; 'small' (up to ten of each repeat) also reaches long ones.
    const matching = fc.stringMatching(re);
    const short = fc.oneof(
      { weight: 3, arbitrary: matching.filter(fits) },
      { weight: 1, arbitrary: fc.stringMatching(re, { size: 'small' }).filter(fits) },
      {
        // Every number in the string at its largest: what a bound on a count or a duration misses.
        weight: 1,
        arbitrary: fc
          .tuple(matching, fc.integer({ min: 1, max: 16 }))
          .map(([m, k]) => m.replace(/[0-9]+/g, '9'.repeat(k)))
          .filter((m) => re.test(m) && fits(m)),
      },
    );
    // Names: the pattern of a DNS label/subdomain; at full length, not what stringMatching makes.
    if (re.test('a-0') && re.test('a') && !re.test('A') && max <= 317) {
      return fc.oneof(
        { weight: 3, arbitrary: short },
        { weight: 1, arbitrary: longName(max).filter((s) => re.test(s)) },
      );
    }
    return short;
  }
  // Free text: short (any Unicode), or exactly as long as the schema allows (a short string
  // repeated: generating 32768 characters one by one would dominate the run).
  return fc.oneof(
    { weight: 4, arbitrary: fc.string({ minLength: min, maxLength: Math.min(max, 12) }) },
    {
      weight: 1,
      arbitrary: fc.string({ unit: 'binary', minLength: min, maxLength: Math.min(max, 12) }),
    },
    {
      weight: 1,
      arbitrary: fc
        .string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 8 })
        .map((s) => s.repeat(Math.ceil(max / s.length)).slice(0, max)),
    },
  );
}

/**
 * An array within maxItems: mostly short, sometimes one element repeated up to maxItems (cheap,
 * and what overflows a message built from every element). Lists keyed by x-kubernetes-list-map-keys
 * hold each key once, as the API server requires.
 */
function array(node: Json, item: fc.Arbitrary<unknown>): fc.Arbitrary<unknown[]> {
  const maxItems = typeof node.maxItems === 'number' ? node.maxItems : 8;
  const keys = node['x-kubernetes-list-map-keys'] as string[] | undefined;
  if (keys) {
    const key = (v: unknown) => JSON.stringify(keys.map((k) => (v as Json)[k]));
    return fc.uniqueArray(item, { maxLength: Math.min(maxItems, 4), selector: key });
  }
  return fc.oneof(
    { weight: 8, arbitrary: fc.array(item, { maxLength: Math.min(maxItems, 3) }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(item, fc.integer({ min: 1, max: maxItems }))
        .map(([x, n]) => Array.from({ length: n }, () => x)),
    },
  );
}

function fromNode(node: Json, path: string, overrides: Overrides): fc.Arbitrary<unknown> {
  const override = overrides[path];
  if (override) return override;
  if ('const' in node) return fc.constant(node.const);
  if (Array.isArray(node.enum)) return fc.constantFrom(...(node.enum as unknown[]));
  if (Array.isArray(node.anyOf)) {
    return fc.oneof(
      ...(node.anyOf as Json[])
        .filter((n) => Object.keys(n).length > 0)
        .map((n) => fromNode(n, path, overrides)),
    );
  }
  switch (node.type) {
    case 'boolean':
      return fc.boolean();
    case 'integer': {
      const min = typeof node.minimum === 'number' ? node.minimum : Number.MIN_SAFE_INTEGER;
      const max = typeof node.maximum === 'number' ? node.maximum : Number.MAX_SAFE_INTEGER;
      return integer(min, max);
    }
    case 'number':
      return fc.double({ noNaN: true, noDefaultInfinity: true });
    case 'string':
      return node.format === 'date-time' ? timestamp : string(node);
    case 'array':
      return array(node, fromNode(node.items as Json, `${path}[]`, overrides));
    case 'object': {
      const props = (node.properties ?? {}) as Record<string, Json>;
      if (Object.keys(props).length === 0 && typeof node.additionalProperties === 'object') {
        const names = node.propertyNames as Json | undefined;
        return fc.dictionary(
          names ? string(names) : fc.string({ maxLength: 12 }),
          fromNode(node.additionalProperties as Json, `${path}.*`, overrides),
          { maxKeys: 3 },
        );
      }
      const required = new Set((node.required ?? []) as string[]);
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [name, sub] of Object.entries(props)) {
        model[name] = fromNode(sub, path ? `${path}.${name}` : name, overrides);
      }
      return fc.record(model, {
        requiredKeys: Object.keys(props).filter((k) => required.has(k)),
      });
    }
    default:
      throw new Error(
        `${path || '<root>'}: no arbitrary for JSON Schema node ${JSON.stringify(node)}`,
      );
  }
}

/**
 * Values `schema` accepts as input: generated from its JSON Schema (the one the CRD comes from),
 * then run through the schema itself, so refinements (CEL rules with `holds`) and defaults apply.
 * Returns the parsed output, as a component sees the object after parseObject.
 */
export function arbitraryOf<S extends z.ZodType>(
  schema: S,
  overrides: Overrides = {},
): fc.Arbitrary<z.output<S>> {
  const json = z.toJSONSchema(schema, {
    io: 'input',
    reused: 'inline',
    unrepresentable: 'any',
  }) as Json;
  return fromNode(json, '', overrides)
    .map((v) => schema.safeParse(v))
    .filter((r) => r.success)
    .map((r) => r.data);
}

const uuid = fc.uuid({ version: 4 });

/**
 * metadata as the API server writes it (ObjectMeta's schema is deliberately loose: the API
 * server validates it, not the CRD): a DNS-subdomain name, a DNS-label namespace when
 * namespaced, a UUID, a generation, timestamps, and any annotations from `annotations`.
 */
export function objectMeta(opts: {
  namespaced: boolean;
  finalizers?: readonly string[];
  annotations?: Readonly<Record<string, fc.Arbitrary<string>>>;
}): fc.Arbitrary<Json> {
  const name = string({
    minLength: 1,
    maxLength: 253,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
  });
  const namespace = string({
    minLength: 1,
    maxLength: 63,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  });
  const annotations = opts.annotations ?? {};
  return fc.record(
    {
      name,
      ...(opts.namespaced && { namespace }),
      uid: uuid,
      resourceVersion: fc.nat().map(String),
      generation: integer(1, Number.MAX_SAFE_INTEGER),
      creationTimestamp: timestamp,
      deletionTimestamp: timestamp,
      finalizers: fc.subarray([...(opts.finalizers ?? [])]),
      annotations: fc.record(annotations, { requiredKeys: [] }),
    },
    {
      requiredKeys: [
        'name',
        'uid',
        'generation',
        'creationTimestamp',
        ...(opts.namespaced ? ['namespace' as const] : []),
      ],
    },
  );
}
