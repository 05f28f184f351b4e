/**
 * checkFilesystem against a real redis-server: a tree built with the store API is clean, and so
 * is a family whose members share blocks; each corruption, made by hand with a raw client on a
 * quiet filesystem (the store that built it is closed), is reported with its kind, repaired,
 * and leaves a clean filesystem whose live data reads back intact.
 */
import { encodeInodeRecord, keysFor, type KeyLayout } from '@redisfs/schema';
import { RESP_TYPES } from '@redis/client';
import { describe, expect, it } from 'vitest';
import {
  checkFilesystem, deleteFilesystem, openStore, snapshotFilesystem, type FsckProblemKind, type FsckProgress, type FsckReport, type Store,
} from './index.js';
import { connectClient } from './internal/connect.js';
import type { RepairAction } from './internal/fsck-check.js';
import { applyRepair } from './internal/fsck-repair.js';
import {
  TEST_OWNER as owner, deleteRawInode, patchRawInode, rawInode, setRawInode, storeFixture,
} from './internal/test-fixture.js';

const fx = storeFixture('fsck');
const BS = 4096;
const A_DATA = Buffer.alloc(10_000, 'a'); // 3 blocks
const B_DATA = Buffer.alloc(5_000, 'b'); // 2 blocks
const quiet = { onWarning: () => undefined };

/** A built tree: its prefix, its keys, and the inode numbers of its parts. */
interface Tree {
  prefix: string;
  k: KeyLayout;
  ino: Record<'docs' | 'a' | 'sub' | 'hidden' | 'b' | 'ln' | 'fifo' | 'empty', number>;
}

/**
 * /docs/a.txt (3 blocks, an xattr), /docs/sub/a-link (hard link to a.txt), /docs/.hidden
 * (a dotfile), /b (2 blocks, an xattr), /ln, /fifo, /empty.
 * The store that built it is closed once its collector is idle: the filesystem is quiet.
 */
async function build(prefix = fx.newPrefix()): Promise<Tree> {
  const store = await openStore({ url: fx.redis.url, prefix, blockSize: BS });
  try {
    const root = store.rootIno;
    const docs = await store.mkdir(root, 'docs', 0o755, owner);
    const a = await store.mknod(docs.ino, 'a.txt', 0o644, owner);
    await store.write(a.ino, 0, A_DATA);
    await store.setxattr(a.ino, 'user.k', Buffer.from('v'));
    const sub = await store.mkdir(docs.ino, 'sub', 0o755, owner);
    await store.link(a.ino, sub.ino, 'a-link');
    const hidden = await store.mknod(docs.ino, '.hidden', 0o644, owner);
    await store.write(hidden.ino, 0, Buffer.from('hello'));
    const b = await store.mknod(root, 'b', 0o600, owner);
    await store.write(b.ino, 0, B_DATA);
    await store.setxattr(b.ino, 'user.x', Buffer.from('y'));
    const ln = await store.symlink(root, 'ln', 'docs/a.txt', owner);
    const fifo = await store.mknod(root, 'fifo', 0o010644, owner);
    const empty = await store.mkdir(root, 'empty', 0o700, owner);
    await store.collected();
    return {
      prefix,
      k: keysFor(prefix),
      ino: { docs: docs.ino, a: a.ino, sub: sub.ino, hidden: hidden.ino, b: b.ino, ln: ln.ino, fifo: fifo.ino, empty: empty.ino },
    };
  } finally {
    await store.close();
  }
}

function fsck(prefix: string, repair = false): Promise<FsckReport> {
  return checkFilesystem({ url: fx.redis.url, prefix, repair });
}

const kinds = (problems: FsckReport['problems']) => [...new Set(problems.map((p) => p.kind))].sort();
const NOTHING_PENDING = { gcInodes: 0, freeBlocks: 0, deadMembers: 0 };

/** A read-write store on the tree (its collector runs), once the collector has nothing left. */
async function collectedStore(prefix: string): Promise<Store> {
  const s = await fx.fresh({ prefix, ...quiet });
  await s.collected();
  return s;
}

/** The block ids of a file's map, by index. */
async function idsOf(k: KeyLayout, ino: number): Promise<string[]> {
  return fx.raw.zRange(k.map(ino), 0, -1);
}

/** A block stored under a new id (as a write would store it), and its id. */
let nextId = 900_000;
async function storeBlock(k: KeyLayout): Promise<string> {
  const id = String(++nextId);
  await fx.raw.set(k.block(id), Buffer.from([0, 120]));
  return id;
}

/** The live data a repair must never touch (what survives every corruption below). */
async function expectDataIntact(s: Store, t: Tree, without: { docs?: boolean; b?: boolean; ln?: boolean } = {}): Promise<void> {
  if (!without.b) {
    expect((await s.readFile('/b')).equals(B_DATA)).toBe(true);
    expect((await s.getxattr(t.ino.b, 'user.x')).toString()).toBe('y');
  }
  if (!without.ln) expect(await s.readlink((await s.resolve('/ln')).ino)).toBe('docs/a.txt');
  expect((await s.stat('/fifo')).type).toBe('fifo');
  if (without.docs) return;
  expect((await s.readFile('/docs/a.txt')).equals(A_DATA)).toBe(true);
  expect((await s.readFile('/docs/sub/a-link')).equals(A_DATA)).toBe(true);
  expect((await s.stat('/docs/a.txt')).nlink).toBe(2);
  expect((await s.getxattr(t.ino.a, 'user.k')).toString()).toBe('v');
  expect((await s.readFile('/docs/.hidden')).toString()).toBe('hello');
}

