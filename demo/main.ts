// `npm run demo`: a fresh clone to the seed's story, running. Starts the local control plane (or
// uses $KUBECONFIG), installs the chart, runs the controller and a node agent under the chart's
// ServiceAccounts, plays two tenants and an RDMA MR holder, prints the timeline, then stops.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { Accelerator, AcceleratorLease } from '../src/crds/index.ts';
import { KubeClient } from '../src/kube/index.ts';
import { CONTROLLER_NODE_FLAGS } from '../src/controller/node-flags.ts';
import { upByHand } from '../e2e/cluster/index.ts';
import { nodeBoundPod, serviceAccountKubeconfig } from '../e2e/stack/identity.ts';
import { sleep, waitFor } from '../e2e/stack/wait.ts';

const ROOT = join(import.meta.dirname, '..');
const NS = 'accel-lease-system';
/** The chart runs the agent in a namespace of its own: it needs privileged Pod Security. */
const AGENT_NS = `${NS}-agent`;
const RELEASE = 'accel-lease';
const NODE = 'node-a';
const started = Date.now();
const say = (line: string) =>
  process.stdout.write(`[t+${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}\n`);

function run(cmd: string, args: string[], kubeconfig: string): string {
  const res = spawnSync(cmd, args, {
    env: { ...process.env, KUBECONFIG: kubeconfig },
    encoding: 'utf8',
  });
  if (res.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')}: ${res.stderr.trim() || res.stdout.trim()}`);
  return res.stdout;
}

async function cluster(): Promise<{
  kubeconfig: string;
  kubectl: string;
  helm: string;
  local: boolean;
}> {
  if (process.env.KUBECONFIG) {
    say(
      `using the cluster in KUBECONFIG (${process.env.KUBECONFIG}); it needs a node ${NODE} where pods run (kwok)`,
    );
    return { kubeconfig: process.env.KUBECONFIG, kubectl: 'kubectl', helm: 'helm', local: false };
  }
  say('starting the local control plane (the first run builds it from source: about 20 minutes)');
  const up = await upByHand((line) => say(`  ${line}`));
  return {
    kubeconfig: up.kubeconfigPath,
    kubectl: up.bins.kubectl,
    helm: up.bins.helm,
    local: true,
  };
}

function start(name: string, args: string[], dir: string): ChildProcess {
  const out = openSync(join(dir, `${name}.log`), 'a');
  const env = { ...process.env };
  delete env.KUBECONFIG;
  return spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', out, out] });
}

/** Prints what changed in leases, the device and pods since the last look. */
function timeline(client: KubeClient) {
  const seen = new Map<string, string>();
  const note = (key: string, text: string) => {
    if (seen.get(key) === text) return;
    seen.set(key, text);
    say(text);
  };
  return async () => {
    const leases = await client.request<{ items: AcceleratorLease[] }>({
      method: 'GET',
      path: '/apis/accel.dmabuf.io/v1alpha1/acceleratorleases',
    });
    for (const l of leases.items.filter((x) => x.metadata.namespace?.startsWith('team-'))) {
      const st = l.status;
      const blocked = st?.blockedBy?.map((b) => b.pod?.name ?? `pid ${b.pid}`).join(',');
      note(
        `lease ${l.metadata.namespace}/${l.metadata.name}`,
        `lease ${l.metadata.namespace}/${l.metadata.name}: ${st?.phase ?? '-'}` +
          `${st?.epoch !== undefined ? ` epoch ${st.epoch}` : ''}` +
          `${st?.queuePosition ? ` queue ${st.queuePosition}` : ''}${blocked ? ` blocked by ${blocked}` : ''}`,
      );
      for (const e of st?.evictions ?? []) {
        note(
          `evict ${e.uid}`,
          `reaper: ${e.result} ${e.pod.namespace}/${e.pod.name} (${e.reason})`,
        );
      }
    }
    const a = await client
      .request<Accelerator>({
        method: 'GET',
        path: `/apis/accel.dmabuf.io/v1alpha1/accelerators/${NODE}-hl0`,
      })
      .catch(() => undefined);
    if (a?.status) {
      const pins = (a.status.pins ?? []).map(
        (p) =>
          `${p.kind} ${p.importer ?? ''} in ${p.pod ? `${p.pod.namespace}/${p.pod.name}` : `pid ${p.pid}`}`,
      );
      note(
        'accel',
        `device ${NODE}-hl0: ${a.status.phase ?? '-'} at epoch ${a.status.observedEpoch ?? '-'}` +
          `${a.status.owner?.lease ? ` owned by ${a.status.owner.lease.namespace}/${a.status.owner.lease.name}` : ''}` +
          `${pins.length ? `, pinned by ${pins.join('; ')}` : ''}`,
      );
    }
  };
}

async function main(): Promise<void> {
  const c = await cluster();
  const kc = new KubeConfig();
  kc.loadFromFile(c.kubeconfig);
  const admin = new KubeClient(kc);
  say('installing the CRDs and the chart (its ServiceAccounts, RBAC and admission policy)');
  run(
    c.kubectl,
    ['apply', '--server-side', '--force-conflicts', '-f', join(ROOT, 'deploy', 'crds')],
    c.kubeconfig,
  );
  run(
    c.kubectl,
    ['wait', '--for=condition=Established', '-f', join(ROOT, 'deploy', 'crds')],
    c.kubeconfig,
  );
  // On simulated nodes the chart's own pods would not run our code: the controller and agent run
  // here as host processes, authenticated as the chart's ServiceAccounts.
  run(
    c.helm,
    [
      'upgrade',
      '--install',
      RELEASE,
      join(ROOT, 'charts', 'accel-lease'),
      '--namespace',
      NS,
      '--create-namespace',
      '--skip-crds',
      '--set',
      'controller.replicas=0',
      '--set-json',
      'agent.nodeSelector={"accel.dmabuf.io/demo-runs-agents-on-the-host":"true"}',
    ],
    c.kubeconfig,
  );
  const dir = mkdtempSync(join(tmpdir(), 'accel-lease-demo-'));
  const procs: ChildProcess[] = [];
  try {
    const ctl = await serviceAccountKubeconfig(admin, kc, {
      namespace: NS,
      serviceAccount: `${RELEASE}-controller`,
      dir,
    });
    // The agent speaks for its node only: its token is bound to a pod there, as its own pod's is.
    await admin
      .request({ method: 'DELETE', path: `/api/v1/namespaces/${AGENT_NS}/pods/agent-${NODE}` })
      .catch(() => undefined);
    await waitFor('the previous agent stand-in pod gone', async () => {
      try {
        await admin.request({
          method: 'GET',
          path: `/api/v1/namespaces/${AGENT_NS}/pods/agent-${NODE}`,
        });
        return undefined;
      } catch {
        return true;
      }
    });
    const agentPod = await nodeBoundPod(admin, {
      namespace: AGENT_NS,
      serviceAccount: `${RELEASE}-agent`,
      node: NODE,
      name: `agent-${NODE}`,
    });
    const agent = await serviceAccountKubeconfig(admin, kc, {
      namespace: AGENT_NS,
      serviceAccount: `${RELEASE}-agent`,
      boundPod: agentPod,
      dir,
    });
    procs.push(
      start(
        'controller',
        [
          ...CONTROLLER_NODE_FLAGS,
          'src/controller/main.ts',
          '--kubeconfig',
          ctl,
          '--leader-election-namespace',
          NS,
          '--http-bind-address',
          '127.0.0.1:0',
        ],
        dir,
      ),
      start(
        'agent',
        [
          'src/agent/main.ts',
          '--kubeconfig',
          agent,
          '--node',
          NODE,
          '--profile',
          'dynamic',
          '--state-file',
          join(dir, 'agent-state.json'),
          '--http-addr',
          '127.0.0.1:0',
          '--admin-addr',
          '127.0.0.1:0',
        ],
        dir,
      ),
    );
    say(
      `controller and node agent (${NODE}, dynamic profile) started as the chart's ServiceAccounts, the agent's token bound to node ${NODE}; logs in ${dir}`,
    );
    await waitFor(
      'the device',
      () =>
        admin.request({
          method: 'GET',
          path: `/apis/accel.dmabuf.io/v1alpha1/accelerators/${NODE}-hl0`,
        }),
      60_000,
    );
    run(
      c.kubectl,
      ['delete', 'namespace', 'team-a', 'team-b', 'team-io', '--ignore-not-found', '--wait'],
      c.kubeconfig,
    );
    const tick = timeline(admin);
    say(
      'applying examples/seed-story.yaml: tenant A, its trainer, a loader with an RDMA MR (team-io grants team-a the import), a bystander, tenant B',
    );
    run(c.kubectl, ['apply', '-f', join(ROOT, 'examples', 'seed-story.yaml')], c.kubeconfig);
    const phase = async (ns: string, name: string, want: string) => {
      await tick();
      const l = await admin.request<AcceleratorLease>({
        method: 'GET',
        path: `/apis/accel.dmabuf.io/v1alpha1/namespaces/${ns}/acceleratorleases/${name}`,
      });
      return l.status?.phase === want ? l : undefined;
    };
    await waitFor('tenant A granted', () => phase('team-a', 'tenant-a', 'Granted'), 60_000);
    await waitFor(
      'the export realized',
      async () => {
        await tick();
        const e = await admin.request<{ status?: { phase?: string } }>({
          method: 'GET',
          path: '/apis/accel.dmabuf.io/v1alpha1/namespaces/team-a/dmabufexports/weights',
        });
        return e.status?.phase === 'Active' ? true : undefined;
      },
      60_000,
    );
    say("deleting tenant A's lease: the device must move to tenant B");
    run(
      c.kubectl,
      ['delete', 'acceleratorlease', '-n', 'team-a', 'tenant-a', '--wait=false'],
      c.kubeconfig,
    );
    await waitFor('tenant B granted', () => phase('team-b', 'tenant-b', 'Granted'), 120_000);
    await tick();
    say('final state (kubectl dmabuf status):');
    const status = spawnSync(
      join(ROOT, 'bin', 'kubectl-dmabuf'),
      ['status', '--kubeconfig', c.kubeconfig],
      { encoding: 'utf8' },
    );
    process.stdout.write(status.stdout + status.stderr);
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await sleep(500);
    rmSync(join(dir, `${RELEASE}-controller.kubeconfig`), { force: true });
    rmSync(join(dir, `${RELEASE}-agent.kubeconfig`), { force: true });
  }
  say('done. Look around with kubectl --kubeconfig ' + c.kubeconfig + ' get alease,accel,dbx -A');
  say(
    c.local
      ? 'tear down with: npm run cluster:down'
      : `clean up with: helm uninstall ${RELEASE} -n ${NS}; kubectl delete ns team-a team-b team-io`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`demo: ${(err as Error).message.split('\n')[0]}\n`);
  process.exitCode = 1;
});
