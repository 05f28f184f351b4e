/**
 * copyFilesystem / listFilesystems / deleteFilesystem against a real redis-server started for
 * this file. Filesystems are written by hand in the schema's layout (version 3: inode buckets,
 * block maps, family keys), so the test depends on nothing but the schema.
 */
import { RESP_TYPES } from '@redis/client';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LAYOUT_VERSION, encodeInodeRecord, encodeSuperblock, familyOf, keysFor } from '@redisfs/schema';
import { freePort } from '@redisfs/testing';
import { deleteFilesystem, listFilesystems } from './admin.js';
import { copyFilesystem, snapshotFilesystem } from './snapshot.js';
import { isFsError } from './errors.js';
import { openStore } from './open.js';
import { type RawClient, storeFixture } from './internal/test-fixture.js';

const fx = storeFixture('admin');
/** The file's server and a plain client of it, once the fixture started them. */
let url = '';
let client: RawClient;

beforeAll(() => {
  url = fx.redis.url;
  client = fx.raw;
});

beforeEach(async () => {
  await client.flushAll();
});

/** A packed inode record (mode, size, nlink; the rest fixed), as the store stores it. */
function inodeRecord(mode: number, size: number, nlink: number, parent?: number): Buffer {
  return encodeInodeRecord({
    mode, uid: 0, gid: 0, size, nlink, rdev: 0, atimeNs: 1n, mtimeNs: 1n, ctimeNs: 1n, target: undefined, generation: 1, parent,
  });
}

/**
 * A tiny filesystem in layout 3: superblock, counters, root dir with one file of two blocks
 * (ids 1 and 2 of the family's counter, in the file's block map). Metadata keys: sb, ino, st,
 * in:0 (inodes 1 and 2), d:1, m:2 (6); family keys: the block counter; blocks: 2.
 */
async function writeFs(prefix: string, extra: Record<string, string> = {}): Promise<void> {
  const k = keysFor(prefix);
  await client.hSet(k.superblock, {
    ...encodeSuperblock({ version: LAYOUT_VERSION, bsize: 65536, codec: 'zlib', created: 1_700_000_000_000_000_000n, maxsize: 2 ** 50 }),
    ...extra,
  });
  await client.set(k.inoCounter, '2');
  await client.hSet(k.stats, { inodes: '2', bytes: '70000' });
  await client.hSet(k.inodes(1), '1', inodeRecord(0o40755, 0, 2, 1));
  await client.hSet(k.dir(1), { 'hello.txt': 'f2' });
  await client.hSet(k.inodes(2), '2', inodeRecord(0o100644, 70000, 1));
  const [first, second] = await newIds(prefix, 2);
  await client.zAdd(k.map(2), [{ score: 0, value: first! }, { score: 1, value: second! }]);
  await client.set(k.block(first!), Buffer.from([0, 1, 2, 3]));
  await client.set(k.block(second!), Buffer.from([0, 255, 254]));
}

/** Block ids from the family's counter, as the store takes them. */
async function newIds(prefix: string, n: number): Promise<string[]> {
  const last = await client.incrBy(keysFor(prefix).blockCounter, n);
  return Array.from({ length: n }, (_, i) => String(last - n + 1 + i));
}

async function scan(pattern: string): Promise<string[]> {
  const out: string[] = [];
  for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: 1000 })) out.push(...keys);
  return out.sort();
}

/** The metadata keys of one prefix (not the family's keys, not the blocks). */
function keysOf(prefix: string): Promise<string[]> {
  return scan(keysFor(prefix).metaPattern);
}

/** Every key of a family: its members' metadata, the family keys (`{F}#…`) and the blocks. */
async function familyKeys(family: string): Promise<string[]> {
  return [...(await scan(`${keysFor(family).hashTag}*`)), ...(await scan(keysFor(family).blockPattern))].sort();
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => expect.fail('expected a rejection'), (err: unknown) => err);
}

