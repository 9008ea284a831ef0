// What the global setup hands to every cluster test file (through vitest's provide/inject).

export type ClusterKind = 'local' | 'external' | 'k3s';

export interface ClusterInfo {
  kind: ClusterKind;
  /** KUBECONFIG value for clients and kubectl (may list several files, as KUBECONFIG can). */
  kubeconfig: string;
  /** kubectl to run: the one built with the control plane, or the one on PATH. */
  kubectl: string;
  /** helm to run, chosen the same way. */
  helm: string;
  /** Names of nodes where kwok makes pods Running and Ready; empty on clusters without kwok. */
  simulatedNodes: string[];
}

export const PROVIDED_KEY = 'accelLeaseCluster' as const;

declare module 'vitest' {
  export interface ProvidedContext {
    accelLeaseCluster: ClusterInfo;
  }
}
