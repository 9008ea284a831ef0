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
import type { V1Pod } from '@kubernetes/client-node';
import { KubeApiError, ResourceClient, type KubeClient } from '../kube/index.ts';
import type { WhyVia } from './args.ts';
import { leaseOfPod, type ClaimRef } from './holders.ts';
import { NotFoundError } from './errors.ts';
import { RESOURCE_CLAIMS, targetOf } from '../crds/index.ts';
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
  private readonly pods: ResourceClient<V1Pod>;
  private readonly claims: ResourceClient<ClaimRef>;

  constructor(client: KubeClient) {
    this.pods = new ResourceClient(client, {
      group: '',
      version: 'v1',
      plural: 'pods',
      kind: 'Pod',
      namespaced: true,
    });
    this.claims = new ResourceClient(client, RESOURCE_CLAIMS);
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

  /**
   * The lease a pod or claim leads to, and the steps there in words: a claim's lease has its
   * name; a pod's is its claims' (in spec order), else a lease of its namespace that selects it.
   */
  async leaseOf(
    via: WhyVia,
    namespace: string,
    name: string,
  ): Promise<{ lease: string; via: string[] }> {
    const missing = (what: string) => (err: unknown) => {
      if (objectMissing(err)) throw new NotFoundError(`${what} ${namespace}/${name} not found`);
      throw err;
    };
    if (via === 'resourceclaim') {
      await this.claims.get(name, namespace).catch(missing('ResourceClaim'));
      return {
        lease: name,
        via: [`ResourceClaim ${namespace}/${name} -> lease ${namespace}/${name}`],
      };
    }
    const pod = await this.pods.get(name, namespace).catch(missing('pod'));
    const leases = (await this.leases.list({ namespace })).items;
    const found = leaseOfPod(pod, leases);
    if (!found) {
      throw new NotFoundError(
        `pod ${namespace}/${name} uses no ResourceClaim with a lease, and no lease of ${namespace} selects it`,
      );
    }
    return found;
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