describe('copyFilesystem', () => {
  it('copies every metadata key into the member, renamed, values byte for byte, and shares the blocks', async () => {
    await writeFs('a');
    await writeFs('ab'); // a family whose name starts like 'a' must not be swept along
    const blocks = await scan(keysFor('a').blockPattern);
    const result = await copyFilesystem({ url, from: 'a', to: 'a@b' });
    expect(result).toMatchObject({ copiedKeys: 6, deletedKeys: 0 });
    const src = await keysOf('a');
    const dst = await keysOf('a@b');
    expect(dst).toEqual(src.map((k) => k.replace('{a}:', '{a}@b:')).sort());
    expect(await client.hGetAll(keysFor('a@b').dir(1))).toEqual({ 'hello.txt': 'f2' });
    expect(await client.zRangeWithScores(keysFor('a@b').map(2), 0, -1)).toEqual(await client.zRangeWithScores(keysFor('a').map(2), 0, -1));
    // No block is copied: both maps reference the same two blocks, counted twice each.
    expect(await scan(keysFor('a').blockPattern)).toEqual(blocks);
    const ids = await client.zRange(keysFor('a').map(2), 0, -1);
    expect(await client.hGetAll(keysFor('a').refcounts)).toEqual(Object.fromEntries(ids.map((id) => [id, '2'])));
    expect(await client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).get(keysFor('a@b').block(ids[1]!))).toEqual(Buffer.from([0, 255, 254]));
    // A restore is an ordinary filesystem (no snapshot marks), the source is untouched.
    expect(await client.hGetAll(keysFor('a@b').superblock)).toEqual(await client.hGetAll(keysFor('a').superblock));
    expect(await keysOf('a')).toEqual(src);
    expect(await client.exists(keysFor('ab').refcounts)).toBe(0);
    expect((await keysOf('ab')).length).toBe(6);
  });

  it('refuses when the source has no superblock', async () => {
    await client.set(keysFor('a').inodes(2), 'x'); // stray key, no filesystem
    const err = await rejection(copyFilesystem({ url, from: 'a', to: 'a@b' }));
    expect(isFsError(err, 'ENOENT')).toBe(true);
    expect(String(err)).toContain("no filesystem at prefix 'a'");
    expect(await keysOf('a@b')).toEqual([]);
  });

  it('refuses a destination holding any key, unless force', async () => {
    await writeFs('a');
    // A stray metadata key of the member (a bucket the copy does not write).
    await client.hSet(keysFor('a@b').inodes(640), '640', 'x');
    const err = await rejection(copyFilesystem({ url, from: 'a', to: 'a@b' }));
    expect(isFsError(err, 'EEXIST')).toBe(true);
    expect(String(err)).toContain('--force');
    const result = await copyFilesystem({ url, from: 'a', to: 'a@b', force: true });
    expect(result).toMatchObject({ copiedKeys: 6, deletedKeys: 1 });
    expect(await client.exists(keysFor('a@b').inodes(640))).toBe(0);
  });

  it('replaces a member holding a filesystem with force, releasing what its maps referenced', async () => {
    await writeFs('a');
    await copyFilesystem({ url, from: 'a', to: 'a@b' });
    // The member gets a block of its own, then is replaced by a new copy of 'a'.
    const [own] = await newIds('a', 1);
    await client.set(keysFor('a').block(own!), Buffer.from([0, 7]));
    await client.zAdd(keysFor('a@b').map(2), { score: 2, value: own! });
    const result = await copyFilesystem({ url, from: 'a', to: 'a@b', force: true });
    expect(result).toMatchObject({ copiedKeys: 6, deletedKeys: 6 });
    expect(await client.exists(keysFor('a').block(own!))).toBe(0); // only the replaced copy referenced it
    expect(await client.sCard(keysFor('a').freeBlocks)).toBe(0);
    const ids = await client.zRange(keysFor('a').map(2), 0, -1);
    expect(await client.hGetAll(keysFor('a').refcounts)).toEqual(Object.fromEntries(ids.map((id) => [id, '2'])));
    expect(await scan(keysFor('a').blockPattern)).toEqual(ids.map((id) => keysFor('a').block(id)).sort());
  });

  it('rejects invalid and identical prefixes', async () => {
    expect(isFsError(await rejection(copyFilesystem({ url, from: 'a', to: 'x:y' })), 'EINVAL')).toBe(true);
    expect(isFsError(await rejection(copyFilesystem({ url, from: '{a}', to: 'b' })), 'EINVAL')).toBe(true);
    expect(isFsError(await rejection(copyFilesystem({ url, from: 'a', to: 'a' })), 'EINVAL')).toBe(true);
    expect(isFsError(await rejection(copyFilesystem({ url, from: 'a@x', to: 'a@x' })), 'EINVAL')).toBe(true);
  });

  it('refuses a copy into another family with EINVAL, naming the member to use instead, and touches nothing', async () => {
    await writeFs('a');
    const before = await familyKeys('a');
    for (const to of ['b', 'ab', 'b@a', 'A@x']) {
      const err = await rejection(copyFilesystem({ url, from: 'a', to }));
      expect(isFsError(err, 'EINVAL'), to).toBe(true);
      expect(String(err)).toContain("'a@<label>'");
      expect(await familyKeys(familyOf(to))).toEqual([]);
    }
    const err = await rejection(snapshotFilesystem({ url, from: 'a@x', to: 'b@x' }));
    expect(isFsError(err, 'EINVAL')).toBe(true);
    expect(String(err)).toContain("'a@<label>'");
    expect(await familyKeys('a')).toEqual(before);
  });

  it('copies more keys than one batch, referencing each shared block once more', async () => {
    await writeFs('a');
    const k = keysFor('a');
    const ids = await newIds('a', 1200);
    const multi = client.multi();
    for (let i = 0; i < 1200; i++) multi.zAdd(k.map(100 + i), { score: 0, value: ids[i]! });
    await multi.exec();
    const result = await copyFilesystem({ url, from: 'a', to: 'a@big' });
    expect(result.copiedKeys).toBe(1206);
    expect((await keysOf('a@big')).length).toBe(1206);
    expect(await client.hLen(k.refcounts)).toBe(1202);
    expect(new Set(await client.hVals(k.refcounts))).toEqual(new Set(['2']));
  });

  it('reports an unreachable server as EIO without the password', async () => {
    const port = await freePort();
    const err = await rejection(copyFilesystem({ url: `redis://u:s3cret@127.0.0.1:${port}`, from: 'a', to: 'a@b', connectTimeoutMs: 500 }));
    expect(isFsError(err, 'EIO')).toBe(true);
    expect(String(err)).not.toContain('s3cret');
  });
});

