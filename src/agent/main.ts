// Entry point of the node agent (one per node): `node src/agent/main.ts --node node-a`.
// A bad flag: one line, exit 2. Cannot start (API server unreachable, CRDs missing, bad state
// file): one line, exit 1. SIGTERM or SIGINT: finish the current step, persist, exit 0.
import { FlagError, createLogger, exitWithUsageIfAsked, prettyDestination } from '../kube/index.ts';
import { linuxBackend } from './backends/linux/index.ts';
import { startAgent } from './start.ts';
import { AGENT_FLAGS, parseAgentFlags, type AgentFlags } from './flags.ts';
import { deviceName } from './state.ts';

const PROGRAM = 'accel-lease-agent';

exitWithUsageIfAsked(PROGRAM, AGENT_FLAGS);
let flags: AgentFlags;
try {
  flags = parseAgentFlags(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof FlagError)) throw err;
  process.stderr.write(`${PROGRAM}: ${err.message}\n`);
  process.exit(2);
}

const logger = createLogger({
  name: PROGRAM,
  ...(flags.logFormat === 'pretty' && { destination: prettyDestination() }),
});

try {
  const agent = await startAgent({
    node: flags.node,
    // linux: one accelerator per --device; sim: --devices simulated ones.
    devices: flags.backend === 'linux' ? flags.linuxDevices.length : flags.devices,
    model: flags.model,
    memoryBytes: flags.memoryBytes,
    // The observer cannot revoke: every earlier reference pins, as on a static exporter.
    profile: flags.backend === 'linux' ? 'static' : flags.profile,
    stateFile: flags.stateFile,
    adminAddr: flags.adminAddr,
    httpAddr: flags.httpAddr,
    heartbeatMs: flags.heartbeatMs,
    dra: flags.dra,
    ...(flags.kubeconfig !== undefined && { kubeconfig: flags.kubeconfig }),
    ...(flags.backend === 'linux' && {
      backend: linuxBackend({
        root: flags.root,
        devices: flags.linuxDevices.map((d, i) => ({
          name: deviceName(flags.node, i),
          paths: [d.path],
          exporter: d.exporter,
        })),
        ledgerFile: `${flags.stateFile}.linux.json`,
        rdma: flags.rdma,
      }),
    }),
    logger,
  });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`${PROGRAM}: stopping failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
} catch (err) {
  process.stderr.write(`${PROGRAM}: ${(err as Error).message.split('\n')[0]}\n`);
  process.exit(1);
}
