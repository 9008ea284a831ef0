// The live node state and its state file: restored (or created) at start, written atomically
// after every change that alters it, and never again once the agent has crashed.
import type { Logger } from 'pino';
import { AgentStartError, rootMessage } from './errors.ts';
import type { AgentMetrics } from './metrics.ts';
import {
  ensureDevices,
  newState,
  parseStateFile,
  readStateFile,
  toStateFile,
  writeStateFile,
  type AgentState,
  type DeviceSetup,
  type StateFile,
} from './state.ts';

/** The state the file holds, its devices completed to `setup`; a fresh one without a file. */
function loadState(path: string, node: string, setup: DeviceSetup, log: Logger): AgentState {
  const text = readStateFile(path);
  if (text === undefined) {
    log.info({ stateFile: path, devices: setup.count }, 'no state file: starting fresh');
    return newState(node, setup);
  }
  let state: AgentState;
  try {
    state = parseStateFile(text, node, path);
  } catch (err) {
    throw new AgentStartError((err as Error).message);
  }
  const mismatched = ensureDevices(state, setup);
  if (mismatched.length > 0) {
    log.warn(
      { devices: mismatched },
      'flags disagree with the memory or profile these devices were created with; the state file wins',
    );
  }
  log.info(
    {
      stateFile: path,
      processes: state.kernel.processes().length,
      exports: Object.keys(state.exports).length,
    },
    'restored state',
  );
  return state;
}

export class StateStore {
  readonly state: AgentState;
  /** Set by a crash: the file keeps what it had, as after a killed process. */
  crashed = false;
  private lastWritten = '';

  readonly path: string;
  private readonly metrics: AgentMetrics;

  /** Loads the state and writes it back at once, so that an unwritable path fails the start. */
  constructor(path: string, node: string, setup: DeviceSetup, metrics: AgentMetrics, log: Logger) {
    this.path = path;
    this.metrics = metrics;
    this.state = loadState(path, node, setup, log);
    try {
      this.persist();
    } catch (err) {
      throw new AgentStartError(`cannot write state file ${path}: ${rootMessage(err)}`);
    }
  }

  /** Writes the state file unless it would not change (or the agent crashed). */
  persist(): void {
    if (this.crashed) return;
    const out = JSON.stringify(toStateFile(this.state));
    if (out === this.lastWritten) return;
    writeStateFile(this.path, out);
    this.lastWritten = out;
    this.metrics.stateWrites.inc();
  }

  snapshot(): StateFile {
    return toStateFile(this.state);
  }

  deviceNames(): string[] {
    return this.state.kernel.devices().map((d) => d.name);
  }
}
