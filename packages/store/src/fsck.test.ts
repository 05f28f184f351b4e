/**
 * checkFilesystem against a real redis-server: a tree built with the store API is clean; each
 * corruption, made by hand with a raw client, is reported with its kind, repaired, and leaves a
 * clean filesystem whose live data is intact.
 */
import { createClient } from '@redis/client';
import { keysFor, type KeyLayout } from '@redisfs/schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type StartedRedis } from '../../../e2e/helpers/redis-server.js';
import { checkFilesystem, openStore, snapshotFilesystem, type FsckProblemKind, type FsckReport, type Store } from './index.js';
import { connectClient } from './internal/connect.js';
import type { RepairAction } from './internal/fsck-check.js';
import { applyRepair } from './internal/fsck-repair.js';

let redis: StartedRedis;
let raw: ReturnType<typeof createClient>;
const open: Store[] = [];
let n = 0;
const owner = { uid: 1000, gid: 100 };
const BS = 4096;
const A_DATA = Buffer.alloc(10_000, 'a'); // 3 blocks
const B_DATA = Buffer.alloc(5_000, 'b'); // 2 blocks

beforeAll(async () => {
  redis = await startRedis();
  raw = createClient({ url: redis.url });
  await raw.connect();
});
afterAll(async () => {
  await Promise.all(open.map((s) => s.close()));
  await raw?.close();
  await redis?.stop();
});

/** A built tree: the store, its keys, and the inode numbers of its parts. */
interface Tree {
  store: Store;
  prefix: string;
  k: KeyLayout;
  ino: Record<'docs' | 'a' | 'sub' | 'hidden' | 'b' | 'ln' | 'fifo' | 'empty', number>;
}

/**
 * /docs/a.txt (3 blocks, an xattr), /docs/sub/a-link (hard link to a.txt), /docs/.fuse_hidden…
 * (an open-but-unlinked file as libfuse leaves it), /b (2 blocks, an xattr), /ln, /fifo, /empty.
 */
async function build(): Promise<Tree> {
  const prefix = `fsck${++n}`;
  const store = await openStore({ url: redis.url, prefix, blockSize: BS });
  open.push(store);
  const root = store.rootIno;
  const docs = await store.mkdir(root, 'docs', 0o755, owner);
  const a = await store.mknod(docs.ino, 'a.txt', 0o644, owner);
  await store.write(a.ino, 0, A_DATA);
  await store.setxattr(a.ino, 'user.k', Buffer.from('v'));
  const sub = await store.mkdir(docs.ino, 'sub', 0o755, owner);
  await store.link(a.ino, sub.ino, 'a-link');
  const hidden = await store.mknod(docs.ino, '.fuse_hidden0000000a00000001', 0o644, owner);
  await store.write(hidden.ino, 0, Buffer.from('hello'));
  const b = await store.mknod(root, 'b', 0o600, owner);
  await store.write(b.ino, 0, B_DATA);
  await store.setxattr(b.ino, 'user.x', Buffer.from('y'));
  const ln = await store.symlink(root, 'ln', 'docs/a.txt', owner);
  const fifo = await store.mknod(root, 'fifo', 0o010644, owner);
  const empty = await store.mkdir(root, 'empty', 0o700, owner);
  return {
    store,
    prefix,
    k: keysFor(prefix),
    ino: { docs: docs.ino, a: a.ino, sub: sub.ino, hidden: hidden.ino, b: b.ino, ln: ln.ino, fifo: fifo.ino, empty: empty.ino },
  };
}

function fsck(prefix: string, repair = false): Promise<FsckReport> {
  return checkFilesystem({ url: redis.url, prefix, repair });
}

const kinds = (r: FsckReport) => [...new Set(r.problems.map((p) => p.kind))].sort();

