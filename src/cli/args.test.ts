// The command line: kubectl's flag habits, NAMESPACE/NAME, and one clear line for each misuse.
import { describe, expect, it } from 'vitest';
import { HELP, parseCommand } from './args.ts';
import { UsageError } from './errors.ts';

const connection = { kubeconfig: undefined, context: undefined, requestTimeoutMs: 10_000 };

function misuse(argv: string[]): string {
  try {
    parseCommand(argv);
  } catch (err) {
    if (err instanceof UsageError) return err.message;
    throw err;
  }
  throw new Error(`expected a usage error for ${argv.join(' ')}`);
}

describe('parseCommand', () => {
  it('reads why pod/NAME and resourceclaim/NAME as where to start, and a namespace/name as a lease', () => {
    expect(parseCommand(['why', 'pod/train-0', '-n', 'team-b'])).toMatchObject({
      kind: 'why',
      namespace: 'team-b',
      name: 'train-0',
      via: 'pod',
    });
    expect(parseCommand(['why', 'resourceclaim/train'])).toMatchObject({
      name: 'train',
      via: 'resourceclaim',
    });
    expect(parseCommand(['why', 'alease/tenant-b'])).not.toHaveProperty('via');
    expect(parseCommand(['why', 'team-b/tenant-b'])).toMatchObject({
      namespace: 'team-b',
      name: 'tenant-b',
    });
    expect(parseCommand(['why', 'team-b/tenant-b'])).not.toHaveProperty('via');
    expect(() => parseCommand(['why', 'pod/a/b'])).toThrow('want pod/NAME, got "pod/a/b"');
  });

  it('reads status and why with kubectl-style flags in any order', () => {
    expect(parseCommand(['status', '--node', 'node-a', '-o', 'json'])).toEqual({
      kind: 'status',
      output: 'json',
      node: 'node-a',
      connection,
    });
    expect(parseCommand(['-n', 'team-b', 'why', 'tenant-b', '-ojson'])).toEqual({
      kind: 'why',
      output: 'json',
      namespace: 'team-b',
      name: 'tenant-b',
      connection,
    });
    expect(
      parseCommand(['why', 'team-b/tenant-b', '--context', 'prod', '--request-timeout', '3s']),
    ).toEqual({
      kind: 'why',
      output: 'text',
      namespace: 'team-b',
      name: 'tenant-b',
      connection: { kubeconfig: undefined, context: 'prod', requestTimeoutMs: 3000 },
    });
    expect(parseCommand(['status', '-o=table'])).toMatchObject({ output: 'table' });
  });

  it('answers --help for the program and for each command, with the exit codes', () => {
    expect(parseCommand(['--help'])).toEqual({ kind: 'help', text: HELP.top });
    expect(parseCommand(['why', '-h'])).toEqual({ kind: 'help', text: HELP.why });
    expect(parseCommand(['status', '--help'])).toEqual({ kind: 'help', text: HELP.status });
    for (const text of Object.values(HELP)) {
      expect(text).toContain(
        '  3  not found: the lease, its accelerator, or any accelerator on --node',
      );
      expect(text).toContain('  4  API server unreachable, unauthorized or forbidden');
    }
  });

  it('rejects misuse with one line', () => {
    expect(
      [
        [],
        ['top'],
        ['status', 'extra'],
        ['status', '-n', 'x'],
        ['status', '-o', 'yaml'],
        ['status', '--nodes', 'a'],
        ['status', '--node'],
        ['why'],
        ['why', 'a', 'b'],
        ['why', 'a', '--node', 'n'],
        ['why', 'a/b/c'],
        ['why', 'team-a/x', '-n', 'team-b'],
        ['why', 'x', '-o', 'table'],
        ['why', 'x', '--request-timeout', '10'],
      ].map(misuse),
    ).toEqual([
      'a command is required: status or why (see kubectl dmabuf --help)',
      'unknown command "top": want status or why (see kubectl dmabuf --help)',
      'status takes no arguments, got "extra"',
      'status covers every namespace: -n/--namespace applies to why only',
      '--output must be table or json, got "yaml"',
      'unknown flag --nodes',
      '--node needs a value',
      'why needs a lease: kubectl dmabuf why LEASE [-n NAMESPACE]',
      'why takes one lease, got "b" as well',
      '--node applies to status only',
      'LEASE must be NAME or NAMESPACE/NAME, got "a/b/c"',
      'the lease team-a/x is not in namespace team-b given with -n',
      '--output must be text or json, got "table"',
      '--request-timeout must be a duration like 10s, got "10"',
    ]);
  });
});
