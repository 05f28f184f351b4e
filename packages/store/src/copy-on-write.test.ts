/**
 * Copy-on-write under concurrent writers, against a real redis-server: a snapshot taken while
 * another client writes holds one point in time, preserves each changed key once (a block map
 * preserved twice would count its blocks twice), and never holds Redis long for a large file.
 * The family's bookkeeping is checked as in sharing.test.ts (internal/family-check.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { keysFor } from '@redisfs/schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '@redisfs/testing';
import { deleteFilesystem } from './admin.js';
import type { Attr, Store } from './index.js';
import { snapshotFilesystem } from './snapshot.js';
import { connectClient, type RedisClient } from './internal/connect.js';
import { blockIdsOf, familyProblems } from './internal/family-check.js';
import { ScriptRunner } from './internal/scripts.js';
import { TEST_OWNER as owner, patchRawInode, storeFixture } from './internal/test-fixture.js';

const t = storeFixture('cow');
const BS = 64 * 1024;
const quiet = { onWarning: () => undefined };
const url = () => t.redis.url;

async function problems(family: string, idle = true): Promise<string[]> {
  return familyProblems(t.raw, family, idle);
}

/** A client of the store's own kind, to run its snapshot scripts by hand. */
let client: RedisClient;
beforeAll(async () => {
  client = await connectClient({ url: url() });
});
afterAll(async () => {
  await client?.close();
});

describe('a snapshot', () => {
  it('holds one point in time while another client writes in place, and counts its blocks right', async () => {
    const s = await t.fresh();
    const F = s.prefix;
    const BLOCKS = 16;
    const base = randomBytes(BLOCKS * BS);
    await s.writeFile('/p', base);
    const p = await s.stat('/p');
    // Many more keys, so that the copy takes many batches.
    for (let i = 0; i < 400; i++) await s.writeFile(`/bulk${i}`, randomBytes(100));
    const writer = await t.fresh({ prefix: F });
    let stop = false;
    let round = 0;
    // Round r writes 4 KiB of byte r into each block in turn, in place (raw, unshared).
    const writing = (async () => {
      while (!stop) {
        round++;
        for (let b = 0; b < BLOCKS && !stop; b++) await writer.write(p.ino, b * BS + 1000, Buffer.alloc(4096, round % 256));
        await writer.writeFile(`/bulk${round % 400}`, randomBytes(100));
      }
    })();
    await waitFor(() => round >= 2, { timeoutMs: 10_000, intervalMs: 1, what: 'the writer to get going' });
    await snapshotFilesystem({ url: url(), from: F, to: `${F}@a` });
    stop = true;
    await writing;
    const snap = await t.fresh({ prefix: `${F}@a`, ...quiet });
    const data = await snap.readFile('/p');
    // Every block holds some round's bytes: those of round r in blocks 0..k-1 and r-1 from k on.
    const marks = Array.from({ length: BLOCKS }, (_, b) => data[b * BS + 1000]!);
    for (let b = 0; b < BLOCKS; b++) {
      expect(data.subarray(b * BS + 1000, b * BS + 1000 + 4096).equals(Buffer.alloc(4096, marks[b]!)), `block ${b}`).toBe(true);
      expect(data.subarray(b * BS, b * BS + 1000).equals(base.subarray(b * BS, b * BS + 1000))).toBe(true);
      expect(data.subarray(b * BS + 5096, (b + 1) * BS).equals(base.subarray(b * BS + 5096, (b + 1) * BS))).toBe(true);
    }
    const switches = marks.filter((m, b) => b > 0 && m !== marks[b - 1]);
    expect(switches.length, `marks ${marks.join(',')}`).toBeLessThanOrEqual(1);
    if (switches.length === 1) expect((marks[0]! - marks[BLOCKS - 1]! + 256) % 256).toBe(1);
    await Promise.all([s.collected(), writer.collected()]);
    expect(await problems(F)).toEqual([]);
  });
});

