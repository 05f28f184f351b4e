import type { Attr } from '@redisfs/store';
import { describe, expect, it } from 'vitest';
import { AttrCache } from './attr-cache.js';

function attr(ino: number, extra: Partial<Attr> = {}): Attr {
  return {
    ino, type: 'file', mode: 0o100644, uid: 0, gid: 0, size: 0, nlink: 1, rdev: 0,
    atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n, blocks: 0, generation: 0, ...extra,
  };
}

function clock() {
  const c = { t: 1000, now: () => c.t };
  return c;
}

describe('AttrCache', () => {
  it('expires entries after the TTL', () => {
    const c = clock();
    const cache = new AttrCache(100, c.now);
    cache.set('/a', attr(2));
    c.t += 99;
    expect(cache.get('/a')?.ino).toBe(2);
    c.t += 1;
    expect(cache.get('/a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('caches nothing with a TTL of 0', () => {
    const cache = new AttrCache(0);
    cache.set('/a', attr(2));
    expect(cache.get('/a')).toBeUndefined();
  });

  it('skips a set whose lookup started before an invalidation', () => {
    const cache = new AttrCache(1000);
    const epoch = cache.epoch;
    cache.invalidatePath('/other');
    cache.set('/a', attr(2), epoch);
    expect(cache.get('/a')).toBeUndefined();
    cache.set('/a', attr(2), cache.epoch);
    expect(cache.get('/a')).toBeDefined();
  });

  it('invalidatePath forgets every path of the same inode (hard links)', () => {
    const cache = new AttrCache(1000);
    cache.set('/a', attr(2));
    cache.set('/b', attr(2));
    cache.set('/c', attr(3));
    cache.invalidatePath('/a');
    expect(cache.get('/b')).toBeUndefined();
    expect(cache.get('/c')).toBeDefined();
  });

  it('invalidateTree forgets a directory and everything below it, not its siblings', () => {
    const cache = new AttrCache(1000);
    cache.set('/d', attr(2, { type: 'dir' }));
    cache.set('/d/x', attr(3));
    cache.set('/d/x/y', attr(4));
    cache.set('/dd', attr(5));
    cache.invalidateTree('/d');
    expect(cache.get('/d')).toBeUndefined();
    expect(cache.get('/d/x')).toBeUndefined();
    expect(cache.get('/d/x/y')).toBeUndefined();
    expect(cache.get('/dd')).toBeDefined();
  });

  it('invalidateTree finds deep entries whose parents are not cached, and forgets counts it no longer needs', () => {
    const cache = new AttrCache(1000);
    cache.set('/a/b/c/d', attr(7));
    cache.set('/a/b/e', attr(8));
    cache.invalidateTree('/a/b/c');
    expect(cache.get('/a/b/c/d')).toBeUndefined();
    expect(cache.get('/a/b/e')).toBeDefined();
    cache.set('/a/b/c/d', attr(7));
    cache.invalidateTree('/a');
    expect(cache.size).toBe(0);
    // Nothing below /a any more: a later entry elsewhere is untouched by another drop of /a.
    cache.set('/z', attr(9));
    cache.invalidateTree('/a');
    expect(cache.get('/z')).toBeDefined();
  });

  it('staleIno hides the attributes of every name of an inode but keeps which inode each names', () => {
    const c = clock();
    const forgotten: string[] = [];
    const cache = new AttrCache(100, c.now);
    const staled: string[] = [];
    cache.mirror = { forget: (p) => forgotten.push(p), stale: (p) => staled.push(p), clear: () => undefined };
    cache.set('/a', attr(2));
    cache.set('/b', attr(2));
    cache.set('/c', attr(3));
    cache.staleIno(2);
    expect(cache.get('/a')).toBeUndefined();
    expect(cache.getByIno(2)).toBeUndefined();
    expect(cache.inoOf('/a')).toBe(2);
    expect(cache.inoOf('/b')).toBe(2);
    expect(cache.get('/c')?.ino).toBe(3);
    expect(staled.sort()).toEqual(['/a', '/b']);
    expect(forgotten).toEqual([]);
    cache.update(attr(2, { size: 10 }));
    expect(cache.get('/b')?.size).toBe(10);
    c.t += 100;
    expect(cache.inoOf('/a')).toBeUndefined();
  });

  it('invalidateTree of / clears everything', () => {
    const cache = new AttrCache(1000);
    cache.set('/', attr(1, { type: 'dir' }));
    cache.set('/x', attr(3));
    cache.invalidateTree('/');
    expect(cache.size).toBe(0);
  });

  it('update replaces the attributes of every path of the inode', () => {
    const cache = new AttrCache(1000);
    cache.set('/a', attr(2));
    cache.set('/b', attr(2));
    cache.update(attr(2, { size: 9 }));
    expect(cache.get('/a')?.size).toBe(9);
    expect(cache.get('/b')?.size).toBe(9);
    expect(cache.getByIno(2)?.size).toBe(9);
  });

  it('refresh gives fresh attributes to the path and every other path of the inode', () => {
    const cache = new AttrCache(1000);
    cache.set('/a', attr(2, { size: 1 }));
    cache.set('/b', attr(2, { size: 1 }));
    cache.refresh('/c', attr(2, { size: 7 }), cache.epoch);
    expect([cache.get('/a')?.size, cache.get('/b')?.size, cache.get('/c')?.size]).toEqual([7, 7, 7]);
  });

  it('refresh forgets the inode instead when the cache changed during the lookup', () => {
    const cache = new AttrCache(1000);
    cache.set('/a', attr(2, { size: 1 }));
    const epoch = cache.epoch;
    cache.invalidatePath('/other');
    cache.refresh('/b', attr(2, { size: 7 }), epoch);
    expect(cache.get('/a')).toBeUndefined();
    expect(cache.get('/b')).toBeUndefined();
  });

  it('drops the oldest entries beyond its bound', () => {
    const cache = new AttrCache(1000, Date.now, 2);
    cache.set('/a', attr(2));
    cache.set('/b', attr(3));
    cache.set('/c', attr(4));
    expect(cache.get('/a')).toBeUndefined();
    expect(cache.getByIno(2)).toBeUndefined();
    expect(cache.get('/c')).toBeDefined();
  });
});
