/**
 * The upgrade of layout 1 to layout 3 (upgrade.ts): the layout-1 fixture (packages/store/fixtures/
 * layout1) through both passes, killed and resumed, read back; and the rules of the upgrade on
 * small filesystems written by hand (what it maps, drops, packs or keeps; what it refuses).
 * The layout-2 fixture and a cluster: upgrade-layout2.test.ts.
 */
import { RESP_TYPES } from '@redis/client';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeInode, keysFor, type KeyLayout } from '@redisfs/schema';
import {
  checkFilesystem, deleteFilesystem, isFsError, openStore, restoreFilesystem, snapshotFilesystem, upgradeFilesystem,
  type Store, type UpgradeProgress,
} from './index.js';
import { type Layout1Manifest, readLayout1Manifest, startLayout1Redis } from '@redisfs/testing';
import { countsOf, rawInode, storeFixture } from './internal/test-fixture.js';
import {
  type RawClient, checkContents, checkEstimates, filesOf, fixtureServer, inodeHashesIn, keysOf, layout3Keys, openOutcome, recordOf,
  sha256, upgradeWithKills,
} from './internal/upgrade-fixtures.js';

const PREFIXES = ['skx', 'skx.Mon'] as const;

let manifest: Layout1Manifest;
beforeAll(async () => {
  manifest = await readLayout1Manifest();
});

/** Checks the layout-3 keys of a prefix upgraded from layout 1: superblock, maps, buckets, nothing left over. */
async function checkKeys1(raw: RawClient, prefix: string): Promise<void> {
  const m = manifest.prefixes[prefix]!;
  const layout = keysFor(prefix);
  const { version, ...rest } = m.superblock;
  expect(version).toBe('1');
  expect(await raw.hGetAll(layout.superblock)).toEqual({ ...rest, version: '3' });
  for (const [ino, blocks] of filesOf(m)) {
    const map = await raw.zRangeWithScores(layout.map(ino), 0, -1);
    expect(map, `block map of inode ${ino}`).toEqual(blocks.map((index) => ({ value: `${ino}:${index}`, score: index })));
  }
  const gone = new Set([...manifest.crashLeftovers.blockKeys, layout.gc]);
  const maps = [...filesOf(m)].filter(([, blocks]) => blocks.length > 0).map(([ino]) => layout.map(ino));
  const want = layout3Keys(prefix, [...m.keys.filter((k) => !gone.has(k)), ...maps], m.paths);
  expect(await keysOf(raw, layout)).toEqual(want);
  expect(await raw.hGetAll(layout.stats)).toEqual(m.stats);
  expect(await raw.get(layout.inoCounter)).toBe(m.inoCounter);
}

/** GET calls Redis has run so far (scripts included). */
async function getCalls(raw: RawClient): Promise<number> {
  const info = await raw.info('commandstats');
  return Number(/^cmdstat_get:calls=(\d+)/m.exec(info)?.[1] ?? 0);
}

