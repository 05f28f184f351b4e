/**
 * The upgrade of layout 2 to layout 3 (upgrade.ts): the layout-2 fixture (a family and its
 * snapshot member, packages/store/fixtures/layout2) upgraded, killed and resumed, read back; and a
 * layout-2 filesystem on a Redis Cluster. Layout 1 and the rules: upgrade.test.ts.
 */
import { RESP_TYPES } from '@redis/client';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeInode, keysFor } from '@redisfs/schema';
import { type Layout2Manifest, describeWithRedis, readLayout2Manifest, startLayout2Redis, startRedisCluster } from '@redisfs/testing';
import {
  checkFilesystem, deleteFilesystem, isFsError, openStore, snapshotFilesystem, upgradeFilesystem, type Store, type UpgradeProgress,
} from './index.js';
import { ScriptRunner } from './internal/scripts.js';
import type { RedisClient } from './internal/connect.js';
import { rawInode } from './internal/test-fixture.js';
import {
  type RawClient, checkContents, checkEstimates, fixtureServer, keysOf, layout3Keys, makeRaw, openOutcome, recordOf, sha256,
  upgradeWithKills,
} from './internal/upgrade-fixtures.js';

const PREFIXES = ['skx', 'skx@mon'] as const;

let manifest: Layout2Manifest;
beforeAll(async () => {
  manifest = await readLayout2Manifest();
});

/** Checks the layout-3 keys of a prefix upgraded from layout 2: every record exactly its hash. */
async function checkKeys2(raw: RawClient, prefix: string): Promise<void> {
  const m = manifest.prefixes[prefix]!;
  const layout = keysFor(prefix);
  expect(await raw.hGetAll(layout.superblock)).toEqual({ ...m.superblock, version: '3' });
  expect(await raw.hGetAll(layout.stats)).toEqual(m.stats);
  expect(await raw.get(layout.inoCounter)).toBe(m.inoCounter);
  const meta = (await keysOf(raw, layout)).filter((k) => k.startsWith(layout.metaPrefix));
  expect(meta).toEqual(layout3Keys(prefix, m.keys, m.paths));
  const bin = raw.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
  for (const [ino, hash] of Object.entries(m.inodes!)) {
    expect(await rawInode(raw, prefix, Number(ino)), `inode ${ino}`).toEqual(recordOf(hash));
    if (hash.l !== undefined) expect(((await bin.get(layout.target(Number(ino)))) as unknown as Buffer).toString(), `target of ${ino}`).toBe(hash.l);
  }
  // The family's keys (blocks, reference counts, block ids) are the same in both layouts.
  const family: string[] = [];
  for (const match of [layout.familyPattern, layout.blockPattern]) for await (const keys of raw.scanIterator({ MATCH: match, COUNT: 500 })) family.push(...keys);
  expect([...new Set(family)].sort()).toEqual([...manifest.family.keys, ...manifest.family.blockKeys].sort());
}

