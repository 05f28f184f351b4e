/**
 * Store.stats: one count per round trip, checked against a real redis-server (a script call is
 * one, whatever it runs inside; the Buffer view and NOSCRIPT retries count too).
 */
import { randomBytes } from 'node:crypto';
import { keysFor } from '@redisfs/schema';
import { describe, expect, it } from 'vitest';
import { CommandCounter } from './internal/stats.js';
import type { Store } from './api.js';
import { TEST_OWNER as owner, countsOf, storeFixture } from './internal/test-fixture.js';

const t = storeFixture('stats');
const { fresh } = t;

/** Commands the background collector sends (on the store's connection, so in its counts). */
const COLLECTOR_COMMANDS = /^(SRANDMEMBER|SREM|UNLINK|SCAN|SSCAN|EVALSHA (gcStep|releaseKey|releaseDone|sweepOrphans))$/;

/** What `fn` costs the store, without what its collector did meanwhile. */
async function opCounts(store: Store, fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const counts = await countsOf(store, fn);
  return Object.fromEntries(Object.entries(counts).filter(([cmd]) => !COLLECTOR_COMMANDS.test(cmd)));
}

describe('CommandCounter', () => {
  it('counts commands by name and script calls by script name', () => {
    const c = new CommandCounter();
    c.nameScript('lookup', 'abc123', 'return 1');
    c.countArgs(['HGETALL', 'k']);
    c.countArgs(['hgetall', 'k']);
    c.countArgs(['EVALSHA_RO', 'abc123', '1', 'k']);
    c.countArgs(['EVAL_RO', 'return 1', '1', 'k']);
    c.countArgs(['EVALSHA', 'unknown', '0']);
    c.add('MULTI');
    expect(c.snapshot()).toEqual({ HGETALL: 2, 'EVALSHA_RO lookup': 1, 'EVAL_RO lookup': 1, EVALSHA: 1, MULTI: 1 });
  });

  it('snapshots are copies, largest first', () => {
    const c = new CommandCounter();
    c.add('A');
    c.add('B', 3);
    const s = c.snapshot();
    c.add('A');
    expect(Object.keys(s)).toEqual(['B', 'A']);
    expect(s).toEqual({ B: 3, A: 1 });
  });
});

