/**
 * Names are bytes, against a real redis-server: every byte but '/' and NUL, and sequences that
 * are not valid UTF-8, are created, listed, looked up, renamed and removed exactly, each its own
 * entry (a UTF-8 decoding would merge them all into U+FFFD); symlink targets keep their bytes;
 * fsck reads, reports and repairs entries by their exact bytes. The Buffer views that carry names
 * are checked on a Redis Cluster and through Sentinel too.
 */
import { keysFor } from '@redisfs/schema';
import { describeWithRedis, startRedisCluster, startRedisSentinel } from '@redisfs/testing';
import { describe, expect, it } from 'vitest';
import { checkFilesystem, openStore, type Store } from './index.js';
import { connectClient } from './internal/connect.js';
import { TEST_OWNER as owner, storeFixture } from './internal/test-fixture.js';
import { hGetAllBinary, hScanBinary } from './internal/topology.js';

const t = storeFixture('bytes');

const b = (...bytes: number[]) => Buffer.from(bytes);
const hex = (names: readonly Buffer[]) => names.map((n) => n.toString('hex')).sort();

/** Byte values allowed in a name: all but NUL and '/'. */
const BYTES = Array.from({ length: 255 }, (_, i) => i + 1).filter((x) => x !== 0x2f);
/** Sequences that are not valid UTF-8 (each decodes with U+FFFD), and a real U+FFFD. */
const INVALID = [b(0xc3, 0x28), b(0xff, 0xfe), b(0x80), b(0xed, 0xa0, 0x80), b(0xc0, 0xaf), b(0xfe, 0xff, 0xfd, 0x41)];
const REAL_FFFD = b(0xef, 0xbf, 0xbd);

/** Every single byte ('.' alone is reserved), every byte twice ('..' is reserved), the sequences above. */
function testNames(): Buffer[] {
  const all = new Map<string, Buffer>();
  for (const x of BYTES) {
    if (x !== 0x2e) all.set(b(x).toString('hex'), b(x));
    if (x !== 0x2e) all.set(b(x, x).toString('hex'), b(x, x));
  }
  for (const n of [...INVALID, REAL_FFFD]) all.set(n.toString('hex'), n);
  return [...all.values()];
}

async function listing(s: Store, dir: number): Promise<Buffer[]> {
  return (await s.readdir(dir)).map((e) => e.nameBytes);
}