describe('listFilesystems', () => {
  it('lists filesystems and members of families with their counters, ignoring look-alike keys', async () => {
    await writeFs('b');
    await writeFs('a');
    await writeFs('a@snap', { snapof: 'a', snapat: '1700000000000000001' });
    await writeFs('a@clone');
    await client.set('other:sb', 'x');
    await client.set('{not a prefix}:sb', 'x');
    await client.set('{a}@:sb', 'x');
    await client.set('{a}@x@y:sb', 'x');
    await client.set('{a}#sb', 'x');
    await client.set('{a}x:sb', 'x');
    await client.hSet(keysFor('broken').superblock, { version: 'x' });
    const list = await listFilesystems({ url });
    const fs = { version: LAYOUT_VERSION, createdNs: 1_700_000_000_000_000_000n, inodes: 2, bytes: 70000 };
    expect(list).toEqual([
      { prefix: 'a', ...fs },
      { prefix: 'a@clone', ...fs },
      { prefix: 'a@snap', ...fs, snapshot: { of: 'a', atNs: 1_700_000_000_000_000_001n } },
      { prefix: 'b', ...fs },
      { prefix: 'broken', version: undefined, createdNs: undefined, inodes: 0, bytes: 0 },
    ]);
  });

  it('says which filesystem a snapshot is being taken of', async () => {
    await writeFs('a');
    await client.hSet(keysFor('a').snapshot, { to: 'a@s', id: 'x' });
    expect(await listFilesystems({ url })).toMatchObject([{ prefix: 'a', snapshotInProgress: true }]);
  });

  it('returns an empty list on an empty server', async () => {
    expect(await listFilesystems({ url })).toEqual([]);
  });
});

