// What a fresh list means for a cache that may have missed watch events: objects gone from
// the list were deleted, new ones added, and the rest re-delivered as updates (level-triggered).
import type { ObjectLike } from './resources.ts';

/** Cache key: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(obj: ObjectLike): string {
  const name = obj.metadata?.name ?? '';
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${name}` : name;
}

/** Inverse of objectKey. */
export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const slash = key.indexOf('/');
  return slash < 0
    ? { namespace: undefined, name: key }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export interface RelistDiff<T> {
  /** The cache to keep: exactly the listed objects. */
  cache: Map<string, T>;
  added: T[];
  /** Every object present before and after, with what the cache held before. */
  updated: Array<{ obj: T; old: T }>;
  /** Cached objects the list no longer has, in their last known state. */
  deleted: T[];
}

export function diffRelist<T extends ObjectLike>(
  old: ReadonlyMap<string, T>,
  items: readonly T[],
): RelistDiff<T> {
  const cache = new Map<string, T>();
  const added: T[] = [];
  const updated: Array<{ obj: T; old: T }> = [];
  for (const obj of items) {
    const key = objectKey(obj);
    cache.set(key, obj);
    const prev = old.get(key);
    if (prev === undefined) added.push(obj);
    else updated.push({ obj, old: prev });
  }
  const deleted: T[] = [];
  for (const [key, prev] of old) {
    if (!cache.has(key)) deleted.push(prev);
  }
  return { cache, added, updated, deleted };
}