describe('byte names', () => {
  it('creates, lists, looks up, renames and removes every byte name exactly', async () => {
    const s = await t.fresh();
    const dir = (await s.mkdir(s.rootIno, 'd', 0o755, owner)).ino;
    const other = (await s.mkdir(s.rootIno, b(0xff, 0x2e, 0x80), 0o755, owner)).ino;
    const names = testNames();
    expect(names.length).toBe(253 + 253 + INVALID.length - 1 + 1); // 0x80 alone is among the single bytes
    const inoOf = new Map<string, number>();
    for (const name of names) inoOf.set(name.toString('hex'), (await s.mknod(dir, name, 0o644, owner)).ino);
    expect(new Set(inoOf.values()).size).toBe(names.length);

    // The listing holds exactly the names made, byte for byte; `name` is their UTF-8 decoding.
    const entries = await s.readdir(dir);
    expect(hex(entries.map((e) => e.nameBytes))).toEqual(hex(names));
    for (const e of entries) {
      expect(e.name).toBe(e.nameBytes.toString('utf8'));
      expect(e.ino).toBe(inoOf.get(e.nameBytes.toString('hex')));
    }
    expect(entries.filter((e) => e.name === '\uFFFD').length).toBeGreaterThan(100); // would have been one entry
    // Page by page too (the HSCAN cursor through the Buffer view), deduplicated by bytes.
    const paged = new Map<string, Buffer>();
    let cursor = '0';
    do {
      const page = await s.readdirPage(dir, cursor, 10);
      for (const e of page.entries) paged.set(e.nameBytes.toString('hex'), e.nameBytes);
      cursor = page.cursor;
    } while (cursor !== '0');
    expect([...paged.keys()].sort()).toEqual(hex(names));

    // Each name finds its own inode, by lookup and by a Buffer path (split on the byte '/').
    for (const name of names) {
      const ino = inoOf.get(name.toString('hex'));
      expect((await s.lookup(dir, name)).ino).toBe(ino);
      expect((await s.resolve(Buffer.concat([Buffer.from('/d/'), name]))).ino).toBe(ino);
      expect((await s.open(Buffer.concat([Buffer.from('//d/./'), name]))).ino).toBe(ino);
    }
    // fsck sees every entry as its own (a lossy reading would find orphans and wrong link counts).
    const full = await checkFilesystem({ url: t.redis.url, prefix: s.prefix });
    expect(full.problems).toEqual([]);
    expect(full.counts.entries).toBe(names.length + 2);
    // A string stands for its UTF-8 bytes.
    expect((await s.lookup(dir, '\uFFFD')).ino).toBe(inoOf.get(REAL_FFFD.toString('hex')));
    expect((await s.lookup(dir, 'A')).ino).toBe(inoOf.get('41'));

    // Renamed to other byte names (half into another directory), then back.
    const moved = (name: Buffer) => Buffer.concat([b(0xff, 0xff, 0xfe), name]);
    const away = (i: number) => (i % 2 === 0 ? dir : other);
    for (const [i, name] of names.entries()) await s.rename(dir, name, away(i), moved(name));
    expect(await listing(s, dir).then((l) => hex(l))).toEqual(hex(names.filter((_, i) => away(i) === dir).map(moved)));
    expect(await listing(s, other).then((l) => hex(l))).toEqual(hex(names.filter((_, i) => away(i) === other).map(moved)));
    for (const [i, name] of names.entries()) {
      expect((await s.lookup(away(i), moved(name))).ino).toBe(inoOf.get(name.toString('hex')));
      await expect(s.lookup(dir, name)).rejects.toMatchObject({ code: 'ENOENT' });
    }
    for (const [i, name] of names.entries()) await s.rename(away(i), moved(name), dir, name);
    expect(hex(await listing(s, dir))).toEqual(hex(names));
    expect(await listing(s, other)).toEqual([]);

    // Hard links and removal by bytes: unlinking one name leaves its look-alikes.
    await s.link(inoOf.get('ff')!, other, b(0xfe));
    expect((await s.lookup(other, b(0xfe))).ino).toBe(inoOf.get('ff'));
    await s.unlink(other, b(0xfe));
    for (const name of names) await s.unlink(dir, name);
    expect(await s.readdir(dir)).toEqual([]);
    await s.rmdir(s.rootIno, b(0xff, 0x2e, 0x80));
    await s.rmdir(s.rootIno, 'd');
    expect(await s.readdir(s.rootIno)).toEqual([]);

    const report = await checkFilesystem({ url: t.redis.url, prefix: s.prefix });
    expect(report.problems).toEqual([]);
    expect(report.counts.inodes).toBe(1);
  });

  it('keeps symlink targets, directories and opened files byte for byte', async () => {
    const s = await t.fresh({ session: {} });
    const target = Buffer.concat([Buffer.from('tgt'), b(0xff, 0xfe)]);
    const link = await s.symlink(s.rootIno, b(0xc3, 0x28), target, owner);
    expect(link.size).toBe(5);
    expect(await s.readlinkBytes(link.ino)).toEqual(target);
    expect(await s.readlink(link.ino)).toBe('tgt\uFFFD\uFFFD');
    // A string target is its UTF-8 bytes.
    const utf8 = await s.symlink(s.rootIno, 'u', 'é/ü', owner);
    expect(await s.readlinkBytes(utf8.ino)).toEqual(Buffer.from('é/ü'));

    const dirName = b(0xed, 0xa0, 0x80);
    const d = await s.mkdir(s.rootIno, dirName, 0o755, owner);
    const { attr, created } = await s.createOpen(d.ino, b(0x80, 0x81), 0o644, owner, { exclusive: true });
    expect(created).toBe(true);
    await expect(s.createOpen(d.ino, b(0x80, 0x81), 0o644, owner, { exclusive: true })).rejects.toMatchObject({ code: 'EEXIST' });
    await s.release(attr.ino);
    const path = Buffer.concat([Buffer.from('/'), dirName, Buffer.from('/'), b(0x80, 0x81)]);
    expect((await s.open(path)).ino).toBe(attr.ino);
    await s.release(attr.ino);
    await s.write(attr.ino, 0, Buffer.from('data'));
    expect(hex(await listing(s, d.ino))).toEqual(hex([b(0x80, 0x81)]));
    expect(hex(await listing(s, s.rootIno))).toEqual(hex([b(0xc3, 0x28), Buffer.from('u'), dirName]));
    await expect(s.rmdir(s.rootIno, dirName)).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await s.unlink(d.ino, b(0x80, 0x81));
    await s.rmdir(s.rootIno, dirName);
    await s.unlink(s.rootIno, b(0xc3, 0x28));
    expect(hex(await listing(s, s.rootIno))).toEqual(hex([Buffer.from('u')]));
  });

  it('checks names on their bytes', async () => {
    const s = await t.fresh();
    const make = (name: string | Buffer) => s.mknod(s.rootIno, name, 0o644, owner);
    await expect(make(b(0x2e))).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(make(b(0x2e, 0x2e))).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(make(b(0x61, 0x2f, 0x62))).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(make(b(0x61, 0x00))).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(make(Buffer.alloc(0))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(make(Buffer.alloc(256, 0xff))).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    // 255 bytes is the limit, whatever they are (a string counts its UTF-8 bytes: 128 'é' are 256).
    await make(Buffer.alloc(255, 0xff));
    await expect(make('é'.repeat(128))).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    await expect(s.rmdir(s.rootIno, b(0x2e))).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(s.rmdir(s.rootIno, b(0x2e, 0x2e))).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await expect(s.symlink(s.rootIno, 'l', b(0x61, 0x00), owner)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(s.symlink(s.rootIno, 'l', Buffer.alloc(0), owner)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(s.resolve(b(0x61))).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(s.resolve(Buffer.from('/a/../b'))).rejects.toMatchObject({ code: 'EINVAL' });
    // A message shows such a name readably: other bytes escaped.
    await expect(s.lookup(s.rootIno, b(0xff, 0x0a, 0x5c, 0x41))).rejects.toThrow(/\\xff\\x0a\\\\A/);
    expect(hex(await listing(s, s.rootIno))).toEqual(hex([Buffer.alloc(255, 0xff)]));
  });

  it('fsck reports and repairs an entry by its exact bytes, beside a look-alike', async () => {
    const s = await t.fresh();
    const k = keysFor(s.prefix);
    // A real U+FFFD file, and a dangling entry whose bytes a UTF-8 decoding would also read as U+FFFD.
    const kept = await s.mknod(s.rootIno, REAL_FFFD, 0o644, owner);
    await s.mknod(s.rootIno, b(0xff), 0o644, owner);
    await t.raw.hSet(k.dir(1), b(0xff, 0xfe, 0x41), 'f999999');
    await t.raw.hSet(k.dir(1), b(0xfe), 'f999998');

    const found = await checkFilesystem({ url: t.redis.url, prefix: s.prefix });
    const dangling = found.problems.filter((p) => p.kind === 'entry-dangling');
    expect(hex(dangling.map((p) => p.nameBytes!))).toEqual(hex([b(0xff, 0xfe, 0x41), b(0xfe)]));
    expect(dangling.map((p) => p.name).sort()).toEqual(['\\xfe', '\\xff\\xfeA']);
    expect(dangling.find((p) => p.ino === 999999)?.message).toBe(`entry '\\xff\\xfeA' of directory 1 names inode 999999, which does not exist`);
    expect(found.problems.map((p) => p.kind)).toEqual(['entry-dangling', 'entry-dangling']);

    const repaired = await checkFilesystem({ url: t.redis.url, prefix: s.prefix, repair: true });
    expect(repaired.remaining).toEqual([]);
    expect(repaired.repaired.map((r) => r.message).sort()).toEqual([
      `removed entry '\\xfe' (f999998) of directory 1`,
      `removed entry '\\xff\\xfeA' (f999999) of directory 1`,
    ]);
    // Exactly those two fields went; the look-alikes stay.
    expect(await t.raw.hExists(k.dir(1), b(0xff, 0xfe, 0x41))).toBe(0);
    expect(await t.raw.hExists(k.dir(1), b(0xfe))).toBe(0);
    expect((await s.lookup(s.rootIno, REAL_FFFD)).ino).toBe(kept.ino);
    expect(hex(await listing(s, s.rootIno))).toEqual(hex([REAL_FFFD, b(0xff)]));
    expect((await checkFilesystem({ url: t.redis.url, prefix: s.prefix })).problems).toEqual([]);
  });

  it('reads hash fields as bytes, in one HGETALL or in HSCAN pages (fsck, for directories of any size)', async () => {
    const client = await connectClient({ url: t.redis.url });
    try {
      const key = `{${t.newPrefix()}}:d:1`;
      const names = testNames();
      await t.raw.hSet(key, names.map((n, i) => [n, `f${i + 2}`] as [Buffer, string]));
      const all = await hGetAllBinary(client, key);
      expect(hex(all.map((e) => e.field))).toEqual(hex(names));
      const paged = new Map<string, string>();
      for await (const page of hScanBinary(client, key, 10)) {
        for (const { field, value } of page) paged.set(field.toString('hex'), value.toString());
      }
      expect([...paged.keys()].sort()).toEqual(hex(names));
      expect(paged.get(REAL_FFFD.toString('hex'))).toBe(`f${names.indexOf(REAL_FFFD) + 2}`);
    } finally {
      await client.close();
    }
  });
});

/** Byte names through every kind of client: listing, a Buffer path, a target, and fsck's reading. */
function throughTopology(url: () => string): void {
  it('lists, opens, reads back and checks byte names', async () => {
    const names = [b(0xff), b(0xfe), REAL_FFFD, b(0xc0, 0xaf)];
    const s = await openStore({ url: url(), prefix: 'bt', session: {} });
    try {
      const d = await s.mkdir(s.rootIno, b(0x80), 0o755, owner);
      for (const name of names) await s.mknod(d.ino, name, 0o644, owner);
      const link = await s.symlink(s.rootIno, b(0xff), b(0x61, 0xff), owner);
      expect(await s.readlinkBytes(link.ino)).toEqual(b(0x61, 0xff));
      expect(hex(await listing(s, d.ino))).toEqual(hex(names));
      expect((await s.open(b(0x2f, 0x80, 0x2f, 0xff))).type).toBe('file');
      const report = await checkFilesystem({ url: url(), prefix: 'bt' });
      expect(report.problems).toEqual([]);
      expect(report.counts.entries).toBe(names.length + 2);
    } finally {
      await s.close();
    }
  });
}

await describeWithRedis('byte names on a Redis Cluster', { redisTools: true, start: () => startRedisCluster({ masters: 3, replicasPerMaster: 0 }) }, (cluster) => {
  throughTopology(() => `redis://${cluster.seeds.map((n) => `${n.host}:${n.port}`).join(',')}`);
});

await describeWithRedis('byte names through Sentinel', { redisTools: true, start: () => startRedisSentinel({ replicas: 0, sentinels: 1 }) }, (sentinel) => {
  throughTopology(() => `redis+sentinel://${sentinel.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}/${sentinel.masterName}`);
});
