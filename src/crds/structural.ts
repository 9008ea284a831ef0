// Turns zod's OpenAPI 3.0 JSON Schema into a Kubernetes structural schema (see STYLE.md, "zod to CRD").
import { z } from 'zod';

export type JsonSchema = { [key: string]: unknown };

/** Keywords a structural schema may carry (apiextensions.k8s.io/v1 JSONSchemaProps, minus the ones we never emit). */
const KEPT = new Set([
  'type',
  'format',
  'description',
  'default',
  'enum',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'required',
  'properties',
  'items',
  'additionalProperties',
  'nullable',
  'x-kubernetes-validations',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
  'x-kubernetes-embedded-resource',
]);

/** Raised when a zod schema cannot be expressed as a structural schema; names the path to fix. */
export class NotStructuralError extends Error {
  override name = 'NotStructuralError';
}

/**
 * Convert a zod schema to the structural OpenAPI v3 schema a CRD needs.
 * Every node gets a `type`; `$ref`s are inlined; closed objects become open (the API server prunes).
 */
export function toStructural(schema: z.ZodType): JsonSchema {
  const raw = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    reused: 'inline',
    unrepresentable: 'throw',
  }) as JsonSchema;
  return clean(raw, '');
}

function clean(node: JsonSchema, path: string): JsonSchema {
  for (const bad of ['$ref', 'allOf', 'anyOf', 'oneOf', 'not']) {
    if (bad in node) {
      throw new NotStructuralError(
        `${path || '<root>'}: "${bad}" is not allowed in a structural schema`,
      );
    }
  }
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (!KEPT.has(key)) continue;
    if (key === 'additionalProperties') {
      // `false` is implied by pruning and forbidden next to `properties`; a schema means a map.
      if (typeof value === 'object' && value !== null) {
        out[key] = clean(value as JsonSchema, `${path}.*`);
      }
      continue;
    }
    if (key === 'properties') {
      const props: JsonSchema = {};
      for (const [name, sub] of Object.entries(value as Record<string, JsonSchema>)) {
        props[name] = clean(sub, `${path}.${name}`);
      }
      out[key] = props;
      continue;
    }
    if (key === 'items') {
      out[key] = clean(value as JsonSchema, `${path}[]`);
      continue;
    }
    out[key] = value;
  }
  if (typeof out.type !== 'string') {
    throw new NotStructuralError(
      `${path || '<root>'}: every node of a structural schema needs a type`,
    );
  }
  // zod's z.int() bounds (+-(2^53 - 1)) stay: without them the API server admits any int64, and
  // a component would read a larger one back rounded, which zod then refuses.
  if (out.type === 'integer' && out.format === undefined) out.format = 'int64';
  return out;
}
