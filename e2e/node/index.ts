// A real node for the local control plane (real-0): containerd, runc and kubelet on this host,
// the images its pods run built here, and its teardown. `npm run cluster:node` starts it.
export { appImageName, ensureAppImage, ensureImages, ensurePauseImage } from './image.ts';
export { NETWORK, NODE_NAME, REAL_NODE_TAINT } from './layout.ts';
export { REAL_NODE_LABELS } from './configs.ts';
export { importImage, nodeRunning, RealNodeUnavailableError, startNode, stopNode } from './node.ts';
export type { NodeStarted } from './node.ts';
export { whyNoRealNode } from './prerequisites.ts';
