// Boots the guest under QEMU with software emulation (TCG: nested KVM hangs on these machines),
// with the host's /usr and this checkout shared read-only over virtio-9p, runs one scenario
// script inside it and returns everything the guest printed on its serial console.
import { spawn, spawnSync } from 'node:child_process';
import { relative, resolve } from 'node:path';
import type { GuestImage } from './build.ts';

const QEMU = 'qemu-system-x86_64';
const checkout = resolve(import.meta.dirname, '..', '..');

/** QEMU is missing or the guest did not finish: the message says which, and what to do. */
export class GuestRunError extends Error {
  override name = 'GuestRunError';
}

export interface GuestRun {
  /** The serial console, line endings normalized. */
  readonly console: string;
  readonly seconds: number;
}

export function qemuAvailable(): string | undefined {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0)
    return `${QEMU} not found: install Debian's qemu-system-x86 (apt-get install qemu-system-x86)`;
  return undefined;
}

/**
 * Run `scenario` (a path inside the checkout) in a fresh guest and resolve with its console once
 * the guest powers off. Rejects when the guest reports a failure of its own setup, the scenario
 * exits non-zero or prints no exit line, or the guest outlives `timeoutMs`.
 */
export function runGuest(
  image: GuestImage,
  scenario: string,
  options: { timeoutMs?: number; memoryMiB?: number } = {},
): Promise<GuestRun> {
  const missing = qemuAvailable();
  if (missing) return Promise.reject(new GuestRunError(missing));
  const share = (path: string, tag: string) => [
    '-virtfs',
    `local,path=${path},mount_tag=${tag},security_model=none,readonly=on,multidevs=remap`,
  ];
  const args = [
    '-accel',
    'tcg',
    '-m',
    String(options.memoryMiB ?? 1024),
    '-smp',
    '1',
    '-no-reboot',
    '-display',
    'none',
    '-monitor',
    'none',
    '-serial',
    'stdio',
    '-kernel',
    image.kernel,
    '-initrd',
    image.initrd,
    '-append',
    `console=ttyS0 quiet loglevel=1 panic=-1 accel.src=${checkout} accel.scenario=${relative(checkout, resolve(checkout, scenario))}`,
    ...share('/usr', 'usr'),
    ...share(checkout, 'checkout'),
  ];
  const timeoutMs = options.timeoutMs ?? 240_000;
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new GuestRunError(`${QEMU}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const text = out.replace(/\r\n/g, '\n');
      const seconds = (Date.now() - started) / 1000;
      const failed = /^GUEST-FAIL (.*)$/m.exec(text)?.[1];
      const tail = text.trim().split('\n').slice(-15).join('\n');
      if (failed) return reject(new GuestRunError(`guest setup failed: ${failed}\n${tail}`));
      if (signal === 'SIGKILL')
        return reject(
          new GuestRunError(`guest still running after ${timeoutMs / 1000}s; last lines:\n${tail}`),
        );
      const exit = /^GUEST-EXIT (\d+)$/m.exec(text)?.[1];
      if (exit !== undefined && exit !== '0')
        return reject(
          new GuestRunError(`the scenario exited ${exit} in the guest; last lines:\n${tail}`),
        );
      if (exit === undefined)
        return reject(
          new GuestRunError(
            `guest stopped (qemu exit ${code}) before the scenario finished: ${err.trim()}\n${tail}`,
          ),
        );
      resolvePromise({ console: text, seconds });
    });
  });
}
