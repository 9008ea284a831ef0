// Everything the plugin reads, through src/kube: a few GETs and LISTs per command, validated
// against the API's zod schemas. Nothing here writes.
import {
  ACCELERATOR_LEASES,
  ACCELERATORS,
  DMABUF_EXPORTS,
  Accelerator,
  AcceleratorLease,
  DmaBufExport,
  parseObject,
} from '../crds/index.ts';
import { KubeApiError, ResourceClient, type KubeClient } from '../kube/index.ts';
import { NotFoundError } from './errors.ts';
import { targetOf } from '../crds/index.ts';
import type { StatusModel } from './status.ts';
import type { WhyInput } from './why.ts';

/**
 * A 404 that names a missing object (reason NotFound). A 404 without that reason means the
 * resource itself is not served (the CRDs are not installed): that is not "not found".
 */
const objectMissing = (err: unknown): boolean =>
  err instanceof KubeApiError && err.code === 404 && err.reason === 'NotFound';

export class ClusterReader {
  private readonly accelerators: ResourceClient<Accelerator>;
  private readonly leases: ResourceClient<AcceleratorLease>;
  private readonly exports: ResourceClient<DmaBufExport>;

  constructor(client: KubeClient) {
    this.accelerators = new ResourceClient(client, ACCELERATORS, (o) =>
      parseObject(Accelerator, o),
    );
    this.leases = new ResourceClient(client, ACCELERATOR_LEASES, (o) =>
      parseObject(AcceleratorLease, o),
    );
    this.exports = new ResourceClient(client, DMABUF_EXPORTS, (o) => parseObject(DmaBufExport, o));
  }

  /** Every accelerator (of `node`, if given) and every lease. NotFoundError: none on `node`. */
  async statusModel(node: string | undefined, now: number): Promise<StatusModel> {
    const [accelerators, leases] = await Promise.all([
      this.accelerators.list(),
      this.leases.list(),
    ]);
    const mine = accelerators.items.filter((a) => node === undefined || a.spec.node === node);
    if (node !== undefined && mine.length === 0) {
      throw new NotFoundError(`no Accelerator on node ${node} (kubectl get accel)`);
    }
    return { accelerators: mine, leases: leases.items, now };
  }

  /** The lease, its device, every lease (for the queue) and, when pins remain, the device's exports. */
  async whyInput(namespace: string, name: string, now: number): Promise<WhyInput> {
    let lease: AcceleratorLease;
    try {
      lease = await this.leases.get(name, namespace);
    } catch (err) {
      if (objectMissing(err)) {
        throw new NotFoundError(`AcceleratorLease ${namespace}/${name} not found`);
      }
      throw err;
    }
    const target = targetOf(lease);
    if (target === undefined)
      return { lease, accelerator: undefined, exports: [], leases: [], now };
    const [accelerator, leases] = await Promise.all([
      this.accelerators.get(target).catch((err: unknown) => {
        if (objectMissing(err)) return undefined;
        throw err;
      }),
      this.leases.list(),
    ]);
    const pinned = (accelerator?.status?.pins?.length ?? 0) > 0;
    const exports = pinned
      ? (await this.exports.list()).items.filter((e) => e.spec.accelerator === target)
      : [];
    return { lease, accelerator, exports, leases: leases.items, now };
  }
}
