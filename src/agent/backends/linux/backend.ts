// The `linux` backend: observes the node before each sync, keeps the ledger of when each buffer
// and device holder first appeared (persisted beside the agent's state file, so a restart
// forgets no epoch), and answers the agent's pin queries from the last observation.
import { readFileSync } from 'node:fs';
import { writeStateFile } from '../../state.ts';
import type { NodeBackend, NodePinSource } from '../../backend.ts';
import { observeNode, rdmaTool, ObserveError, type NodeObservation } from './observe.ts';
import { Ledger, devicePins, emptyLedger, recordObservation, type LinuxDevice } from './pins.ts';

export interface LinuxBackendOptions {
  /** Where proc and sys are found; `/` in the agent's pod (hostPID, host mounts). */
  readonly root: string;
  readonly devices: readonly LinuxDevice[];
  /** The ledger file (the agent passes `<state file>.linux.json`). */
  readonly ledgerFile: string;
  /** Read the RDMA MR table with iproute2's `rdma`. */
  readonly rdma?: boolean;
}

export class LedgerFileError extends Error {
  override name = 'LedgerFileError';
}

function readLedger(path: string): Ledger {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyLedger();
    throw new LedgerFileError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new LedgerFileError(
      `${path} is not JSON: ${(err as Error).message}; delete it to start over`,
    );
  }
  const parsed = Ledger.safeParse(json);
  if (!parsed.success)
    throw new LedgerFileError(
      `${path} is not an observer ledger: ${parsed.error.issues[0]?.message ?? ''}; delete it to start over (every buffer then counts from the current epoch)`,
    );
  return parsed.data;
}

export function linuxBackend(
  options: LinuxBackendOptions,
): NodeBackend & { last(): NodeObservation | undefined } {
  let ledger = readLedger(options.ledgerFile);
  let written = JSON.stringify(ledger);
  let observation: NodeObservation | undefined;
  let pins: NodePinSource | undefined;
  const paths = [...new Set(options.devices.flatMap((d) => d.paths))];
  const exporters = [...new Set(options.devices.map((d) => d.exporter))];
  return {
    kind: 'linux',
    realizesExports: false,
    get pins() {
      return pins;
    },
    last: () => observation,
    observe({ state, pods, now }) {
      try {
        observation = observeNode({
          root: options.root,
          exporters,
          devices: paths,
          ...(options.rdma && { rdmaMrs: rdmaTool() }),
        });
      } catch (err) {
        if (!(err instanceof ObserveError)) throw err;
        observation = {
          buffers: [],
          deviceHolders: [],
          mrHolders: [],
          problems: [{ kind: 'proc-unreadable', message: err.message }],
          vanished: 0,
        };
      }
      ledger = recordObservation(
        ledger,
        observation,
        options.devices,
        (n) => state.kernel.device(n),
        now,
      );
      const text = JSON.stringify(ledger);
      if (text !== written) {
        writeStateFile(options.ledgerFile, text);
        written = text;
      }
      const byUid = new Map(
        [...pods.values()].map((p) => [p.uid, { namespace: p.namespace, name: p.name }]),
      );
      const inputs = {
        ledger,
        observation,
        devices: options.devices,
        podOf: (uid: string) => byUid.get(uid),
      };
      pins = (device) => {
        const info = state.kernel.device(device);
        return info ? devicePins(inputs, device, info) : { pins: [] };
      };
    },
  };
}
