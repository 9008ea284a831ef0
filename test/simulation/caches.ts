// Informer caches for the simulation: each reader (the controller, the agent) has its own copy
// of the API's objects, brought forward by the watch log with lag, so a reconcile reads what an
// informer would: possibly older than the controller's own last write.
import type { V1Pod } from '@kubernetes/client-node';
import { trimPod, type Caches, type Store } from '../../src/controller/index.ts';
import type { MemoryApi, Resource, Stored, WatchEvent } from './memory-api.ts';

const keyOf = (o: Stored) =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata.name ?? '');

/** A cache that is a plain map, keyed as informers key. */
export class MapStore<T> implements Store<T> {
  readonly items = new Map<string, T>();
  get(key: string): T | undefined {
    return this.items.get(key);
  }
  list(): T[] {
    return [...this.items.values()];
  }
}

const EMPTY = new MapStore<never>();

const trimmed = (store: Store<V1Pod>): Store<V1Pod> => ({
  get: (key) => {
    const pod = store.get(key);
    return pod && trimPod(pod);
  },
  list: () => store.list().map(trimPod),
});

export class LaggingCaches {
  private readonly api: MemoryApi;
  private readonly stores: Record<Resource, MapStore<Stored>> = {
    accelerators: new MapStore(),
    leases: new MapStore(),
    exports: new MapStore(),
    pods: new MapStore(),
    pdbs: new MapStore(),
  };
  /** How far into the API's watch log this cache has read. */
  private cursor: number;

  /** A fresh cache, listed from the API as it is now (an informer's initial LIST). */
  constructor(api: MemoryApi) {
    this.api = api;
    for (const r of Object.keys(this.stores) as Resource[]) {
      for (const o of api.list(r)) this.stores[r].items.set(keyOf(o), o);
    }
    this.cursor = api.log.length;
  }

  /** Events the watch has not delivered yet. */
  get behind(): number {
    return this.api.log.length - this.cursor;
  }

  /** Deliver up to `n` events in order, each to `onEvent` once it is in the cache. */
  deliver(n: number, onEvent: (e: WatchEvent) => void): void {
    const end = Math.min(this.api.log.length, this.cursor + n);
    for (; this.cursor < end; this.cursor++) {
      const e = this.api.log[this.cursor] as WatchEvent;
      const store = this.stores[e.resource];
      if (e.type === 'delete') store.items.delete(keyOf(e.obj));
      else store.items.set(keyOf(e.obj), e.obj);
      onEvent(e);
    }
  }

  /** The controller's view of these caches. Namespaces and lease policies: none (no limits). */
  asCaches(): Caches {
    return {
      accelerators: this.stores.accelerators as unknown as Caches['accelerators'],
      leases: this.stores.leases as unknown as Caches['leases'],
      exports: this.stores.exports as unknown as Caches['exports'],
      // What the controller's pod informer keeps of each pod.
      pods: trimmed(this.stores.pods as unknown as Store<V1Pod>),
      namespaces: EMPTY,
      leasePolicies: EMPTY,
      pdbs: this.stores.pdbs as unknown as Caches['pdbs'],
    };
  }

  list<T>(resource: Resource): T[] {
    return this.stores[resource].list() as unknown as T[];
  }
}
