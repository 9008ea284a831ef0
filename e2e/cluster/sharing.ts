// Several test runs (and a person with `cluster:up`) may use one checkout's cluster at once. A
// lock serializes starting and stopping it; a registry of live test runs lets the last one out
// delete a cluster that a test run created, while a cluster someone started by hand stays up.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Log } from './binaries.ts';
import { down, killRecordedProcesses, stateDir, up } from './control-plane.ts';
import type { ClusterOptions, UpResult } from './control-plane.ts';
import { pidAlive, withLock } from './lock.ts';

type Owner = 'tests' | 'manual';

const lockDir = () => join(stateDir(), 'lock');
const usersDir = () => join(stateDir(), 'users');
const ownerFile = () => join(stateDir(), 'owner');

function owner(): Owner | undefined {
  if (!existsSync(ownerFile())) return undefined;
  return readFileSync(ownerFile(), 'utf8').trim() as Owner;
}

/** Pids of test runs registered as using the cluster that are still alive, other than ours. */
function otherLiveUsers(): number[] {
  if (!existsSync(usersDir())) return [];
  return readdirSync(usersDir())
    .map((f) => Number.parseInt(f, 10))
    .filter((pid) => pid !== process.pid && pidAlive(pid));
}

function locked<T>(log: Log, fn: () => Promise<T>): Promise<T> {
  mkdirSync(stateDir(), { recursive: true });
  return withLock(lockDir(), 'the cluster lock', log, fn);
}

/** `cluster:up`: start or reuse the cluster, and keep it up until `cluster:down`. */
export function upByHand(log: Log, extra: ClusterOptions = {}): Promise<UpResult> {
  return locked(log, async () => {
    const result = await up(log, extra);
    writeFileSync(ownerFile(), 'manual');
    return result;
  });
}

/** `cluster:down`: delete the cluster whoever started it. */
export function downByHand(log: Log): Promise<void> {
  return locked(log, async () => {
    const others = otherLiveUsers();
    if (others.length > 0) log(`test runs ${others.join(', ')} are still using the cluster`);
    await down(log);
    rmSync(ownerFile(), { force: true });
  });
}

export interface TestRunLease extends UpResult {
  /** Deregister; delete the cluster if a test run created it and no other run still uses it. */
  release(): Promise<void>;
}

/**
 * A test run's claim on the local cluster, starting it if needed. `keep` leaves a cluster this
 * run created running afterwards, as if started by hand.
 */
export function acquireForTestRun(log: Log, keep: boolean): Promise<TestRunLease> {
  return locked(log, async () => {
    const result = await up(log);
    if (result.started || !owner()) writeFileSync(ownerFile(), keep ? 'manual' : 'tests');
    mkdirSync(usersDir(), { recursive: true });
    const registration = join(usersDir(), String(process.pid));
    writeFileSync(registration, '');
    if (owner() === 'manual') log('the cluster stays up after the tests (npm run cluster:down)');

    // Should this process die without release(), still leave no control-plane process behind.
    const onExit = () => {
      rmSync(registration, { force: true });
      if (owner() === 'tests' && otherLiveUsers().length === 0) killRecordedProcesses();
    };
    process.once('exit', onExit);

    const release = () =>
      locked(log, async () => {
        process.removeListener('exit', onExit);
        rmSync(registration, { force: true });
        if (owner() !== 'tests') return;
        const others = otherLiveUsers();
        if (others.length > 0) {
          log(`leaving the cluster up for test runs ${others.join(', ')}`);
          return;
        }
        await down(log);
        rmSync(ownerFile(), { force: true });
        rmSync(usersDir(), { recursive: true, force: true });
      });
    return { ...result, release };
  });
}
