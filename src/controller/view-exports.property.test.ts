// Property: the view's exports by accelerator, moved one changed export at a time, read the same
// as a view built from scratch over the same cache. Random adds, updates that move an export to
// another accelerator, deletes and recreations under the same name go through one view's
// notice(); after each step every accelerator's exports are compared with a fresh view's.
// Set VIEW_EXPORTS_SEED to replay a run; the seed is printed on every run.
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { DmaBufExport } from '../crds/index.ts';
import { MapStore } from '../../test/simulation/caches.ts';
import { ControllerView, type Caches } from './view.ts';

const seed = Number(process.env.VIEW_EXPORTS_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`view exports property: seed ${seed} (replay with VIEW_EXPORTS_SEED=${seed})`);

const DEVICES = ['dev-0', 'dev-1', 'dev-2'];
const step = fc.record({
  op: fc.constantFrom('put', 'put', 'put', 'delete', 'recreate', 'read'),
  name: fc.constantFrom('e0', 'e1', 'e2', 'e3'),
  accelerator: fc.constantFrom(...DEVICES),
});

function caches(exports: MapStore<DmaBufExport>): Caches {
  const empty = new MapStore<never>();
  return {
    accelerators: empty,
    leases: empty,
    exports,
    pods: empty,
    namespaces: empty,
    leasePolicies: empty,
    pdbs: empty,
  };
}

const view = (store: MapStore<DmaBufExport>) =>
  new ControllerView(caches(store), {
    log: pino({ level: 'silent' }),
    onAdmissionChanged: () => {},
  });

const uids = (es: readonly DmaBufExport[]) => es.map((e) => e.metadata?.uid ?? '').sort();

describe('the view, exports by accelerator', () => {
  it('reads as a view built from scratch after any sequence of export changes', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 30 }), (steps) => {
        const store = new MapStore<DmaBufExport>();
        const v = view(store);
        let next = 0;
        let version = 0;
        for (const s of steps) {
          const key = `team-a/${s.name}`;
          const prev = store.items.get(key);
          if (s.op === 'read') {
            // A read in the middle: the index is built (or brought up to date) from here on.
            v.exportsOf(s.accelerator);
            continue;
          }
          if (s.op === 'delete' || s.op === 'recreate') {
            if (prev) {
              store.items.delete(key);
              v.notice({ resource: 'exports', type: 'delete', obj: prev });
            }
            if (s.op === 'delete') continue;
          }
          const uid = s.op === 'put' && prev ? (prev.metadata?.uid ?? '') : `uid-${next++}`;
          const obj = {
            apiVersion: 'accel.dmabuf.io/v1alpha1',
            kind: 'DmaBufExport',
            metadata: {
              name: s.name,
              namespace: 'team-a',
              uid,
              resourceVersion: String(++version),
            },
            spec: { accelerator: s.accelerator, exporter: { pod: 'p' } },
          } as unknown as DmaBufExport;
          store.items.set(key, obj);
          v.notice({ resource: 'exports', type: prev && s.op === 'put' ? 'update' : 'add', obj });
        }
        const fresh = view(store);
        for (const d of [...DEVICES, 'dev-none'])
          expect(uids(v.exportsOf(d))).toEqual(uids(fresh.exportsOf(d)));
      }),
      { seed, numRuns: 300 },
    );
  });
});
