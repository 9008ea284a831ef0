import type { V1ConfigMap } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { diffRelist, objectKey, splitKey } from './relist-diff.ts';

const cm = (name: string, rv: string, data: Record<string, string> = {}): V1ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'ns', resourceVersion: rv },
  data,
});

describe('diffRelist', () => {
  it('deletes what vanished, adds what is new, updates the rest', () => {
    const old = new Map([
      ['ns/a', cm('a', '1')],
      ['ns/b', cm('b', '2')],
      ['ns/c', cm('c', '3')],
    ]);
    const diff = diffRelist(old, [cm('b', '2'), cm('c', '7'), cm('d', '8')]);
    expect(diff.deleted.map((o) => o.metadata?.name)).toEqual(['a']);
    expect(diff.added.map((o) => o.metadata?.name)).toEqual(['d']);
    expect(
      diff.updated.map((u) => [u.old.metadata?.resourceVersion, u.obj.metadata?.resourceVersion]),
    ).toEqual([
      ['2', '2'],
      ['3', '7'],
    ]);
    expect([...diff.cache.keys()]).toEqual(['ns/b', 'ns/c', 'ns/d']);
    expect(old.size).toBe(3); // the old cache is not touched
  });

  it('an empty list deletes everything; an empty cache adds everything', () => {
    const old = new Map([['ns/a', cm('a', '1')]]);
    expect(diffRelist(old, []).deleted).toHaveLength(1);
    expect(diffRelist(new Map(), [cm('a', '1')]).added).toHaveLength(1);
  });

  it('keys namespaced objects as ns/name and cluster-scoped ones as name', () => {
    expect(objectKey(cm('a', '1'))).toBe('ns/a');
    expect(objectKey({ metadata: { name: 'node-a-hl0' } })).toBe('node-a-hl0');
    expect(splitKey('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(splitKey('node-a-hl0')).toEqual({ namespace: undefined, name: 'node-a-hl0' });
  });
});
