// The local control plane: build its binaries, bring it up, take it down, and fault injection.
export {
  binaryPaths,
  cacheRoot,
  ensureBinaries,
  ensureNodeBinaries,
  findGo,
  GoToolchainMissingError,
  nodeBinaryPaths,
  pinnedVersions,
} from './binaries.ts';
export type { BinaryName, BinaryPaths, Log, NodeBinaryName, NodeBinaryPaths } from './binaries.ts';
export {
  CLUSTER_NAME,
  clusterPki,
  down,
  isRunning,
  killRecordedProcesses,
  KWOK_NODE_SELECTOR,
  readyForRealNodes,
  kubeconfigPath,
  loadKubeConfig,
  NODES,
  stateDir,
  up,
} from './control-plane.ts';
export type { ClusterOptions, UpResult } from './control-plane.ts';
export { acquireForTestRun, downByHand, upByHand } from './sharing.ts';
export type { TestRunLease } from './sharing.ts';
export { kubeConfigFor, startApiServerReplica } from './apiserver-replica.ts';
export type { ApiServerReplica, ReplicaOptions } from './apiserver-replica.ts';
export { isReady, rawRequest } from './raw-api.ts';
export type { RawResponse } from './raw-api.ts';
