import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeInode, keysFor, type KeyLayout } from '@redisfs/schema';
import {
  deleteFilesystem, isFsError, openStore, restoreFilesystem, snapshotFilesystem, upgradeFilesystem,
  type Store, type UpgradeProgress, type UpgradeResult,
} from './index.js';
import { type Layout1Manifest, type Layout1Redis, type ManifestPrefix, readLayout1Manifest, startLayout1Redis } from '@redisfs/testing';
import { countsOf, storeFixture } from './internal/test-fixture.js';

const PREFIXES = ['skx', 'skx.Mon'] as const;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let manifest: Layout1Manifest;
beforeAll(async () => {
  manifest = await readLayout1Manifest();
});

/** Every key of a prefix: its metadata keys and its family's blocks. */
async function keysOf(redis: Layout1Redis, layout: KeyLayout): Promise<string[]> {
  const out = new Set<string>();
  for (const match of [layout.metaPattern, layout.blockPattern]) {
    for await (const keys of redis.raw.scanIterator({ MATCH: match, COUNT: 500 })) for (const k of keys) out.add(k);
  }
  return [...out].sort();
}

/** Regular files of a prefix by inode (hard links once), with their stored block indices. */
function filesOf(m: ManifestPrefix): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const p of Object.values(m.paths)) if (p.type === 'file') out.set(p.ino, p.storedBlocks ?? []);
  return out;
}

/** What the upgraded keys of a prefix must be: layout 1's, less the leftovers and the gc set, plus one map per file with blocks. */
function expectedKeys(prefix: string): string[] {
  const m = manifest.prefixes[prefix]!;
  const layout = keysFor(prefix);
  const gone = new Set([...manifest.crashLeftovers.blockKeys, layout.gc]);
  const maps = [...filesOf(m)].filter(([, blocks]) => blocks.length > 0).map(([ino]) => layout.map(ino));
  return [...m.keys.filter((k) => !gone.has(k)), ...maps].sort();
}

/** Checks the layout-2 keys of an upgraded prefix: superblock, block maps, nothing left over. */
async function checkKeys(redis: Layout1Redis, prefix: string): Promise<void> {
  const m = manifest.prefixes[prefix]!;
  const layout = keysFor(prefix);
  const { version, ...rest } = m.superblock;
  expect(version).toBe('1');
  expect(await redis.raw.hGetAll(layout.superblock)).toEqual({ ...rest, version: '2' });
  for (const [ino, blocks] of filesOf(m)) {
    const map = await redis.raw.zRangeWithScores(layout.map(ino), 0, -1);
    expect(map, `block map of inode ${ino}`).toEqual(blocks.map((index) => ({ value: `${ino}:${index}`, score: index })));
  }
  expect(await keysOf(redis, layout)).toEqual(expectedKeys(prefix));
  expect(await redis.raw.hGetAll(layout.stats)).toEqual(m.stats);
  expect(await redis.raw.get(layout.inoCounter)).toBe(m.inoCounter);
}

/** GET calls Redis has run so far (scripts included). */
async function getCalls(redis: Layout1Redis): Promise<number> {
  const info = await redis.raw.info('commandstats');
  return Number(/^cmdstat_get:calls=(\d+)/m.exec(info)?.[1] ?? 0);
}

