import { describe, expect, it } from 'vitest';
import { XattrMissCache } from './xattr-miss-cache.js';

describe('XattrMissCache', () => {
  const at = (t: { now: number }) => () => t.now;

  it('remembers a missing name for the TTL, and how long is left', () => {
    const clock = { now: 1000 };
    const c = new XattrMissCache(500, at(clock));
    c.noteMissing(7, 'security.capability');
    expect(c.isMissing(7, 'security.capability')).toBe(true);
    expect(c.isMissing(7, 'user.other')).toBe(false);
    clock.now = 1400;
    expect(c.missingForMs(7, 'security.capability')).toBe(100);
    clock.now = 1500;
    expect(c.isMissing(7, 'security.capability')).toBe(false);
  });

  it('noteEmpty covers every name until the TTL passes or the inode is forgotten', () => {
    const clock = { now: 0 };
    const c = new XattrMissCache(1000, at(clock));
    c.noteEmpty(3);
    expect(c.isMissing(3, 'security.capability')).toBe(true);
    expect(c.isMissing(3, 'user.anything')).toBe(true);
    expect(c.isMissing(4, 'user.anything')).toBe(false);
    c.forget(3);
    expect(c.isMissing(3, 'user.anything')).toBe(false);
    c.noteEmpty(3);
    clock.now = 1000;
    expect(c.isMissing(3, 'user.anything')).toBe(false);
  });

  it('caches nothing with a TTL of 0', () => {
    const c = new XattrMissCache(0);
    c.noteEmpty(1);
    c.noteMissing(1, 'user.x');
    expect(c.isMissing(1, 'user.x')).toBe(false);
  });
});
