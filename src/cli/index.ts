// Public face of src/cli, the kubectl plugin: `run` is what main.ts calls; the pure parts
// (the device table and a lease's blocking chain) are exported for reuse and tests.
export { run, type Io } from './run.ts';
export { parseCommand, HELP, type Command } from './args.ts';
export { EXIT, failure, type ExitCode } from './errors.ts';
export { status, statusTable, type DeviceStatus, type StatusModel } from './status.ts';
export { why, renderWhy, whyExitCode, type Verdict, type WhyChain, type WhyInput } from './why.ts';