describe('copy-on-write against the copier (the snapshot protocol step by step)', () => {
  /**
   * A snapshot of `s` into `F@a`, run by hand: the copier copies the map of a 4-block file
   * first, then a writer replaces block 0 (its first change of that map since the point in
   * time), then the copier copies the rest and the snapshot ends.
   */
  async function copierBeforeWriter(s: Store): Promise<{ f: Attr }> {
    const F = s.prefix;
    const src = keysFor(F);
    const dst = keysFor(`${F}@a`);
    await s.writeFile('/f', randomBytes(4 * BS));
    const f = await s.stat('/f');
    const scripts = new ScriptRunner(client, src.superblock);
    const id = randomUUID();
    await scripts.run('snapLock', dst.metaPrefix, [F, id, '30000', '']);
    const at = String(await scripts.run('snapStart', src.metaPrefix, [dst.prefix, id, '30000']));
    expect(await scripts.run('snapCopy', src.metaPrefix, [id, '30000', src.map(f.ino)])).toBe(1);
    await s.write(f.ino, 0, randomBytes(BS));
    const keys: string[] = [];
    for await (const batch of t.raw.scanIterator({ MATCH: src.metaPattern, COUNT: 1000 })) keys.push(...batch);
    await scripts.run('snapCopy', src.metaPrefix, [id, '30000', ...keys]);
    await scripts.run('snapFinish', src.metaPrefix, [id, '1', at]);
    return { f };
  }

  // The copier copies a key without listing it in `{S}:snap:done`; a writer changing that key
  // later in the same snapshot must not preserve it again: COPY … REPLACE of a block map would
  // count each of its blocks once more, and those blocks would never be freed (as happened
  // before the fix).
  it('counts the blocks of a map once when the copier copies it before a writer changes it', async () => {
    const s = await t.fresh();
    await copierBeforeWriter(s);
    await s.collected();
    // Blocks 1-3 of the file are referenced by both maps: rc 2 (it was 3 before the fix); the
    // old block 0 by the snapshot's only: no rc entry (it was 2).
    expect(await problems(s.prefix)).toEqual([]);
  });

  it('leaves no block behind once both members have dropped it (same sequence)', async () => {
    const s = await t.fresh();
    await copierBeforeWriter(s);
    await deleteFilesystem({ url: url(), prefix: `${s.prefix}@a` });
    await s.unlink(s.rootIno, 'f');
    await s.collected();
    expect(await blockIdsOf(t.raw, s.prefix)).toEqual([]);
  });
});

describe('copy-on-write against the copier (through snapshotFilesystem)', () => {
  // The same, as a user meets it: files rewritten while a snapshot of 1,000 files is copied (5
  // batches). Before the fix every run left rc entries one too high.
  it('counts every shared block right after a snapshot taken under writes', async () => {
    const s = await t.fresh();
    const F = s.prefix;
    for (let i = 0; i < 1000; i++) await s.writeFile(`/f${i}`, randomBytes(100));
    const writer = await t.fresh({ prefix: F });
    let stop = false;
    const writing = (async () => {
      for (let i = 0; !stop; i++) await writer.writeFile(`/f${(i * 7) % 1000}`, randomBytes(100));
    })();
    await snapshotFilesystem({ url: url(), from: F, to: `${F}@a` });
    stop = true;
    await writing;
    await Promise.all([s.collected(), writer.collected()]);
    expect(await problems(F)).toEqual([]);
  });
});

describe('a snapshot of a large file', () => {
  // BUG (design; lua-snapshot.ts SNAP_COPY and lua.ts w() → preserve()): preserving a block map
  // COPYs it and runs one HINCRBY per entry in the same script, so the copy of one large file
  // holds Redis (every client) for a time proportional to its size: 1,000,000 entries (a 64 GiB
  // file at 64 KiB blocks) took 2.9 s in one script here, 200,000 about 0.6 s. The writer's
  // first write to that file during a snapshot runs the same preserve in its own script.
  // snapshot.ts promises "never blocking Redis for long"; the releases are batched
  // (RELEASE_BATCH), the references a copied map adds are not.
  it.fails('never holds Redis in one script for long, however large a file is', async () => {
    const s = await t.fresh({ blockSize: 4096 });
    const F = s.prefix;
    const k = keysFor(F);
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    // A map of 200,000 entries, made by hand (its blocks are not stored: only the map is copied).
    const N = 200_000;
    const first = (await t.raw.incrBy(k.blockCounter, N)) - N + 1;
    for (let i = 0; i < N; i += 20_000) {
      const entries = Array.from({ length: 20_000 }, (_, j) => ({ score: i + j, value: String(first + i + j) }));
      await t.raw.zAdd(k.map(f.ino), entries);
    }
    await patchRawInode(t.raw, F, f.ino, { size: N * 4096 });
    await s.readdir(s.rootIno); // scripts loaded: no EVAL of a script's source below
    await t.raw.sendCommand(['CONFIG', 'SET', 'slowlog-log-slower-than', '100000']); // 100 ms
    await t.raw.sendCommand(['SLOWLOG', 'RESET']);
    try {
      await snapshotFilesystem({ url: url(), from: F, to: `${F}@a` });
      const slow = (await t.raw.sendCommand(['SLOWLOG', 'GET', '10'])) as unknown[][];
      const scripts = slow.map((e) => `${String((e[3] as unknown[])[0])} ${Math.round(Number(e[2]) / 1000)} ms`);
      expect(scripts.filter((x) => /^EVAL/i.test(x))).toEqual([]);
    } finally {
      await t.raw.sendCommand(['CONFIG', 'SET', 'slowlog-log-slower-than', '10000']);
      await t.raw.del([k.map(f.ino), keysFor(`${F}@a`).map(f.ino), k.refcounts]);
    }
  });
});
