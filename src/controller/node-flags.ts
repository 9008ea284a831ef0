// How node itself runs the controller, wherever it is started: the image (Dockerfile CMD), the
// chart (controller.maxSemiSpaceSizeMiB), `npm start`, the demo, the benchmarks and the test stack.
//
// V8 sizes the young generation from the heap limit; on a 64-bit machine with a few GiB that lets
// it grow large while the informers list and decode the cluster, and the old generation grows
// with it and is not given back. A controller that had listed 26,000 objects (27.5 MiB of JSON)
// stayed at 340-410 MiB resident with 220-270 MiB of heap committed and about 100-140 MiB of it
// used; with semi-spaces capped at 8 MiB the same start stayed at about 215 MiB, with about
// 100-110 MiB committed (bench/README.md, Memory).

/** The cap on each of the young generation's semi-spaces, in MiB. */
export const CONTROLLER_SEMI_SPACE_MIB = 8;

/** node's own flags for the controller, before the script. */
export const CONTROLLER_NODE_FLAGS: readonly string[] = [
  `--max-semi-space-size=${CONTROLLER_SEMI_SPACE_MIB}`,
];
