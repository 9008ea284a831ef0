import { describe, expect, it } from 'vitest';
import { MutationCache } from './mutation-cache.ts';

const obj = (uid: string, rv: string, v: string) => ({
  metadata: { uid, resourceVersion: rv, name: v },
});

describe('MutationCache', () => {
  it('serves our newer write until the informer catches up, then drops it', () => {
    const c = new MutationCache<ReturnType<typeof obj>>();
    c.record(obj('u1', '12', 'mine'));
    expect(c.resolve(obj('u1', '10', 'cached'))?.metadata.name).toBe('mine');
    expect(c.resolve(obj('u1', '12', 'cached'))?.metadata.name).toBe('cached');
    expect(c.size).toBe(0);
    // A later write by someone else wins over an older one of ours.
    c.record(obj('u1', '13', 'mine'));
    expect(c.resolve(obj('u1', '20', 'theirs'))?.metadata.name).toBe('theirs');
  });

  it('never invents objects, forgets deleted ones, and ignores versions it cannot order', () => {
    const c = new MutationCache<ReturnType<typeof obj>>();
    c.record(obj('u1', '12', 'mine'));
    expect(c.resolve(obj('u2', '1', 'other'))?.metadata.name).toBe('other');
    c.forget(obj('u1', '12', 'x'));
    expect(c.resolve(obj('u1', '10', 'cached'))?.metadata.name).toBe('cached');
    c.record(obj('u3', 'abc', 'opaque'));
    expect(c.size).toBe(0);
    c.record(obj('u4', '5', 'mine'));
    expect(c.resolve(obj('u4', 'zz', 'cached'))?.metadata.name).toBe('cached');
  });
});

describe('MutationCache, deletions', () => {
  it('hides an object our write deleted until the informer sees it go', () => {
    const c = new MutationCache<ReturnType<typeof obj>>();
    // Removing the last finalizer of a deleted object answers with the version it already had.
    c.recordDeleted(obj('u1', '7', 'x'));
    expect(c.resolve(obj('u1', '7', 'cached'))).toBeUndefined();
    c.forget(obj('u1', '7', 'x'));
    expect(c.size).toBe(0);
  });
});