describe('Store.stats', () => {
  it('counts one round trip per script call and per plain command', async () => {
    const s = await fresh();
    const dir = await s.mkdir(s.rootIno, 'd', 0o755, owner);
    await s.mkdir(s.rootIno, 'e', 0o755, owner);
    // Once each first: a script the server has not run yet costs an EVAL after the EVALSHA.
    await s.lookup(s.rootIno, 'd');
    await s.resolve('/d');
    await s.getattr(dir.ino);
    await s.rmdir(s.rootIno, 'e');
    // The collector's first round (at open) counts too: let it end first.
    await s.collected();
    expect(await countsOf(s, () => s.lookup(s.rootIno, 'd'))).toEqual({ 'EVALSHA_RO lookup': 1 });
    expect(await countsOf(s, () => s.resolve('/d'))).toEqual({ 'EVALSHA_RO resolve': 1 });
    // A script: st_blocks of a file comes from its block map, read in the same step.
    expect(await countsOf(s, () => s.getattr(dir.ino))).toEqual({ 'EVALSHA_RO getattrs': 1 });
    expect(await countsOf(s, () => s.rmdir(s.rootIno, 'd'))).toEqual({ 'EVALSHA rmdir': 1 });
  });

  it('counts the commands of the Buffer view (data blocks) in the same counts', async () => {
    // The GETs of blocks go through the Buffer view of the connection and count with the rest.
    for (const inlineBlocks of [true, false]) {
      const s = await fresh({ inlineBlocks });
      const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
      await s.write(f.ino, 0, Buffer.from('hello'));
      await s.collected();
      // (The second HGET of the inode goes with the GETs: the ctime read after them, so that a write landing
      // between the map and the blocks is seen. Two round trips.)
      expect(await countsOf(s, () => s.read(f.ino, 0, 5))).toEqual({ HGET: 2, ZRANGEBYSCORE: 1, GET: 1 });
      // Read again, the file unchanged: the ids the first read learned serve (one round trip).
      expect(await countsOf(s, () => s.read(f.ino, 0, 5))).toEqual({ HGET: 1, GET: 1 });
    }
  });

  it('counts one script per write, read, unlink and truncate of a file, whatever it holds', async () => {
    const s = await fresh({ blockSize: 4096 });
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const g = await s.mknod(s.rootIno, 'g', 0o644, owner);
    await s.write(g.ino, 0, randomBytes(4096)); // scripts loaded, block ids reserved
    await s.read(g.ino, 0, 1);
    await s.setattr(g.ino, { size: 4096 });
    await s.unlink(s.rootIno, 'g');
    await s.collected();
    // 64 random blocks: one script (under SCRIPT_BYTES of blocks), no read first.
    expect(await countsOf(s, () => s.write(f.ino, 0, randomBytes(64 * 4096)))).toEqual({ 'EVALSHA writeBlocks': 1 });
    // A read: the map (for this window and ahead), then the blocks; the next window of the
    // same file needs no map read while the file is unchanged.
    expect(await countsOf(s, () => s.read(f.ino, 0, 32 * 4096))).toEqual({ HGET: 2, ZRANGEBYSCORE: 1, GET: 32 });
    expect(await countsOf(s, () => s.read(f.ino, 32 * 4096, 32 * 4096))).toEqual({ HGET: 1, GET: 32 });
    // A partial write into a raw block no other map shares: written in place, one script.
    expect(await countsOf(s, () => s.write(f.ino, 100, randomBytes(1000)))).toEqual({ 'EVALSHA writeBlocks': 1 });
    // Shrinking to a block boundary: one script (at most one read besides); the blocks it
    // released are the collector's work.
    const cut = await opCounts(s, () => s.setattr(f.ino, { size: 32 * 4096 }));
    expect(cut['EVALSHA setattr'], JSON.stringify(cut)).toBe(1);
    expect(Object.values(cut).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2);
    await s.collected();
    expect(await opCounts(s, () => s.unlink(s.rootIno, 'f'))).toEqual({ 'EVALSHA unlink': 1 });
  });

  it('reports statfs bytesUsed as the memory Redis uses, not the sum of file sizes', async () => {
    const s = await fresh();
    const usedMemory = async () => Number(/^used_memory:(\d+)/m.exec(await t.raw.info('memory'))?.[1]);
    const before = await s.statfs();
    // Sizes say 1 GiB; Redis holds one block.
    const f = await s.mknod(s.rootIno, 'sparse', 0o644, owner);
    await s.setattr(f.ino, { size: 2 ** 30 });
    await s.write(f.ino, 2 ** 29, Buffer.from('x'));
    expect(Number(await t.raw.hGet(keysFor(s.prefix).stats, 'bytes'))).toBe(2 ** 30);
    const sparse = await s.statfs();
    expect(sparse.bytesUsed - before.bytesUsed).toBeLessThan(1024 * 1024);
    // 4 MiB of random bytes (stored raw): at least that much more memory.
    await s.writeFile('/random', randomBytes(4 * 1024 * 1024));
    const [low, after, high] = [await usedMemory(), await s.statfs(), await usedMemory()];
    expect(after.bytesUsed - sparse.bytesUsed).toBeGreaterThanOrEqual(4 * 1024 * 1024);
    // INFO's used_memory of the same moment, give or take a client buffer.
    expect(after.bytesUsed).toBeGreaterThan(Math.min(low, high) - 256 * 1024);
    expect(after.bytesUsed).toBeLessThan(Math.max(low, high) + 256 * 1024);
    expect(after.maxBytes).toBeGreaterThan(after.bytesUsed);
  });

  it('counts the EVAL retry after a SCRIPT FLUSH as a second round trip', async () => {
    const s = await fresh();
    await t.raw.scriptFlush();
    const counts = await countsOf(s, () => s.mkdir(s.rootIno, 'd', 0o755, owner));
    expect(counts).toMatchObject({ 'EVALSHA create': 1, 'EVAL create': 1 });
  });

  it('counts each store on its own', async () => {
    const a = await fresh();
    const b = await fresh();
    await b.collected(); // b's own background round (at open) is b's, but not of this moment
    const before = b.stats().commands;
    await a.lookup(a.rootIno, '.').catch(() => undefined);
    await a.getattr(a.rootIno);
    expect(b.stats().commands).toEqual(before);
  });
});
