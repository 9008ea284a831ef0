// The agent's Prometheus metrics, served on /metrics: sync runs, status and state-file writes,
// and each device's phase and pins as the last status write saw them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AcceleratorStatus } from '../crds/index.ts';

const PHASES = ['Free', 'Owned', 'Revoking', 'Stuck', 'Unhealthy'] as const;

/** A registry with the process metrics first, as /metrics has always listed them. */
function registryWithDefaults(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

export class AgentMetrics {
  readonly registry = registryWithDefaults();
  private readonly registers = [this.registry];
  readonly syncs = new Counter({
    name: 'accel_agent_syncs_total',
    help: 'Node syncs by result',
    labelNames: ['result'],
    registers: this.registers,
  });
  readonly syncSeconds = new Histogram({
    name: 'accel_agent_sync_duration_seconds',
    help: 'Duration of one node sync, status writes included',
    registers: this.registers,
  });
  readonly writes = new Counter({
    name: 'accel_agent_status_writes_total',
    help: 'Server-side applies by resource and result',
    labelNames: ['resource', 'result'],
    registers: this.registers,
  });
  readonly stateWrites = new Counter({
    name: 'accel_agent_state_writes_total',
    help: 'Atomic writes of the state file',
    registers: this.registers,
  });
  private readonly phase = new Gauge({
    name: 'accel_agent_device_phase',
    help: '1 for the phase each device is in',
    labelNames: ['device', 'phase'],
    registers: this.registers,
  });
  private readonly pins = new Gauge({
    name: 'accel_agent_device_pins',
    help: "References keeping an earlier owner's memory alive, per device",
    labelNames: ['device'],
    registers: this.registers,
  });
  readonly processes = new Gauge({
    name: 'accel_agent_processes',
    help: 'Simulated processes on the node',
    registers: this.registers,
  });
  private readonly heartbeatPeriod = new Gauge({
    name: 'accel_agent_heartbeat_period_seconds',
    help: 'How often this agent refreshes status.heartbeatTime (--heartbeat), so alerts can tell a late heartbeat',
    labelNames: ['node'],
    registers: this.registers,
  });

  constructor(node: string, heartbeatMs: number) {
    this.heartbeatPeriod.set({ node }, heartbeatMs / 1000);
  }

  /** The device's phase (1 for the one it is in, 0 for the others) and its pin count. */
  device(name: string, status: AcceleratorStatus): void {
    this.pins.set({ device: name }, status.pins?.length ?? 0);
    for (const phase of PHASES) {
      this.phase.set({ device: name, phase }, status.phase === phase ? 1 : 0);
    }
  }
}
