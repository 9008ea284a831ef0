// Command-line flags for every binary: node:util parseArgs for the syntax, a zod schema per flag
// for the meaning, and one clear line plus exit code 2 when a flag is wrong.
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { LOG_LEVELS } from './logger.ts';

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Go-style duration ("15s", "2m", "1h30m", "500ms") in milliseconds; undefined when malformed.
 * A bare "0" is zero; other bare numbers are rejected (the unit is never guessed).
 */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? NaN);
  }
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

/** Renders ms the way parseDuration reads it (15000 -> "15s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export interface FlagSpec<Out> {
  type: 'string' | 'boolean';
  /** Parses the raw value (a string, or a boolean for boolean flags, or undefined if absent). */
  schema: z.ZodType<Out, string | boolean | string[] | undefined>;
  /** The flag may be given more than once; the schema sees every value, in order. */
  multiple?: boolean;
  /** One-letter alias (`-o` for `--output`). */
  short?: string;
  description: string;
  /** Shown in --help. */
  defaultText?: string;
  /** The values a oneOf flag accepts, shown in --help. */
  choices?: readonly string[];
}

const describe = <Out>(
  type: FlagSpec<Out>['type'],
  schema: FlagSpec<Out>['schema'],
  description: string,
  defaultText?: string,
): FlagSpec<Out> => ({ type, schema, description, ...(defaultText ? { defaultText } : {}) });

/** Builders for the usual flag shapes; the result type follows from default/optional. */
export const flag = {
  /** Optional string; with a default it is always a string. */
  string<D extends string | undefined = undefined>(
    description: string,
    def?: D,
  ): FlagSpec<D extends string ? string : string | undefined> {
    const schema = def === undefined ? z.string().optional() : z.string().default(def);
    return describe('string', schema, description, def) as FlagSpec<
      D extends string ? string : string | undefined
    >;
  },
  requiredString(description: string): FlagSpec<string> {
    return describe(
      'string',
      z.string({ error: 'is required' }).min(1, 'is required'),
      description,
    );
  },
  /** Milliseconds. */
  duration(description: string, def: string): FlagSpec<number> {
    const schema = z
      .string()
      .default(def)
      .transform((raw, ctx) => {
        const ms = parseDuration(raw);
        if (ms === undefined) {
          ctx.addIssue({
            code: 'custom',
            message: `must be a duration like 15s, got ${JSON.stringify(raw)}`,
          });
          return z.NEVER;
        }
        return ms;
      });
    return describe('string', schema, description, def);
  },
  int(description: string, def: number, min = 0): FlagSpec<number> {
    const schema = z
      .string()
      .default(String(def))
      .transform((raw, ctx) => {
        const n = Number(raw);
        if (!/^-?\d+$/.test(raw.trim()) || n < min) {
          ctx.addIssue({
            code: 'custom',
            message: `must be an integer >= ${min}, got ${JSON.stringify(raw)}`,
          });
          return z.NEVER;
        }
        return n;
      });
    return describe('string', schema, description, String(def));
  },
  /** Repeatable string (`--exporter a --exporter b`, or `--exporter a,b`); at least `min` values. */
  list(description: string, min = 0): FlagSpec<string[]> {
    const schema = z
      .array(z.string())
      .default([])
      .transform((raw) => raw.flatMap((v) => v.split(',')).filter((v) => v !== ''))
      .refine((values) => values.length >= min, { error: 'is required' });
    return { type: 'string', schema, description, multiple: true };
  },
  boolean(description: string, def = false): FlagSpec<boolean> {
    return describe('boolean', z.boolean().default(def), description, String(def));
  },
  oneOf<const V extends readonly [string, ...string[]]>(
    description: string,
    values: V,
    def: V[number],
  ): FlagSpec<V[number]> {
    const schema = z
      .string()
      .default(def)
      .refine((v) => (values as readonly string[]).includes(v), {
        error: (iss) => `must be one of ${values.join(', ')}, got ${JSON.stringify(iss.input)}`,
      })
      .transform((v) => v as V[number]);
    return { ...describe('string', schema, description, def), choices: values };
  },
};

/** Flags every component takes. */
export const commonFlags = {
  kubeconfig: flag.string('path to a kubeconfig; default: $KUBECONFIG, in-cluster, ~/.kube/config'),
  logLevel: flag.oneOf('log level', LOG_LEVELS, 'info'),
  httpBindAddress: flag.string('address for /healthz, /readyz and /metrics', ':8080'),
};

