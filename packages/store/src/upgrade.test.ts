import { createHash } from 'node:crypto';
import { copyFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, RESP_TYPES } from '@redis/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeInode, decodeInodeRecord, encodeInode, keysFor, parseInodeKey, type KeyLayout } from '@redisfs/schema';
import {
  checkFilesystem, deleteFilesystem, isFsError, openStore, restoreFilesystem, snapshotFilesystem, upgradeFilesystem,
  type Store, type UpgradeProgress, type UpgradeResult,
} from './index.js';
import {
  type Layout1Manifest, type LocalRedis, type ManifestPath, readLayout1Manifest, startLayout1Redis, startLocalRedis,
} from '@redisfs/testing';
import { ScriptRunner } from './internal/scripts.js';
import type { RedisClient } from './internal/connect.js';
import { countsOf, rawInode, storeFixture } from './internal/test-fixture.js';

const LAYOUT1_PREFIXES = ['skx', 'skx.Mon'] as const;
const LAYOUT2_PREFIXES = ['skx', 'skx@mon'] as const;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const makeRaw = (url: string) => createClient({ url });
type RawClient = ReturnType<typeof makeRaw>;

// ---------------------------------------------------------------- the fixtures

/** One prefix of a fixture's manifest (layout 1's or layout 2's: see their README.md). */
interface FixturePrefix {
  superblock: Record<string, string>;
  stats: Record<string, string>;
  inoCounter: string;
  keys: string[];
  paths: Record<string, ManifestPath>;
  /** Layout 2 only: every inode hash as HGETALL gave it. */
  inodes?: Record<string, Record<string, string>>;
}

interface Layout2Manifest {
  dbsize: number;
  blockSize: number;
  notableInodes: Record<string, number>;
  family: { keys: string[]; blockKeys: string[] };
  prefixes: Record<string, FixturePrefix>;
}

const LAYOUT2_DIR = fileURLToPath(new URL('../fixtures/layout2/', import.meta.url));

/** A redis-server of its own holding a copy of the layout-2 fixture, and a client of it. */
interface Layout2Redis {
  readonly url: string;
  readonly raw: RawClient;
  stop(): Promise<void>;
}

async function startLayout2Redis(): Promise<Layout2Redis> {
  const server: LocalRedis = await startLocalRedis({
    // Called with the server's own dir before it starts: the copy of the dump is what it loads,
    // and goes with that dir when the server stops (the committed file is never the server's).
    config: ({ dir }) => {
      copyFileSync(join(LAYOUT2_DIR, 'dump.rdb'), join(dir, 'dump.rdb'));
      return '';
    },
  });
  const raw = makeRaw(server.url);
  await raw.connect();
  return {
    url: server.url,
    raw,
    stop: async () => {
      await raw.close().catch(() => raw.destroy());
      await server.stop();
    },
  };
}

/** A server holding a fixture, started before the describe block's tests and stopped after. */
function fixtureServer<R extends { stop(): Promise<void> }>(start: () => Promise<R>): () => R {
  let server: R | undefined;
  beforeAll(async () => {
    server = await start();
  });
  afterAll(async () => {
    await server?.stop();
  });
  return () => server!;
}

let manifest1: Layout1Manifest;
let manifest2: Layout2Manifest;
beforeAll(async () => {
  manifest1 = await readLayout1Manifest();
  manifest2 = JSON.parse(await readFile(join(LAYOUT2_DIR, 'manifest.json'), 'utf8')) as Layout2Manifest;
});

const fixturePrefix = (layout: 1 | 2, prefix: string): FixturePrefix =>
  (layout === 1 ? manifest1.prefixes[prefix] : manifest2.prefixes[prefix]) as FixturePrefix;

// ---------------------------------------------------------------- checks

/** Every key of a prefix: its metadata keys and its family's blocks. */
async function keysOf(raw: RawClient, layout: KeyLayout): Promise<string[]> {
  const out = new Set<string>();
  for (const match of [layout.metaPattern, layout.blockPattern]) {
    for await (const keys of raw.scanIterator({ MATCH: match, COUNT: 500 })) for (const k of keys) out.add(k);
  }
  return [...out].sort();
}

