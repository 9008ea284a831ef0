// The agent's command line on the shared flag parser: argv -> typed options, or a FlagError
// whose message is the one line an operator sees before exit code 2.
import { isIP } from 'node:net';
import { z } from 'zod';
import type { ExporterProfile } from '../crds/index.ts';
import { BACKEND_KINDS, type BackendKind } from './backend.ts';
import { FlagError, flag, parseDuration, parseFlags, type FlagSpec } from '../kube/index.ts';

export interface HostPort {
  /** Empty string: every interface. */
  readonly host: string;
  readonly port: number;
}

const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

/** Bytes as Kubernetes quantities write them (`103079215104`, `96Gi`, `100G`, `1.5Ti`); undefined if not. */
export function parseBytes(text: string): number | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?)(k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$/.exec(text);
  const value = m ? Number(m[1]) * (UNITS[m[2] ?? ''] ?? NaN) : NaN;
  return Number.isSafeInteger(value) && value >= 1 ? value : undefined;
}

/** `host:port`, `:port` (every interface) or `[v6]:port`; undefined if not. */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(text);
  if (!m || Number(m[3]) > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}

/** Loopback only: 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/** A string flag whose value `convert` turns into T, or refuses with `want`. */
function converted<T>(
  description: string,
  def: string | undefined,
  convert: (raw: string) => T | undefined,
  want: string,
): FlagSpec<T> {
  const base = def === undefined ? z.string({ error: 'is required' }) : z.string().default(def);
  const schema = base.transform((raw, ctx) => {
    const out = convert(raw);
    if (out === undefined) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(raw)}: ${want}` });
      return z.NEVER;
    }
    return out;
  });
  return { type: 'string', schema, description, ...(def !== undefined && { defaultText: def }) };
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const AGENT_FLAGS = {
  node: converted(
    'name of this node (required)',
    undefined,
    (raw) => (NODE_NAME.test(raw) && raw.length <= 240 ? raw : undefined),
    'want a Kubernetes node name (lowercase DNS subdomain)',
  ),
  devices: converted(
    'number of simulated devices, named <node>-hl<i>',
    '1',
    (raw) =>
      /^[0-9]+$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 64 ? Number(raw) : undefined,
    'want a whole number from 1 to 64',
  ),
  model: converted(
    'device model, published as the accel.dmabuf.io/model label',
    'gaudi2',
    (raw) => (/^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$/.test(raw) && raw.length <= 63 ? raw : undefined),
    'want a label value like gaudi2',
  ),
  memory: converted(
    'device memory in bytes',
    '96Gi',
    parseBytes,
    'want bytes like 96Gi, 100G or 1024',
  ),
  profile: flag.oneOf(
    'exporter profile of new devices',
    ['static', 'dynamic', 'revocable'] as const satisfies readonly ExporterProfile[],
    'static',
  ),
  stateFile: flag.string('state file (default /var/lib/accel-lease/agent-<node>.json)'),
  adminAddr: converted(
    'loopback address of the fault-injection admin API',
    '127.0.0.1:9446',
    (raw) => {
      const addr = parseHostPort(raw);
      return addr && isLoopback(addr.host) ? addr : undefined;
    },
    'want a loopback host:port like 127.0.0.1:9446: the admin API injects faults and has no authentication',
  ),
  httpAddr: converted(
    'address for /healthz, /readyz and /metrics',
    ':8081',
    parseHostPort,
    'want host:port like :8081',
  ),
  heartbeat: converted(
    'how often status.heartbeatTime is refreshed',
    '10s',
    (raw) => {
      const ms = parseDuration(raw);
      return ms !== undefined && ms >= 100 ? ms : undefined;
    },
    'want a duration of at least 100ms, like 10s',
  ),
  kubeconfig: flag.string('path to a kubeconfig; default: $KUBECONFIG, in-cluster, ~/.kube/config'),
  logFormat: flag.oneOf('log format', ['json', 'pretty'] as const, 'json'),
  backend: flag.oneOf(
    'what the devices are: sim (simulated kernel) or linux (observe this node)',
    BACKEND_KINDS,
    'sim',
  ),
  device: flag.list('linux: the device node of each accelerator, in index order (repeatable)'),
  exporter: flag.list("linux: exp_name of each device's buffers, one for all or one per --device"),
  root: flag.string("linux: where the host's proc and sys are found", '/'),
  rdma: flag.boolean('linux: read the RDMA MR table with iproute2 rdma'),
  dra: flag.boolean(
    "publish this node's devices as a ResourceSlice of DRA driver accel.dmabuf.io (Kubernetes 1.34+)",
  ),
};

/** The linux backend's view of one accelerator (device node and exporter, by index). */
export interface LinuxDeviceFlags {
  readonly path: string;
  readonly exporter: string;
}

export interface AgentFlags {
  readonly node: string;
  readonly devices: number;
  readonly model: string;
  readonly memoryBytes: number;
  readonly profile: ExporterProfile;
  readonly stateFile: string;
  readonly adminAddr: HostPort;
  readonly httpAddr: HostPort;
  readonly heartbeatMs: number;
  readonly kubeconfig: string | undefined;
  readonly logFormat: 'json' | 'pretty';
  readonly backend: BackendKind;
  /** linux only: one per accelerator, named <node>-hl<index>. */
  readonly linuxDevices: readonly LinuxDeviceFlags[];
  readonly root: string;
  readonly rdma: boolean;
  /** Publish a ResourceSlice (DRA driver accel.dmabuf.io). */
  readonly dra: boolean;
}

function linuxDevices(
  backend: BackendKind,
  devices: string[],
  exporters: string[],
): LinuxDeviceFlags[] {
  if (backend !== 'linux') {
    if (devices.length > 0 || exporters.length > 0)
      throw new FlagError('--device and --exporter belong to --backend linux');
    return [];
  }
  if (devices.length === 0)
    throw new FlagError('--backend linux needs --device, e.g. --device /dev/accel/accel0');
  if (exporters.length !== 1 && exporters.length !== devices.length)
    throw new FlagError(
      `--backend linux needs one --exporter for all devices or one per --device (got ${exporters.length} for ${devices.length}), e.g. --exporter habanalabs`,
    );
  return devices.map((path, i) => ({
    path,
    exporter: exporters[exporters.length === 1 ? 0 : i] ?? '',
  }));
}

/** Parse argv (without node and script); throws FlagError with one line. */
export function parseAgentFlags(argv: readonly string[]): AgentFlags {
  const f = parseFlags(AGENT_FLAGS, argv);
  return {
    node: f.node,
    devices: f.devices,
    model: f.model,
    memoryBytes: f.memory,
    profile: f.profile,
    stateFile: f.stateFile ?? `/var/lib/accel-lease/agent-${f.node}.json`,
    adminAddr: f.adminAddr,
    httpAddr: f.httpAddr,
    heartbeatMs: f.heartbeat,
    kubeconfig: f.kubeconfig,
    logFormat: f.logFormat,
    backend: f.backend,
    linuxDevices: linuxDevices(f.backend, f.device, f.exporter),
    root: f.root,
    rdma: f.rdma,
    dra: f.dra,
  };
}
