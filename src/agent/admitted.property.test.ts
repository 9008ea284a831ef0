// Property: nothing the API server admits wedges the node agent. Arbitrary schema-valid
// DmaBufExports and spec.owners (generated from the same zod schemas as the CRDs) go through
// the agent's own sync and publish (decideOwner, planExport, realize) over a handoff: no throw,
// every status it publishes valid against the schema (so the apply succeeds), and a sync
// repeated with nothing new changes nothing on the device.
// Set ADMITTED_PROPERTY_SEED to replay a run; the seed is printed on every run.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { arbitraryOf, objectMeta } from '../../test/arbitrary.ts';
import {
  AcceleratorOwner,
  AcceleratorStatus,
  DmaBufExport,
  DmaBufExportStatus,
  ExporterProfile,
  parseObject,
} from '../crds/index.ts';
import { DEV, FakeNode } from '../../test/fixtures/agent.ts';

const seed = Number(process.env.ADMITTED_PROPERTY_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(
  `admitted-objects property (agent): seed ${seed} (replay with ADMITTED_PROPERTY_SEED=${seed})`,
);
const params = { seed, numRuns: Number(process.env.ADMITTED_PROPERTY_RUNS ?? 300) };

const dmaBufExport = arbitraryOf(DmaBufExport, { metadata: objectMeta({ namespaced: true }) });
const owner = arbitraryOf(AcceleratorOwner);

/** Where an importer's pod is, as the agent finds it. */
const placement = fc.constantFrom('local', 'local-pending', 'remote', 'missing', 'unknown');

const scene = fc.record({
  profile: fc.constantFrom(...ExporterProfile.options),
  exports: fc.array(
    fc.record({ exp: dmaBufExport, exporterRunning: fc.boolean(), places: fc.array(placement) }),
    { minLength: 1, maxLength: 2 },
  ),
  /** Any spec.owner at all, applied after the handoff. */
  stray: owner,
});

/** Publishes that showed pins and realized exports: without enough of both the test means little. */
const reached = { pinned: 0, realized: 0 };

function statusesParse(n: FakeNode): void {
  const out = n.publish();
  if ((out.acceleratorStatuses.get(DEV)?.pins?.length ?? 0) > 0) reached.pinned++;
  if ([...out.exportStatuses.values()].some((e) => e.status.inode !== undefined))
    reached.realized++;
  for (const status of out.acceleratorStatuses.values()) parseObject(AcceleratorStatus, status);
  for (const { status } of out.exportStatuses.values()) parseObject(DmaBufExportStatus, status);
}

describe('the node agent on any admitted object', () => {
  it('syncs and publishes valid statuses through a handoff, and a repeated sync changes nothing', () => {
    fc.assert(
      fc.property(scene, ({ profile, exports, stray }) => {
        const n = new FakeNode(profile);
        // Every export is declared on this node's device under the lease that will own it.
        const tenant = exports[0]!.exp;
        const ns = tenant.metadata.namespace ?? '';
        const leaseName = tenant.spec.lease;
        for (const { exp, exporterRunning, places } of exports) {
          n.pod(ns, exp.spec.exporter.pod, { phase: exporterRunning ? 'Running' : 'Pending' });
          exp.spec.importers.forEach((imp, i) => {
            const where = places[i % Math.max(1, places.length)] ?? 'local';
            const { namespace, name } = imp.pod;
            // Every other importer's namespace consents, so both paths stay covered.
            if (namespace !== ns && i % 2 === 0) n.grant(namespace, [ns]);
            if (where === 'local') n.pod(namespace, name);
            else if (where === 'local-pending') n.pod(namespace, name, { phase: 'Pending' });
            else if (where === 'remote') n.pod(namespace, name, { node: 'node-b' });
            else if (where === 'missing') n.remote.set(`${namespace}/${name}`, 'missing');
          });
          n.exports.push({
            ...exp,
            metadata: { ...exp.metadata, deletionTimestamp: undefined, namespace: ns },
            spec: { ...exp.spec, accelerator: DEV, lease: leaseName, source: 'Declared' },
          });
        }
        const uid = 'uid-tenant';
        const steps = [
          { lease: { namespace: ns, name: leaseName, uid }, epoch: 1 },
          { epoch: 2 },
          stray,
        ];
        for (const desired of steps) {
          n.own(desired);
          n.sync();
          statusesParse(n);
          // Level-triggered: the same input again moves the device nowhere.
          const before = n.kernel().device(DEV);
          n.sync();
          statusesParse(n);
          expect(n.kernel().device(DEV)).toEqual(before);
        }
      }),
      params,
    );
    // Random objects mostly wait for something; enough of them must get as far as a pin.
    expect(reached.realized).toBeGreaterThan(params.numRuns / 10);
    expect(reached.pinned).toBeGreaterThan(params.numRuns / 20);
  }, 60_000);
});
