// The processes a chaos schedule runs and hurts: two controller replicas under leader election,
// each behind its own fault proxy and restarted when it exits (as a Deployment's kubelet would),
// and one node agent per device, all talking to an API server replica that can be restarted.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { kubeConfigFor } from '../cluster/index.ts';
import type { ApiServerReplica } from '../harness/index.ts';
import { api, sleep, startAgent, startController, type Component } from '../stack/index.ts';
import { startFaultProxy, type FaultProxy } from './proxy.ts';
import type { Profile } from './schedule.ts';

const ELECTION_LEASE = 'accel-lease-controller';

/**
 * A kubeconfig file with the admin's credentials for the server at 127.0.0.1:`port`, in a
 * directory only this user can read; removeKubeconfig deletes it.
 */
export function kubeconfigFile(port: number): string {
  const kc = kubeConfigFor(port);
  const file = join(mkdtempSync(join(tmpdir(), 'accel-chaos-kc-')), 'kubeconfig');
  writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
  return file;
}

export function removeKubeconfig(file: string): void {
  rmSync(dirname(file), { recursive: true, force: true });
}

/** One replica slot of the controller Deployment: whatever process fills it, restarted on exit. */
export class ControllerSlot {
  current: Component | undefined;
  identity = '';
  private generation = 0;
  private stopped = false;
  private readonly name: string;
  private readonly electionNamespace: string;
  readonly proxy: FaultProxy;
  private readonly kubeconfig: string;
  /** Exits seen, with their codes, for the report. */
  readonly exits: (number | null)[] = [];

  private constructor(name: string, ns: string, proxy: FaultProxy, kubeconfig: string) {
    this.name = name;
    this.electionNamespace = ns;
    this.proxy = proxy;
    this.kubeconfig = kubeconfig;
  }

  static async start(name: string, ns: string, replica: ApiServerReplica): Promise<ControllerSlot> {
    const proxy = await startFaultProxy(() => replica.port);
    const slot = new ControllerSlot(name, ns, proxy, kubeconfigFile(proxy.port));
    await slot.spawn();
    return slot;
  }

  private async spawn(): Promise<void> {
    if (this.stopped) return;
    const identity = `${this.name}-${this.generation++}`;
    const startedAt = Date.now();
    const c = await startController({
      electionNamespace: this.electionNamespace,
      identity,
      kubeconfig: this.kubeconfig,
    });
    this.current = c;
    this.identity = identity;
    c.process.once('exit', (code) => {
      this.exits.push(code);
      // A replica that dies young waits longer, as a crash-looping container does.
      const backoff = Date.now() - startedAt < 5_000 ? 3_000 : 1_000;
      void sleep(backoff).then(() => this.spawn());
    });
  }

  pid(): number | undefined {
    return this.current?.exited() === false ? this.current.process.pid : undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.current?.kill();
    await this.proxy.close();
    removeKubeconfig(this.kubeconfig);
  }
}

/** The election Lease's holder, read from the first API server. */
export async function leaderIdentity(ns: string): Promise<string | undefined> {
  const lease = await api<{ spec?: { holderIdentity?: string } }>(
    'GET',
    `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${ELECTION_LEASE}`,
  ).catch(() => undefined);
  return lease?.spec?.holderIdentity || undefined;
}

/** A node agent that can be killed and started again from its state file. */
export class AgentSlot {
  current: Awaited<ReturnType<typeof startAgent>> | undefined;
  private readonly node: string;
  private readonly profile: Profile;
  private readonly kubeconfig: string;

  constructor(node: string, profile: Profile, kubeconfig: string) {
    this.node = node;
    this.profile = profile;
    this.kubeconfig = kubeconfig;
  }

  async start(): Promise<void> {
    this.current = await startAgent({
      node: this.node,
      profile: this.profile,
      kubeconfig: this.kubeconfig,
      // A loaded machine starts a process in 8-30 s; a DaemonSet would wait longer still.
      readyTimeoutMs: 90_000,
      ...(this.current && { stateFile: this.current.stateFile }),
    });
  }

  /** SIGKILL, as a crash: the state file is as the last step left it. */
  async kill(): Promise<void> {
    await this.current?.kill();
  }

  /**
   * Start again from the same state file, as the DaemonSet's kubelet would: a second later, and
   * again (2 s apart, for a minute and a half) while the agent exits because the API server is
   * away, as it does when it cannot reach it at start.
   */
  async restart(): Promise<void> {
    const deadline = Date.now() + 90_000;
    for (;;) {
      await sleep(1_000);
      try {
        await this.start();
        return;
      } catch (err) {
        // Only an agent that exited is started again: one still starting is left to finish.
        const exited = err instanceof Error && / exited:/.test(err.message);
        if (!exited || Date.now() > deadline) throw err;
        await sleep(1_000);
      }
    }
  }

  adminUrl(path: string): string {
    return `http://127.0.0.1:${this.current?.adminPort ?? 0}${path}`;
  }
}