/** Regular files of a prefix by inode (hard links once), with their stored block indices. */
function filesOf(m: FixturePrefix): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const p of Object.values(m.paths)) if (p.type === 'file') out.set(p.ino, p.storedBlocks ?? []);
  return out;
}

/** Layout-2 inode hash keys become bucket keys, and a symlink gets its target key. */
function layout3Keys(prefix: string, keys: readonly string[], paths: FixturePrefix['paths']): string[] {
  const layout = keysFor(prefix);
  const out = new Set<string>();
  for (const key of keys) {
    const parsed = parseInodeKey(layout, key);
    out.add(parsed?.kind === 'inode2' ? layout.inodes(parsed.ino) : key);
  }
  for (const p of Object.values(paths)) if (p.type === 'symlink') out.add(layout.target(p.ino));
  return [...out].sort();
}

/** A stored record as the layout-2 hash `hash` must have become. */
function recordOf(hash: Record<string, string>) {
  return { ...decodeInode(hash), target: undefined, generation: 1, tailDirty: hash.z === '1' };
}

/** Checks the layout-3 keys of a prefix upgraded from layout 1: superblock, maps, buckets, nothing left over. */
async function checkKeys1(raw: RawClient, prefix: string): Promise<void> {
  const m = fixturePrefix(1, prefix);
  const layout = keysFor(prefix);
  const { version, ...rest } = m.superblock;
  expect(version).toBe('1');
  expect(await raw.hGetAll(layout.superblock)).toEqual({ ...rest, version: '3' });
  for (const [ino, blocks] of filesOf(m)) {
    const map = await raw.zRangeWithScores(layout.map(ino), 0, -1);
    expect(map, `block map of inode ${ino}`).toEqual(blocks.map((index) => ({ value: `${ino}:${index}`, score: index })));
  }
  const gone = new Set([...manifest1.crashLeftovers.blockKeys, layout.gc]);
  const maps = [...filesOf(m)].filter(([, blocks]) => blocks.length > 0).map(([ino]) => layout.map(ino));
  const want = layout3Keys(prefix, [...m.keys.filter((k) => !gone.has(k)), ...maps], m.paths);
  expect(await keysOf(raw, layout)).toEqual(want);
  expect(await raw.hGetAll(layout.stats)).toEqual(m.stats);
  expect(await raw.get(layout.inoCounter)).toBe(m.inoCounter);
}

/** Checks the layout-3 keys of a prefix upgraded from layout 2: every record exactly its hash. */
async function checkKeys2(raw: RawClient, prefix: string): Promise<void> {
  const m = fixturePrefix(2, prefix);
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
  expect([...new Set(family)].sort()).toEqual([...manifest2.family.keys, ...manifest2.family.blockKeys].sort());
}

/** Opens a prefix read-only and compares every path with the manifest. */
async function checkContents(url: string, layoutVersion: 1 | 2, prefix: string): Promise<void> {
  const m = fixturePrefix(layoutVersion, prefix);
  const blockSize = layoutVersion === 1 ? manifest1.blockSize : manifest2.blockSize;
  const store = await openStore({ url, prefix, readOnly: true, onWarning: () => {} });
  try {
    // The tree holds exactly the manifest's paths.
    const seen: string[] = ['/'];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await store.list(dir)) {
        const path = `${dir === '/' ? '' : dir}/${e.name}`;
        seen.push(path);
        if (e.type === 'dir') await walk(path);
      }
    };
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
      if (want.type === 'file' && typeof want.sha256 === 'string') {
        expect(sha256(await store.readFile(path)), path).toBe(want.sha256);
        expect(attr.blocks, path).toBe(Math.ceil(Math.min(want.size, (want.storedBlocks?.length ?? 0) * blockSize) / 512));
      }
      const names = (await store.listxattr(attr.ino)).sort();
      expect(names, path).toEqual(Object.keys(want.xattrs ?? {}).sort());
      for (const name of names) expect((await store.getxattr(attr.ino, name)).toString('base64'), `${path} ${name}`).toBe(want.xattrs![name]);
    }
  } finally {
    await store.close();
  }
}

