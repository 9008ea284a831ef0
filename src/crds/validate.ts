// Runtime validation of objects read from the API server, with errors an operator can act on.
import type { z } from 'zod';

/** An object that does not match its schema; the message names the object and each bad field. */
export class InvalidObjectError extends Error {
  override name = 'InvalidObjectError';
  readonly issues: readonly { path: string; message: string }[];

  constructor(what: string, issues: readonly { path: string; message: string }[]) {
    super(`${what} is invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    this.issues = issues;
  }
}

function describe(value: unknown): string {
  if (typeof value !== 'object' || value === null) return 'object';
  const { kind, metadata } = value as {
    kind?: unknown;
    metadata?: { namespace?: unknown; name?: unknown };
  };
  const ns = typeof metadata?.namespace === 'string' ? `${metadata.namespace}/` : '';
  const name = typeof metadata?.name === 'string' ? metadata.name : '<unnamed>';
  return `${typeof kind === 'string' ? kind : 'object'} ${ns}${name}`;
}

function pathOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    out += typeof key === 'number' ? `[${key}]` : out === '' ? String(key) : `.${String(key)}`;
  }
  return out || '<root>';
}

/**
 * Parse `value` with `schema`, applying defaults; throws InvalidObjectError naming every bad field.
 * The schemas are the ones the CRDs are generated from, so the rules match the API server's.
 */
export function parseObject<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new InvalidObjectError(
    describe(value),
    result.error.issues.map((issue) => ({ path: pathOf(issue.path), message: issue.message })),
  );
}
