import { describe, expect, it } from 'vitest';
import {
  FlagError,
  commonFlags,
  flag,
  formatDuration,
  leaderElectionFlags,
  parseDuration,
  parseFlags,
  usage,
} from './flags.ts';

const specs = {
  ...commonFlags,
  ...leaderElectionFlags,
  workers: flag.int('concurrent reconciles', 2, 1),
  namespace: flag.requiredString('namespace to watch'),
};

function errorOf(argv: string[]): string {
  try {
    parseFlags(specs, argv);
  } catch (err) {
    expect(err).toBeInstanceOf(FlagError);
    return (err as Error).message;
  }
  throw new Error('expected a FlagError');
}

describe('parseDuration', () => {
  it.each([
    ['15s', 15_000],
    ['2m', 120_000],
    ['2h', 7_200_000],
    ['500ms', 500],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
    ['0', 0],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
    expect(parseDuration(formatDuration(ms))).toBe(ms);
  });

  it.each(['abc', '15', '', 's', '15 s', '-5s', '5d', '1m-2s'])('%j is rejected', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('parseFlags', () => {
  it('applies defaults and converts types', () => {
    const f = parseFlags(specs, ['--namespace', 'team-a']);
    expect(f).toEqual({
      kubeconfig: undefined,
      logLevel: 'info',
      httpBindAddress: ':8080',
      leaderElect: true,
      leaseDuration: 15_000,
      renewDeadline: 10_000,
      retryPeriod: 2_000,
      workers: 2,
      namespace: 'team-a',
    });
  });

  it('reads kebab-case flags, = syntax and --no- negation', () => {
    const f = parseFlags(specs, [
      '--namespace=ns',
      '--lease-duration=30s',
      '--no-leader-elect',
      '--log-level',
      'debug',
      '--kubeconfig',
      '/tmp/kc',
      '--workers',
      '8',
    ]);
    expect(f.leaseDuration).toBe(30_000);
    expect(f.leaderElect).toBe(false);
    expect(f.logLevel).toBe('debug');
    expect(f.kubeconfig).toBe('/tmp/kc');
    expect(f.workers).toBe(8);
  });

  it('explains a bad duration in one line', () => {
    expect(errorOf(['--namespace', 'x', '--lease-duration', 'abc'])).toBe(
      '--lease-duration must be a duration like 15s, got "abc"',
    );
  });

  it('explains other mistakes in one line each', () => {
    expect(errorOf(['--namespace', 'x', '--bogus'])).toBe('unknown flag --bogus');
    expect(errorOf(['--namespace', 'x', '--workers', 'many'])).toBe(
      '--workers must be an integer >= 1, got "many"',
    );
    expect(errorOf(['--namespace', 'x', '--workers', '0'])).toBe(
      '--workers must be an integer >= 1, got "0"',
    );
    expect(errorOf(['--namespace', 'x', '--log-level', 'loud'])).toBe(
      '--log-level must be one of trace, debug, info, warn, error, fatal, silent, got "loud"',
    );
    expect(errorOf([])).toBe('--namespace is required');
    expect(errorOf(['--namespace'])).toMatch(/^--namespace/);
    expect(errorOf(['--namespace', 'x', 'positional'])).not.toContain('\n');
  });

  it('lists every flag in usage', () => {
    const text = usage('accel-lease-controller', specs);
    expect(text).toContain('--lease-duration <value>');
    expect(text).toContain('(default 15s)');
    expect(text).toContain('--leader-elect');
  });

  it('names the values a oneOf flag accepts beside its default', () => {
    const text = usage('accel-lease-controller', specs);
    expect(text).toMatch(
      /--log-level <value> +log level \(one of trace, debug, info, warn, error, fatal, silent; default info\)/,
    );
  });
});

describe('repeatable and short flags', () => {
  const listSpecs = {
    exporter: flag.list('exporters', 1),
    output: { ...flag.oneOf('format', ['text', 'json'] as const, 'text'), short: 'o' },
  };

  it('collects every value of a repeated flag, comma-separated ones too', () => {
    expect(parseFlags(listSpecs, ['--exporter', 'a', '--exporter=b,c', '-o', 'json'])).toEqual({
      exporter: ['a', 'b', 'c'],
      output: 'json',
    });
  });

  it('requires the minimum number of values, in one line', () => {
    expect(() => parseFlags(listSpecs, [])).toThrow('--exporter is required');
    expect(() => parseFlags(listSpecs, ['--exporter', ''])).toThrow('--exporter is required');
  });

  it('shows the alias and the repetition in usage', () => {
    const text = usage('scan', listSpecs);
    expect(text).toContain('--exporter <value>...');
    expect(text).toContain('-o, --output <value>');
  });
});
