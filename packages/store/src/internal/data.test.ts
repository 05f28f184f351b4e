/**
 * The data path's ways of writing (data.ts, lua.ts writeBlocks) against a real redis-server:
 * partial blocks written in place or read-modify-written, large writes cut into scripts of at
 * most 1 MiB of blocks. What each costs is checked with Store.stats.
 */
import { randomBytes } from 'node:crypto';
import { keysFor } from '@redisfs/schema';
import { describe, expect, it } from 'vitest';
import type { Store } from '../index.js';
import { TEST_OWNER as owner, countsOf, patchRawInode, storeFixture } from './test-fixture.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const t = storeFixture('data');
const { fresh } = t;

/** Every block key of the store's filesystem, with its stored length, once collection is done. */
async function blockLengths(s: Store): Promise<Map<string, number>> {
  await s.collected();
  const out = new Map<string, number>();
  for await (const batch of t.raw.scanIterator({ MATCH: keysFor(s.prefix).blockPattern, COUNT: 1000 })) {
    for (const key of batch) out.set(key, await t.raw.strLen(key));
  }
  return out;
}

/** A text-like payload: compresses, so its blocks are stored deflated. */
const text = (len: number) => Buffer.from(randomBytes(Math.ceil(len / 2)).toString('hex')).subarray(0, len);

describe('partial blocks', () => {
  it('are written in place into a raw block: one round trip, no read', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const model = randomBytes(3 * 64 * KiB);
    await s.write(f.ino, 0, model);
    const patch = randomBytes(4 * KiB);
    const counts = await countsOf(s, () => s.write(f.ino, 70_000, patch));
    expect(counts).toEqual({ 'EVALSHA writeBlocks': 1 });
    patch.copy(model, 70_000);
    expect((await s.read(f.ino, 0, model.length)).equals(model)).toBe(true);
  });

  it('in place past the end of a short block, the gap reads as zeros', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const head = randomBytes(1000);
    await s.write(f.ino, 0, head);
    await s.write(f.ino, 5000, Buffer.from('tail'));
    const data = await s.read(f.ino, 0, 10_000);
    expect(data.length).toBe(5004);
    expect(data.subarray(0, 1000).equals(head)).toBe(true);
    expect(data.subarray(1000, 5000).equals(Buffer.alloc(4000))).toBe(true);
    expect(data.subarray(5000).toString()).toBe('tail');
  });

  it('in place into a hole, the bytes before them read as zeros', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.write(f.ino, 0, Buffer.from('head'));
    const counts = await countsOf(s, () => s.write(f.ino, 3 * 64 * KiB + 1000, Buffer.from('x')));
    expect(counts).toEqual({ 'EVALSHA writeBlocks': 1 });
    const data = await s.read(f.ino, 0, 4 * 64 * KiB);
    expect(data.length).toBe(3 * 64 * KiB + 1001);
    expect(data.subarray(0, 4).toString()).toBe('head');
    expect(data.subarray(4, 3 * 64 * KiB + 1000).equals(Buffer.alloc(3 * 64 * KiB + 996))).toBe(true);
    expect(data.subarray(-1).toString()).toBe('x');
    expect((await blockLengths(s)).size).toBe(2);
  });

  it('into a compressed block are read, modified and written back; later ones read first', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const model = text(2 * 64 * KiB);
    await s.write(f.ino, 0, model);
    // (The collector, woken by the replaced block, runs its own commands meanwhile: not counted.)
    const ops = (c: Record<string, number>) => Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith('EVALSHA')));
    const first = await countsOf(s, () => s.write(f.ino, 100, Buffer.from('first')));
    expect(ops(first)).toEqual({ 'EVALSHA writeBlocks': 2, 'EVALSHA_RO readBlocks': 1 }); // refused in place, then read
    await s.collected();
    const second = await countsOf(s, () => s.write(f.ino, 65_600, Buffer.from('second')));
    expect(ops(second)).toEqual({ 'EVALSHA writeBlocks': 1, 'EVALSHA_RO readBlocks': 1 });
    Buffer.from('first').copy(model, 100);
    Buffer.from('second').copy(model, 65_600);
    expect((await s.read(f.ino, 0, model.length)).equals(model)).toBe(true);
  });

  it('never expose stale bytes a crash left past the end of a raw block', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.write(f.ino, 0, randomBytes(100_000));
    // A truncate to 70,000 that stopped after its script: size set, tail block not trimmed.
    await patchRawInode(t.raw, s.prefix, f.ino, { size: 70_000 });
    await s.write(f.ino, 90_000, Buffer.from('x'));
    const data = await s.read(f.ino, 70_000, 30_000);
    expect(data.subarray(0, 20_000).equals(Buffer.alloc(20_000))).toBe(true);
    expect(data.subarray(20_000, 20_001).toString()).toBe('x');
  });

  it('written in place by two clients at once keep both clients\' bytes', async () => {
    const prefix = t.newPrefix();
    const [a, b] = [await fresh({ prefix }), await fresh({ prefix })];
    const f = await a.mknod(a.rootIno, 'shared', 0o644, owner);
    await a.write(f.ino, 0, randomBytes(200 * KiB));
    const piece = (i: number) => randomBytes(KiB).fill(i % 251, 0, 1);
    const pieces = Array.from({ length: 200 }, (_, i) => piece(i));
    await Promise.all(pieces.map((p, i) => (i % 2 === 0 ? a : b).write(f.ino, i * KiB, p)));
    const data = await a.read(f.ino, 0, 200 * KiB);
    const lost = pieces.map((p, i) => (data.subarray(i * KiB, (i + 1) * KiB).equals(p) ? -1 : i)).filter((i) => i >= 0);
    expect(lost).toEqual([]);
  });
});

