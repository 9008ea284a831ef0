// The node's long-lived processes (containerd, kubelet, kube-proxy, host services): started
// detached so `cluster:node` can exit, each with a pid file and a log under .cluster/node/.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidAlive } from '../cluster/lock.ts';
import { paths } from './layout.ts';

export type DaemonName = 'containerd' | 'kubelet' | 'kube-proxy' | 'host-services';

const pidFile = (name: DaemonName) => join(paths.pids(), `${name}.pid`);
export const logFile = (name: DaemonName) => join(paths.logs(), `${name}.log`);

export function daemonPid(name: DaemonName): number | undefined {
  if (!existsSync(pidFile(name))) return undefined;
  const pid = Number.parseInt(readFileSync(pidFile(name), 'utf8'), 10);
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined;
}

/** Starts `command` in a session of its own (so no terminal signal reaches it) and records it. */
export function startDaemon(
  name: DaemonName,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): number {
  mkdirSync(paths.pids(), { recursive: true });
  mkdirSync(paths.logs(), { recursive: true });
  const out = openSync(logFile(name), 'a');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', out, out], env });
  if (child.pid === undefined) throw new Error(`${name} (${command}) did not start`);
  child.unref();
  writeFileSync(pidFile(name), String(child.pid));
  return child.pid;
}

/** The last lines of a daemon's log, for an error an operator can act on. */
export function logTail(name: DaemonName, lines = 20): string {
  if (!existsSync(logFile(name))) return '(no log)';
  return readFileSync(logFile(name), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/** SIGTERM, then SIGKILL after `graceMs`; returns once the process is gone. */
export async function stopDaemon(name: DaemonName, graceMs = 10_000): Promise<void> {
  const pid = daemonPid(name);
  rmSync(pidFile(name), { force: true });
  if (pid === undefined) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  while (pidAlive(pid)) await new Promise((r) => setTimeout(r, 50));
}
