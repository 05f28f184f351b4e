/**
 * The store's cost model, against a real redis-server: removing or shrinking a file costs what it
 * stores, not its size, and one short script whatever it holds; the rest is the background
 * collector's, which Redis records, so that it resumes on the next mount after a close or crash.
 */
import { randomBytes } from 'node:crypto';
import { RELEASE_BATCH, keysFor, parseBucketKey } from '@redisfs/schema';
import { describe, expect, it } from 'vitest';
import { waitFor } from '@redisfs/testing';
import { deleteFilesystem } from './admin.js';
import type { Store } from './api.js';
import { snapshotFilesystem } from './snapshot.js';
import { blockIdsOf, familyKeysOf, familyProblems, mapIdsOf } from './internal/family-check.js';
import { TEST_OWNER as owner, countsOf, patchRawInode, storeFixture } from './internal/test-fixture.js';

const t = storeFixture('gc');

/** Commands the background collector sends (on the store's connection, so in its counts). */
const COLLECTOR_COMMANDS = /^(SRANDMEMBER|SREM|UNLINK|SCAN|EVALSHA (gcStep|releaseKey|releaseDone))$/;

/** Round trips `fn` costs the store itself: its counts without what its collector did meanwhile. */
async function roundTrips(store: Store, fn: () => Promise<unknown>): Promise<{ total: number; counts: Record<string, number> }> {
  const all = await countsOf(store, fn);
  const counts = Object.fromEntries(Object.entries(all).filter(([cmd]) => !COLLECTOR_COMMANDS.test(cmd)));
  return { total: Object.values(counts).reduce((a, b) => a + b, 0), counts };
}

/** Runs every script of the store once, so that none costs an extra EVAL in a count. */
async function warmUp(s: Store): Promise<void> {
  const w = await s.mknod(s.rootIno, 'warm', 0o644, owner);
  await s.write(w.ino, 0, randomBytes(3 * s.blockSize));
  await s.setattr(w.ino, { size: 1 });
  await s.setattr(w.ino, { size: 2 * s.blockSize + 1 });
  await s.unlink(s.rootIno, 'warm');
  await s.collected();
}

/** The inodes the bucket hashes among `keys` hold (their fields), sorted. */
async function inodesIn(prefix: string, keys: readonly string[]): Promise<string[]> {
  const k = keysFor(prefix);
  const out: string[] = [];
  for (const key of keys) if (parseBucketKey(k, key) !== undefined) out.push(...(await t.raw.hKeys(key)));
  return out.sort();
}

/**
 * Every key of the store's family (metadata of every member, family keys, blocks), and the
 * inodes left in its buckets (many inodes share a bucket key: a leftover inode is a field).
 */
async function keysLeft(s: Store): Promise<{ keys: string[]; inodes: string[] }> {
  const keys = await familyKeysOf(t.raw, keysFor(s.prefix).family);
  return { keys, inodes: await inodesIn(s.prefix, keys) };
}

/** What an empty filesystem holds: its superblock, counters and root (plus the block id counter once used). */
function emptyFs(s: Store, usedIds: boolean): { keys: string[]; inodes: string[] } {
  const k = keysFor(s.prefix);
  return { keys: [k.superblock, k.inoCounter, k.stats, k.inodes(1), ...(usedIds ? [k.blockCounter] : [])].sort(), inodes: ['1'] };
}

