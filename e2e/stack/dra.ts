// DRA for a cluster test: the DeviceClass, claims that ask for one device of driver
// accel.dmabuf.io, pods that use them, and what the scheduler and the controller say on them.
import { onTestFinished } from 'vitest';
import { isAlreadyExists } from '../../src/kube/index.ts';
import { claimManifest, claimPodManifest, deviceClassManifest, RESOURCE } from './dra-manifests.ts';
import { api } from './index.ts';
import { waitFor } from './wait.ts';

export interface Claim {
  metadata: { name: string; namespace: string; uid: string };
  status?: {
    allocation?: { devices?: { results?: { driver: string; pool: string; device: string }[] } };
    devices?: {
      driver: string;
      pool: string;
      device: string;
      conditions?: {
        type: string;
        status: string;
        reason: string;
        message: string;
        lastTransitionTime: string;
      }[];
    }[];
  };
}

/** The chart's DeviceClass, as deploy/dra/deviceclass.yaml ships it (created once per cluster). */
export async function ensureDeviceClass(): Promise<void> {
  await api('POST', `${RESOURCE}/deviceclasses`, deviceClassManifest()).catch((err: unknown) => {
    if (!isAlreadyExists(err)) throw err;
  });
}

/** The node's ResourceSlice goes with the test (the agent does not delete it when it stops). */
export function deleteSliceAfter(node: string): void {
  onTestFinished(async () => {
    await api('DELETE', `${RESOURCE}/resourceslices/${node}.accel.dmabuf.io`).catch(
      () => undefined,
    );
  });
}

/** A claim for one accel.dmabuf.io device, with LeaseParameters (priority, revocation) if given. */
export function createClaim(
  ns: string,
  name: string,
  params?: Record<string, unknown>,
): Promise<Claim> {
  return api<Claim>(
    'POST',
    `${RESOURCE}/namespaces/${ns}/resourceclaims`,
    claimManifest(ns, name, params),
  );
}

/** A pod the scheduler places (no nodeName), using `claim`. */
export function createClaimPod(ns: string, name: string, claim: string): Promise<unknown> {
  return api('POST', `/api/v1/namespaces/${ns}/pods`, claimPodManifest(ns, name, claim));
}

export const getClaim = (ns: string, name: string) =>
  api<Claim>('GET', `${RESOURCE}/namespaces/${ns}/resourceclaims/${name}`);

/** The claim's condition `type` on its device entry of our driver, if set. */
export async function claimCondition(ns: string, name: string, type: string) {
  const c = await getClaim(ns, name);
  const entry = c.status?.devices?.find((d) => d.driver === 'accel.dmabuf.io');
  return entry?.conditions?.find((x) => x.type === type);
}

/** The device of our driver allocated to the claim (`<pool>-<device>`, the Accelerator), if any. */
export async function allocatedAccelerator(ns: string, name: string): Promise<string | undefined> {
  const c = await getClaim(ns, name);
  const r = c.status?.allocation?.devices?.results?.find((x) => x.driver === 'accel.dmabuf.io');
  return r && `${r.pool}-${r.device}`;
}

export const podNode = async (ns: string, name: string): Promise<string | undefined> =>
  (await api<{ spec?: { nodeName?: string } }>('GET', `/api/v1/namespaces/${ns}/pods/${name}`)).spec
    ?.nodeName;

/** Wait for an Event with `reason` about pod ns/name. */
export function podEvent(ns: string, pod: string, reason: string, timeoutMs = 30_000) {
  return waitFor(
    `Event ${reason} on pod ${ns}/${pod}`,
    async () => {
      const list = await api<{ items: { reason?: string; message?: string; note?: string }[] }>(
        'GET',
        `/api/v1/namespaces/${ns}/events?fieldSelector=${encodeURIComponent(`involvedObject.name=${pod},reason=${reason}`)}`,
      );
      return list.items[0];
    },
    timeoutMs,
  );
}