/** What openStore says of a prefix: 'opened', or its error message. */
function openOutcome(url: string, prefix: string): Promise<string> {
  return openStore({ url, prefix, readOnly: true, onWarning: () => {} }).then(
    async (s) => (await s.close(), 'opened'),
    (e: unknown) => (e as Error).message,
  );
}

/** Runs upgrades that stop at their `stopAt`-th progress call (1, 2, …) until one completes. */
async function upgradeWithKills(url: string, prefix: string): Promise<{ kills: number; result: UpgradeResult; phases: Set<string> }> {
  let kills = 0;
  const phases = new Set<string>();
  for (let stopAt = 1; stopAt < 200; stopAt++) {
    let calls = 0;
    const onProgress = (p: UpgradeProgress) => {
      if (++calls === stopAt) {
        phases.add(p.phase);
        throw new Error('killed');
      }
    };
    try {
      const result = await upgradeFilesystem({ url, prefix, onProgress });
      return { kills, result, phases };
    } catch (err) {
      expect((err as Error).message).toMatch(/killed/);
      const message = await openOutcome(url, prefix);
      expect(message).toMatch(`\`redisfs upgrade --prefix ${prefix}\``);
      expect(message.split('\n')).toHaveLength(1);
      kills++;
    }
  }
  throw new Error('the upgrade never completed');
}

/** The estimates of a pass's progress: they end exact, and are close once a tenth is scanned. */
function checkEstimates(progress: UpgradeProgress[], phase: UpgradeProgress['phase']): void {
  const mine = progress.filter((p) => p.phase === phase);
  expect(mine.length, phase).toBeGreaterThan(1); // bounded batches, not one sweep
  const scanned = mine.at(-1)!.scanned;
  expect(mine.at(-1)!.total).toBe(scanned);
  expect(mine.map((p) => p.scanned)).toEqual(mine.map((p) => p.scanned).sort((a, b) => a - b));
  for (const p of mine.filter((q) => q.scanned >= scanned / 10)) {
    expect(p.total, JSON.stringify(p)).toBeGreaterThan(scanned / 2);
    expect(p.total, JSON.stringify(p)).toBeLessThan(scanned * 2);
  }
}

/** GET calls Redis has run so far (scripts included). */
async function getCalls(raw: RawClient): Promise<number> {
  const info = await raw.info('commandstats');
  return Number(/^cmdstat_get:calls=(\d+)/m.exec(info)?.[1] ?? 0);
}

/** Inodes of a layout-1 prefix (its `i:` keys). */
const inodeCount1 = (prefix: string) => fixturePrefix(1, prefix).keys.filter((k) => parseInodeKey(keysFor(prefix), k)?.kind === 'inode2').length;

// ---------------------------------------------------------------- layout 2