describe('removing a huge sparse file', () => {
  it('costs a handful of round trips and leaves only the root and the counters', async () => {
    const s = await t.fresh();
    await warmUp(s);
    const f = await s.mknod(s.rootIno, 'huge', 0o644, owner);
    const grow = await roundTrips(s, () => s.setattr(f.ino, { size: 2 ** 50 }));
    expect(grow.total, JSON.stringify(grow.counts)).toBeLessThanOrEqual(3);
    expect((await s.getattr(f.ino)).size).toBe(2 ** 50);
    expect((await s.getattr(f.ino)).blocks).toBe(0);
    const rm = await roundTrips(s, () => s.unlink(s.rootIno, 'huge'));
    expect(rm.counts).toEqual({ 'EVALSHA unlink': 1 });
    await s.collected();
    expect(await keysLeft(s)).toEqual(emptyFs(s, true));
    expect(await t.raw.hGetAll(keysFor(s.prefix).stats)).toEqual({ inodes: '1', bytes: '0' });
  });

  it('with a few blocks written far apart, frees them and nothing else is left', async () => {
    const s = await t.fresh();
    await warmUp(s);
    const f = await s.mknod(s.rootIno, 'huge', 0o644, owner);
    await s.setattr(f.ino, { size: 2 ** 50 });
    for (const at of [0, 2 ** 40, 2 ** 50 - 10]) await s.write(f.ino, at, randomBytes(10));
    expect((await s.getattr(f.ino)).blocks).toBe((3 * s.blockSize) / 512);
    const rm = await roundTrips(s, () => s.unlink(s.rootIno, 'huge'));
    expect(rm.counts).toEqual({ 'EVALSHA unlink': 1 });
    await s.collected();
    expect(await keysLeft(s)).toEqual(emptyFs(s, true));
  });
});

describe('truncating a file of 10,000 blocks', () => {
  it('returns after one script, and its blocks go once the collector is idle', async () => {
    const s = await t.fresh({ blockSize: 4096 });
    await warmUp(s);
    const BLOCKS = 10_000;
    const data = randomBytes(BLOCKS * 4096); // incompressible: every block stored, raw
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.write(f.ino, 0, data);
    await s.collected();
    const k = keysFor(s.prefix);
    expect(await t.raw.zCard(k.map(f.ino))).toBe(BLOCKS);
    expect((await blockIdsOf(t.raw, s.prefix)).length).toBe(BLOCKS);
    const cut = await roundTrips(s, () => s.setattr(f.ino, { size: 0 }));
    expect(cut.counts['EVALSHA setattr']).toBe(1);
    expect(cut.total, JSON.stringify(cut.counts)).toBeLessThanOrEqual(3);
    // One batch released in the script; the file reads empty at once whatever is left.
    expect((await s.getattr(f.ino)).size).toBe(0);
    expect((await s.read(f.ino, 0, 4096)).length).toBe(0);
    await s.collected();
    expect(await t.raw.exists(k.map(f.ino))).toBe(0);
    expect(await blockIdsOf(t.raw, s.prefix)).toEqual([]);
    expect(await t.raw.exists([k.gc, k.freeBlocks, k.refcounts])).toBe(0);
    // Grows back as zeros, not as the old blocks.
    await s.setattr(f.ino, { size: BLOCKS * 4096 });
    expect((await s.read(f.ino, 4096 * 5000, 4096)).equals(Buffer.alloc(4096))).toBe(true);
  });

  it('unlinks it with one script too', async () => {
    const s = await t.fresh({ blockSize: 4096 });
    await warmUp(s);
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.write(f.ino, 0, randomBytes(10_000 * 4096));
    await s.collected();
    const rm = await roundTrips(s, () => s.unlink(s.rootIno, 'f'));
    expect(rm.counts).toEqual({ 'EVALSHA unlink': 1 });
    await s.collected();
    expect(await keysLeft(s)).toEqual(emptyFs(s, true));
  });
});