/** Flags of a leader-elected component, with client-go's defaults. */
export const leaderElectionFlags = {
  leaderElect: flag.boolean('elect a leader; only the leader writes', true),
  leaseDuration: flag.duration('how long a leader holds the lease without renewing', '15s'),
  renewDeadline: flag.duration('how long the leader retries renewing before it gives up', '10s'),
  retryPeriod: flag.duration('wait between attempts to acquire or renew', '2s'),
};

export type FlagSpecs = Record<string, FlagSpec<unknown>>;
export type ParsedFlags<S extends FlagSpecs> = {
  [K in keyof S]: S[K] extends FlagSpec<infer O> ? O : never;
};

/** A bad command line; message is one line such as `--lease-duration must be a duration...`. */
export class FlagError extends Error {
  override readonly name = 'FlagError';
}

/** leaseDuration -> lease-duration */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Parses argv (without node and script) against specs; throws FlagError; --help is the caller's. */
export function parseFlags<S extends FlagSpecs>(specs: S, argv: readonly string[]): ParsedFlags<S> {
  const options: Record<
    string,
    { type: 'string' | 'boolean'; multiple?: boolean; short?: string }
  > = {};
  for (const [key, spec] of Object.entries(specs)) {
    options[flagName(key)] = {
      type: spec.type,
      ...(spec.multiple && { multiple: true }),
      ...(spec.short !== undefined && { short: spec.short }),
    };
  }
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options,
      strict: true,
      allowPositionals: false,
      allowNegative: true,
    }) as { values: Record<string, string | boolean | string[] | undefined> });
  } catch (err) {
    throw new FlagError(rephraseParseArgs(err instanceof Error ? err.message : String(err)));
  }
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) {
    const name = flagName(key);
    const result = spec.schema.safeParse(values[name]);
    if (!result.success) {
      throw new FlagError(`--${name} ${result.error.issues[0]?.message ?? 'is invalid'}`);
    }
    out[key] = result.data;
  }
  return out as ParsedFlags<S>;
}

/** Usage text for --help. */
export function usage(program: string, specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([key, spec]) => {
    const alias = spec.short !== undefined ? `-${spec.short}, ` : '';
    const repeat = spec.multiple ? '...' : '';
    const name = `${alias}--${flagName(key)}${spec.type === 'string' ? ` <value>${repeat}` : ''}`;
    const facts = [
      ...(spec.choices ? [`one of ${spec.choices.join(', ')}`] : []),
      ...(spec.defaultText !== undefined ? [`default ${spec.defaultText}`] : []),
    ];
    const tail = facts.length > 0 ? ` (${facts.join('; ')})` : '';
    return `  ${name.padEnd(32)} ${spec.description}${tail}`;
  });
  return [`usage: ${program} [flags]`, '', ...rows, `  ${'--help'.padEnd(32)} show this help`].join(
    '\n',
  );
}

/** `--help` or `-h` anywhere in argv: print usage to stdout and exit 0, before any flag is judged. */
export function exitWithUsageIfAsked(
  program: string,
  specs: FlagSpecs,
  argv: readonly string[] = process.argv.slice(2),
): void {
  if (!argv.includes('--help') && !argv.includes('-h')) return;
  process.stdout.write(usage(program, specs) + '\n');
  process.exit(0);
}

/**
 * parseFlags for a process: `--help` prints usage and exits 0; a bad flag prints
 * `error: <one line>` to stderr and exits 2.
 */
export function parseFlagsOrExit<S extends FlagSpecs>(
  program: string,
  specs: S,
  argv: readonly string[] = process.argv.slice(2),
): ParsedFlags<S> {
  exitWithUsageIfAsked(program, specs, argv);
  try {
    return parseFlags(specs, argv);
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(2);
  }
}

/** The first line of a node:util parseArgs error, as a flag error says it ("--x needs a value"). */
export function rephraseParseArgs(message: string): string {
  const first = message.split('\n')[0] ?? message;
  const unknown = /Unknown option '([^']+)'/.exec(first);
  if (unknown) return `unknown flag ${unknown[1]}`;
  const missing = /Option '(?:-\w, )?(--[\w-]+) <value>' argument missing/.exec(first);
  if (missing) return `${missing[1]} needs a value`;
  return first.replace(/\.$/, '');
}