describe('deleteFilesystem', () => {
  it('deletes every key of the prefix and its blocks, and nothing else', async () => {
    await writeFs('a');
    await writeFs('ab');
    // The superblock (forget) and the 5 other metadata keys; blocks are not counted.
    expect(await deleteFilesystem({ url, prefix: 'a' })).toEqual({ deletedKeys: 6 });
    expect(await keysOf('a')).toEqual([]);
    // Of the family only the block id counter stays (ids are never reused).
    expect(await familyKeys('a')).toEqual([keysFor('a').blockCounter]);
    expect((await keysOf('ab')).length).toBe(6);
    expect((await scan(keysFor('ab').blockPattern)).length).toBe(2);
  });

  it('deletes a member without touching the blocks the rest of the family references', async () => {
    await writeFs('a');
    await copyFilesystem({ url, from: 'a', to: 'a@b' });
    const blocks = await scan(keysFor('a').blockPattern);
    expect(await deleteFilesystem({ url, prefix: 'a@b', onlySnapshot: false })).toEqual({ deletedKeys: 6 });
    expect(await keysOf('a@b')).toEqual([]);
    expect(await scan(keysFor('a').blockPattern)).toEqual(blocks);
    expect(await client.exists([keysFor('a').refcounts, keysFor('a').freeBlocks, keysFor('a').deadMembers])).toBe(0);
    expect((await keysOf('a')).length).toBe(6);
  });

  it('with onlySnapshot, deletes snapshots only (EPERM for a filesystem)', async () => {
    await writeFs('a');
    await snapshotFilesystem({ url, from: 'a', to: 'a@s' });
    const err = await rejection(deleteFilesystem({ url, prefix: 'a', onlySnapshot: true }));
    expect(isFsError(err, 'EPERM')).toBe(true);
    expect((await keysOf('a')).length).toBe(6);
    expect(await deleteFilesystem({ url, prefix: 'a@s', onlySnapshot: true })).toEqual({ deletedKeys: 6 });
  });

  it('finishes a delete cut short when run again', async () => {
    await writeFs('a');
    await copyFilesystem({ url, from: 'a', to: 'a@b' });
    // What `forget` leaves before the member's keys are released: no superblock, listed as dead.
    await client.del(keysFor('a@b').superblock);
    await client.sAdd(keysFor('a').deadMembers, 'a@b');
    expect(await listFilesystems({ url })).toMatchObject([{ prefix: 'a' }]);
    expect(await deleteFilesystem({ url, prefix: 'a@b' })).toEqual({ deletedKeys: 5 });
    expect(await keysOf('a@b')).toEqual([]);
    expect(await client.exists([keysFor('a').refcounts, keysFor('a').deadMembers])).toBe(0);
    expect(isFsError(await rejection(deleteFilesystem({ url, prefix: 'a@b' })), 'ENOENT')).toBe(true);
  });

  // A copy into a member still listed in `{F}#dead` (its delete cut short) would be released by
  // the next collector of the family, superblock included. It must refuse, or leave the member
  // off the list; either way the family's collector must not take the copy away.
  it('does not let a copy into a half-deleted member be released afterwards', async () => {
    await writeFs('a');
    await copyFilesystem({ url, from: 'a', to: 'a@b' });
    // A delete of a@b cut short after `forget`: no superblock, listed as dead, keys left.
    await client.del(keysFor('a@b').superblock);
    await client.sAdd(keysFor('a').deadMembers, 'a@b');
    const outcome = await snapshotFilesystem({ url, from: 'a', to: 'a@b', force: true }).then(() => 'copied', (err: unknown) => err);
    if (outcome !== 'copied') {
      expect(isFsError(outcome, 'EBUSY'), String(outcome)).toBe(true);
      // The way out: finish the delete, then copy.
      await deleteFilesystem({ url, prefix: 'a@b' });
      await snapshotFilesystem({ url, from: 'a', to: 'a@b' });
    }
    expect(await client.sIsMember(keysFor('a').deadMembers, 'a@b')).toBeFalsy();
    // What any read-write mount of the family does in the background (its collector).
    const store = await openStore({ url, prefix: 'a' });
    try {
      await store.collected();
    } finally {
      await store.close();
    }
    expect(await listFilesystems({ url })).toMatchObject([{ prefix: 'a' }, { prefix: 'a@b', snapshot: { of: 'a' } }]);
    expect((await keysOf('a@b')).length).toBe(6);
  });

  // The same with a rollback into F after a delete of F was cut short: the first mount of the
  // restored F would release F itself, under that very mount.
  it('does not let a mount of a filesystem restored over its half-done delete release it', async () => {
    await writeFs('a');
    await snapshotFilesystem({ url, from: 'a', to: 'a@s' });
    await client.del(keysFor('a').superblock);
    await client.sAdd(keysFor('a').deadMembers, 'a');
    const outcome = await copyFilesystem({ url, from: 'a@s', to: 'a', force: true }).then(() => 'copied', (err: unknown) => err);
    if (outcome !== 'copied') {
      expect(isFsError(outcome, 'EBUSY'), String(outcome)).toBe(true);
      await deleteFilesystem({ url, prefix: 'a' });
      await copyFilesystem({ url, from: 'a@s', to: 'a' });
    }
    const store = await openStore({ url, prefix: 'a' });
    try {
      await store.collected();
      expect((await store.readdir(store.rootIno)).map((e) => e.name)).toEqual(['hello.txt']);
    } finally {
      await store.close();
    }
    expect(await client.exists(keysFor('a').superblock)).toBe(1);
    expect(await client.sIsMember(keysFor('a').deadMembers, 'a')).toBeFalsy();
  });

  it('fails with ENOENT on an empty prefix', async () => {
    const err = await rejection(deleteFilesystem({ url, prefix: 'nothing' }));
    expect(isFsError(err, 'ENOENT')).toBe(true);
  });
});