describe('upgradeFilesystem: the layout-1 fixture', () => {
  const redis = fixtureServer(startLayout1Redis);

  it('loads as layout 1, and openStore refuses it naming `redisfs upgrade`', async () => {
    expect(await redis().raw.dbSize()).toBe(manifest.dbsize);
    for (const prefix of PREFIXES) {
      expect(await redis().raw.hGet(keysFor(prefix).superblock, 'version')).toBe('1');
      for (const readOnly of [false, true]) {
        const err = await openStore({ url: redis().url, prefix, readOnly }).then(() => undefined, (e: unknown) => e);
        expect(isFsError(err, 'EINVAL'), String(err)).toBe(true);
        expect((err as Error).message).toContain(`\`redisfs upgrade --prefix ${prefix}\``);
      }
    }
  });

  it('upgrades skx and its layout-1 snapshot skx.Mon to layout 3, each on its own: blocks, then inodes', async () => {
    for (const prefix of PREFIXES) {
      const progress: UpgradeProgress[] = [];
      const result = await upgradeFilesystem({ url: redis().url, prefix, onProgress: (p) => progress.push(p) });
      const files = filesOf(manifest.prefixes[prefix]!);
      const blocks = [...files.values()].reduce((n, b) => n + b.length, 0);
      const leftovers = prefix === 'skx' ? manifest.crashLeftovers.blockKeys.length : 0;
      const inodes = inodeHashesIn(prefix, manifest.prefixes[prefix]!.keys);
      expect(result).toMatchObject({
        prefix, alreadyCurrent: false, began: 'new', passes: ['blocks', 'inodes'], blocksMapped: blocks, blocksDropped: leftovers,
        keysIgnored: 0, gcEntriesDropped: prefix === 'skx' ? manifest.crashLeftovers.gcMembers.length : 0,
        inodesConverted: inodes, inodesKept: 0,
      });
      expect(result.scanned).toBeGreaterThanOrEqual(blocks + leftovers + inodes);
      expect(progress.map((p) => p.phase)).toEqual(progress.map((p) => p.phase).sort()); // blocks, then inodes
      expect(progress.filter((p) => p.phase === 'blocks').at(-1)).toMatchObject({ blocksMapped: blocks, blocksDropped: leftovers, inodesConverted: 0 });
      expect(progress.at(-1)).toMatchObject({ phase: 'inodes', blocksMapped: blocks, inodesConverted: inodes });
      checkEstimates(progress, 'blocks');
      checkEstimates(progress, 'inodes');
      await checkKeys1(redis().raw, prefix);
    }
  });

  it('drops the crash leftovers of skx, not the blocks of skx.Mon', async () => {
    for (const key of manifest.crashLeftovers.blockKeys) expect(await redis().raw.exists(key), key).toBe(0);
    expect(await redis().raw.exists(manifest.crashLeftovers.gcKey)).toBe(0);
    const mon = keysFor('skx.Mon');
    expect(await redis().raw.exists([0, 1, 2].map((i) => mon.block(`14:${i}`)))).toBe(3);
  });

  it('keeps every path of the manifest: attributes, contents, symlinks, xattrs', async () => {
    for (const prefix of PREFIXES) await checkContents(redis().url, prefix, manifest.prefixes[prefix]!, manifest.blockSize);
    // The 1 TiB sparse file: its recorded ranges, one stored block, and a read of 64 MiB around
    // it fetches that block alone.
    const store = await openStore({ url: redis().url, prefix: 'skx', readOnly: true });
    try {
      const sparse = manifest.prefixes.skx!.paths['/data/sparse.img']!;
      const attr = await store.stat('/data/sparse.img');
      expect(attr.size).toBe(2 ** 40);
      expect(attr.blocks).toBe(manifest.blockSize / 512);
      for (const r of [...sparse.sparse!.extents, ...sparse.sparse!.probes]) {
        expect(sha256(await store.read(attr.ino, r.offset, r.length)), `sparse.img @${r.offset}`).toBe(r.sha256);
      }
      const before = await getCalls(redis().raw);
      const counts = await countsOf(store, () => store.read(attr.ino, 0, 64 * 1024 * 1024));
      expect(counts.GET ?? 0).toBe(1);
      expect((await getCalls(redis().raw)) - before).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('says alreadyCurrent the second time, and changes nothing', async () => {
    for (const prefix of PREFIXES) {
      const before = await keysOf(redis().raw, keysFor(prefix));
      expect(await upgradeFilesystem({ url: redis().url, prefix })).toMatchObject({ alreadyCurrent: true, blocksMapped: 0 });
      expect(await keysOf(redis().raw, keysFor(prefix))).toEqual(before);
    }
  });

  it('mounts read-write after: write, append, truncate, unlink, snapshot', async () => {
    const url = redis().url;
    const warnings: string[] = [];
    const store: Store = await openStore({ url, prefix: 'skx', onWarning: (w) => warnings.push(w) });
    const layout = keysFor('skx');
    const paths = manifest.prefixes.skx!.paths;
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
      expect(sha256(await store.readFile('/data/report-link.txt'))).toBe(paths['/data/report-link.txt']!.sha256);
      await store.collected();
      expect(await redis().raw.exists([layout.block('18:1'), layout.block('13:0')])).toBe(0);
      expect(await redis().raw.exists(layout.block('20:0'))).toBe(1);
      // A snapshot shares the layout-1 blocks; writing after it leaves the snapshot as it was.
      await snapshotFilesystem({ url, from: 'skx', to: 'skx@after' });
      await store.writeFile('/docs/notes.txt', 'replaced');
      const snap = await openStore({ url, prefix: 'skx@after', readOnly: true, onWarning: () => {} });
      try {
        expect(sha256(await snap.readFile('/docs/notes.txt'))).toBe(sha256(notes));
        expect(sha256(await snap.readFile('/data/exact-64k.bin'))).toBe(paths['/data/exact-64k.bin']!.sha256);
      } finally {
        await snap.close();
      }
      await deleteFilesystem({ url, prefix: 'skx@after' });
      await store.collected();
      expect(sha256(await store.readFile('/data/exact-64k.bin'))).toBe(paths['/data/exact-64k.bin']!.sha256);
      expect((await store.readFile('/docs/notes.txt')).toString()).toBe('replaced');
      expect(warnings).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe('upgradeFilesystem: resuming the layout-1 fixture', () => {
  const redis = fixtureServer(startLayout1Redis);

  it('is killed after each SCAN page of both passes in turn and still upgrades skx exactly', async () => {
    // Keys layout 1 never wrote, under the block pattern: left alone (fsck judges them).
    const layout = keysFor('skx');
    const strays = [layout.block('7'), layout.block('012:0'), layout.block('x')];
    for (const k of strays) await redis().raw.set(k, 'stray');
    const { kills, result, phases } = await upgradeWithKills(redis().url, 'skx');
    expect(kills).toBeGreaterThan(2);
    expect([...phases]).toEqual(['blocks', 'inodes']);
    expect(result.began).toBe('resumed');
    expect(await redis().raw.exists(strays)).toBe(3);
    await redis().raw.del(strays);
    await checkKeys1(redis().raw, 'skx');
    await checkContents(redis().url, 'skx', manifest.prefixes['skx']!, manifest.blockSize);
  });

  it('starts a pass over when the saved cursor is from another Redis process', async () => {
    const layout = keysFor('skx.Mon');
    await expect(
      upgradeFilesystem({ url: redis().url, prefix: 'skx.Mon', onProgress: () => { throw new Error('killed'); } }),
    ).rejects.toThrow(/killed/);
    const field = await redis().raw.hGet(layout.superblock, 'upgrade');
    expect(field).toMatch(/^\d+@[0-9a-f]{40}$/);
    await redis().raw.hSet(layout.superblock, 'upgrade', `${field!.split('@')[0]}@${'0'.repeat(40)}`);
    const result = await upgradeFilesystem({ url: redis().url, prefix: 'skx.Mon' });
    const blocks = [...filesOf(manifest.prefixes['skx.Mon']!).values()].reduce((n, b) => n + b.length, 0);
    expect(result).toMatchObject({ began: 'restarted', blocksDropped: 0, passes: ['blocks', 'inodes'], inodesConverted: inodeHashesIn('skx.Mon', manifest.prefixes['skx.Mon']!.keys) });
    expect(result.scanned).toBeGreaterThanOrEqual(blocks);
    await checkKeys1(redis().raw, 'skx.Mon');
    await checkContents(redis().url, 'skx.Mon', manifest.prefixes['skx.Mon']!, manifest.blockSize);
  });
});

// ---------------------------------------------------------------- rules

describe('upgradeFilesystem: rules and refusals', () => {
  const t = storeFixture('up');
  const url = () => t.redis.url;
  const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (isFsError(e) ? e.code : String(e)));

  /** A layout-1/2 inode hash: a regular file of `size` bytes unless `mode` says otherwise. */
  const node = (size: number, mode = 0o100644) =>
    encodeInode({ mode, uid: 0, gid: 0, size, nlink: 1, rdev: 0, atimeNs: 1n, mtimeNs: 1n, ctimeNs: 1n, target: undefined, generation: 1, parent: undefined });

  /** A small layout-1 (or 2) filesystem written by hand (block size 4096): inode hashes, and blocks by id. */
  async function handMade(prefix: string, inodes: Record<number, Record<string, string>>, blocks: string[], version = '1'): Promise<KeyLayout> {
    const layout = keysFor(prefix);
    await t.raw.hSet(layout.superblock, { version, bsize: '4096', codec: 'zlib', created: '1', maxsize: String(2 ** 50) });
    await t.raw.hSet(layout.layout2Inode(1), { ...node(0, 0o40755), n: '2', p: '1' });
    for (const [ino, rec] of Object.entries(inodes)) await t.raw.hSet(layout.layout2Inode(Number(ino)), rec);
    await Promise.all(blocks.map((id) => t.raw.set(layout.block(id), Buffer.from([0, 120]))));
    return layout;
  }

  it('maps a block by its inode: within a regular file kept, else dropped; a corrupt inode keeps its blocks', async () => {
    const layout = await handMade(
      'rules',
      { 2: node(4097), 3: node(0, 0o40755), 4: { u: '0' }, 5: node(0) },
      ['2:0', '2:1', '2:2', '2:9', '3:0', '4:0', '4:5', '5:0', '6:0'],
    );
    await t.raw.sAdd(layout.gc, ['2:2:10', '6:0:1']);
    const result = await upgradeFilesystem({ url: url(), prefix: 'rules' });
    expect(result).toMatchObject({ blocksMapped: 4, blocksDropped: 5, gcEntriesDropped: 2, inodesConverted: 4, inodesKept: 1, keptInodes: [4] });
    expect(await t.raw.zRange(layout.map(2), 0, -1)).toEqual(['2:0', '2:1']);
    expect(await t.raw.zRange(layout.map(4), 0, -1)).toEqual(['4:0', '4:5']);
    for (const id of ['2:2', '2:9', '3:0', '5:0', '6:0']) expect(await t.raw.exists(layout.block(id)), id).toBe(0);
    expect(await t.raw.exists([layout.map(3), layout.map(5), layout.gc])).toBe(0);
    // Inode 2's last block is cut by its size and was stored: marked tail-dirty, as layout 3 marks a shrink.
    expect((await rawInode(t.raw, 'rules', 2))?.tailDirty).toBe(true);
    expect(await t.raw.hGetAll(layout.layout2Inode(4))).toEqual({ u: '0' });
  });

  it('packs every field of an inode hash, and keeps as they are those it cannot pack without a loss', async () => {
    const prefix = t.newPrefix();
    const big = { ...node(2 ** 53 - 1), u: '4294967295', g: '4294967294', n: '4294967295', a: '99999999999999999999', t: '0', c: '1', v: '1', z: '1' };
    const good = {
      2: big,
      3: { ...node(0, 0o20600), r: '2049' },
      4: node(4, 0o120777), // and a target of 4 bytes, not UTF-8 (below)
      5: { ...node(0, 0o40700), n: '2', p: '1' },
      130: node(7),
    };
    const bad = {
      6: { ...node(0), m: 'abc' },
      7: { ...node(0), q: '1' },
      8: { ...node(0), u: '4294967296' },
      9: { ...node(0), l: 'a target on a regular file' },
      10: { ...node(0), a: '-1' },
      11: { ...node(0), z: '2' },
      12: { m: '33188' },
    };
    const layout = await handMade(prefix, { ...good, ...bad }, [], '2');
    const target = Buffer.from([0x66, 0xff, 0x00, 0x2f]);
    await t.raw.hSet(layout.layout2Inode(4), 'l', target);
    await t.raw.set(layout.layout2Inode(13), 'not a hash');
    const result = await upgradeFilesystem({ url: url(), prefix });
    expect(result).toMatchObject({ began: 'new', passes: ['inodes'], inodesConverted: 6, inodesKept: 8 });
    expect(result.keptInodes.sort((a, b) => a - b)).toEqual([6, 7, 8, 9, 10, 11, 12, 13]);
    for (const [ino, hash] of Object.entries(good)) {
      expect(await rawInode(t.raw, prefix, Number(ino)), ino).toEqual(recordOf(hash));
      expect(await t.raw.exists(layout.layout2Inode(Number(ino))), ino).toBe(0);
    }
    const bin = t.raw.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    expect(await bin.get(layout.target(4))).toEqual(target);
    expect(await t.raw.hLen(layout.inodes(130))).toBe(1);
    for (const [ino, hash] of Object.entries(bad)) expect(await t.raw.hGetAll(layout.layout2Inode(Number(ino))), ino).toEqual(hash);
    expect(await t.raw.get(layout.layout2Inode(13))).toBe('not a hash');
    expect(await t.raw.hGetAll(layout.superblock)).toMatchObject({ version: '3' });
    expect(await t.raw.hGet(layout.superblock, 'upgrade')).toBeNull();
    // fsck reports what was kept (layout-2 leftovers).
    const { problems } = await checkFilesystem({ url: url(), prefix });
    for (const ino of result.keptInodes) expect(problems.map((p) => p.key), String(ino)).toContain(layout.layout2Inode(ino));
  });

  it('a layout-1 filesystem is neither snapshotted nor restored before its upgrade; deleting it takes its blocks too', async () => {
    const prefix = t.newPrefix();
    const layout = await handMade(prefix, { 2: node(5000) }, ['2:0', '2:1']);
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
    expect(await t.raw.exists([layout.block('2:0'), layout.block('2:1'), layout.layout2Inode(2), layout.superblock])).toBe(0);
  });

  it('refuses what it cannot upgrade, and what is in use', async () => {
    expect(await code(upgradeFilesystem({ url: url(), prefix: 'nothing' }))).toBe('ENOENT');
    expect(await code(upgradeFilesystem({ url: url(), prefix: 'bad:prefix' }))).toBe('EINVAL');
    const fresh = await t.fresh();
    expect(await upgradeFilesystem({ url: url(), prefix: fresh.prefix })).toMatchObject({ alreadyCurrent: true, blocksMapped: 0 });
    // Layout 3 with a stray `upgrade` field (it would never mount): the inode pass runs again, finds nothing, and the field goes.
    const stray = await openStore({ url: url(), prefix: 'stray' });
    await stray.close();
    await t.raw.hSet(keysFor('stray').superblock, 'upgrade', '5@x');
    expect(await upgradeFilesystem({ url: url(), prefix: 'stray' })).toMatchObject({ alreadyCurrent: false, began: 'restarted', inodesConverted: 0 });
    expect(await t.raw.hGet(keysFor('stray').superblock, 'upgrade')).toBeNull();
    expect(await openOutcome(url(), 'stray')).toBe('opened');
    const future = await handMade('future', {}, []);
    await t.raw.hSet(future.superblock, 'version', '4');
    await expect(upgradeFilesystem({ url: url(), prefix: 'future' })).rejects.toThrow(/layout version 4.*upgrade redisfs/);
    // Layout 1 had no '@': a layout-1 superblock there was copied by a layout-2 tool.
    await handMade('fam@copy', {}, []);
    await expect(upgradeFilesystem({ url: url(), prefix: 'fam@copy' })).rejects.toThrow(/shares the blocks of 'fam'/);
    // Layout 2 had members: one upgrades on its own.
    await handMade('fam@snap', { 2: node(0) }, [], '2');
    expect(await upgradeFilesystem({ url: url(), prefix: 'fam@snap' })).toMatchObject({ began: 'new', inodesConverted: 2 });

    const busy = await handMade('busy', {}, ['1:0']);
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
    const layout = await handMade('mid', { 2: node(4096 * 3000) }, ids);
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
