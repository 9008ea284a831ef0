// The generated CRDs must be structural schemas, carry the CEL rules, and match the checked-in YAML.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { customResourceDefinition, DEFINITIONS, renderCrdFiles } from './index.ts';
import { NotStructuralError, toStructural, type JsonSchema } from './structural.ts';

function walk(node: JsonSchema, path: string, visit: (node: JsonSchema, path: string) => void) {
  visit(node, path);
  const props = node.properties as Record<string, JsonSchema> | undefined;
  for (const [name, sub] of Object.entries(props ?? {})) walk(sub, `${path}.${name}`, visit);
  if (node.items) walk(node.items as JsonSchema, `${path}[]`, visit);
  if (typeof node.additionalProperties === 'object') {
    walk(node.additionalProperties as JsonSchema, `${path}.*`, visit);
  }
}

const schemaOf = (crd: JsonSchema) =>
  (crd as { spec: { versions: { schema: { openAPIV3Schema: JsonSchema } }[] } }).spec.versions[0]!
    .schema.openAPIV3Schema;

describe('generated CRDs', () => {
  for (const def of DEFINITIONS) {
    const crd = customResourceDefinition(def);

    it(`${def.type.kind}: every node is typed; no $ref, no combinators, no closed objects`, () => {
      walk(schemaOf(crd), '', (node, path) => {
        expect(typeof node.type, path).toBe('string');
        for (const banned of ['$ref', 'anyOf', 'allOf', 'oneOf', 'not']) {
          expect(node, path).not.toHaveProperty(banned);
        }
        expect(node.additionalProperties, path).not.toBe(false);
        if (node.properties) expect(node, path).not.toHaveProperty('additionalProperties');
      });
    });

    it(`${def.type.kind}: a status subresource if it has status, a category, printer columns with Age`, () => {
      const spec = (crd as { spec: Record<string, never> }).spec as unknown as {
        names: { categories: string[]; shortNames: string[] };
        versions: { subresources: unknown; additionalPrinterColumns: { name: string }[] }[];
      };
      expect(spec.versions[0]!.subresources).toEqual(def.status ? { status: {} } : undefined);
      expect(spec.names.categories).toEqual(['dmabuf']);
      expect(spec.names.shortNames.length).toBeGreaterThan(0);
      expect(spec.versions[0]!.additionalPrinterColumns.map((c) => c.name)).toContain('Age');
    });
  }

  it('kubectl get alease answers PHASE, ACCELERATOR, EPOCH, QUEUE, BLOCKED-BY, AGE', () => {
    const lease = DEFINITIONS.find((d) => d.type.kind === 'AcceleratorLease')!;
    const shown = lease.columns.filter((c) => !c.priority).map((c) => c.name.toUpperCase());
    expect(shown).toEqual(['PHASE', 'ACCELERATOR', 'EPOCH', 'QUEUE', 'BLOCKED-BY', 'AGE']);
  });

  it('carries the transition rule that keeps the fencing epoch monotonic', () => {
    const accel = schemaOf(customResourceDefinition(DEFINITIONS[0]!));
    const owner = (
      (accel.properties as Record<string, JsonSchema>).spec!.properties as Record<
        string,
        JsonSchema
      >
    ).owner!;
    expect(owner['x-kubernetes-validations']).toContainEqual({
      rule: 'self.epoch >= oldSelf.epoch',
      message: 'owner.epoch must never decrease: it is the fencing token devices compare',
    });
  });

  it('matches the checked-in YAML (npm run crds:check)', () => {
    const root = join(import.meta.dirname, '..', '..');
    for (const [path, text] of renderCrdFiles()) {
      expect(readFileSync(join(root, path), 'utf8'), path).toBe(text);
    }
  });
});

describe('toStructural', () => {
  it('refuses a union, naming the path to fix', () => {
    const bad = z.object({ spec: z.object({ size: z.union([z.string(), z.number()]) }) });
    expect(() => toStructural(bad)).toThrow(NotStructuralError);
    expect(() => toStructural(bad)).toThrow('.spec.size: "anyOf" is not allowed');
  });

  it('keeps the safe-integer bound, so the API server refuses what JavaScript would round', () => {
    expect(toStructural(z.int().min(1))).toEqual({
      type: 'integer',
      minimum: 1,
      maximum: Number.MAX_SAFE_INTEGER,
      format: 'int64',
    });
  });

  it('keeps a typed map and drops additionalProperties: false', () => {
    expect(toStructural(z.object({ m: z.record(z.string(), z.string()) }).strict())).toEqual({
      type: 'object',
      properties: { m: { type: 'object', additionalProperties: { type: 'string' } } },
      required: ['m'],
    });
  });
});
