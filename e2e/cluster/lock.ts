// A lock between processes on one machine: a directory created atomically, holding the owner's
// pid, taken over when that pid has died. Guards the binary cache and a checkout's cluster.
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function holder(dir: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(join(dir, 'pid'), 'utf8'), 10);
    return Number.isInteger(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function tryTake(dir: string): boolean {
  try {
    mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const pid = holder(dir);
    // A lock without a pid is either being created this instant or was left half-made.
    const stale = pid === undefined ? Date.now() - statSync(dir).mtimeMs > 10_000 : !pidAlive(pid);
    if (!stale) return false;
    rmSync(dir, { recursive: true, force: true });
    return tryTake(dir);
  }
  writeFileSync(join(dir, 'pid'), String(process.pid));
  return true;
}

/**
 * Runs `fn` while holding the lock at `dir` (whose parent must exist), waiting as long as it
 * takes for a live holder: a cold build holds the cache lock for many minutes.
 */
export async function withLock<T>(
  dir: string,
  what: string,
  log: (line: string) => void,
  fn: () => Promise<T>,
): Promise<T> {
  let lastNotice = 0;
  while (!tryTake(dir)) {
    if (Date.now() - lastNotice > 30_000) {
      log(`waiting for ${what}: held by pid ${holder(dir) ?? '?'}`);
      lastNotice = Date.now();
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  try {
    return await fn();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