describe('whole blocks', () => {
  it('go in one script per MiB of blocks', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const data = randomBytes(3 * MiB + 64 * KiB);
    const counts = await countsOf(s, () => s.write(f.ino, 0, data));
    // INCRBY: the first write of a store reserves a batch of block ids.
    expect(counts).toEqual({ 'EVALSHA writeBlocks': 4, INCRBY: 1 });
    expect((await s.read(f.ino, 0, data.length)).equals(data)).toBe(true);
    expect((await s.getattr(f.ino)).size).toBe(data.length);
  });

  it('leave nothing behind when the write is refused (the file is gone)', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.unlink(s.rootIno, 'f');
    await expect(s.write(f.ino, 0, randomBytes(2 * MiB))).rejects.toMatchObject({ code: 'ENOENT' });
    expect([...(await blockLengths(s)).keys()]).toEqual([]);
  });

  it('stay whole around a partial block that needs a second try', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const model = Buffer.concat([text(64 * KiB), Buffer.alloc(4 * 64 * KiB)]);
    await s.write(f.ino, 0, model.subarray(0, 64 * KiB)); // block 0 compressed, 1..4 absent
    // Partial block 0 (refused in place: compressed) and whole blocks 1..3, in one script.
    const patch = randomBytes(3 * 64 * KiB + 100);
    await s.write(f.ino, 64 * KiB - 100, patch);
    patch.copy(model, 64 * KiB - 100);
    expect((await s.read(f.ino, 0, 4 * 64 * KiB)).equals(model.subarray(0, 4 * 64 * KiB))).toBe(true);
    const lengths = await blockLengths(s);
    expect(lengths.size).toBe(4);
  });

  it('of zeros are holes', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.write(f.ino, 0, randomBytes(256 * KiB));
    await s.write(f.ino, 64 * KiB, Buffer.alloc(128 * KiB));
    expect((await blockLengths(s)).size).toBe(2);
    const data = await s.read(f.ino, 64 * KiB, 128 * KiB);
    expect(data.equals(Buffer.alloc(128 * KiB))).toBe(true);
  });
});