/** Opens a prefix read-only and compares every path with the manifest. */
async function checkContents(redis: Layout1Redis, prefix: string): Promise<void> {
  const m = manifest.prefixes[prefix]!;
  const store = await openStore({ url: redis.url, prefix, readOnly: true });
  try {
    // The tree holds exactly the manifest's paths.
    const seen: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await store.list(dir)) {
        const path = `${dir === '/' ? '' : dir}/${e.name}`;
        seen.push(path);
        if (e.type === 'dir') await walk(path);
      }
    };
    seen.push('/');
    await walk('/');
    expect(seen.sort()).toEqual(Object.keys(m.paths).sort());
    for (const [path, want] of Object.entries(m.paths)) {
      const attr = await store.stat(path);
      expect(
        { ino: attr.ino, type: attr.type, mode: attr.mode.toString(8), uid: attr.uid, gid: attr.gid, size: attr.size, nlink: attr.nlink, rdev: attr.rdev },
        path,
      ).toEqual({ ino: want.ino, type: want.type, mode: want.mode, uid: want.uid, gid: want.gid, size: want.size, nlink: want.nlink, rdev: want.rdev });
      expect([attr.atimeNs, attr.mtimeNs, attr.ctimeNs].map(String), path).toEqual([want.atimeNs, want.mtimeNs, want.ctimeNs]);
      if (want.type === 'symlink') expect(await store.readlink(attr.ino), path).toBe(want.target);
      if (want.type === 'file' && want.sha256 !== null) {
        expect(sha256(await store.readFile(path)), path).toBe(want.sha256);
        expect(attr.blocks, path).toBe(Math.ceil(Math.min(want.size, (want.storedBlocks?.length ?? 0) * manifest.blockSize) / 512));
      }
      const names = (await store.listxattr(attr.ino)).sort();
      expect(names, path).toEqual(Object.keys(want.xattrs ?? {}).sort());
      for (const name of names) expect((await store.getxattr(attr.ino, name)).toString('base64'), `${path} ${name}`).toBe(want.xattrs![name]);
    }
    // The 1 TiB sparse file: its recorded ranges, one stored block (st_blocks 128), and a read of
    // 64 MiB around it fetches that block alone.
    const sparse = m.paths['/data/sparse.img']!;
    const attr = await store.stat('/data/sparse.img');
    expect(attr.size).toBe(2 ** 40);
    expect(attr.blocks).toBe(manifest.blockSize / 512);
    for (const r of [...sparse.sparse!.extents, ...sparse.sparse!.probes]) {
      expect(sha256(await store.read(attr.ino, r.offset, r.length)), `sparse.img @${r.offset}`).toBe(r.sha256);
    }
    const before = await getCalls(redis);
    const counts = await countsOf(store, () => store.read(attr.ino, 0, 64 * 1024 * 1024));
    expect(counts).toEqual({ HMGET: 2, ZRANGEBYSCORE: 1, GET: 1 });
    expect((await getCalls(redis)) - before).toBe(1);
  } finally {
    await store.close();
  }
}

/** Runs upgrades that stop at their `stopAt`-th progress call (1, 2, …) until one completes. */
async function upgradeWithKills(url: string, prefix: string): Promise<{ kills: number; result: UpgradeResult }> {
  let kills = 0;
  for (let stopAt = 1; stopAt < 100; stopAt++) {
    let calls = 0;
    const onProgress = (_: UpgradeProgress) => {
      if (++calls === stopAt) throw new Error('killed');
    };
    try {
      const result = await upgradeFilesystem({ url, prefix, onProgress });
      return { kills, result };
    } catch (err) {
      expect((err as Error).message).toMatch(/killed/);
      const sb = await openStore({ url, prefix, readOnly: true }).then(
        (s) => (void s.close(), 'opened'),
        (e: unknown) => (e as Error).message,
      );
      expect(sb).toMatch(`\`redisfs upgrade --prefix ${prefix}\``);
      kills++;
    }
  }
  throw new Error('the upgrade never completed');
}

