// The agent's command line: defaults, every value shape it accepts, and the one-line refusals.
import { describe, expect, it } from 'vitest';
import { FlagError } from '../kube/index.ts';
import { isLoopback, parseAgentFlags, parseBytes, parseHostPort } from './flags.ts';

const refusal = (argv: string[]): string => {
  try {
    parseAgentFlags(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(FlagError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${argv.join(' ')}`);
};

describe('agent flags', () => {
  it('defaults everything but --node', () => {
    expect(parseAgentFlags(['--node', 'node-a'])).toEqual({
      node: 'node-a',
      devices: 1,
      model: 'gaudi2',
      memoryBytes: 96 * 2 ** 30,
      profile: 'static',
      stateFile: '/var/lib/accel-lease/agent-node-a.json',
      adminAddr: { host: '127.0.0.1', port: 9446 },
      httpAddr: { host: '', port: 8081 },
      heartbeatMs: 10_000,
      kubeconfig: undefined,
      logFormat: 'json',
      backend: 'sim',
      linuxDevices: [],
      root: '/',
      rdma: false,
      dra: false,
    });
  });

  it('takes every flag, in both --flag value and --flag=value forms', () => {
    expect(
      parseAgentFlags([
        '--node=node-b',
        '--devices',
        '8',
        '--model=mi300x',
        '--memory',
        '192Gi',
        '--profile=dynamic',
        '--state-file',
        '/tmp/s.json',
        '--admin-addr=[::1]:0',
        '--http-addr',
        '127.0.0.1:9000',
        '--heartbeat=1m30s',
        '--kubeconfig',
        '/k',
        '--log-format=pretty',
      ]),
    ).toEqual({
      node: 'node-b',
      devices: 8,
      model: 'mi300x',
      memoryBytes: 192 * 2 ** 30,
      profile: 'dynamic',
      stateFile: '/tmp/s.json',
      adminAddr: { host: '::1', port: 0 },
      httpAddr: { host: '127.0.0.1', port: 9000 },
      heartbeatMs: 90_000,
      kubeconfig: '/k',
      logFormat: 'pretty',
      backend: 'sim',
      linuxDevices: [],
      root: '/',
      rdma: false,
      dra: false,
    });
  });

  it('pairs each --device of the linux backend with its exporter, or one exporter with all', () => {
    const one = ['--node', 'a', '--backend', 'linux', '--device', '/dev/accel/accel0'];
    expect(
      parseAgentFlags([...one, '--exporter', 'habanalabs', '--root', '/host', '--rdma']),
    ).toMatchObject({
      backend: 'linux',
      linuxDevices: [{ path: '/dev/accel/accel0', exporter: 'habanalabs' }],
      root: '/host',
      rdma: true,
    });
    const two = [...one, '--device', '/dev/accel/accel1'];
    expect(parseAgentFlags([...two, '--exporter', 'habanalabs']).linuxDevices).toEqual([
      { path: '/dev/accel/accel0', exporter: 'habanalabs' },
      { path: '/dev/accel/accel1', exporter: 'habanalabs' },
    ]);
    expect(
      parseAgentFlags([...two, '--exporter', 'a,b']).linuxDevices.map((d) => d.exporter),
    ).toEqual(['a', 'b']);
    expect(refusal([...two, '--exporter', 'a,b,c'])).toMatch(
      /one --exporter for all devices or one per --device/,
    );
    expect(refusal(['--node', 'a', '--backend', 'linux'])).toMatch(/needs --device/);
    expect(refusal(['--node', 'a', '--device', '/dev/accel/accel0'])).toMatch(
      /belong to --backend linux/,
    );
  });

  it('publishes a ResourceSlice only with --dra', () => {
    expect(parseAgentFlags(['--node', 'a']).dra).toBe(false);
    expect(parseAgentFlags(['--node', 'a', '--dra']).dra).toBe(true);
    expect(refusal(['--node', 'a', '--dra=yes'])).not.toContain('\n');
  });

  it('refuses, in one line naming the flag', () => {
    expect(refusal([])).toMatch(/^--node is required/);
    expect(refusal(['--node', 'Node_A'])).toMatch(/^--node "Node_A": want a Kubernetes node name/);
    expect(refusal(['--node', 'a', '--devices', '0'])).toMatch(/^--devices "0"/);
    expect(refusal(['--node', 'a', '--memory', '12Q'])).toMatch(/^--memory "12Q": want bytes/);
    expect(refusal(['--node', 'a', '--profile', 'magic'])).toMatch(
      /^--profile must be one of static, dynamic, revocable/,
    );
    expect(refusal(['--node', 'a', '--admin-addr', '0.0.0.0:9446'])).toMatch(
      /^--admin-addr "0.0.0.0:9446": want a loopback host:port/,
    );
    expect(refusal(['--node', 'a', '--heartbeat', '10'])).toMatch(/^--heartbeat "10"/);
    expect(refusal(['--node', 'a', '--heartbeat', '50ms'])).toMatch(/at least 100ms/);
    expect(refusal(['--node', 'a', '--log-format', 'xml'])).toMatch(
      /^--log-format must be one of json, pretty/,
    );
    expect(refusal(['--node', 'a', '--bogus', '1'])).toBe('unknown flag --bogus');
    for (const argv of [[], ['--node', 'a', '--memory', '1.5']])
      expect(refusal(argv)).not.toMatch(/\n/);
  });

  it('reads quantities and addresses', () => {
    expect(parseBytes('96Gi')).toBe(103_079_215_104);
    expect(parseBytes('100G')).toBe(100e9);
    expect(parseBytes('1.5Ti')).toBe(1.5 * 2 ** 40);
    expect(parseBytes('1024')).toBe(1024);
    expect(parseBytes('0')).toBeUndefined();
    expect(parseBytes('1.5')).toBeUndefined();
    expect(parseHostPort(':8081')).toEqual({ host: '', port: 8081 });
    expect(parseHostPort('localhost:1')).toEqual({ host: 'localhost', port: 1 });
    expect(parseHostPort('host')).toBeUndefined();
    expect(parseHostPort('a:70000')).toBeUndefined();
    expect(['127.0.0.1', '127.1.2.3', '::1', 'localhost'].every(isLoopback)).toBe(true);
    expect(
      ['0.0.0.0', '', '10.0.0.1', '::', 'example.com', '127.example.com'].some(isLoopback),
    ).toBe(false);
  });
});