describe('without inline blocks (stored before the script, as Redis Cluster needs)', () => {
  it('writes, patches, reads, shrinks and frees like the one-server path', async () => {
    const s = await fresh({ inlineBlocks: false });
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const model = Buffer.concat([randomBytes(2 * 64 * KiB), text(64 * KiB)]);
    await s.write(f.ino, 0, model);
    // Partial writes: never in place here. The first is tried as if its block were a hole (a
    // new file's case), refused, then read, modified and stored under a new id; the file's later
    // partial writes read first.
    const first = await countsOf(s, () => s.write(f.ino, 70_000, Buffer.from('patch')));
    expect(first).toMatchObject({ 'EVALSHA writeBlocks': 2, SET: 2, UNLINK: 1 });
    Buffer.from('patch').copy(model, 70_000);
    const second = await countsOf(s, () => s.write(f.ino, 80_000, Buffer.from('again')));
    expect(second).toMatchObject({ 'EVALSHA writeBlocks': 1, SET: 1 });
    Buffer.from('again').copy(model, 80_000);
    await s.write(f.ino, 2 * 64 * KiB + 10, Buffer.from('zz'));
    Buffer.from('zz').copy(model, 2 * 64 * KiB + 10);
    expect((await s.read(f.ino, 0, model.length)).equals(model)).toBe(true);
    expect((await blockLengths(s)).size).toBe(3);
    await s.setattr(f.ino, { size: 100 });
    expect((await s.read(f.ino, 0, 200)).equals(model.subarray(0, 100))).toBe(true);
    expect((await blockLengths(s)).size).toBe(1);
    await s.unlink(s.rootIno, 'f');
    expect((await blockLengths(s)).size).toBe(0);
  });

  it('write a new small file, or a file\'s extension, in one SET and one script, with no read', async () => {
    const s = await fresh({ inlineBlocks: false });
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.write(f.ino, 0, Buffer.alloc(1)); // the store's first write reserves block ids (INCRBY)
    const small = await s.mknod(s.rootIno, 'small', 0o644, owner);
    expect(await countsOf(s, () => s.write(small.ino, 0, Buffer.from('hello')))).toEqual({ SET: 1, 'EVALSHA writeBlocks': 1 });
    expect(await countsOf(s, () => s.write(small.ino, 3 * 64 * KiB + 10, Buffer.from('far')))).toEqual({ SET: 1, 'EVALSHA writeBlocks': 1 });
    const want = Buffer.alloc(3 * 64 * KiB + 13);
    want.write('hello');
    want.write('far', 3 * 64 * KiB + 10);
    expect((await s.read(small.ino, 0, want.length)).equals(want)).toBe(true);
  });

  it('deletes the blocks it stored when the script refuses them (the file is gone)', async () => {
    const s = await fresh({ inlineBlocks: false });
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.unlink(s.rootIno, 'f');
    await expect(s.write(f.ino, 0, randomBytes(2 * MiB))).rejects.toMatchObject({ code: 'ENOENT' });
    expect([...(await blockLengths(s)).keys()]).toEqual([]);
  });

  it('keeps both writers\' bytes when two clients write different bytes of one block at once', async () => {
    const prefix = t.newPrefix();
    const [a, b] = [await fresh({ prefix, inlineBlocks: false }), await fresh({ prefix, inlineBlocks: false })];
    const f = await a.mknod(a.rootIno, 'shared', 0o644, owner);
    await a.write(f.ino, 0, randomBytes(64 * KiB));
    const pieces = Array.from({ length: 64 }, (_, i) => randomBytes(KiB).fill(i + 1, 0, 1));
    await Promise.all(pieces.map((p, i) => (i % 2 === 0 ? a : b).write(f.ino, i * KiB, p)));
    const data = await a.read(f.ino, 0, 64 * KiB);
    const lost = pieces.map((p, i) => (data.subarray(i * KiB, (i + 1) * KiB).equals(p) ? -1 : i)).filter((i) => i >= 0);
    expect(lost).toEqual([]);
    // Only the last version of the block is left: every refused try deleted its block.
    expect((await blockLengths(a)).size).toBe(1);
  });
});