/** The live data a repair must never touch (what survives every corruption below). */
async function expectDataIntact(t: Tree, without: { docs?: boolean } = {}): Promise<void> {
  const s = t.store;
  expect((await s.readFile('/b')).equals(B_DATA)).toBe(true);
  expect((await s.getxattr(t.ino.b, 'user.x')).toString()).toBe('y');
  expect(await s.readlink((await s.resolve('/ln')).ino)).toBe('docs/a.txt');
  expect((await s.stat('/fifo')).type).toBe('fifo');
  if (without.docs) return;
  expect((await s.readFile('/docs/a.txt')).equals(A_DATA)).toBe(true);
  expect((await s.readFile('/docs/sub/a-link')).equals(A_DATA)).toBe(true);
  expect((await s.stat('/docs/a.txt')).nlink).toBe(2);
  expect((await s.getxattr(t.ino.a, 'user.k')).toString()).toBe('v');
  expect((await s.readFile('/docs/.fuse_hidden0000000a00000001')).toString()).toBe('hello');
}

describe('checkFilesystem', () => {
  it('finds nothing wrong in a tree the store built, and counts it', async () => {
    const t = await build();
    const report = await fsck(t.prefix);
    expect(report.problems).toEqual([]);
    expect(report).toMatchObject({ prefix: t.prefix, fatal: false, remaining: [], repaired: [], passes: 1 });
    expect(report.counts).toEqual({ inodes: 9, directories: 4, entries: 9, blocks: 6 });
    // Repairing a clean filesystem changes nothing.
    expect((await fsck(t.prefix, true)).repaired).toEqual([]);
  });

  it('finds a snapshot of a clean filesystem clean too', async () => {
    const t = await build();
    await snapshotFilesystem({ url: redis.url, from: t.prefix, to: `${t.prefix}.snap` });
    expect((await fsck(`${t.prefix}.snap`)).problems).toEqual([]);
    expect((await fsck(t.prefix)).problems).toEqual([]);
  });

  it('finds the tree two racing clients leave clean (renames, links, unlinks, writes)', async () => {
    const t = await build();
    const other = await openStore({ url: redis.url, prefix: t.prefix });
    open.push(other);
    const dirs = ['/docs', '/docs/sub', '/empty', ''];
    const names = ['x', 'y', 'z', 'w'];
    const racer = async (s: Store, seed: number): Promise<number> => {
      let state = seed;
      let ok = 0;
      const pick = <T>(xs: T[]): T => {
        state = (state * 1103515245 + 12345) % 2 ** 31;
        return xs[state % xs.length]!;
      };
      for (let i = 0; i < 300; i++) {
        const path = () => `${pick(dirs)}/${pick(names)}`;
        const op = pick(['create', 'rename', 'link', 'unlink', 'write', 'mkdir', 'rmdir'] as const);
        await (async () => {
          if (op === 'create') await s.writeFile(path(), `v${i}`);
          else if (op === 'rename') await s.move(path(), path());
          else if (op === 'link') await s.hardLink(path(), path());
          else if (op === 'unlink') await s.remove(path());
          else if (op === 'write') await s.write((await s.stat(path())).ino, i * 100, Buffer.alloc(5000, i));
          else if (op === 'mkdir') await s.mkdirp(`${path()}/d`);
          else await s.removeDir(`${path()}/d`);
          ok++;
        })().catch((err: unknown) => {
          if (!(err instanceof Error && err.name === 'FsError')) throw err;
        });
      }
      return ok;
    };
    const done = await Promise.all([racer(t.store, 1), racer(other, 2), racer(t.store, 3)]);
    expect(done.every((ok) => ok > 50), String(done)).toBe(true);
    expect((await fsck(t.prefix)).problems).toEqual([]);
  });

  it('ignores blocks pending deletion and snapshot bookkeeping', async () => {
    const t = await build();
    await raw.set(t.k.block(t.ino.a, 7), 'x');
    await raw.sAdd(t.k.gc, `${t.ino.a}:3:8`);
    // An unlinked file whose blocks are not deleted yet.
    await raw.set(t.k.block(40, 0), 'x');
    await raw.sAdd(t.k.gc, '40:0:1');
    await raw.hSet(t.k.snapshot, { to: 'elsewhere', id: '1' });
    await raw.sAdd(t.k.snapshotDone, t.k.inode(1));
    expect((await fsck(t.prefix)).problems).toEqual([]);
  });

  /** `repairs`: the kinds repaired, when not `expect` (a repair may fix or cause another problem). */
  const cases: { what: string; expect: FsckProblemKind[]; repairs?: FsckProblemKind[]; docsGone?: boolean; corrupt(t: Tree): Promise<unknown> }[] = [
    { what: 'a dangling entry', expect: ['entry-dangling'], corrupt: (t) => raw.hSet(t.k.dir(t.ino.docs), 'ghost', 'f60') },
    { what: 'a corrupt entry', expect: ['entry-corrupt'], corrupt: (t) => raw.hSet(t.k.dir(1), 'bad', 'zz') },
    {
      what: 'a deleted inode (its entry, xattrs and blocks stay)',
      expect: ['entry-dangling', 'stats-mismatch', 'stray-block', 'stray-xattr-hash'],
      corrupt: async (t) => {
        await raw.del(t.k.inode(t.ino.b));
        // Put /b back as it was, through the store, after the repair: see the test body.
      },
    },
    { what: 'a wrong nlink', expect: ['nlink-wrong'], corrupt: (t) => raw.hSet(t.k.inode(t.ino.a), 'n', '5') },
    { what: 'a wrong directory nlink', expect: ['nlink-wrong'], corrupt: (t) => raw.hSet(t.k.inode(t.ino.docs), 'n', '2') },
    {
      what: 'an orphan directory tree (its children orphaned too)',
      expect: ['nlink-wrong', 'orphan-inode'],
      repairs: ['nlink-wrong', 'orphan-inode', 'stats-mismatch'], // the counters, once the orphans are gone
      docsGone: true,
      corrupt: (t) => raw.hDel(t.k.dir(1), 'docs'),
    },
    {
      what: 'stray blocks (a fifo, a missing inode beyond the counter)',
      expect: ['inode-counter-behind', 'stray-block'],
      corrupt: async (t) => {
        await raw.set(t.k.block(t.ino.fifo, 0), 'x');
        await raw.set(t.k.block(100_000, 2), 'x');
      },
    },
    { what: 'a block past the end of a file', expect: ['block-past-eof'], corrupt: (t) => raw.set(t.k.block(t.ino.a, 3), 'x') },
    { what: 'wrong usage counters', expect: ['stats-mismatch'], corrupt: (t) => raw.hSet(t.k.stats, 'inodes', '999') },
    { what: 'a wrong type in an entry', expect: ['entry-type-mismatch'], corrupt: (t) => raw.hSet(t.k.dir(1), 'ln', `f${t.ino.ln}`) },
    { what: 'a wrong parent', expect: ['dir-parent-wrong'], corrupt: (t) => raw.hSet(t.k.inode(t.ino.sub), 'p', '1') },
    {
      what: 'a directory with two names',
      expect: ['dir-multiple-names', 'nlink-wrong'],
      corrupt: (t) => raw.hSet(t.k.dir(1), 'sub-again', `d${t.ino.sub}`),
    },
    { what: 'the root named by an entry', expect: ['dir-multiple-names', 'nlink-wrong'], corrupt: (t) => raw.hSet(t.k.dir(t.ino.empty), 'up', 'd1') },
    {
      what: 'an entries hash of a non-directory, and an xattr hash of nothing',
      expect: ['stray-dir-hash', 'stray-xattr-hash'],
      corrupt: async (t) => {
        await raw.hSet(t.k.dir(t.ino.fifo), 'x', `f${t.ino.a}`);
        await raw.hSet(t.k.xattr(50), 'user.z', '1'); // 50: reserved by the counter, unused
      },
    },
    {
      what: 'a missing root',
      expect: ['root-missing', 'stats-mismatch'],
      repairs: ['root-missing'], // a root again: the counters are right again
      corrupt: (t) => raw.del(t.k.inode(1)),
    },
    { what: 'an inode counter behind', expect: ['inode-counter-behind'], corrupt: (t) => raw.set(t.k.inoCounter, '1') },
  ];

  it.each(cases)('reports and repairs $what', async (c) => {
    const t = await build();
    await c.corrupt(t);
    const found = await fsck(t.prefix);
    expect(kinds(found)).toEqual([...c.expect].sort());
    expect(found.problems.every((p) => p.repairable && p.message.length > 0)).toBe(true);
    expect(found.remaining).toEqual(found.problems);

    const repaired = await fsck(t.prefix, true);
    expect(repaired.problems).toEqual(found.problems);
    expect(repaired.remaining).toEqual([]);
    expect(new Set(repaired.repaired.map((r) => r.kind))).toEqual(new Set(c.repairs ?? c.expect));
    expect((await fsck(t.prefix)).problems).toEqual([]);

    if (c.expect.includes('stray-xattr-hash') && c.expect.includes('entry-dangling')) {
      // /b was deleted by hand: everything of it is gone now.
      await expect(t.store.stat('/b')).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await raw.exists([t.k.block(t.ino.b, 0), t.k.block(t.ino.b, 1), t.k.xattr(t.ino.b)])).toBe(0);
      return;
    }
    await expectDataIntact(t, { docs: c.docsGone ?? false });
    if (c.docsGone) {
      await expect(t.store.stat('/docs')).rejects.toMatchObject({ code: 'ENOENT' });
      for (const ino of [t.ino.docs, t.ino.a, t.ino.sub, t.ino.hidden]) expect(await raw.exists(t.k.inode(ino))).toBe(0);
      expect(await raw.exists([t.k.block(t.ino.a, 0), t.k.block(t.ino.hidden, 0), t.k.xattr(t.ino.a)])).toBe(0);
      expect(await t.store.statfs()).toMatchObject({ inodes: 5, bytesUsed: B_DATA.length });
    }
  });

  it('names the inode, entry and key of a problem', async () => {
    const t = await build();
    await raw.hSet(t.k.dir(t.ino.docs), 'ghost', 'f60');
    await raw.hSet(t.k.inode(t.ino.a), 'n', '7');
    const { problems } = await fsck(t.prefix);
    expect(problems).toContainEqual(
      expect.objectContaining({ kind: 'entry-dangling', ino: 60, dir: t.ino.docs, name: 'ghost', key: t.k.dir(t.ino.docs) }),
    );
    const nlink = problems.find((p) => p.kind === 'nlink-wrong');
    expect(nlink).toMatchObject({ ino: t.ino.a, key: t.k.inode(t.ino.a) });
    expect(nlink?.message).toMatch(/nlink 7, expected 2/);
  });

  it('leaves unreadable inodes and unknown keys alone, and says so', async () => {
    const t = await build();
    await raw.hSet(t.k.inode(t.ino.b), 'm', 'garbage');
    await raw.set(`${t.k.metaPrefix}mystery`, '1');
    const report = await fsck(t.prefix, true);
    expect(kinds(report)).toEqual(['inode-unreadable', 'unexpected-key']);
    expect(report.problems.every((p) => !p.repairable)).toBe(true);
    expect(kinds({ ...report, problems: report.remaining })).toEqual(['inode-unreadable', 'unexpected-key']);
    // Its blocks and xattrs are not taken for strays, nor its name for a dangling entry.
    expect(await raw.exists([t.k.block(t.ino.b, 0), t.k.xattr(t.ino.b)])).toBe(2);
    expect(await raw.hGet(t.k.dir(1), 'b')).toBe(`f${t.ino.b}`);
  });

  it('repairs many problems at once, in passes', async () => {
    const t = await build();
    await raw.hDel(t.k.dir(1), 'docs');
    await raw.hSet(t.k.dir(1), 'ghost', 'f61');
    await raw.set(t.k.block(t.ino.b, 9), 'x');
    await raw.hSet(t.k.inode(t.ino.empty), 'n', '9');
    await raw.hSet(t.k.stats, 'bytes', '1');
    const report = await fsck(t.prefix, true);
    expect(report.remaining).toEqual([]);
    expect(report.passes).toBeGreaterThan(1);
    expect(await fsck(t.prefix)).toMatchObject({ problems: [], counts: { inodes: 5, directories: 2, entries: 4, blocks: 2 } });
    await expectDataIntact(t, { docs: true });
  });

  it('stops at a missing or corrupt superblock', async () => {
    const t = await build();
    await raw.hSet(t.k.superblock, 'bsize', 'big');
    const corrupt = await fsck(t.prefix, true);
    expect(corrupt).toMatchObject({ fatal: true, repaired: [] });
    expect(kinds(corrupt)).toEqual(['superblock-corrupt']);
    await raw.del(t.k.superblock);
    const missing = await fsck(t.prefix);
    expect(missing.fatal).toBe(true);
    expect(kinds(missing)).toEqual(['superblock-missing']);
  });

  it('fails with ENOENT, EINVAL or EIO when there is nothing it can check', async () => {
    await expect(fsck('nothing-here')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fsck('a:b')).rejects.toMatchObject({ code: 'EINVAL' });
    const t = await build();
    await raw.hSet(t.k.superblock, 'version', '99');
    await expect(fsck(t.prefix)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/layout version 99/) });
    await expect(checkFilesystem({ url: 'redis://127.0.0.1:1', prefix: 'x', connectTimeoutMs: 1000 })).rejects.toMatchObject({ code: 'EIO' });
  });

  it('skips a repair whose condition changed since the check', async () => {
    const t = await build();
    const client = await connectClient({ url: redis.url });
    try {
      const apply = (action: RepairAction) =>
        applyRepair(client, t.k, { problem: { kind: 'nlink-wrong', message: '', repairable: true }, action }, BS);
      await raw.hSet(t.k.dir(1), 'ghost', 'f61');
      expect(await apply({ op: 'remove-entry', dir: 1, name: 'ghost', value: 'f60' })).toBeUndefined();
      expect(await raw.hGet(t.k.dir(1), 'ghost')).toBe('f61');
      expect(await apply({ op: 'set-nlink', ino: t.ino.a, from: '1', to: 9 })).toBeUndefined();
      expect(await apply({ op: 'delete-inode', ino: t.ino.b, nlink: '1', ctime: '1', blocks: [0, 1] })).toBeUndefined();
      // Block 1 of /b is inside the file: never deleted, whatever the check thought.
      expect(await apply({ op: 'delete-block', ino: t.ino.b, index: 1 })).toBeUndefined();
      expect(await apply({ op: 'delete-hash', which: 'xattr', ino: t.ino.b })).toBeUndefined();
      expect(await apply({ op: 'raise-counter', to: 2 })).toBeUndefined();
      expect((await apply({ op: 'remove-entry', dir: 1, name: 'ghost', value: 'f61' }))?.message).toMatch(/removed entry 'ghost'/);
      await expectDataIntact(t);
    } finally {
      await client.close();
    }
  });

  it('refuses to repair while a snapshot is taken from or into the filesystem', async () => {
    const t = await build();
    await raw.hSet(t.k.inode(t.ino.a), 'n', '5');
    for (const key of [t.k.snapshot, t.k.snapshotLock]) {
      await raw.hSet(key, { to: 'elsewhere', id: '1' });
      expect(kinds(await fsck(t.prefix))).toEqual(['nlink-wrong']);
      await expect(fsck(t.prefix, true)).rejects.toMatchObject({ code: 'EBUSY' });
      expect(await raw.hGet(t.k.inode(t.ino.a), 'n')).toBe('5');
      await raw.del(key);
    }
    expect((await fsck(t.prefix, true)).remaining).toEqual([]);
  });

  it('reports progress', async () => {
    const t = await build();
    const phases = new Set<string>();
    await checkFilesystem({ url: redis.url, prefix: t.prefix, onProgress: (p) => phases.add(p.phase) });
    expect([...phases].sort()).toEqual(['blocks', 'metadata']);
  });
});
