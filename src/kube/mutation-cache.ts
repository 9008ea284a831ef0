// What this process wrote, kept until its informer catches up: a reconcile that starts before
// the watch delivers our own last write would otherwise decide from the older object and send a
// write that can only fail with 409. Like client-go's MutationCache, it assumes resourceVersions
// of one object grow as integers (true of etcd); an object whose versions do not parse is
// always read from the informer.
import type { ObjectLike } from './resources.ts';

const version = (o: ObjectLike): number => Number(o.metadata?.resourceVersion ?? NaN);

export class MutationCache<T extends ObjectLike> {
  private readonly written = new Map<string, T>();
  /** Objects our write deleted (the last finalizer removed): the reply keeps the old version. */
  private readonly deleted = new Set<string>();

  /** Remember an object a write returned. */
  record(obj: T): void {
    const uid = obj.metadata?.uid;
    if (uid && Number.isFinite(version(obj))) this.written.set(uid, obj);
  }

  /** Our write deleted the object; hide it until the informer sees the deletion. */
  recordDeleted(obj: ObjectLike): void {
    const uid = obj.metadata?.uid;
    if (uid) this.deleted.add(uid);
  }

  /** The informer saw the object go: forget what was written to it. */
  forget(obj: ObjectLike): void {
    const uid = obj.metadata?.uid;
    if (uid) {
      this.written.delete(uid);
      this.deleted.delete(uid);
    }
  }

  /** The informer's object, the newer version this process wrote to it, or none if we deleted it. */
  resolve(cached: T): T | undefined {
    const uid = cached.metadata?.uid;
    if (uid && this.deleted.has(uid)) return undefined;
    const mine = uid ? this.written.get(uid) : undefined;
    if (!mine || !uid) return cached;
    if (!(version(mine) > version(cached))) {
      this.written.delete(uid); // caught up (or not comparable): the informer is the truth
      return cached;
    }
    return mine;
  }

  get size(): number {
    return this.written.size + this.deleted.size;
  }
}