describe('the collector', () => {
  it('resumes a freed file\'s blocks on the next mount when the last one closed mid-way', async () => {
    const s = await t.fresh({ blockSize: 4096 });
    const F = s.prefix;
    const k = keysFor(F);
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const BLOCKS = 5 * RELEASE_BATCH;
    await s.write(f.ino, 0, randomBytes(BLOCKS * 4096));
    await s.collected();
    // The unlink releases one batch and leaves the rest (in `gc`); the store closes at once,
    // its collector stopping before its first batch.
    await s.unlink(s.rootIno, 'f');
    await s.close();
    expect(await t.raw.sMembers(k.gc)).toEqual([String(f.ino)]);
    expect(await t.raw.zCard(k.map(f.ino))).toBeGreaterThan(0);
    expect((await blockIdsOf(t.raw, F)).length).toBeGreaterThan(RELEASE_BATCH);
    const again = await t.fresh({ prefix: F });
    await again.collected();
    expect(await t.raw.exists([k.gc, k.map(f.ino), k.freeBlocks, k.refcounts])).toBe(0);
    expect(await blockIdsOf(t.raw, F)).toEqual([]);
  });

  it('finishes work recorded by hand: a shrink in `gc`, free ids in `{F}#free`', async () => {
    const s = await t.fresh({ blockSize: 4096 });
    const F = s.prefix;
    const k = keysFor(F);
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const data = randomBytes(20 * 4096);
    await s.write(f.ino, 0, data);
    await s.collected();
    await s.close();
    // As a crash would leave them: entries past the size (the size already cut to 3 blocks) …
    await patchRawInode(t.raw, F, f.ino, { size: 3 * 4096 });
    await t.raw.sAdd(k.gc, String(f.ino));
    // … and a block nobody references, listed as free.
    const orphan = String(await t.raw.incrBy(k.blockCounter, 1));
    await t.raw.set(k.block(orphan), 'x');
    await t.raw.sAdd(k.freeBlocks, orphan);
    const again = await t.fresh({ prefix: F });
    await again.collected();
    expect(await t.raw.zCard(k.map(f.ino))).toBe(3);
    expect(await t.raw.exists([k.gc, k.freeBlocks, k.block(orphan)])).toBe(0);
    expect(await blockIdsOf(t.raw, F)).toEqual(await mapIdsOf(t.raw, F));
    expect((await again.read(f.ino, 0, 20 * 4096)).equals(data.subarray(0, 3 * 4096))).toBe(true);
  });

  it('finishes the delete of a member cut short, on any read-write mount of the family', async () => {
    const s = await t.fresh({ blockSize: 4096 });
    const F = s.prefix;
    const k = keysFor(F);
    for (let i = 0; i < 20; i++) await s.writeFile(`/f${i}`, randomBytes(3 * RELEASE_BATCH * 4096 / 20));
    await snapshotFilesystem({ url: t.redis.url, from: F, to: `${F}@a` });
    // F drops everything: the snapshot is now the only one referencing the blocks.
    for (let i = 0; i < 20; i++) await s.remove(`/f${i}`);
    await s.collected();
    const snapBlocks = await blockIdsOf(t.raw, F);
    expect(snapBlocks.length).toBeGreaterThan(RELEASE_BATCH);
    await s.close();
    // A delete of F@a stopped right after `forget`: superblock gone, listed as dead, keys left.
    await t.raw.del(keysFor(`${F}@a`).superblock);
    await t.raw.sAdd(k.deadMembers, `${F}@a`);
    const again = await t.fresh({ prefix: F });
    await again.collected();
    expect(await t.raw.exists(k.deadMembers)).toBe(0);
    const left = await familyKeysOf(t.raw, `${F}@a`);
    expect(left).toEqual([k.superblock, k.inoCounter, k.stats, k.inodes(1), k.blockCounter].sort());
    expect(await inodesIn(F, left)).toEqual(['1']);
    expect(await familyProblems(t.raw, F)).toEqual([]);
  });

  // An overwrite releases the blocks it replaces into `{F}#free`: the collector must be asked
  // for a round, as after an unlink, not left to its 30 s poll (a workload that rewrites files
  // would keep that much of its write volume as dead blocks).
  it('deletes the blocks an overwrite replaced without being asked', async () => {
    const s = await t.fresh({ blockSize: 4096 });
    const F = s.prefix;
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.write(f.ino, 0, randomBytes(64 * 4096));
    await s.collected();
    await s.write(f.ino, 0, randomBytes(64 * 4096)); // replaces all 64 blocks
    expect(await t.raw.sCard(keysFor(F).freeBlocks)).toBeGreaterThan(0);
    await waitFor(async () => (await t.raw.exists(keysFor(F).freeBlocks)) === 0, {
      timeoutMs: 5_000,
      what: 'the collector to delete the replaced blocks',
    });
    expect(await blockIdsOf(t.raw, F)).toEqual(await mapIdsOf(t.raw, F));
  });

  // Was a bug (lua.ts attrs() counted the whole map, ZCARD): entries past the size that a shrink
  // left to the collector made st_blocks the size rounded up. Only entries below the size count.
  it('reports st_blocks of the blocks stored within the size while a shrink is still collected', async () => {
    const s = await t.fresh({ blockSize: 4096 });
    const F = s.prefix;
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.write(f.ino, 0, randomBytes(4096)); // block 0, then a hole, then blocks 100-699
    await s.write(f.ino, 100 * 4096, randomBytes(600 * 4096));
    expect((await s.getattr(f.ino)).blocks).toBe(601 * 8);
    const cut = await s.setattr(f.ino, { size: 50 * 4096 }); // only block 0 is left within the size
    await s.close(); // before the collector's first batch
    expect(await t.raw.sMembers(keysFor(F).gc)).toEqual([String(f.ino)]);
    await snapshotFilesystem({ url: t.redis.url, from: F, to: `${F}@a` });
    const snap = await t.fresh({ prefix: `${F}@a`, onWarning: () => undefined });
    expect([cut.blocks, (await snap.getattr(f.ino)).blocks]).toEqual([8, 8]);
  });

  // Was a bug: a snapshot taken while the collector still had work in `MP gc` copied that work
  // (maps of unlinked files, entries past a shrunk size) and, read-only, never collected it. The
  // snapshot now releases what it copied of that work before it returns (snapshot.ts).
  it('does not keep alive, in a snapshot, the blocks its source had already released', async () => {
    const s = await t.fresh({ blockSize: 4096 });
    const F = s.prefix;
    const gone = await s.mknod(s.rootIno, 'gone', 0o644, owner);
    await s.write(gone.ino, 0, randomBytes(5 * RELEASE_BATCH * 4096));
    const cut = await s.mknod(s.rootIno, 'cut', 0o644, owner);
    await s.write(cut.ino, 0, randomBytes(5 * RELEASE_BATCH * 4096));
    await s.writeFile('/kept', randomBytes(10 * 4096));
    await s.collected();
    await s.unlink(s.rootIno, 'gone');
    await s.setattr(cut.ino, { size: 4096 });
    await s.close(); // before the collector's first batch: its work waits in `gc`
    expect((await t.raw.sMembers(keysFor(F).gc)).sort()).toEqual([String(gone.ino), String(cut.ino)].sort());
    await snapshotFilesystem({ url: t.redis.url, from: F, to: `${F}@a` });
    await deleteFilesystem({ url: t.redis.url, prefix: F });
    // What the snapshot's files hold: 10 blocks of /kept, 1 of /cut.
    expect((await blockIdsOf(t.raw, F)).length).toBe(11);
  });

  it('leaves nothing of a family once its members are all deleted', async () => {
    const s = await t.fresh({ blockSize: 4096 });
    const F = s.prefix;
    await s.writeFile('/a', randomBytes(600 * 4096));
    await snapshotFilesystem({ url: t.redis.url, from: F, to: `${F}@x` });
    await s.writeFile('/a', randomBytes(300 * 4096));
    await s.close();
    await deleteFilesystem({ url: t.redis.url, prefix: F });
    await deleteFilesystem({ url: t.redis.url, prefix: `${F}@x` });
    expect(await familyKeysOf(t.raw, F)).toEqual([keysFor(F).blockCounter]);
  });
});