describe('upgradeFilesystem: the layout-2 fixture', () => {
  const redis = fixtureServer(startLayout2Redis);

  it('loads as layout 2; openStore and snapshots refuse it, naming `redisfs upgrade --prefix P` in one line', async () => {
    expect(await redis().raw.dbSize()).toBe(manifest.dbsize);
    for (const prefix of PREFIXES) {
      expect(await redis().raw.hGet(keysFor(prefix).superblock, 'version')).toBe('2');
      for (const readOnly of [false, true]) {
        const err = await openStore({ url: redis().url, prefix, readOnly }).then(() => undefined, (e: unknown) => e);
        expect(isFsError(err, 'EINVAL'), String(err)).toBe(true);
        expect((err as Error).message).toContain(`\`redisfs upgrade --prefix ${prefix}\``);
        expect((err as Error).message.split('\n')).toHaveLength(1);
      }
    }
    const err = await snapshotFilesystem({ url: redis().url, from: 'skx', to: 'skx@new' }).then(() => undefined, (e: unknown) => e);
    expect(isFsError(err, 'EINVAL') && (err as Error).message, String(err)).toContain('redisfs upgrade --prefix skx');
    expect(await redis().raw.dbSize()).toBe(manifest.dbsize);
  });

  it('upgrades skx, then its member skx@mon, each on its own', async () => {
    for (const prefix of PREFIXES) {
      const progress: UpgradeProgress[] = [];
      const result = await upgradeFilesystem({ url: redis().url, prefix, onProgress: (p) => progress.push(p) });
      const inodes = Object.keys(manifest.prefixes[prefix]!.inodes!).length;
      expect(result).toMatchObject({
        prefix, alreadyCurrent: false, began: 'new', passes: ['inodes'], inodesConverted: inodes, inodesKept: 0, keptInodes: [],
        blocksMapped: 0, blocksDropped: 0, keysIgnored: 0, gcEntriesDropped: 0,
      });
      expect(result.scanned).toBeGreaterThanOrEqual(inodes);
      expect(progress.at(-1)).toMatchObject({ phase: 'inodes', inodesConverted: inodes });
      checkEstimates(progress, 'inodes');
      await checkKeys2(redis().raw, prefix);
      // One member upgraded, the other not yet: each opens, or is refused, on its own.
      if (prefix === 'skx') expect(await openOutcome(redis().url, 'skx@mon')).toContain('`redisfs upgrade --prefix skx@mon`');
      expect(await openOutcome(redis().url, prefix)).toBe('opened');
    }
  });

  it('keeps every path: names, attributes and times to the ns, link counts, targets, xattrs, data', async () => {
    for (const prefix of PREFIXES) await checkContents(redis().url, prefix, manifest.prefixes[prefix]!, manifest.blockSize);
    const tailDirty = manifest.notableInodes.tailDirty!;
    expect((await rawInode(redis().raw, 'skx', tailDirty))?.tailDirty).toBe(true);
  });

  it('says alreadyCurrent the second time, and changes nothing', async () => {
    for (const prefix of PREFIXES) {
      const before = await keysOf(redis().raw, keysFor(prefix));
      expect(await upgradeFilesystem({ url: redis().url, prefix })).toMatchObject({ alreadyCurrent: true, inodesConverted: 0 });
      expect(await keysOf(redis().raw, keysFor(prefix))).toEqual(before);
    }
  });

  it('fsck finds both upgraded members clean', async () => {
    for (const prefix of PREFIXES) expect((await checkFilesystem({ url: redis().url, prefix })).problems, prefix).toEqual([]);
  });

  it('mounts read-write after: grow a tail-dirty file, create, link, snapshot, delete the old member', async () => {
    const url = redis().url;
    const warnings: string[] = [];
    const store: Store = await openStore({ url, prefix: 'skx', onWarning: (w) => warnings.push(w) });
    try {
      // Growth past a tail that was marked dirty reads zeros, not the bytes the truncate cut.
      const path = '/data/tail-dirty.bin';
      const before = await store.readFile(path);
      await store.setattr(manifest.notableInodes.tailDirty!, { size: 100_000 });
      expect(await store.readFile(path)).toEqual(Buffer.concat([before, Buffer.alloc(30_000)]));
      await store.writeFile('/docs/new.txt', 'made by layout 3');
      expect((await store.stat('/docs/new.txt')).ino).toBeGreaterThan(Number(manifest.prefixes.skx!.inoCounter));
      await store.hardLink('/docs/new.txt', '/new-link');
      await store.symlinkAt('x'.repeat(300), '/new-symlink');
      expect(await store.readlink((await store.stat('/new-symlink')).ino)).toBe('x'.repeat(300));
      await snapshotFilesystem({ url, from: 'skx', to: 'skx@after' });
      await store.remove('/docs/notes.txt');
      const snap = await openStore({ url, prefix: 'skx@after', readOnly: true, onWarning: () => {} });
      try {
        expect(sha256(await snap.readFile('/docs/notes.txt'))).toBe(manifest.prefixes.skx!.paths['/docs/notes.txt']!.sha256);
        expect((await snap.stat('/new-link')).nlink).toBe(2);
      } finally {
        await snap.close();
      }
      // skx@mon, now layout 3 as well, goes with the blocks only it held.
      await deleteFilesystem({ url, prefix: 'skx@mon' });
      await store.collected();
      expect(sha256(await store.readFile('/data/random.bin'))).toBe(manifest.prefixes.skx!.paths['/data/random.bin']!.sha256);
      expect(warnings).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe('upgradeFilesystem: resuming the layout-2 fixture', () => {
  const redis = fixtureServer(startLayout2Redis);

  it('is killed after each SCAN page in turn and still upgrades skx exactly', async () => {
    const { kills, result, phases } = await upgradeWithKills(redis().url, 'skx');
    expect(kills).toBeGreaterThan(2);
    expect([...phases]).toEqual(['inodes']);
    expect(result).toMatchObject({ began: 'resumed', inodesKept: 0 });
    await checkKeys2(redis().raw, 'skx');
    await checkContents(redis().url, 'skx', manifest.prefixes['skx']!, manifest.blockSize);
  });

  it('goes on from any state a crash leaves: batches run alone, some twice, then the upgrade resumed', async () => {
    const url = redis().url;
    const layout = keysFor('skx@mon');
    await expect(upgradeFilesystem({ url, prefix: 'skx@mon', onProgress: () => { throw new Error('killed'); } })).rejects.toThrow(/killed/);
    expect(await redis().raw.hGetAll(layout.superblock)).toMatchObject({ version: '3', upgrade: expect.stringMatching(/^i:\d+@[0-9a-f]{40}$/) });
    // The inodes left, in batches of 7 (a crash between two batches of one page): each batch is
    // one step, and a batch run again changes nothing.
    const left = Object.keys(manifest.prefixes['skx@mon']!.inodes!).filter((ino) => Number(ino) % 3 === 0);
    const client = redis().raw as unknown as RedisClient;
    const scripts = new ScriptRunner(client, layout.superblock);
    const dump = async () => Promise.all(left.map((ino) => redis().raw.sendCommand(['DUMP', layout.inodes(Number(ino))])));
    let converted = 0;
    for (let i = 0; i < left.length; i += 7) {
      const batch = left.slice(i, i + 7);
      converted += Number(((await scripts.run('upgradeInodes', layout.metaPrefix, ['', ...batch])) as [number])[0]);
      if (i === 0) {
        const before = await dump();
        expect(await scripts.run('upgradeInodes', layout.metaPrefix, ['', ...batch])).toEqual([0, []]);
        expect(await dump()).toEqual(before);
      }
    }
    expect(converted).toBeGreaterThan(0);
    expect(await openOutcome(url, 'skx@mon')).toContain('`redisfs upgrade --prefix skx@mon`');
    const result = await upgradeFilesystem({ url, prefix: 'skx@mon' });
    expect(result).toMatchObject({ began: 'resumed', passes: ['inodes'], inodesKept: 0 });
    await checkKeys2(redis().raw, 'skx@mon');
    await checkContents(url, 'skx@mon', manifest.prefixes['skx@mon']!, manifest.blockSize);
  });
});

// ---------------------------------------------------------------- a cluster

await describeWithRedis('upgradeFilesystem on a Redis Cluster', { redisTools: true, start: () => startRedisCluster({ masters: 3, replicasPerMaster: 0 }) }, (cluster) => {
  const node = (mode: number, size = 0) =>
    encodeInode({ mode, uid: 7, gid: 8, size, nlink: 1, rdev: 0, atimeNs: 11n, mtimeNs: 12n, ctimeNs: 13n, target: undefined, generation: 1, parent: undefined });

  it('converts a layout-2 filesystem where it lives (the master of its slot); layout 1 it refuses', async () => {
    const url = `redis://${cluster.seeds.map((n) => `${n.host}:${n.port}`).join(',')}`;
    const layout = keysFor('cl');
    const raw = makeRaw((await cluster.masterOf(layout.superblock)).url);
    await raw.connect();
    try {
      // A root holding 100 files (two buckets and more) and a symlink, written as layout 2 wrote them.
      await raw.hSet(layout.superblock, { version: '2', bsize: '4096', codec: 'zlib', created: '1', maxsize: String(2 ** 50) });
      await raw.hSet(layout.layout2Inode(1), { ...node(0o40755), n: '2', p: '1' });
      for (let ino = 2; ino < 102; ino++) {
        await raw.hSet(layout.layout2Inode(ino), node(0o100644));
        await raw.hSet(layout.dir(1), `f${ino}`, `f${ino}`);
      }
      await raw.hSet(layout.layout2Inode(102), { ...node(0o120777, 5), l: 'f2/..' });
      await raw.hSet(layout.dir(1), 'link', 'l102');
      const result = await upgradeFilesystem({ url, prefix: 'cl' });
      expect(result).toMatchObject({ began: 'new', passes: ['inodes'], inodesConverted: 102, inodesKept: 0 });
      const store = await openStore({ url, prefix: 'cl', readOnly: true });
      try {
        expect((await store.list('/')).length).toBe(101);
        expect(await store.stat('/f77')).toMatchObject({ ino: 77, uid: 7, gid: 8, mtimeNs: 12n });
        expect(await store.readlink(102)).toBe('f2/..');
      } finally {
        await store.close();
      }
      const old = makeRaw((await cluster.masterOf(keysFor('old').superblock)).url);
      await old.connect();
      await old.hSet(keysFor('old').superblock, { version: '1', bsize: '4096' }).finally(() => old.close());
      await expect(upgradeFilesystem({ url, prefix: 'old' })).rejects.toThrow(/layout 1: upgrade it on a single server/);
    } finally {
      await raw.close();
    }
  });
});
