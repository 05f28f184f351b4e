/**
 * docs/performance.md, the targets: "≤ 1 round trip per metadata change". Each change below is one script
 * call, counted by the store's own counters (Store.stats) against a real redis-server. What
 * stats.test.ts already counts (rmdir, the last unlink of a file with blocks, a truncate, reads
 * and writes) is not repeated here: these are the creates, links, the other unlinks, renames
 * and attribute changes.
 */
import { keysFor } from '@redisfs/schema';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Store } from './api.js';
import { TEST_OWNER as owner, countsOf, storeFixture } from './internal/test-fixture.js';

const t = storeFixture('rtrip');

/** Commands the background collector sends (on the store's connection, so in its counts). */
const COLLECTOR_COMMANDS = /^(SRANDMEMBER|SREM|UNLINK|SCAN|SSCAN|EVALSHA (gcStep|releaseKey|releaseDone|sweepOrphans))$/;

/** What `fn` costs the store, without what its collector did meanwhile. */
async function opCounts(store: Store, fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const counts = await countsOf(store, fn);
  return Object.fromEntries(Object.entries(counts).filter(([cmd]) => !COLLECTOR_COMMANDS.test(cmd)));
}

describe('one round trip per metadata change', () => {
  let s: Store;
  let dir: number;
  let other: number;

  beforeAll(async () => {
    s = await t.fresh();
    // Warm up: the first create reserves a batch of 64 inode numbers (INCRBY) and every script
    // the server has not run yet costs an EVAL after its EVALSHA. Run each once, then measure.
    dir = (await s.mkdir(s.rootIno, 'dir', 0o755, owner)).ino;
    other = (await s.mkdir(s.rootIno, 'other', 0o755, owner)).ino;
    const w = await s.mknod(dir, 'warm', 0o644, owner);
    await s.link(w.ino, dir, 'warm-link');
    await s.rename(dir, 'warm-link', dir, 'warm-moved');
    await s.unlink(dir, 'warm-moved');
    await s.setattr(w.ino, { mode: 0o600 });
    await s.collected();
    // One batch reserved (the root is 1, so the counter says 1 + 64); fewer creates follow than
    // the numbers left in it, so none of them needs an INCRBY.
    expect(Number(await t.raw.get(keysFor(s.prefix).inoCounter))).toBe(1 + 64);
  });

  it('creates: mknod (file, fifo), mkdir, symlink', async () => {
    expect(await opCounts(s, () => s.mknod(dir, 'file', 0o644, owner))).toEqual({ 'EVALSHA create': 1 });
    expect(await opCounts(s, () => s.mknod(dir, 'fifo', 0o010644, owner))).toEqual({ 'EVALSHA create': 1 });
    expect(await opCounts(s, () => s.mkdir(dir, 'sub', 0o755, owner))).toEqual({ 'EVALSHA create': 1 });
    expect(await opCounts(s, () => s.symlink(dir, 'ln', 'file', owner))).toEqual({ 'EVALSHA create': 1 });
    // They happened: one script did all of each.
    expect((await s.list('/dir')).map((e) => e.name).sort()).toEqual(['fifo', 'file', 'ln', 'sub', 'warm']);
    expect(await s.stat('/dir')).toMatchObject({ nlink: 3 });
  });

  it('link, and the unlinks stats.test.ts does not count: one of two links, a symlink, an empty file', async () => {
    const f = await s.mknod(dir, 'linked', 0o644, owner);
    const l = await s.symlink(dir, 'sym', 'linked', owner);
    expect(await opCounts(s, () => s.link(f.ino, other, 'second-name'))).toEqual({ 'EVALSHA link': 1 });
    expect(await s.getattr(f.ino)).toMatchObject({ nlink: 2 });
    expect(await opCounts(s, () => s.unlink(dir, 'linked'))).toEqual({ 'EVALSHA unlink': 1 });
    expect(await s.getattr(f.ino)).toMatchObject({ nlink: 1 });
    expect(await opCounts(s, () => s.unlink(dir, 'sym'))).toEqual({ 'EVALSHA unlink': 1 });
    await expect(s.getattr(l.ino)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await opCounts(s, () => s.unlink(other, 'second-name'))).toEqual({ 'EVALSHA unlink': 1 });
    await expect(s.getattr(f.ino)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('rename: within a directory, to another directory, a directory, and over an existing target', async () => {
    const a = await s.mknod(dir, 'a', 0o644, owner);
    const d = await s.mkdir(dir, 'movedir', 0o755, owner);
    expect(await opCounts(s, () => s.rename(dir, 'a', dir, 'b'))).toEqual({ 'EVALSHA rename': 1 });
    expect(await opCounts(s, () => s.rename(dir, 'b', other, 'c'))).toEqual({ 'EVALSHA rename': 1 });
    expect(await opCounts(s, () => s.rename(dir, 'movedir', other, 'movedir'))).toEqual({ 'EVALSHA rename': 1 });
    expect(await s.getattr(d.ino)).toMatchObject({ nlink: 2 });

    // Replacing a target: the target's inode (and its data) is freed in the same script.
    const victim = await s.mknod(other, 'victim', 0o644, owner);
    await s.write(victim.ino, 0, Buffer.from('to be replaced'));
    expect(await opCounts(s, () => s.rename(other, 'c', other, 'victim'))).toEqual({ 'EVALSHA rename': 1 });
    expect(await s.lookup(other, 'victim')).toMatchObject({ ino: a.ino });
    await expect(s.getattr(victim.ino)).rejects.toMatchObject({ code: 'ENOENT' });
    // An empty directory over an empty directory.
    await s.mkdir(other, 'emptied', 0o755, owner);
    const e = await s.mkdir(dir, 'empty', 0o755, owner);
    expect(await opCounts(s, () => s.rename(dir, 'empty', other, 'emptied'))).toEqual({ 'EVALSHA rename': 1 });
    expect(await s.lookup(other, 'emptied')).toMatchObject({ ino: e.ino });
  });

  it('setattr: chmod, chown, utimens', async () => {
    const f = await s.mknod(dir, 'attrs', 0o644, owner);
    expect(await opCounts(s, () => s.setattr(f.ino, { mode: 0o600 }))).toEqual({ 'EVALSHA setattr': 1 });
    expect(await opCounts(s, () => s.setattr(f.ino, { uid: 0, gid: 0 }))).toEqual({ 'EVALSHA setattr': 1 });
    expect(await opCounts(s, () => s.setattr(f.ino, { atimeNs: 1n, mtimeNs: 2n }))).toEqual({ 'EVALSHA setattr': 1 });
    expect(await s.getattr(f.ino)).toMatchObject({ mode: 0o100600, uid: 0, gid: 0, atimeNs: 1n, mtimeNs: 2n });
  });
});
