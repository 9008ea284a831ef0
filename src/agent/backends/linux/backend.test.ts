import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newState } from '../../state.ts';
import { LedgerFileError, linuxBackend } from './backend.ts';

// One process of pod A holding buffer 31 of habanalabs, in a /proc laid out as Linux shows it.
const UID = '0c6c3f5c-1a2b-4c3d-8e9f-0123456789ab';
let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'accel-linux-backend-'));
  const dir = join(root, 'proc', '4711');
  mkdirSync(join(dir, 'fd'), { recursive: true });
  mkdirSync(join(dir, 'fdinfo'));
  writeFileSync(
    join(dir, 'stat'),
    '4711 (trainer) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 1 1\n',
  );
  writeFileSync(join(dir, 'cgroup'), `0::/kubepods/burstable/pod${UID}/${'c'.repeat(64)}\n`);
  writeFileSync(join(dir, 'maps'), '');
  symlinkSync('/dmabuf:weights', join(dir, 'fd', '5'));
  writeFileSync(
    join(dir, 'fdinfo', '5'),
    'pos:\t0\nflags:\t02\nmnt_id:\t11\nino:\t31\nsize:\t4096\ncount:\t1\nexp_name:\thabanalabs\nname:\tweights\n',
  );
  mkdirSync(join(root, 'sys/kernel/debug/dma_buf'), { recursive: true });
  writeFileSync(
    join(root, 'sys/kernel/debug/dma_buf/bufinfo'),
    '\nDma-buf Objects:\nsize\tflags\tmode\tcount\texp_name\tino\tname\n00004096\t00000002\t00080007\t00000001\thabanalabs\t00000031\tweights\n\tAttached Devices:\nTotal 0 devices attached\n',
  );
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const pods = new Map([
  [
    UID,
    {
      uid: UID,
      namespace: 'team-a',
      name: 'trainer-0',
      nodeName: 'n',
      phase: 'Running',
      comm: 'trainer',
    },
  ],
]);
const devices = [{ name: 'n-hl0', paths: [], exporter: 'habanalabs' }];

describe('linuxBackend', () => {
  it('remembers across a restart the epoch a buffer appeared under', () => {
    const ledgerFile = join(root, 'agent.json.linux.json');
    const state = newState('n', { count: 1, memoryBytes: 1, profile: 'static' });
    state.kernel.acquire('n-hl0', 'team-a/a/u1', 1);
    linuxBackend({ root, devices, ledgerFile }).observe({ state, pods, now: 1 });
    expect(JSON.parse(readFileSync(ledgerFile, 'utf8'))).toMatchObject({
      buffers: {
        '31': { devices: { 'n-hl0': { epoch: 1, owner: 'team-a/a/u1' } }, seen: ['4711:555'] },
      },
    });

    // A new agent process: the owner drops; the buffer is still a's, so its holder pins.
    state.kernel.drop('n-hl0', { epoch: 2 });
    const restarted = linuxBackend({ root, devices, ledgerFile });
    restarted.observe({ state, pods, now: 2 });
    const pins = restarted.pins?.('n-hl0').pins ?? [];
    expect(pins.map((p) => [p.pid, p.kind, p.ino, p.epoch, p.holder])).toEqual([
      [4711, 'fd', 31, 1, { namespace: 'team-a', name: 'trainer-0' }],
    ]);
  });

  it('refuses a ledger file it cannot read, saying how to start over', () => {
    const ledgerFile = join(root, 'bad.json');
    writeFileSync(ledgerFile, '{"version":7}');
    expect(() => linuxBackend({ root, devices, ledgerFile })).toThrow(LedgerFileError);
    expect(() => linuxBackend({ root, devices, ledgerFile })).toThrow(/delete it to start over/);
    writeFileSync(ledgerFile, '{"vers');
    expect(() => linuxBackend({ root, devices, ledgerFile })).toThrow(LedgerFileError);
  });

  it('turns an unreadable /proc into a blocked device, not an empty one', () => {
    const state = newState('n', { count: 1, memoryBytes: 1, profile: 'static' });
    const blind = linuxBackend({
      root: join(root, 'nowhere'),
      devices,
      ledgerFile: join(root, 'l.json'),
    });
    blind.observe({ state, pods, now: 1 });
    expect(blind.pins?.('n-hl0').blocked?.reason).toBe('ObservationIncomplete');
  });
});