describe('progress of copies and deletes', () => {
  /** writeFs plus `n` one-block files in the root (inodes 3…), counted in `{P}:st`: n + 2 inodes. */
  async function writeFiles(prefix: string, n: number): Promise<void> {
    await writeFs(prefix);
    const k = keysFor(prefix);
    const ids = await newIds(prefix, n);
    const multi = client.multi();
    for (let i = 0; i < n; i++) {
      const ino = 3 + i;
      multi.hSet(k.inodes(ino), String(ino), inodeRecord(0o100644, 100, 1));
      multi.hSet(k.dir(1), `f${i}`, `f${ino}`);
      multi.zAdd(k.map(ino), { score: 0, value: ids[i]! });
      multi.set(k.block(ids[i]!), Buffer.from([0, i % 256]));
    }
    multi.set(k.inoCounter, String(n + 2));
    multi.hSet(k.stats, { inodes: String(n + 2), bytes: String(70_000 + 100 * n) });
    await multi.exec();
  }

  interface Step {
    phase: string;
    done: number;
    total: number | undefined;
  }

  /** The phases in order, each with its calls: each starts at 0 and never goes back. */
  function phasesOf(steps: Step[]): Map<string, Step[]> {
    const out = new Map<string, Step[]>();
    for (const s of steps) out.set(s.phase, [...(out.get(s.phase) ?? []), s]);
    for (const [phase, calls] of out) {
      expect(calls[0]!.done, phase).toBe(0);
      const done = calls.map((c) => c.done);
      expect(done, phase).toEqual([...done].sort((a, b) => a - b));
      expect(new Set(calls.map((c) => c.total)).size, `${phase}: one total`).toBe(1);
    }
    return out;
  }

  it('count a copy in inodes, in batches, up to the inodes the source holds', async () => {
    await writeFiles('a', 1000);
    const steps: Step[] = [];
    await snapshotFilesystem({ url, from: 'a', to: 'a@s', onProgress: (p) => steps.push({ ...p }) });
    const phases = phasesOf(steps);
    expect([...phases.keys()]).toEqual(['copying']);
    expect(steps.at(-1)).toEqual({ phase: 'copying', done: 1002, total: 1002 });
    // 3 007 keys in batches of up to 200: one call a batch, never one a key.
    expect(steps.length).toBeGreaterThan(10);
    expect(steps.length).toBeLessThan(100);

    // Replacing it: its keys go (in inodes), its blocks stay (the source shares them all), then the copy.
    steps.length = 0;
    await copyFilesystem({ url, from: 'a', to: 'a@s', force: true, onProgress: (p) => steps.push({ ...p }) });
    const again = phasesOf(steps);
    expect([...again.keys()]).toEqual(['replacing', 'freeing', 'copying']);
    expect(again.get('replacing')!.at(-1)).toEqual({ phase: 'replacing', done: 1002, total: 1002 });
    expect(again.get('freeing')).toEqual([{ phase: 'freeing', done: 0, total: 0 }]);
    expect(steps.at(-1)).toEqual({ phase: 'copying', done: 1002, total: 1002 });
  });

  it('count a delete in inodes, then in the blocks it frees, up to the totals read at the start of each', async () => {
    await writeFiles('a', 1000);
    await copyFilesystem({ url, from: 'a', to: 'a@c' });
    await client.sAdd(keysFor('a').freeBlocks, (await newIds('a', 1))[0]!); // freed earlier, not collected yet
    const steps: Step[] = [];
    await deleteFilesystem({ url, prefix: 'a@c', onProgress: (p) => steps.push({ ...p }) });
    expect(steps.at(-1)).toEqual({ phase: 'freeing', done: 1, total: 1 }); // the rest of the family shares its blocks

    steps.length = 0;
    await deleteFilesystem({ url, prefix: 'a', onProgress: (p) => steps.push({ ...p }) });
    const phases = phasesOf(steps);
    expect([...phases.keys()]).toEqual(['releasing', 'freeing']);
    expect(phases.get('releasing')!.at(-1)).toEqual({ phase: 'releasing', done: 1002, total: 1002 });
    expect(phases.get('freeing')!.at(-1)).toEqual({ phase: 'freeing', done: 1002, total: 1002 });
    expect(steps.length).toBeLessThan(100);
  });

  /** Commands the server ran during `fn`, by name (INFO commandstats), less the INFO calls and SCANs (their count follows the table). */
  async function commandsDuring(fn: () => Promise<unknown>): Promise<Record<string, number>> {
    const read = async () => {
      const out: Record<string, number> = {};
      for (const m of (await client.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
      return out;
    };
    const before = await read();
    await fn();
    const after = await read();
    const delta: Record<string, number> = {};
    for (const [cmd, n] of Object.entries(after)) {
      if (cmd !== 'info' && cmd !== 'scan' && n !== (before[cmd] ?? 0)) delta[cmd] = n - (before[cmd] ?? 0);
    }
    return delta;
  }

  it('cost the reads of their totals, and of the inodes a copy copies, and nothing more', async () => {
    const run = async (fn: (onProgress: ((p: Step) => void) | undefined) => Promise<unknown>) => {
      const plain = await commandsDuring(async () => {
        await client.flushAll();
        await writeFiles('a', 300);
        await fn(undefined);
      });
      const watched = await commandsDuring(async () => {
        await client.flushAll();
        await writeFiles('a', 300);
        await fn(() => undefined);
      });
      const extra: Record<string, number> = {};
      for (const cmd of new Set([...Object.keys(plain), ...Object.keys(watched)])) {
        const d = (watched[cmd] ?? 0) - (plain[cmd] ?? 0);
        if (d !== 0) extra[cmd] = d;
      }
      return extra;
    };
    // A copy counts the inodes of the buckets it copies: one HLEN a bucket (302 inodes: 5).
    expect(await run((onProgress) => snapshotFilesystem({ url, from: 'a', to: 'a@s', onProgress }))).toEqual({ hget: 1, hlen: 5 });
    expect(await run((onProgress) => deleteFilesystem({ url, prefix: 'a', onProgress }))).toEqual({ hget: 1, scard: 1 });
  });
});