/** Reports, repairs, finds nothing more; returns the repairing run. */
async function expectRepaired(prefix: string, expected: FsckProblemKind[], repairs = expected): Promise<FsckReport> {
  const found = await fsck(prefix);
  expect(kinds(found.problems)).toEqual([...expected].sort());
  expect(found.problems.every((p) => p.repairable && p.message.length > 0)).toBe(true);
  expect(found.remaining).toEqual(found.problems);
  const repaired = await fsck(prefix, true);
  expect(repaired.problems).toEqual(found.problems);
  expect(repaired.remaining).toEqual([]);
  expect(new Set(repaired.repaired.map((r) => r.kind))).toEqual(new Set(repairs));
  expect((await fsck(prefix)).problems).toEqual([]);
  return repaired;
}

describe('checkFilesystem', () => {
  it('finds nothing wrong in a tree the store built, counts it, and sees nothing pending once collected', async () => {
    const t = await build();
    const report = await fsck(t.prefix);
    expect(report.problems).toEqual([]);
    expect(report).toMatchObject({ prefix: t.prefix, fatal: false, remaining: [], repaired: [], passes: 1, pending: NOTHING_PENDING });
    expect(report.counts).toEqual({ inodes: 9, directories: 4, entries: 9, blocks: 6, familyBlocks: 6 });
    // Repairing a clean filesystem changes nothing.
    expect((await fsck(t.prefix, true)).repaired).toEqual([]);
  });

  it('counts the references of every member of the family: a snapshot sharing every block is clean, and so is its source', async () => {
    const t = await build();
    const snap = `${t.prefix}@a`;
    await snapshotFilesystem({ url: fx.redis.url, from: t.prefix, to: snap });
    // Every block has two references now, counted in {F}#rc: neither member alone would explain it.
    expect(new Set(Object.values(await fx.raw.hGetAll(t.k.refcounts)))).toEqual(new Set(['2']));
    for (const prefix of [t.prefix, snap]) {
      const report = await fsck(prefix);
      expect(report.problems, prefix).toEqual([]);
      expect(report.counts).toMatchObject({ blocks: 6, familyBlocks: 6 });
    }
    // The source changes: /b gets blocks of its own, the snapshot keeps the old ones.
    const s = await collectedStore(t.prefix);
    await s.writeFile('/b', 'new b');
    await s.remove('/docs/.hidden');
    await s.collected();
    for (const prefix of [t.prefix, snap]) expect((await fsck(prefix)).problems, prefix).toEqual([]);
    expect((await fsck(t.prefix)).counts).toMatchObject({ blocks: 4, familyBlocks: 7 });
    // Deleting the snapshot frees what only it referenced.
    await s.close();
    await deleteFilesystem({ url: fx.redis.url, prefix: snap });
    const after = await fsck(t.prefix);
    expect(after).toMatchObject({ problems: [], pending: NOTHING_PENDING, counts: { blocks: 4, familyBlocks: 4 } });
    expect(await fx.raw.hLen(t.k.refcounts)).toBe(0);
  });

  it('finds the tree two racing clients leave clean (renames, links, unlinks, writes)', async () => {
    const t = await build();
    const one = await fx.fresh({ prefix: t.prefix, ...quiet });
    const other = await fx.fresh({ prefix: t.prefix, ...quiet });
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
        const op = pick(['create', 'rename', 'link', 'unlink', 'write', 'truncate', 'mkdir', 'rmdir'] as const);
        await (async () => {
          if (op === 'create') await s.writeFile(path(), `v${i}`);
          else if (op === 'rename') await s.move(path(), path());
          else if (op === 'link') await s.hardLink(path(), path());
          else if (op === 'unlink') await s.remove(path());
          else if (op === 'write') await s.write((await s.stat(path())).ino, i * 100, Buffer.alloc(5000, i));
          else if (op === 'truncate') await s.setattr((await s.stat(path())).ino, { size: i * 7 });
          else if (op === 'mkdir') await s.mkdirp(`${path()}/d`);
          else await s.removeDir(`${path()}/d`);
          ok++;
        })().catch((err: unknown) => {
          if (!(err instanceof Error && err.name === 'FsError')) throw err;
        });
      }
      return ok;
    };
    const done = await Promise.all([racer(one, 1), racer(other, 2), racer(one, 3)]);
    expect(done.every((ok) => ok > 50), String(done)).toBe(true);
    await Promise.all([one.collected(), other.collected()]);
    expect(await fsck(t.prefix)).toMatchObject({ problems: [], pending: NOTHING_PENDING });
  });

  it('reports the collector\'s pending work without calling it a problem, and nothing once collected', async () => {
    const t = await build();
    // A shrunk file whose map still holds an entry past its end, listed in gc.
    await fx.raw.zAdd(t.k.map(t.ino.a), { score: 9, value: await storeBlock(t.k) });
    await fx.raw.sAdd(t.k.gc, String(t.ino.a));
    // An unlinked file whose map is not released yet.
    await fx.raw.zAdd(t.k.map(40), { score: 0, value: await storeBlock(t.k) });
    await fx.raw.sAdd(t.k.gc, '40');
    // A block nothing references any more, and one already deleted, both waiting in free.
    await fx.raw.sAdd(t.k.freeBlocks, [await storeBlock(t.k), '123456789']);
    // A deleted member of the family whose keys are still being released.
    const gone = keysFor(`${t.prefix}@gone`);
    await setRawInode(fx.raw, gone.prefix, 1, encodeInodeRecord((await rawInode(fx.raw, t.prefix, 1))!));
    await fx.raw.zAdd(gone.map(5), { score: 0, value: (await idsOf(t.k, t.ino.b))[0]! });
    await fx.raw.hSet(t.k.refcounts, (await idsOf(t.k, t.ino.b))[0]!, '2');
    await fx.raw.sAdd(t.k.deadMembers, gone.prefix);
    // Snapshot bookkeeping of a snapshot in progress is not a problem either.
    await fx.raw.hSet(t.k.snapshot, { to: 'elsewhere', id: '1' });
    await fx.raw.sAdd(t.k.snapshotDone, t.k.inodes(1));
    const report = await fsck(t.prefix);
    expect(report.problems).toEqual([]);
    expect(report.pending).toEqual({ gcInodes: 2, freeBlocks: 2, deadMembers: 1 });
    await fx.raw.del([t.k.snapshot, t.k.snapshotDone]);

    const s = await collectedStore(t.prefix);
    expect(await fsck(t.prefix)).toMatchObject({ problems: [], pending: NOTHING_PENDING, counts: { blocks: 6, familyBlocks: 6 } });
    expect(await fx.raw.exists([gone.inodes(1), gone.map(5), t.k.map(40)])).toBe(0);
    await expectDataIntact(s, t);
  });

  /** `repairs`: the kinds repaired, when not `expect` (a repair may fix or cause another problem). */
  const cases: {
    what: string;
    expect: FsckProblemKind[];
    repairs?: FsckProblemKind[];
    without?: { docs?: boolean; b?: boolean; ln?: boolean };
    corrupt(t: Tree): Promise<unknown>;
    after?(t: Tree, s: Store): Promise<void>;
  }[] = [
    { what: 'a dangling entry', expect: ['entry-dangling'], corrupt: (t) => fx.raw.hSet(t.k.dir(t.ino.docs), 'ghost', 'f60') },
    { what: 'a corrupt entry', expect: ['entry-corrupt'], corrupt: (t) => fx.raw.hSet(t.k.dir(1), 'bad', 'zz') },
    {
      what: 'a deleted inode (its entry, xattrs and block map stay)',
      expect: ['entry-dangling', 'orphan-map', 'stats-mismatch', 'stray-xattr-hash'],
      without: { b: true },
      corrupt: (t) => deleteRawInode(fx.raw, t.prefix, t.ino.b),
      async after(t, s) {
        await expect(s.stat('/b')).rejects.toMatchObject({ code: 'ENOENT' });
        expect(await fx.raw.exists([t.k.map(t.ino.b), t.k.xattr(t.ino.b)])).toBe(0);
      },
    },
    { what: 'a wrong nlink', expect: ['nlink-wrong'], corrupt: (t) => patchRawInode(fx.raw, t.prefix, t.ino.a, { nlink: 5 }) },
    { what: 'a wrong directory nlink', expect: ['nlink-wrong'], corrupt: (t) => patchRawInode(fx.raw, t.prefix, t.ino.docs, { nlink: 2 }) },
    {
      what: 'an orphan directory tree (its children orphaned too, their blocks released)',
      expect: ['nlink-wrong', 'orphan-inode'],
      repairs: ['nlink-wrong', 'orphan-inode', 'stats-mismatch'], // the counters, once the orphans are gone
      without: { docs: true },
      corrupt: (t) => fx.raw.hDel(t.k.dir(1), 'docs'),
      async after(t, s) {
        await expect(s.stat('/docs')).rejects.toMatchObject({ code: 'ENOENT' });
        for (const ino of [t.ino.docs, t.ino.a, t.ino.sub, t.ino.hidden]) {
          expect(await rawInode(fx.raw, t.prefix, ino)).toBeUndefined();
          expect(await fx.raw.exists([t.k.dir(ino), t.k.map(ino)])).toBe(0);
        }
        expect(await fx.raw.exists(t.k.xattr(t.ino.a))).toBe(0);
        expect(await s.statfs()).toMatchObject({ inodes: 5 });
        expect(await fx.raw.hGetAll(t.k.stats)).toEqual({ inodes: '5', bytes: String(B_DATA.length) });
      },
    },
    {
      what: 'an orphan symlink (its target goes with it)',
      expect: ['orphan-inode'],
      repairs: ['orphan-inode', 'stats-mismatch'],
      without: { ln: true },
      corrupt: (t) => fx.raw.hDel(t.k.dir(1), 'ln'),
      async after(t) {
        expect(await rawInode(fx.raw, t.prefix, t.ino.ln)).toBeUndefined();
        expect(await fx.raw.exists(t.k.target(t.ino.ln))).toBe(0);
      },
    },
    {
      what: 'stray symlink targets (of a fifo, of nothing)',
      expect: ['stray-target'],
      corrupt: async (t) => {
        await fx.raw.set(t.k.target(t.ino.fifo), 'x');
        await fx.raw.set(t.k.target(50), 'y'); // 50: reserved by the counter, unused
      },
      async after(t) {
        expect(await fx.raw.exists([t.k.target(t.ino.fifo), t.k.target(50)])).toBe(0);
      },
    },
    {
      what: 'orphan block maps (of a fifo, of a missing inode beyond the counter)',
      expect: ['inode-counter-behind', 'orphan-map'],
      corrupt: async (t) => {
        await fx.raw.zAdd(t.k.map(t.ino.fifo), { score: 0, value: await storeBlock(t.k) });
        await fx.raw.zAdd(t.k.map(100_000), [{ score: 2, value: await storeBlock(t.k) }, { score: 3, value: await storeBlock(t.k) }]);
      },
      async after(t) {
        expect(await fx.raw.exists([t.k.map(t.ino.fifo), t.k.map(100_000)])).toBe(0);
      },
    },
    {
      what: 'stale block map entries past the end of a file',
      expect: ['block-past-eof'],
      corrupt: async (t) => fx.raw.zAdd(t.k.map(t.ino.a), [{ score: 3, value: await storeBlock(t.k) }, { score: 70, value: await storeBlock(t.k) }]),
      async after(t) {
        expect(await fx.raw.zCard(t.k.map(t.ino.a))).toBe(3);
      },
    },
    {
      what: 'a corrupt block map entry',
      expect: ['map-entry-corrupt'],
      corrupt: (t) => fx.raw.zAdd(t.k.map(t.ino.b), { score: 1.5, value: 'not-an-id' }),
    },
    {
      what: 'a block nothing references (a write cut short)',
      expect: ['block-unreferenced'],
      corrupt: (t) => storeBlock(t.k),
      async after(t) {
        expect(await fx.raw.exists(t.k.block(String(nextId)))).toBe(0);
      },
    },
    {
      what: 'a reference count on a block referenced once, and one on a block nothing references',
      expect: ['refcount-wrong'],
      corrupt: async (t) => {
        await fx.raw.hSet(t.k.refcounts, (await idsOf(t.k, t.ino.a))[1]!, '5');
        await fx.raw.hSet(t.k.refcounts, await storeBlock(t.k), '2');
      },
      async after(t) {
        // The unreferenced one went to the collector, which deleted it.
        expect(await fx.raw.exists(t.k.block(String(nextId)))).toBe(0);
        expect(await fx.raw.hLen(t.k.refcounts)).toBe(0);
      },
    },
    {
      what: 'a block in use listed as free',
      expect: ['block-freed-in-use'],
      corrupt: async (t) => fx.raw.sAdd(t.k.freeBlocks, (await idsOf(t.k, t.ino.b))[0]!),
    },
    { what: 'wrong usage counters', expect: ['stats-mismatch'], corrupt: (t) => fx.raw.hSet(t.k.stats, 'inodes', '999') },
    { what: 'a wrong type in an entry', expect: ['entry-type-mismatch'], corrupt: (t) => fx.raw.hSet(t.k.dir(1), 'ln', `f${t.ino.ln}`) },
    { what: 'a wrong parent', expect: ['dir-parent-wrong'], corrupt: (t) => patchRawInode(fx.raw, t.prefix, t.ino.sub, { parent: 1 }) },
    {
      what: 'a directory with two names',
      expect: ['dir-multiple-names', 'nlink-wrong'],
      corrupt: (t) => fx.raw.hSet(t.k.dir(1), 'sub-again', `d${t.ino.sub}`),
    },
    { what: 'the root named by an entry', expect: ['dir-multiple-names', 'nlink-wrong'], corrupt: (t) => fx.raw.hSet(t.k.dir(t.ino.empty), 'up', 'd1') },
    {
      what: 'an entries hash of a non-directory, and an xattr hash of nothing',
      expect: ['stray-dir-hash', 'stray-xattr-hash'],
      corrupt: async (t) => {
        await fx.raw.hSet(t.k.dir(t.ino.fifo), 'x', `f${t.ino.a}`);
        await fx.raw.hSet(t.k.xattr(50), 'user.z', '1'); // 50: reserved by the counter, unused
      },
    },
    {
      what: 'a missing root',
      expect: ['root-missing', 'stats-mismatch'],
      repairs: ['root-missing'], // a root again: the counters are right again
      corrupt: (t) => deleteRawInode(fx.raw, t.prefix, 1),
    },
    { what: 'an inode counter behind', expect: ['inode-counter-behind'], corrupt: (t) => fx.raw.set(t.k.inoCounter, '1') },
  ];

  it.each(cases)('reports and repairs $what', async (c) => {
    const t = await build();
    await c.corrupt(t);
    await expectRepaired(t.prefix, c.expect, c.repairs);
    // Whatever a repair released is the collector's: a store collects it, and nothing is left.
    const s = await collectedStore(t.prefix);
    expect(await fsck(t.prefix)).toMatchObject({ problems: [], pending: NOTHING_PENDING });
    await expectDataIntact(s, t, c.without);
    await c.after?.(t, s);
  });

  it('reports a missing block loudly, and repairs it into a hole: the file reads zeros there', async () => {
    const t = await build();
    const lost = (await idsOf(t.k, t.ino.b))[1]!;
    await fx.raw.del(t.k.block(lost));
    const found = await fsck(t.prefix);
    expect(found.problems).toEqual([
      expect.objectContaining({ kind: 'block-missing', ino: t.ino.b, key: t.k.map(t.ino.b), repairable: true, message: expect.stringMatching(/^DATA LOST: block 1 of inode/) }),
    ]);
    // The store reads it as an error, not as data.
    const before = await fx.fresh({ prefix: t.prefix, readOnly: true, ...quiet });
    await expect(before.readFile('/b')).rejects.toMatchObject({ code: 'EIO' });
    await expectRepaired(t.prefix, ['block-missing']);
    const s = await collectedStore(t.prefix);
    expect((await s.readFile('/b')).equals(Buffer.concat([B_DATA.subarray(0, BS), Buffer.alloc(B_DATA.length - BS)]))).toBe(true);
    expect(await fsck(t.prefix)).toMatchObject({ problems: [], pending: NOTHING_PENDING });
    await expectDataIntact(s, t, { b: true });
  });

  it('repairs the blocks of a family from either member, keeping the counts right for both', async () => {
    const t = await build();
    const snap = `${t.prefix}@a`;
    await snapshotFilesystem({ url: fx.redis.url, from: t.prefix, to: snap });
    const [a0, a1] = await idsOf(t.k, t.ino.a);
    const [b0] = await idsOf(t.k, t.ino.b);
    // A shared block lost: each member that maps it reports it, and repairing one member's entry
    // drops only its own reference (2 → 1): nothing else needs repairing, in either member.
    await fx.raw.del(t.k.block(a1!));
    expect(kinds((await fsck(snap)).problems)).toEqual(['block-missing']);
    await expectRepaired(t.prefix, ['block-missing']);
    expect(await fx.raw.hExists(t.k.refcounts, a1!)).toBe(0);
    expect(kinds((await fsck(snap)).problems)).toEqual(['block-missing']);
    // A shared block's count lost, and another's too high: seen from either member.
    await fx.raw.hDel(t.k.refcounts, a0!);
    await fx.raw.hSet(t.k.refcounts, b0!, '3');
    const fromSnap = await fsck(snap);
    expect(fromSnap.problems.filter((p) => p.kind === 'refcount-wrong')).toHaveLength(2);
    await expectRepaired(t.prefix, ['refcount-wrong']);
    expect(await fx.raw.hmGet(t.k.refcounts, [a0!, b0!])).toEqual(['2', '2']);
    // The snapshot still maps the lost block: its own check says so, and repairs it.
    await expectRepaired(snap, ['block-missing']);
    const s = await collectedStore(t.prefix);
    const zeros = Buffer.concat([A_DATA.subarray(0, BS), Buffer.alloc(BS), A_DATA.subarray(2 * BS)]);
    expect((await s.readFile('/docs/a.txt')).equals(zeros)).toBe(true);
    const snapStore = await fx.fresh({ prefix: snap, readOnly: true, ...quiet });
    expect((await snapStore.readFile('/docs/a.txt')).equals(zeros)).toBe(true);
    expect((await snapStore.readFile('/b')).equals(B_DATA)).toBe(true);
    for (const prefix of [t.prefix, snap]) expect(await fsck(prefix), prefix).toMatchObject({ problems: [], pending: NOTHING_PENDING });
  });

  it('fixes reference counts before it releases an orphan\'s blocks, which a snapshot still shares', async () => {
    const t = await build();
    const snap = `${t.prefix}@a`;
    await snapshotFilesystem({ url: fx.redis.url, from: t.prefix, to: snap });
    // /b becomes an orphan in the source, and the count of its first block (shared) is lost:
    // released with a count of 1 it would go to the free list, though the snapshot maps it.
    const [b0] = await idsOf(t.k, t.ino.b);
    await fx.raw.hDel(t.k.dir(1), 'b');
    await fx.raw.hDel(t.k.refcounts, b0!);
    await expectRepaired(t.prefix, ['orphan-inode', 'refcount-wrong'], ['orphan-inode', 'refcount-wrong', 'stats-mismatch']);
    expect(await fx.raw.sIsMember(t.k.freeBlocks, b0!)).toBe(0);
    await collectedStore(t.prefix);
    const snapStore = await fx.fresh({ prefix: snap, readOnly: true, ...quiet });
    expect((await snapStore.readFile('/b')).equals(B_DATA)).toBe(true);
    for (const prefix of [t.prefix, snap]) expect(await fsck(prefix), prefix).toMatchObject({ problems: [], pending: NOTHING_PENDING });
  });

  it('names the inode, entry and key of a problem', async () => {
    const t = await build();
    await fx.raw.hSet(t.k.dir(t.ino.docs), 'ghost', 'f60');
    await patchRawInode(fx.raw, t.prefix, t.ino.a, { nlink: 7 });
    const { problems } = await fsck(t.prefix);
    expect(problems).toContainEqual(
      expect.objectContaining({ kind: 'entry-dangling', ino: 60, dir: t.ino.docs, name: 'ghost', key: t.k.dir(t.ino.docs) }),
    );
    const nlink = problems.find((p) => p.kind === 'nlink-wrong');
    expect(nlink).toMatchObject({ ino: t.ino.a, key: t.k.inodes(t.ino.a) });
    expect(nlink?.message).toMatch(/nlink 7, expected 2/);
  });

  it('leaves unreadable inodes and unknown keys alone, and says so', async () => {
    const t = await build();
    await setRawInode(fx.raw, t.prefix, t.ino.b, 'garbage');
    await fx.raw.set(`${t.k.metaPrefix}mystery`, '1');
    await fx.raw.set(t.k.block('junk'), '1');
    await fx.raw.set(t.k.map(50), 'not a map');
    const report = await fsck(t.prefix, true);
    expect(kinds(report.problems)).toEqual(['inode-unreadable', 'unexpected-key']);
    expect(report.problems.filter((p) => p.kind === 'unexpected-key').map((p) => p.key).sort()).toEqual(
      [`${t.k.metaPrefix}mystery`, t.k.block('junk'), t.k.map(50)].sort(),
    );
    expect(report.problems.every((p) => !p.repairable)).toBe(true);
    expect(kinds(report.remaining)).toEqual(['inode-unreadable', 'unexpected-key']);
    // Its block map and xattrs are not taken for strays, nor its name for a dangling entry.
    expect(await fx.raw.zCard(t.k.map(t.ino.b))).toBe(2);
    expect(await fx.raw.exists(t.k.xattr(t.ino.b))).toBe(1);
    expect(await fx.raw.hGet(t.k.dir(1), 'b')).toBe(`f${t.ino.b}`);
  });

  it('reads every inode of a bucket around a corrupt record, and leaves what it cannot repair alone', async () => {
    const t = await build();
    const bucket = t.k.inodes(t.ino.b);
    expect(t.k.inodes(t.ino.a)).toBe(bucket); // one bucket holds the whole tree
    // b's record corrupt (its fixed part intact, a byte too many), a's nlink wrong: both seen.
    const b = (await rawInode(fx.raw, t.prefix, t.ino.b))!;
    await setRawInode(fx.raw, t.prefix, t.ino.b, Buffer.concat([encodeInodeRecord(b), Buffer.from([0])]));
    await patchRawInode(fx.raw, t.prefix, t.ino.a, { nlink: 7 });
    // Fields that are no inode of the bucket: not canonical, and of another bucket.
    const a = await fx.raw.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).hGet(bucket, String(t.ino.a));
    await fx.raw.hSet(bucket, { [`0${t.ino.a}`]: a!, '1000': a! });
    // A symlink whose target is lost, and a layout-2 inode hash left over (an upgrade cut short).
    await fx.raw.del(t.k.target(t.ino.ln));
    await fx.raw.hSet(t.k.layout2Inode(t.ino.a), { m: '33188', n: '2' });
    const found = await fsck(t.prefix);
    expect(kinds(found.problems)).toEqual(['inode-unreadable', 'nlink-wrong', 'unexpected-key']);
    expect(found.problems.filter((p) => p.kind === 'inode-unreadable').map((p) => [p.ino, p.key, p.repairable])).toEqual([
      [t.ino.b, bucket, false],
      [t.ino.ln, t.k.target(t.ino.ln), false],
    ]);
    expect(found.problems.find((p) => p.kind === 'nlink-wrong')).toMatchObject({ ino: t.ino.a, key: bucket, repairable: true });
    const unexpected = found.problems.filter((p) => p.kind === 'unexpected-key');
    expect(unexpected.map((p) => p.key).sort()).toEqual([bucket, t.k.layout2Inode(t.ino.a)].sort());
    expect(unexpected.find((p) => p.key === bucket)?.message).toContain(`"0${t.ino.a}", "1000"`);
    expect(unexpected.find((p) => p.key !== bucket)?.message).toMatch(/layout 2.*redisfs upgrade/);
    // The stray fields are not counted as inodes (nor are the counters judged wrong for them).
    expect(found.counts).toMatchObject({ inodes: 9 });
    const fields = await fx.raw.hLen(bucket);

    const repaired = await fsck(t.prefix, true);
    expect(repaired.repaired.map((r) => r.kind)).toEqual(['nlink-wrong']);
    expect(kinds(repaired.remaining)).toEqual(['inode-unreadable', 'unexpected-key']);
    expect((await rawInode(fx.raw, t.prefix, t.ino.a))?.nlink).toBe(2);
    expect(await fx.raw.hLen(bucket)).toBe(fields);
    expect(await fx.raw.exists([t.k.layout2Inode(t.ino.a), t.k.map(t.ino.b), t.k.xattr(t.ino.b)])).toBe(3);
    expect(await fx.raw.hGet(t.k.dir(1), 'b')).toBe(`f${t.ino.b}`);
    expect(await fx.raw.hGet(t.k.dir(1), 'ln')).toBe(`l${t.ino.ln}`);
  });

  it('takes the inodes of a bucket that is not a hash for unreadable, not for missing', async () => {
    const t = await build();
    // Inode 130 (bucket 2), named by an entry and by a target key; its bucket is a string.
    await fx.raw.set(t.k.inodes(130), 'not a hash');
    await fx.raw.hSet(t.k.dir(1), 'far', 'f130');
    await fx.raw.set(t.k.target(130), 'somewhere');
    const report = await fsck(t.prefix, true);
    expect(report.problems.filter((p) => p.kind !== 'inode-counter-behind').map((p) => [p.kind, p.key])).toEqual([
      ['unexpected-key', t.k.inodes(130)],
      ['inode-unreadable', t.k.inodes(130)],
    ]);
    expect(report.remaining.filter((p) => p.kind !== 'inode-counter-behind')).toEqual(report.problems.filter((p) => p.kind !== 'inode-counter-behind'));
    expect(await fx.raw.hGet(t.k.dir(1), 'far')).toBe('f130');
    expect(await fx.raw.exists([t.k.inodes(130), t.k.target(130)])).toBe(2);
  });

  it('repairs many problems at once, in passes', async () => {
    const t = await build();
    await fx.raw.hDel(t.k.dir(1), 'docs');
    await fx.raw.hSet(t.k.dir(1), 'ghost', 'f61');
    await fx.raw.zAdd(t.k.map(t.ino.b), { score: 9, value: await storeBlock(t.k) });
    await storeBlock(t.k);
    await patchRawInode(fx.raw, t.prefix, t.ino.empty, { nlink: 9 });
    await fx.raw.hSet(t.k.stats, 'bytes', '1');
    const report = await fsck(t.prefix, true);
    expect(report.remaining).toEqual([]);
    expect(report.passes).toBeGreaterThan(1);
    const s = await collectedStore(t.prefix);
    expect(await fsck(t.prefix)).toMatchObject({
      problems: [],
      pending: NOTHING_PENDING,
      counts: { inodes: 5, directories: 2, entries: 4, blocks: 2, familyBlocks: 2 },
    });
    await expectDataIntact(s, t, { docs: true });
  });

  it('stops at a missing or corrupt superblock', async () => {
    const t = await build();
    await fx.raw.hSet(t.k.superblock, 'bsize', 'big');
    const corrupt = await fsck(t.prefix, true);
    expect(corrupt).toMatchObject({ fatal: true, repaired: [] });
    expect(kinds(corrupt.problems)).toEqual(['superblock-corrupt']);
    await fx.raw.del(t.k.superblock);
    const missing = await fsck(t.prefix);
    expect(missing.fatal).toBe(true);
    expect(kinds(missing.problems)).toEqual(['superblock-missing']);
  });

  it('fails with ENOENT, EINVAL or EIO when there is nothing it can check', async () => {
    await expect(fsck('nothing-here')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fsck('a:b')).rejects.toMatchObject({ code: 'EINVAL' });
    const t = await build();
    await fx.raw.hSet(t.k.superblock, 'version', '99');
    await expect(fsck(t.prefix)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/layout version 99/) });
    await expect(checkFilesystem({ url: 'redis://127.0.0.1:1', prefix: 'x', connectTimeoutMs: 1000 })).rejects.toMatchObject({ code: 'EIO' });
  });

  it('sends a layout-1 filesystem to `redisfs upgrade` instead of checking it', async () => {
    const t = await build();
    await fx.raw.hSet(t.k.superblock, 'version', '1');
    // Layout 1's keys, which a check of layout 2 would take for problems.
    await fx.raw.set(`${t.prefix}:b:${t.ino.a}:0`, 'x');
    await fx.raw.sAdd(t.k.gc, `${t.ino.a}:3:8`);
    const refused = fsck(t.prefix, true);
    await expect(refused).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(refused).rejects.toThrow(/layout version 1: convert it with `redisfs upgrade --prefix fsck\d+`/);
    await fx.raw.hSet(t.k.superblock, { version: '2', upgrade: '0@1' });
    await expect(fsck(t.prefix)).rejects.toThrow(/an upgrade was cut short/);
    expect(await fx.raw.exists(`${t.prefix}:b:${t.ino.a}:0`)).toBe(1);
  });

  it('skips a repair whose condition changed since the check', async () => {
    const t = await build();
    const client = await connectClient({ url: fx.redis.url });
    try {
      const apply = (action: RepairAction) =>
        applyRepair(client, t.k, { problem: { kind: 'nlink-wrong', message: '', repairable: true }, action }, BS);
      await fx.raw.hSet(t.k.dir(1), 'ghost', 'f61');
      expect(await apply({ op: 'remove-entry', dir: 1, name: 'ghost', value: 'f60' })).toBeUndefined();
      expect(await fx.raw.hGet(t.k.dir(1), 'ghost')).toBe('f61');
      expect(await apply({ op: 'set-nlink', ino: t.ino.a, from: '1', to: 9 })).toBeUndefined();
      expect(await apply({ op: 'delete-inode', ino: t.ino.b, nlink: '1', ctime: '1', blocks: 2 })).toBeUndefined();
      expect(await apply({ op: 'delete-hash', which: 'xattr', ino: t.ino.b })).toBeUndefined();
      expect(await apply({ op: 'raise-counter', to: 2 })).toBeUndefined();
      // A live file's map is never released whole, nor entries inside the file.
      expect(await apply({ op: 'release-map', ino: t.ino.b, whole: true })).toBeUndefined();
      expect(await apply({ op: 'release-map', ino: t.ino.b, whole: false })).toBeUndefined();
      // A block that is stored is not missing; an entry that moved is not removed.
      const [b0, b1] = await idsOf(t.k, t.ino.b);
      expect(await apply({ op: 'remove-map-entry', ino: t.ino.b, id: b0!, index: 0, missing: true })).toBeUndefined();
      expect(await apply({ op: 'remove-map-entry', ino: t.ino.b, id: b1!, index: 0, missing: false })).toBeUndefined();
      // A count that changed is not set; a block that is counted, free, or in a map the check
      // names is not deleted.
      expect(await apply({ op: 'set-refcount', id: b0!, from: '2', to: 0 })).toBeUndefined();
      await fx.raw.hSet(t.k.refcounts, b0!, '2');
      expect(await apply({ op: 'delete-block', id: b0!, maps: [] })).toBeUndefined();
      await fx.raw.hDel(t.k.refcounts, b0!);
      await fx.raw.sAdd(t.k.freeBlocks, b1!);
      expect(await apply({ op: 'delete-block', id: b1!, maps: [] })).toBeUndefined();
      expect(await apply({ op: 'unfree-block', id: b0! })).toBeUndefined();
      expect((await apply({ op: 'unfree-block', id: b1! }))?.message).toMatch(/took block \d+, which is in use, off/);
      expect(await apply({ op: 'delete-block', id: b1!, maps: [t.k.map(t.ino.b)] })).toBeUndefined();
      expect((await apply({ op: 'remove-entry', dir: 1, name: 'ghost', value: 'f61' }))?.message).toMatch(/removed entry 'ghost'/);
      const s = await collectedStore(t.prefix);
      await expectDataIntact(s, t);
    } finally {
      await client.close();
    }
  });

  it('refuses to repair while a snapshot is taken from or into the filesystem, or another member of its family', async () => {
    const t = await build();
    const other = await build(`${t.prefix}@b`);
    await patchRawInode(fx.raw, t.prefix, t.ino.a, { nlink: 5 });
    for (const key of [t.k.snapshot, t.k.snapshotLock, other.k.snapshot]) {
      await fx.raw.hSet(key, { to: 'elsewhere', id: '1' });
      expect(kinds((await fsck(t.prefix)).problems)).toEqual(['nlink-wrong']);
      await expect(fsck(t.prefix, true)).rejects.toMatchObject({ code: 'EBUSY' });
      expect((await rawInode(fx.raw, t.prefix, t.ino.a))?.nlink).toBe(5);
      await fx.raw.del(key);
    }
    expect((await fsck(t.prefix, true)).remaining).toEqual([]);
  });

  it('reports progress phase by phase, each from 0 up to its total on a quiet filesystem', async () => {
    const t = await build();
    const seen: FsckProgress[] = [];
    await checkFilesystem({ url: fx.redis.url, prefix: t.prefix, onProgress: (p) => seen.push({ ...p }) });
    const phases = [...new Set(seen.map((p) => p.phase))];
    expect(phases).toEqual(['metadata', 'blocks', 'maps', 'refcounts']);
    for (const phase of phases) {
      const calls = seen.filter((p) => p.phase === phase);
      expect(calls[0], phase).toMatchObject({ pass: 1, done: 0 });
      expect(calls.map((c) => c.done)).toEqual(calls.map((c) => c.done).sort((a, b) => a - b));
    }
    const last = (phase: string) => seen.filter((p) => p.phase === phase).at(-1);
    // 9 inodes; a.txt (3 blocks), the hidden file (1) and b (2): 6 blocks in 3 maps.
    expect(last('metadata')).toEqual({ phase: 'metadata', pass: 1, done: 9, total: 9 });
    expect(last('blocks')).toEqual({ phase: 'blocks', pass: 1, done: 6, total: 6 });
    expect(last('maps')).toEqual({ phase: 'maps', pass: 1, done: 3, total: 3 });
    expect(last('refcounts')).toMatchObject({ total: undefined });
  });

  it('counts repairs against the repairs of the pass', async () => {
    const t = await build();
    await patchRawInode(fx.raw, t.prefix, t.ino.a, { nlink: 5 });
    await patchRawInode(fx.raw, t.prefix, t.ino.b, { nlink: 7 });
    const seen: FsckProgress[] = [];
    await checkFilesystem({ url: fx.redis.url, prefix: t.prefix, repair: true, onProgress: (p) => seen.push({ ...p }) });
    expect(seen.filter((p) => p.phase === 'repair')).toEqual([
      { phase: 'repair', pass: 1, done: 1, total: 2 },
      { phase: 'repair', pass: 1, done: 2, total: 2 },
    ]);
    expect(seen.at(-1)).toMatchObject({ phase: 'refcounts', pass: 2 }); // the check after the repairs
  });
});
