/**
 * The store contract: POSIX rules of every operation, checked against a real redis-server
 * (started by the e2e harness's startRedis: testcontainers or a local binary, never a mock).
 */
import { createServer, type AddressInfo } from 'node:net';
import { encodeInodeRecord, keysFor } from '@redisfs/schema';
import { describe, expect, it } from 'vitest';
import { openStore } from './index.js';
import { TEST_OWNER as owner, patchRawInode, rawInode, setRawInode, storeFixture } from './internal/test-fixture.js';

const t = storeFixture('t');
const { fresh } = t;

/** Every data block key of a prefix's family. */
async function blockKeys(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const batch of t.raw.scanIterator({ MATCH: keysFor(prefix).blockPattern, COUNT: 1000 })) out.push(...batch);
  return out;
}

/** The sum of file sizes the filesystem counts (`st` bytes). */
async function fileBytes(prefix: string): Promise<number> {
  return Number((await t.raw.hGet(keysFor(prefix).stats, 'bytes')) ?? 0);
}

describe('namespace', () => {
  it('creates, looks up and lists files and directories with their types', async () => {
    const s = await fresh();
    const dir = await s.mkdir(s.rootIno, 'd', 0o750, owner);
    const file = await s.mknod(dir.ino, 'f', 0o640, owner);
    const link = await s.symlink(dir.ino, 'l', '../target', owner);
    expect(dir).toMatchObject({ type: 'dir', mode: 0o40750, nlink: 2, uid: 1000, gid: 100 });
    expect(file).toMatchObject({ type: 'file', mode: 0o100640, nlink: 1, size: 0 });
    expect(link).toMatchObject({ type: 'symlink', size: 9 });
    expect(await s.readlink(link.ino)).toBe('../target');
    expect((await s.lookup(dir.ino, 'f')).ino).toBe(file.ino);
    expect((await s.resolve('/d/f')).ino).toBe(file.ino);
    expect((await s.getattr(s.rootIno)).nlink).toBe(3);
    const names = (await s.readdir(dir.ino)).map((e) => `${e.name}:${e.type}`).sort();
    expect(names).toEqual(['f:file', 'l:symlink']);
  });

  it('answers EEXIST, ENOENT, ENOTDIR and ENAMETOOLONG', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await expect(s.mknod(s.rootIno, 'f', 0o644, owner)).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(s.mkdir(s.rootIno, 'f', 0o755, owner)).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(s.lookup(s.rootIno, 'nope')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(s.resolve('/f/x')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(s.mknod(f.ino, 'x', 0o644, owner)).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(s.mknod(s.rootIno, 'é'.repeat(128), 0o644, owner)).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    await expect(s.mknod(s.rootIno, 'a/b', 0o644, owner)).rejects.toMatchObject({ code: 'EINVAL' });
    expect((await s.mknod(s.rootIno, 'x'.repeat(255), 0o644, owner)).type).toBe('file');
  });

  it('hard links share one inode and count links; the last unlink frees inode and blocks', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'a', 0o644, owner);
    await s.write(f.ino, 0, Buffer.alloc(200_000, 7));
    const linked = await s.link(f.ino, s.rootIno, 'b');
    expect(linked).toMatchObject({ ino: f.ino, nlink: 2 });
    const d = await s.mkdir(s.rootIno, 'd', 0o755, owner);
    await expect(s.link(d.ino, s.rootIno, 'dl')).rejects.toMatchObject({ code: 'EPERM' });
    await s.unlink(s.rootIno, 'a');
    expect((await s.lookup(s.rootIno, 'b')).nlink).toBe(1);
    expect((await s.readFile('/b')).equals(Buffer.alloc(200_000, 7))).toBe(true);
    const before = await s.statfs();
    const bytesBefore = await fileBytes(s.prefix);
    expect(await blockKeys(s.prefix)).toHaveLength(4);
    await s.unlink(s.rootIno, 'b');
    await expect(s.getattr(f.ino)).rejects.toMatchObject({ code: 'ENOENT' });
    const keys = keysFor(s.prefix);
    await s.collected();
    expect(await blockKeys(s.prefix)).toEqual([]);
    expect(await t.raw.exists(keys.map(f.ino))).toBe(0);
    expect(await t.raw.sCard(keys.gc)).toBe(0);
    expect(await t.raw.sCard(keys.freeBlocks)).toBe(0);
    const after = await s.statfs();
    expect(before.inodes - after.inodes).toBe(1);
    expect(bytesBefore - (await fileBytes(s.prefix))).toBe(200_000);
    await expect(s.unlink(s.rootIno, 'd')).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('unlinks an empty file and keeps the usage counters exact', async () => {
    const s = await fresh();
    await s.mknod(s.rootIno, 'empty', 0o644, owner);
    await s.unlink(s.rootIno, 'empty');
    expect(await s.statfs()).toMatchObject({ inodes: 1 });
    expect(await fileBytes(s.prefix)).toBe(0);
  });

  it('rmdir refuses a non-empty directory and a file', async () => {
    const s = await fresh();
    const d = await s.mkdir(s.rootIno, 'd', 0o755, owner);
    await s.mknod(d.ino, 'f', 0o644, owner);
    await expect(s.rmdir(s.rootIno, 'd')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await expect(s.rmdir(d.ino, 'f')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await s.unlink(d.ino, 'f');
    await s.rmdir(s.rootIno, 'd');
    expect(await s.readdir(s.rootIno)).toEqual([]);
    expect((await s.getattr(s.rootIno)).nlink).toBe(2);
  });
  it('getattrs reads many inodes at once, undefined for one that is gone', async () => {
    const s = await fresh();
    const a = await s.mknod(s.rootIno, 'a', 0o600, owner);
    const d = await s.mkdir(s.rootIno, 'd', 0o700, owner);
    const got = await s.getattrs([a.ino, d.ino, 987654]);
    expect(got.map((x) => x?.type)).toEqual(['file', 'dir', undefined]);
    expect(got[0]).toEqual(await s.getattr(a.ino));
    expect(await s.getattrs([])).toEqual([]);
  });

  it('lookupMany looks names of one directory up at once, as lookup does each', async () => {
    const s = await fresh();
    const d = await s.mkdir(s.rootIno, 'd', 0o700, owner);
    const f = await s.mknod(d.ino, 'f', 0o600, owner);
    await s.write(f.ino, 70_000, Buffer.alloc(100, 1)); // a hole, then one stored block
    await s.mkdir(d.ino, 'sub', 0o700, owner);
    await s.symlink(d.ino, 'l', 'target', owner);
    const bytes = Buffer.from([0xff, 0x01]);
    await s.mknod(d.ino, bytes, 0o600, owner);
    const bad = await s.mknod(d.ino, 'bad', 0o600, owner);
    await setRawInode(t.raw, s.prefix, bad.ino, 'garbage');
    const names = ['sub', 'missing', 'f', bytes, 'l', 'bad'];
    const got = await s.lookupMany(d.ino, names);
    expect(got.map((a) => a?.type)).toEqual(['dir', undefined, 'file', 'file', 'symlink', undefined]);
    for (const i of [0, 2, 3, 4]) expect(got[i]).toEqual(await s.lookup(d.ino, names[i]!));
    expect(got[2]).toMatchObject({ size: 70_100, blocks: s.blockSize / 512 }); // the hole is not counted
    await expect(s.lookup(d.ino, 'bad')).rejects.toMatchObject({ code: 'EIO' });
    // A parent that is a file, or gone: nothing found (lookup tells ENOTDIR from ENOENT).
    expect(await s.lookupMany(f.ino, ['x', 'y'])).toEqual([undefined, undefined]);
    expect(await s.lookupMany(987654, ['x'])).toEqual([undefined]);
    expect(await s.lookupMany(d.ino, [])).toEqual([]);
    await expect(s.lookupMany(d.ino, ['ok', 'a/b'])).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('reports the new attributes of the directories a change touched', async () => {
    const s = await fresh();
    const seen: { ino: number; nlink: number; mtimeNs: bigint }[] = [];
    s.watchParents((attr) => seen.push({ ino: attr.ino, nlink: attr.nlink, mtimeNs: attr.mtimeNs }));
    const d = await s.mkdir(s.rootIno, 'd', 0o700, owner);
    expect(seen.at(-1)).toEqual({ ino: s.rootIno, nlink: 3, mtimeNs: (await s.getattr(s.rootIno)).mtimeNs });
    await s.mknod(d.ino, 'f', 0o600, owner);
    await s.rename(d.ino, 'f', s.rootIno, 'g');
    expect(seen.slice(-2).map((x) => x.ino)).toEqual([d.ino, s.rootIno]);
    await s.unlink(s.rootIno, 'g');
    await s.rmdir(s.rootIno, 'd');
    expect(seen.at(-1)).toEqual({ ino: s.rootIno, nlink: 2, mtimeNs: (await s.getattr(s.rootIno)).mtimeNs });
  });
});

describe('rename', () => {
  it('moves across directories, keeping directory link counts and ".." right', async () => {
    const s = await fresh();
    await s.mkdirp('/a/sub');
    await s.mkdirp('/b');
    await s.move('/a/sub', '/b/sub2');
    expect((await s.stat('/a')).nlink).toBe(2);
    expect((await s.stat('/b')).nlink).toBe(3);
    expect((await s.stat('/b/sub2')).type).toBe('dir');
    await expect(s.stat('/a/sub')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('replaces a file atomically and frees the replaced inode', async () => {
    const s = await fresh();
    await s.writeFile('/old', 'old data');
    await s.writeFile('/new', 'new data');
    const replaced = await s.stat('/old');
    await s.move('/new', '/old');
    expect((await s.readFile('/old')).toString()).toBe('new data');
    await expect(s.getattr(replaced.ino)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await s.statfs()).inodes).toBe(2);
  });

  it('follows the POSIX replacement rules', async () => {
    const s = await fresh();
    await s.mkdirp('/d/inner');
    await s.mkdirp('/full/x');
    await s.mkdirp('/emptydir');
    await s.writeFile('/f', 'x');
    await expect(s.move('/d', '/d/inner/deeper')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(s.move('/d', '/d/inner')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(s.move('/d', '/full')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await expect(s.move('/d', '/f')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(s.move('/f', '/emptydir')).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(s.move('/missing', '/x')).rejects.toMatchObject({ code: 'ENOENT' });
    await s.move('/d', '/emptydir');
    expect((await s.stat('/emptydir/inner')).type).toBe('dir');
    expect((await s.stat('/')).nlink).toBe(4);
    await s.hardLink('/f', '/g');
    await s.move('/f', '/g'); // two names of one inode: nothing happens
    expect((await s.stat('/f')).nlink).toBe(2);
  });
});

describe('data', () => {
  it('reads back writes at any offset, with holes as zeros', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const model = Buffer.alloc(400_000);
    const writes: Array<[number, number]> = [[0, 10], [65_530, 20], [150_000, 100_000], [399_000, 1000], [5, 3]];
    for (const [off, len] of writes) {
      const chunk = Buffer.alloc(len, (off % 251) + 1);
      chunk.copy(model, off);
      await s.write(f.ino, off, chunk);
    }
    expect((await s.getattr(f.ino)).size).toBe(400_000);
    expect((await s.read(f.ino, 0, 500_000)).equals(model)).toBe(true);
    expect((await s.read(f.ino, 65_528, 30)).equals(model.subarray(65_528, 65_558))).toBe(true);
    expect((await s.read(f.ino, 400_000, 10)).length).toBe(0);
  });

  it('a small write deep in a large file touches one block', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'big', 0o644, owner);
    await s.setattr(f.ino, { size: 10 * 2 ** 30 });
    await s.write(f.ino, 5 * 2 ** 30 + 100, Buffer.alloc(4096, 1));
    const blocks = await blockKeys(s.prefix);
    expect(blocks).toHaveLength(1);
    const map = await t.raw.zRangeWithScores(keysFor(s.prefix).map(f.ino), 0, -1);
    expect(map).toEqual([{ value: blocks[0]!.split(':b:')[1], score: (5 * 2 ** 30) / s.blockSize }]);
    // Holes are not counted: one 64 KiB block of a 10 GiB file.
    expect((await s.getattr(f.ino)).blocks).toBe(s.blockSize / 512);
    expect((await s.read(f.ino, 2 ** 30, 8)).equals(Buffer.alloc(8))).toBe(true);
  });

  it('truncate shrinks, and a later extension reads zeros, not old bytes', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.write(f.ino, 0, Buffer.alloc(300_000, 9));
    await s.setattr(f.ino, { size: 70_000 });
    await s.setattr(f.ino, { size: 300_000 });
    const data = await s.read(f.ino, 0, 300_000);
    expect(data.subarray(0, 70_000).equals(Buffer.alloc(70_000, 9))).toBe(true);
    expect(data.subarray(70_000).equals(Buffer.alloc(230_000))).toBe(true);
    expect(await t.raw.sCard(keysFor(s.prefix).gc)).toBe(0);
    expect(await fileBytes(s.prefix)).toBe(300_000);
    // Only the first two blocks exist (the second one cut at 70,000 bytes).
    expect(await t.raw.zCard(keysFor(s.prefix).map(f.ino))).toBe(2);
    await s.collected();
    expect(await blockKeys(s.prefix)).toHaveLength(2);
  });

  it('stores compressible blocks compressed and random blocks raw', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const random = Buffer.from(Array.from({ length: s.blockSize }, () => Math.floor(Math.random() * 256)));
    await s.write(f.ino, 0, Buffer.alloc(s.blockSize, 65));
    await s.write(f.ino, s.blockSize, random);
    const keys = keysFor(s.prefix);
    const bin = t.raw.withTypeMapping({ [RESP]: Buffer }) as unknown as { get(k: string): Promise<Buffer> };
    const [id0, id1] = await t.raw.zRange(keys.map(f.ino), 0, -1);
    const [a, b] = await Promise.all([bin.get(keys.block(id0!)), bin.get(keys.block(id1!))]);
    expect(a[0]).toBe(1);
    expect(a.length).toBeLessThan(1000);
    expect(b[0]).toBe(0);
    expect((await s.read(f.ino, s.blockSize, s.blockSize)).equals(random)).toBe(true);
  });

  it('a pending truncate deletion never removes blocks the file holds again', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const data = Buffer.alloc(300_000, 3);
    await s.write(f.ino, 0, data);
    // As if a shrink had left work for the collector and the file had grown again since.
    await t.raw.sAdd(keysFor(s.prefix).gc, String(f.ino));
    const again = await fresh({ prefix: s.prefix });
    await again.collected();
    expect((await again.read(f.ino, 0, 300_000)).equals(data)).toBe(true);
    expect(await t.raw.sCard(keysFor(s.prefix).gc)).toBe(0);
  });

  it('a file shrunk by more than one batch of blocks never shows its old blocks when it grows again', async () => {
    const s = await fresh({ blockSize: 4096 });
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    // 600 blocks of random bytes (raw: never deflated): more than one batch of 256.
    const big = Buffer.from(Array.from({ length: 600 * 4096 }, (_, i) => (i * 7919) % 251 + 1));
    await s.write(f.ino, 0, big);
    // The shrink releases one batch and leaves the rest to the collector; the growth right
    // after must release whatever is still there first (TRIM), never show it.
    await s.setattr(f.ino, { size: 10 });
    await s.setattr(f.ino, { size: 600 * 4096 });
    const data = await s.read(f.ino, 0, 600 * 4096);
    expect(data.subarray(0, 10).equals(big.subarray(0, 10))).toBe(true);
    expect(data.subarray(10).equals(Buffer.alloc(600 * 4096 - 10))).toBe(true);
    expect(await t.raw.zCard(keysFor(s.prefix).map(f.ino))).toBe(1);
    await s.collected();
    expect(await blockKeys(s.prefix)).toHaveLength(1);
  });

  it('bytes a crash left past the end of a file never reappear', async () => {
    const s = await fresh();
    // A shrink to 70,000 that stopped after its script: size set and z ("the last block may
    // hold bytes past the size") with it, the last block not yet rewritten.
    const crashedShrink = async (name: string) => {
      const f = await s.mknod(s.rootIno, name, 0o644, owner);
      await s.write(f.ino, 0, Buffer.alloc(100_000, 9));
      await patchRawInode(t.raw, s.prefix, f.ino, { size: 70_000, tailDirty: true });
      return f;
    };
    const f = await crashedShrink('f');
    await s.write(f.ino, 90_000, Buffer.from('x')); // a write in that block
    expect((await s.read(f.ino, 70_000, 20_000)).equals(Buffer.alloc(20_000))).toBe(true);
    const g = await crashedShrink('g');
    await s.setattr(g.ino, { size: 100_000 }); // a truncate that grows
    expect((await s.read(g.ino, 70_000, 30_000)).equals(Buffer.alloc(30_000))).toBe(true);
    const h = await crashedShrink('h');
    await s.write(h.ino, 200_000, Buffer.from('y')); // a write past that block, leaving a gap
    expect((await s.read(h.ino, 70_000, 30_000)).equals(Buffer.alloc(30_000))).toBe(true);
    expect((await rawInode(t.raw, s.prefix, h.ino))?.tailDirty).toBe(false);
  });

  it('a shrink into the middle of a block leaves nothing past the size', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.write(f.ino, 0, Buffer.alloc(100_000, 9));
    await s.setattr(f.ino, { size: 70_000 });
    expect(await rawInode(t.raw, s.prefix, f.ino)).toMatchObject({ size: 70_000, tailDirty: false });
    await s.write(f.ino, 200_000, Buffer.from('y'));
    expect((await s.read(f.ino, 70_000, 30_000)).equals(Buffer.alloc(30_000))).toBe(true);
  });

  it('refuses data operations on a symlink', async () => {
    const s = await fresh();
    await s.symlinkAt('target-name', '/l');
    const l = await s.stat('/l');
    await expect(s.readFile('/l')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(s.write(l.ino, 0, Buffer.from('x'))).rejects.toMatchObject({ code: 'EINVAL' });
    expect((await s.stat('/l')).size).toBe('target-name'.length);
  });

  it('reports a full Redis (maxmemory) as ENOSPC', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await t.raw.configSet('maxmemory', '1');
    try {
      await expect(s.write(f.ino, 0, Buffer.alloc(1000, 1))).rejects.toMatchObject({ code: 'ENOSPC' });
      await expect(s.mknod(s.rootIno, 'g', 0o644, owner)).rejects.toMatchObject({ code: 'ENOSPC' });
    } finally {
      await t.raw.configSet('maxmemory', '0');
    }
    expect((await s.getattr(f.ino)).size).toBe(0);
  });

  it('refuses sizes past the limit with EFBIG', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await expect(s.write(f.ino, 2 ** 50, Buffer.from('x'))).rejects.toMatchObject({ code: 'EFBIG' });
    await expect(s.setattr(f.ino, { size: 2 ** 51 })).rejects.toMatchObject({ code: 'EFBIG' });
    await expect(s.setattr(f.ino, { size: 2 ** 63 - 1 })).rejects.toMatchObject({ code: 'EFBIG' }); // truncate -s 9223372036854775807
    await expect(s.setattr(f.ino, { size: 1.5 })).rejects.toMatchObject({ code: 'EINVAL' });
  });
});

const RESP = 36; // RESP_TYPES.BLOB_STRING

describe('attributes and xattrs', () => {
  it('setattr changes mode bits, owner and nanosecond times', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const t = 981_173_106_123_456_789n;
    const a = await s.setattr(f.ino, { mode: 0o4755, uid: 5, gid: 6, mtimeNs: t });
    expect(a).toMatchObject({ mode: 0o104755, uid: 5, gid: 6, mtimeNs: t, atimeNs: f.atimeNs });
    expect(a.ctimeNs >= f.ctimeNs).toBe(true);
  });

  it('keeps xattrs with create/replace semantics', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.setxattr(f.ino, 'user.k', Buffer.from([0, 1, 255]));
    expect([...(await s.getxattr(f.ino, 'user.k'))]).toEqual([0, 1, 255]);
    await expect(s.setxattr(f.ino, 'user.k', Buffer.from('x'), { create: true })).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(s.setxattr(f.ino, 'user.n', Buffer.from('x'), { replace: true })).rejects.toMatchObject({ code: 'ENODATA' });
    expect(await s.listxattr(f.ino)).toEqual(['user.k']);
    await s.removexattr(f.ino, 'user.k');
    await expect(s.getxattr(f.ino, 'user.k')).rejects.toMatchObject({ code: 'ENODATA' });
    await expect(s.removexattr(f.ino, 'user.k')).rejects.toMatchObject({ code: 'ENODATA' });
  });
});

describe('opening and safety', () => {
  it('keeps two prefixes on one Redis apart', async () => {
    const a = await fresh();
    const b = await fresh();
    await a.writeFile('/only-in-a', 'a');
    expect(await b.list('/')).toEqual([]);
  });

  it('refuses changes with EROFS when read-only, and an empty prefix read-only with ENOENT', async () => {
    const s = await fresh();
    await s.writeFile('/f', 'data');
    const ro = await fresh({ prefix: s.prefix, readOnly: true });
    expect((await ro.readFile('/f')).toString()).toBe('data');
    await expect(ro.writeFile('/g', 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(ro.remove('/f')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(openStore({ url: t.redis.url, prefix: 'never-made', readOnly: true })).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a newer layout version and reports corrupt records as EIO', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    const g = await s.mknod(s.rootIno, 'g', 0o644, owner);
    const keys = keysFor(s.prefix);
    // A record too short to be one, and a whole one with a flag no layout defines.
    await setRawInode(t.raw, s.prefix, f.ino, 'garbage');
    const unknownFlag = encodeInodeRecord((await rawInode(t.raw, s.prefix, g.ino))!);
    unknownFlag[0] = 0x80;
    await setRawInode(t.raw, s.prefix, g.ino, unknownFlag);
    const warnings: string[] = [];
    const s2 = await fresh({ prefix: s.prefix, onWarning: (m) => warnings.push(m) });
    await expect(s2.getattr(f.ino)).rejects.toMatchObject({ code: 'EIO' });
    expect(warnings.join('\n')).toContain(`corrupt inode ${f.ino}`);
    // A script does not overwrite a record it cannot read (it is left for fsck to report).
    await expect(s2.setattr(f.ino, { mode: 0o600 })).rejects.toBeInstanceOf(Error);
    expect(await t.raw.hGet(keys.inodes(f.ino), String(f.ino))).toBe('garbage');
    await expect(s2.getattr(g.ino)).rejects.toMatchObject({ code: 'EIO' });
    expect(warnings.join('\n')).toContain(`corrupt inode ${g.ino}`);
    await t.raw.hSet(keys.superblock, 'version', '99');
    await expect(openStore({ url: t.redis.url, prefix: s.prefix })).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('reports an unreachable Redis as EIO without the password', async () => {
    const err = await openStore({ url: 'redis://u:s3cret@127.0.0.1:1', connectTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EIO' });
    expect(String((err as Error).message)).not.toContain('s3cret');
  });

  it('reports a server that accepts but never answers as EIO, within the connect timeout', async () => {
    // A listener that takes the connection and says nothing (a hung server, a wrong port).
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const err = await openStore({ url: `redis://u:s3cret@127.0.0.1:${port}`, connectTimeoutMs: 300 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'EIO' });
      expect(String((err as Error).message)).toMatch(/cannot reach Redis at .*no answer/);
      expect(String((err as Error).message)).not.toContain('s3cret');
    } finally {
      silent.close();
    }
  });

  it('two clients creating in one directory at once lose nothing', async () => {
    const a = await fresh();
    const b = await fresh({ prefix: a.prefix });
    await Promise.all([
      ...Array.from({ length: 200 }, (_, i) => a.mknod(a.rootIno, `a${i}`, 0o644, owner)),
      ...Array.from({ length: 200 }, (_, i) => b.mknod(b.rootIno, `b${i}`, 0o644, owner)),
    ]);
    const entries = await a.readdir(a.rootIno);
    expect(entries).toHaveLength(400);
    expect(new Set(entries.map((e) => e.ino)).size).toBe(400);
    expect((await a.statfs()).inodes).toBe(401);
  });
});

describe('two clients writing one file', () => {
  it('keep both writes when they change different bytes of the same blocks at once', async () => {
    const prefix = t.newPrefix();
    const [a, b] = [await fresh({ prefix }), await fresh({ prefix })];
    const f = await a.mknod(a.rootIno, 'shared', 0o644, owner);
    // 200 KiB in 1 KiB pieces: A writes the even ones, B the odd ones, all at the same time, so
    // most writes read-modify-write a block the other client is changing too.
    const PIECES = 200;
    const piece = (i: number) => Buffer.alloc(1024, i % 2 === 0 ? 0x41 + (i % 26) : 0x61 + (i % 26));
    await Promise.all([
      Promise.all([...Array(PIECES / 2).keys()].map((k) => a.write(f.ino, 2 * k * 1024, piece(2 * k)))),
      Promise.all([...Array(PIECES / 2).keys()].map((k) => b.write(f.ino, (2 * k + 1) * 1024, piece(2 * k + 1)))),
    ]);
    const data = await a.read(f.ino, 0, PIECES * 1024);
    const lost = [...Array(PIECES).keys()].filter((i) => !data.subarray(i * 1024, (i + 1) * 1024).equals(piece(i)));
    expect(lost).toEqual([]);
  });
});