describe('upgradeFilesystem: the layout-1 fixture', () => {
  let redis: Layout1Redis;
  beforeAll(async () => {
    redis = await startLayout1Redis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('loads as layout 1, and openStore refuses it naming `redisfs upgrade`', async () => {
    expect(await redis.raw.dbSize()).toBe(manifest.dbsize);
    for (const prefix of PREFIXES) {
      expect(await redis.raw.hGet(keysFor(prefix).superblock, 'version')).toBe('1');
      for (const readOnly of [false, true]) {
        const err = await openStore({ url: redis.url, prefix, readOnly }).then(() => undefined, (e: unknown) => e);
        expect(isFsError(err, 'EINVAL'), String(err)).toBe(true);
        expect((err as Error).message).toContain(`\`redisfs upgrade --prefix ${prefix}\``);
      }
    }
  });

  it('upgrades skx and its layout-1 snapshot skx.Mon, each on its own', async () => {
    for (const prefix of PREFIXES) {
      const progress: UpgradeProgress[] = [];
      const result = await upgradeFilesystem({ url: redis.url, prefix, onProgress: (p) => progress.push(p) });
      const files = filesOf(manifest.prefixes[prefix]!);
      const blocks = [...files.values()].reduce((n, b) => n + b.length, 0);
      const leftovers = prefix === 'skx' ? manifest.crashLeftovers.blockKeys.length : 0;
      expect(result).toMatchObject({
        prefix, alreadyCurrent: false, began: 'new', blocksMapped: blocks, blocksDropped: leftovers, keysIgnored: 0,
        gcEntriesDropped: prefix === 'skx' ? manifest.crashLeftovers.gcMembers.length : 0,
      });
      expect(result.scanned).toBeGreaterThanOrEqual(blocks + leftovers);
      expect(progress.length).toBeGreaterThan(1); // bounded batches, not one sweep
      // The estimate of the keys to scan ends exact (the cursor has walked the whole keyspace).
      expect(progress.at(-1)).toEqual({ scanned: result.scanned, blocksMapped: blocks, blocksDropped: leftovers, total: result.scanned });
      expect(progress.map((p) => p.scanned)).toEqual(progress.map((p) => p.scanned).sort((a, b) => a - b));
      // Block keys are spread evenly in SCAN order: once a tenth is scanned, estimates are close.
      for (const p of progress.filter((q) => q.scanned >= result.scanned / 10)) {
        expect(p.total, JSON.stringify(p)).toBeGreaterThan(result.scanned / 2);
        expect(p.total, JSON.stringify(p)).toBeLessThan(result.scanned * 2);
      }
      await checkKeys(redis, prefix);
    }
  });

  it('drops the crash leftovers of skx, not the blocks of skx.Mon', async () => {
    for (const key of manifest.crashLeftovers.blockKeys) expect(await redis.raw.exists(key), key).toBe(0);
    expect(await redis.raw.exists(manifest.crashLeftovers.gcKey)).toBe(0);
    const mon = keysFor('skx.Mon');
    expect(await redis.raw.exists([0, 1, 2].map((i) => mon.block(`14:${i}`)))).toBe(3);
  });

  it('keeps every path of the manifest: attributes, contents, symlinks, xattrs', async () => {
    for (const prefix of PREFIXES) await checkContents(redis, prefix);
  });

  it('says alreadyCurrent the second time, and changes nothing', async () => {
    for (const prefix of PREFIXES) {
      const before = await keysOf(redis, keysFor(prefix));
      expect(await upgradeFilesystem({ url: redis.url, prefix })).toMatchObject({ alreadyCurrent: true, blocksMapped: 0 });
      expect(await keysOf(redis, keysFor(prefix))).toEqual(before);
    }
  });

  it('mounts read-write after: write, append, truncate, unlink, snapshot', async () => {
    const warnings: string[] = [];
    const store: Store = await openStore({ url: redis.url, prefix: 'skx', onWarning: (w) => warnings.push(w) });
    const layout = keysFor('skx');
    try {
      // Into a compressed layout-1 block (read-modify-write) and at the end of a raw one (in place).
      const notes = await store.readFile('/docs/notes.txt');
      const { ino: notesIno } = await store.stat('/docs/notes.txt');
      await store.write(notesIno, 70_000, Buffer.from('PATCHED'));
      Buffer.from('PATCHED').copy(notes, 70_000);
      expect(sha256(await store.readFile('/docs/notes.txt'))).toBe(sha256(notes));
      const random = await store.readFile('/data/random.bin');
      const { ino: randomIno } = await store.stat('/data/random.bin');
      expect(await store.write(randomIno, random.length, Buffer.from('appended'))).toBe(random.length + 8);
      expect(sha256(await store.readFile('/data/random.bin'))).toBe(sha256(Buffer.concat([random, Buffer.from('appended')])));
      // Truncate and unlink release layout-1 blocks like any other.
      const shrunk = await store.readFile('/data/shrunk.bin');
      const { ino: shrunkIno } = await store.stat('/data/shrunk.bin');
      await store.setattr(shrunkIno, { size: 1000 });
      expect(await store.readFile('/data/shrunk.bin')).toEqual(shrunk.subarray(0, 1000));
      await store.remove('/docs/deep/er/still/bottom.txt');
      await store.remove('/docs/report.txt');
      expect(sha256(await store.readFile('/data/report-link.txt'))).toBe(manifest.prefixes.skx!.paths['/data/report-link.txt']!.sha256);
      await store.collected();
      expect(await redis.raw.exists([layout.block('18:1'), layout.block('13:0')])).toBe(0);
      expect(await redis.raw.exists(layout.block('20:0'))).toBe(1);
      // A layout-2 snapshot shares the layout-1 blocks; writing after it leaves the snapshot as it was.
      await snapshotFilesystem({ url: redis.url, from: 'skx', to: 'skx@after' });
      await store.writeFile('/docs/notes.txt', 'replaced');
      const snap = await openStore({ url: redis.url, prefix: 'skx@after', readOnly: true });
      try {
        expect(sha256(await snap.readFile('/docs/notes.txt'))).toBe(sha256(notes));
        expect(sha256(await snap.readFile('/data/exact-64k.bin'))).toBe(manifest.prefixes.skx!.paths['/data/exact-64k.bin']!.sha256);
      } finally {
        await snap.close();
      }
      await deleteFilesystem({ url: redis.url, prefix: 'skx@after' });
      await store.collected();
      expect(sha256(await store.readFile('/data/exact-64k.bin'))).toBe(manifest.prefixes.skx!.paths['/data/exact-64k.bin']!.sha256);
      expect((await store.readFile('/docs/notes.txt')).toString()).toBe('replaced');
      expect(warnings).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe('upgradeFilesystem: resuming', () => {
  let redis: Layout1Redis;
  beforeAll(async () => {
    redis = await startLayout1Redis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('is killed after each batch in turn and still upgrades skx exactly', async () => {
    // Keys layout 1 never wrote, under the block pattern: left alone (fsck judges them).
    const layout = keysFor('skx');
    const strays = [layout.block('7'), layout.block('012:0'), layout.block('x')];
    for (const k of strays) await redis.raw.set(k, 'stray');
    const { kills, result } = await upgradeWithKills(redis.url, 'skx');
    expect(kills).toBeGreaterThan(2);
    expect(result.began).toBe('resumed');
    expect(await redis.raw.exists(strays)).toBe(3);
    await redis.raw.del(strays);
    await checkKeys(redis, 'skx');
    await checkContents(redis, 'skx');
  });

  it('starts the scan over when the saved cursor is from another Redis process', async () => {
    const layout = keysFor('skx.Mon');
    await expect(
      upgradeFilesystem({ url: redis.url, prefix: 'skx.Mon', onProgress: () => { throw new Error('killed'); } }),
    ).rejects.toThrow(/killed/);
    const field = await redis.raw.hGet(layout.superblock, 'upgrade');
    expect(field).toMatch(/^\d+@[0-9a-f]{40}$/);
    await redis.raw.hSet(layout.superblock, 'upgrade', `${field!.split('@')[0]}@${'0'.repeat(40)}`);
    const result = await upgradeFilesystem({ url: redis.url, prefix: 'skx.Mon' });
    const blocks = [...filesOf(manifest.prefixes['skx.Mon']!).values()].reduce((n, b) => n + b.length, 0);
    expect(result).toMatchObject({ began: 'restarted', blocksDropped: 0 });
    expect(result.scanned).toBeGreaterThanOrEqual(blocks);
    await checkKeys(redis, 'skx.Mon');
    await checkContents(redis, 'skx.Mon');
  });
});

describe('upgradeFilesystem: rules and refusals', () => {
  const t = storeFixture('up');
  const url = () => t.redis.url;
  const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (isFsError(e) ? e.code : String(e)));

  /** A layout-1 inode record: a regular file of `size` bytes unless `mode` says otherwise. */
  const node = (size: number, mode = 0o100644) =>
    encodeInode({ mode, uid: 0, gid: 0, size, nlink: 1, rdev: 0, atimeNs: 1n, mtimeNs: 1n, ctimeNs: 1n, target: undefined, generation: 1, parent: undefined });

  /** A small layout-1 filesystem written by hand (block size 4096): inodes, and block ids `<ino>:<index>`. */
  async function layout1(prefix: string, inodes: Record<number, Record<string, string>>, blocks: string[]): Promise<KeyLayout> {
    const layout = keysFor(prefix);
    await t.raw.hSet(layout.superblock, { version: '1', bsize: '4096', codec: 'zlib', created: '1', maxsize: String(2 ** 50) });
    await t.raw.hSet(layout.inode(1), { ...node(0, 0o40755), n: '2', p: '1' });
    for (const [ino, rec] of Object.entries(inodes)) await t.raw.hSet(layout.inode(Number(ino)), rec);
    await Promise.all(blocks.map((id) => t.raw.set(layout.block(id), Buffer.from([0, 120]))));
    return layout;
  }

  it('maps a block by its inode: within a regular file kept, else dropped; a corrupt inode keeps its blocks', async () => {
    const layout = await layout1(
      'rules',
      { 2: node(4097), 3: node(0, 0o40755), 4: { u: '0' }, 5: node(0) },
      ['2:0', '2:1', '2:2', '2:9', '3:0', '4:0', '4:5', '5:0', '6:0'],
    );
    await t.raw.sAdd(layout.gc, ['2:2:10', '6:0:1']);
    const result = await upgradeFilesystem({ url: url(), prefix: 'rules' });
    expect(result).toMatchObject({ blocksMapped: 4, blocksDropped: 5, gcEntriesDropped: 2 });
    expect(await t.raw.zRange(layout.map(2), 0, -1)).toEqual(['2:0', '2:1']);
    expect(await t.raw.zRange(layout.map(4), 0, -1)).toEqual(['4:0', '4:5']);
    for (const id of ['2:2', '2:9', '3:0', '5:0', '6:0']) expect(await t.raw.exists(layout.block(id)), id).toBe(0);
    expect(await t.raw.exists([layout.map(3), layout.map(5), layout.gc])).toBe(0);
  });

  it('a layout-1 filesystem is neither snapshotted nor restored before its upgrade; deleting it takes its blocks too', async () => {
    const prefix = t.newPrefix();
    const layout = await layout1(prefix, { 2: node(5000) }, ['2:0', '2:1']);
    await t.raw.hSet(layout.dir(1), 'f', 'f2');
    // One at a time: a second promise made up front would reject unawaited.
    for (const copy of [
      () => snapshotFilesystem({ url: url(), from: prefix, to: `${prefix}@a` }),
      () => restoreFilesystem({ url: url(), from: prefix, to: `${prefix}@b` }),
    ]) {
      const err = await copy().then(() => undefined, (e: unknown) => e);
      expect(isFsError(err, 'EINVAL'), String(err)).toBe(true);
      expect((err as Error).message).toContain(`redisfs upgrade --prefix ${prefix}`);
    }
    expect(await t.raw.exists([keysFor(`${prefix}@a`).superblock, keysFor(`${prefix}@b`).superblock])).toBe(0);
    await deleteFilesystem({ url: url(), prefix, onlySnapshot: false });
    expect(await t.raw.exists([layout.block('2:0'), layout.block('2:1'), layout.inode(2), layout.superblock])).toBe(0);
  });

  it('refuses what it cannot upgrade, and what is in use', async () => {
    expect(await code(upgradeFilesystem({ url: url(), prefix: 'nothing' }))).toBe('ENOENT');
    expect(await code(upgradeFilesystem({ url: url(), prefix: 'bad:prefix' }))).toBe('EINVAL');
    const fresh = await t.fresh();
    expect(await upgradeFilesystem({ url: url(), prefix: fresh.prefix })).toMatchObject({ alreadyCurrent: true, blocksMapped: 0 });
    // Layout 2 with a stray `upgrade` field (it would never mount): the field goes.
    const stray = await openStore({ url: url(), prefix: 'stray' });
    await stray.close();
    await t.raw.hSet(keysFor('stray').superblock, 'upgrade', '5@x');
    expect(await upgradeFilesystem({ url: url(), prefix: 'stray' })).toMatchObject({ alreadyCurrent: true });
    expect(await t.raw.hGet(keysFor('stray').superblock, 'upgrade')).toBeNull();
    const future = await layout1('future', {}, []);
    await t.raw.hSet(future.superblock, 'version', '3');
    await expect(upgradeFilesystem({ url: url(), prefix: 'future' })).rejects.toThrow(/layout version 3.*upgrade redisfs/);
    // Layout 1 had no '@': a layout-1 superblock there was copied by a layout-2 tool.
    await layout1('fam@copy', {}, []);
    await expect(upgradeFilesystem({ url: url(), prefix: 'fam@copy' })).rejects.toThrow(/shares the blocks of 'fam'/);

    const busy = await layout1('busy', {}, ['1:0']);
    await t.raw.hSet(busy.snapshot, { to: 'busy@x', id: 'i' });
    expect(await code(upgradeFilesystem({ url: url(), prefix: 'busy' }))).toBe('EBUSY');
    await t.raw.del(busy.snapshot);
    await t.raw.hSet(busy.snapshotLock, { from: 'other', id: 'i' });
    expect(await code(upgradeFilesystem({ url: url(), prefix: 'busy' }))).toBe('EBUSY');
    await t.raw.del(busy.snapshotLock);
    // Mounted (by an older redisfs that still reads layout 1): its connection is named after the prefix.
    const mount = t.raw.duplicate();
    await mount.connect();
    try {
      await mount.clientSetName('redisfs:busy:rw');
      await expect(upgradeFilesystem({ url: url(), prefix: 'busy' })).rejects.toThrow(/EBUSY.*in use by 1 connection/);
    } finally {
      await mount.close();
    }
    expect(await t.raw.hGet(busy.superblock, 'version')).toBe('1');
    expect(await upgradeFilesystem({ url: url(), prefix: 'busy' })).toMatchObject({ began: 'new', blocksDropped: 1 });
  });

  it('stops with EBUSY when a snapshot starts in the middle, and resumes after', async () => {
    const ids = Array.from({ length: 3000 }, (_, i) => `2:${i}`);
    const layout = await layout1('mid', { 2: node(4096 * 3000) }, ids);
    let calls = 0;
    const err = await upgradeFilesystem({
      url: url(),
      prefix: 'mid',
      onProgress: () => {
        if (++calls === 1) void t.raw.hSet(layout.snapshot, { to: 'mid@x', id: 'i' });
      },
    }).then(() => undefined, (e: unknown) => e);
    expect(isFsError(err, 'EBUSY'), String(err)).toBe(true);
    await t.raw.del(layout.snapshot);
    expect(await upgradeFilesystem({ url: url(), prefix: 'mid' })).toMatchObject({ began: 'resumed', blocksDropped: 0 });
    expect(await t.raw.zCard(layout.map(2))).toBe(3000);
  });
});