describe('upgradeFilesystem: the layout-2 fixture', () => {
  const redis = fixtureServer(startLayout2Redis);

  it('loads as layout 2; openStore and snapshots refuse it, naming `redisfs upgrade --prefix P` in one line', async () => {
    expect(await redis().raw.dbSize()).toBe(manifest2.dbsize);
    for (const prefix of LAYOUT2_PREFIXES) {
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
    expect(await redis().raw.dbSize()).toBe(manifest2.dbsize);
  });

  it('upgrades skx, then its member skx@mon, each on its own', async () => {
    for (const prefix of LAYOUT2_PREFIXES) {
      const progress: UpgradeProgress[] = [];
      const result = await upgradeFilesystem({ url: redis().url, prefix, onProgress: (p) => progress.push(p) });
      const inodes = Object.keys(fixturePrefix(2, prefix).inodes!).length;
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
    for (const prefix of LAYOUT2_PREFIXES) await checkContents(redis().url, 2, prefix);
    const tailDirty = manifest2.notableInodes.tailDirty!;
    expect((await rawInode(redis().raw, 'skx', tailDirty))?.tailDirty).toBe(true);
  });

  it('says alreadyCurrent the second time, and changes nothing', async () => {
    for (const prefix of LAYOUT2_PREFIXES) {
      const before = await keysOf(redis().raw, keysFor(prefix));
      expect(await upgradeFilesystem({ url: redis().url, prefix })).toMatchObject({ alreadyCurrent: true, inodesConverted: 0 });
      expect(await keysOf(redis().raw, keysFor(prefix))).toEqual(before);
    }
  });

  it('fsck finds both upgraded members clean', async () => {
    for (const prefix of LAYOUT2_PREFIXES) expect((await checkFilesystem({ url: redis().url, prefix })).problems, prefix).toEqual([]);
  });

  it('mounts read-write after: grow a tail-dirty file, create, link, snapshot, delete the old member', async () => {
    const url = redis().url;
    const warnings: string[] = [];
    const store: Store = await openStore({ url, prefix: 'skx', onWarning: (w) => warnings.push(w) });
    try {
      // Growth past a tail that was marked dirty reads zeros, not the bytes the truncate cut.
      const path = '/data/tail-dirty.bin';
      const before = await store.readFile(path);
      await store.setattr(manifest2.notableInodes.tailDirty!, { size: 100_000 });
      expect(await store.readFile(path)).toEqual(Buffer.concat([before, Buffer.alloc(30_000)]));
      await store.writeFile('/docs/new.txt', 'made by layout 3');
      expect((await store.stat('/docs/new.txt')).ino).toBeGreaterThan(Number(manifest2.prefixes.skx!.inoCounter));
      await store.hardLink('/docs/new.txt', '/new-link');
      await store.symlinkAt('x'.repeat(300), '/new-symlink');
      expect(await store.readlink((await store.stat('/new-symlink')).ino)).toBe('x'.repeat(300));
      await snapshotFilesystem({ url, from: 'skx', to: 'skx@after' });
      await store.remove('/docs/notes.txt');
      const snap = await openStore({ url, prefix: 'skx@after', readOnly: true, onWarning: () => {} });
      try {
        expect(sha256(await snap.readFile('/docs/notes.txt'))).toBe(manifest2.prefixes.skx!.paths['/docs/notes.txt']!.sha256);
        expect((await snap.stat('/new-link')).nlink).toBe(2);
      } finally {
        await snap.close();
      }
      // skx@mon, now layout 3 as well, goes with the blocks only it held.
      await deleteFilesystem({ url, prefix: 'skx@mon' });
      await store.collected();
      expect(sha256(await store.readFile('/data/random.bin'))).toBe(manifest2.prefixes.skx!.paths['/data/random.bin']!.sha256);
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
    await checkContents(redis().url, 2, 'skx');
  });

  it('goes on from any state a crash leaves: batches run alone, some twice, then the upgrade resumed', async () => {
    const url = redis().url;
    const layout = keysFor('skx@mon');
    await expect(upgradeFilesystem({ url, prefix: 'skx@mon', onProgress: () => { throw new Error('killed'); } })).rejects.toThrow(/killed/);
    expect(await redis().raw.hGetAll(layout.superblock)).toMatchObject({ version: '3', upgrade: expect.stringMatching(/^i:\d+@[0-9a-f]{40}$/) });
    // The inodes left, in batches of 7 (a crash between two batches of one page): each batch is
    // one step, and a batch run again changes nothing.
    const left = Object.keys(manifest2.prefixes['skx@mon']!.inodes!).filter((ino) => Number(ino) % 3 === 0);
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
    await checkContents(url, 2, 'skx@mon');
  });
});

// ---------------------------------------------------------------- layout 1

describe('upgradeFilesystem: the layout-1 fixture', () => {
  const redis = fixtureServer(startLayout1Redis);

  it('loads as layout 1, and openStore refuses it naming `redisfs upgrade`', async () => {
    expect(await redis().raw.dbSize()).toBe(manifest1.dbsize);
    for (const prefix of LAYOUT1_PREFIXES) {
      expect(await redis().raw.hGet(keysFor(prefix).superblock, 'version')).toBe('1');
      for (const readOnly of [false, true]) {
        const err = await openStore({ url: redis().url, prefix, readOnly }).then(() => undefined, (e: unknown) => e);
        expect(isFsError(err, 'EINVAL'), String(err)).toBe(true);
        expect((err as Error).message).toContain(`\`redisfs upgrade --prefix ${prefix}\``);
      }
    }
  });

  it('upgrades skx and its layout-1 snapshot skx.Mon to layout 3, each on its own: blocks, then inodes', async () => {
    for (const prefix of LAYOUT1_PREFIXES) {
      const progress: UpgradeProgress[] = [];
      const result = await upgradeFilesystem({ url: redis().url, prefix, onProgress: (p) => progress.push(p) });
      const files = filesOf(fixturePrefix(1, prefix));
      const blocks = [...files.values()].reduce((n, b) => n + b.length, 0);
      const leftovers = prefix === 'skx' ? manifest1.crashLeftovers.blockKeys.length : 0;
      const inodes = inodeCount1(prefix);
      expect(result).toMatchObject({
        prefix, alreadyCurrent: false, began: 'new', passes: ['blocks', 'inodes'], blocksMapped: blocks, blocksDropped: leftovers,
        keysIgnored: 0, gcEntriesDropped: prefix === 'skx' ? manifest1.crashLeftovers.gcMembers.length : 0,
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
    for (const key of manifest1.crashLeftovers.blockKeys) expect(await redis().raw.exists(key), key).toBe(0);
    expect(await redis().raw.exists(manifest1.crashLeftovers.gcKey)).toBe(0);
    const mon = keysFor('skx.Mon');
    expect(await redis().raw.exists([0, 1, 2].map((i) => mon.block(`14:${i}`)))).toBe(3);
  });

  it('keeps every path of the manifest: attributes, contents, symlinks, xattrs', async () => {
    for (const prefix of LAYOUT1_PREFIXES) await checkContents(redis().url, 1, prefix);
    // The 1 TiB sparse file: its recorded ranges, one stored block, and a read of 64 MiB around
    // it fetches that block alone.
    const store = await openStore({ url: redis().url, prefix: 'skx', readOnly: true });
    try {
      const sparse = manifest1.prefixes.skx!.paths['/data/sparse.img']!;
      const attr = await store.stat('/data/sparse.img');
      expect(attr.size).toBe(2 ** 40);
      expect(attr.blocks).toBe(manifest1.blockSize / 512);
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
    for (const prefix of LAYOUT1_PREFIXES) {
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
    const paths = manifest1.prefixes.skx!.paths;
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
    await checkContents(redis().url, 1, 'skx');
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
    const blocks = [...filesOf(fixturePrefix(1, 'skx.Mon')).values()].reduce((n, b) => n + b.length, 0);
    expect(result).toMatchObject({ began: 'restarted', blocksDropped: 0, passes: ['blocks', 'inodes'], inodesConverted: inodeCount1('skx.Mon') });
    expect(result.scanned).toBeGreaterThanOrEqual(blocks);
    await checkKeys1(redis().raw, 'skx.Mon');
    await checkContents(redis().url, 1, 'skx.Mon');
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
      4: { ...node(5, 0o120777), l: Buffer.from([0x66, 0xff, 0x00, 0x2f]).toString('latin1') },
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
    await t.raw.set(layout.layout2Inode(13), 'not a hash');
    const result = await upgradeFilesystem({ url: url(), prefix });
    expect(result).toMatchObject({ began: 'new', passes: ['inodes'], inodesConverted: 6, inodesKept: 8 });
    expect(result.keptInodes.sort((a, b) => a - b)).toEqual([6, 7, 8, 9, 10, 11, 12, 13]);
    for (const [ino, hash] of Object.entries(good)) {
      const { l, ...fields } = hash as Record<string, string>;
      expect(await rawInode(t.raw, prefix, Number(ino)), ino).toEqual(recordOf(fields));
      expect(await t.raw.exists(layout.layout2Inode(Number(ino))), ino).toBe(0);
    }
    const bin = t.raw.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    expect(await bin.get(layout.target(4))).toEqual(Buffer.from([0x66, 0xff, 0x00, 0x2f]));
    expect(await t.raw.hLen(layout.inodes(130))).toBe(1);
    for (const [ino, hash] of Object.entries(bad)) expect(await t.raw.hGetAll(layout.layout2Inode(Number(ino))), ino).toEqual(hash);
    expect(await t.raw.get(layout.layout2Inode(13))).toBe('not a hash');
    expect(await t.raw.hGetAll(layout.superblock)).toMatchObject({ version: '3' });
    expect(await t.raw.hExists(layout.superblock, 'upgrade')).toBe(false);
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
