// Pods on this node as simulated processes: one process per pod, spawned the first time a
// DmaBufExport needs it, exiting when the pod is gone or terminal (fds closed, MRs deregistered).
import type { ExitReport } from '../device-sim/kernel/index.ts';
import type { AgentState } from './state.ts';

/** What the agent needs to know of a pod (from the API server, reduced to plain data). */
export interface PodView {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly nodeName: string | undefined;
  /** Pending | Running | Succeeded | Failed | Unknown */
  readonly phase: string;
  /** The process name: the first container's name, as `comm` would show the entrypoint. */
  readonly comm: string;
  /** What a DmaBufImportGrant's podSelector matches. */
  readonly labels?: Readonly<Record<string, string>> | undefined;
}

export function isTerminal(pod: PodView): boolean {
  return pod.phase === 'Succeeded' || pod.phase === 'Failed';
}

/** The pid of `pod`'s process, spawning it on first use. */
export function podProcess(state: AgentState, pod: PodView): number {
  const known = state.pods[pod.uid];
  if (known && state.kernel.process(known.pid)) return known.pid;
  const { pid } = state.kernel.spawn({
    comm: pod.comm,
    label: { namespace: pod.namespace, name: pod.name },
  });
  state.pods[pod.uid] = { namespace: pod.namespace, name: pod.name, pid };
  return pid;
}

/** The pod's process exits (if it ever had one): every fd closes, every attachment detaches. */
export function exitPod(state: AgentState, uid: string): ExitReport | undefined {
  const known = state.pods[uid];
  if (!known) return undefined;
  delete state.pods[uid];
  if (!state.kernel.process(known.pid)) return undefined;
  return state.kernel.exit(known.pid);
}

/** Processes whose pod is gone from the API or has finished: they must exit. */
export function vanishedPods(state: AgentState, pods: ReadonlyMap<string, PodView>): string[] {
  return Object.keys(state.pods).filter((uid) => {
    const pod = pods.get(uid);
    return !pod || isTerminal(pod);
  });
}
