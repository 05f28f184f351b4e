/**
 * snapshotFilesystem / restoreFilesystem against a real redis-server, with the store writing to
 * the source at the same time: the copy holds one point in time, and refusals touch nothing.
 */
import { createClient } from '@redis/client';
import { keysFor } from '@redisfs/schema';
import { startRedis, waitFor } from '@redisfs/testing';
import { describe, expect, it } from 'vitest';
import { deleteFilesystem, listFilesystems } from './admin.js';
import { openStore, type Store } from './index.js';
import { restoreFilesystem, snapshotFilesystem } from './snapshot.js';
import { storeFixture } from './internal/test-fixture.js';

const fx = storeFixture('snap');
let n = 0;

async function open(prefix: string, options: { readOnly?: boolean; writeSnapshot?: boolean } = {}): Promise<Store> {
  const warnings: string[] = [];
  const store = await fx.fresh({ prefix, onWarning: (m) => warnings.push(m), ...options });
  return Object.assign(store, { warnings });
}

const name = (what: string) => `${what}${++n}`;
/** A member of `family`'s family: where its snapshots, clones and restores go. */
const member = (family: string, label: string) => `${family}@${label}`;

/** Keys of a prefix's own metadata, or of its family's blocks. */
async function countKeys(pattern: string): Promise<number> {
  let count = 0;
  for await (const keys of fx.raw.scanIterator({ MATCH: pattern, COUNT: 1000 })) count += keys.length;
  return count;
}

describe('snapshotFilesystem', () => {
  it('holds one point in time while the source is being changed', async () => {
    const from = name('src');
    const to = member(from, 'snap');
    const s = await open(from);
    await s.mkdirp('/left');
    await s.mkdirp('/right');
    const MOVERS = 60;
    for (let i = 0; i < MOVERS; i++) await s.writeFile(`/left/m${i}`, `mover ${i}`);
    // Bulk, so that the copy takes many batches.
    for (let i = 0; i < 600; i++) await s.writeFile(`/bulk${i}`, Buffer.alloc(70_000, i % 251));
    const big = await s.stat('/bulk0');

    let stop = false;
    let rounds = 0;
    const writer = (async () => {
      const side = new Array<string>(MOVERS).fill('left');
      while (!stop) {
        const i = rounds % MOVERS;
        const other = side[i] === 'left' ? 'right' : 'left';
        await s.move(`/${side[i]}/m${i}`, `/${other}/m${i}`);
        side[i] = other;
        await s.write(big.ino, 0, Buffer.alloc(70_000, rounds % 251)); // two blocks, one write
        await s.writeFile(`/new${rounds}`, 'new');
        rounds++;
      }
    })();
    await waitFor(() => rounds >= 5, { timeoutMs: 10_000, intervalMs: 1, what: 'the writer to get going' });
    const before = rounds;
    const result = await snapshotFilesystem({ url: fx.redis.url, from, to });
    const during = rounds - before;
    stop = true;
    await writer;
    expect(during).toBeGreaterThan(0);

    const snap = await open(to);
    expect(snap.readOnly).toBe(true);
    const left = (await snap.list('/left')).map((e) => e.name);
    const right = (await snap.list('/right')).map((e) => e.name);
    expect(left.filter((x) => right.includes(x))).toEqual([]);
    expect(left.length + right.length).toBe(MOVERS);
    const data = await snap.readFile('/bulk0');
    expect(data.length).toBe(70_000);
    expect(data.every((b) => b === data[0])).toBe(true);
    // Counters are those of the same moment as the tree.
    const top = await snap.list('/');
    const stats = await snap.statfs();
    expect(stats.inodes).toBe(1 + 2 + MOVERS + top.filter((e) => e.type === 'file').length);
    expect(result.atNs).toBeGreaterThan(0n);
  });

  it('marks the copy as a snapshot: listed with its source and time, opened read-only unless asked', async () => {
    const from = name('src');
    const to = member(from, 'snap');
    const s = await open(from);
    await s.writeFile('/a', 'a');
    const { atNs } = await snapshotFilesystem({ url: fx.redis.url, from, to });
    const listed = (await listFilesystems({ url: fx.redis.url })).find((f) => f.prefix === to);
    expect(listed).toMatchObject({ snapshot: { of: from, atNs }, inodes: 2, bytes: 1 });
    const ro = (await open(to)) as Store & { warnings: string[] };
    expect(ro.readOnly).toBe(true);
    expect(ro.warnings.join('\n')).toMatch(/snapshot of .*read-only/);
    await expect(ro.writeFile('/b', 'b')).rejects.toMatchObject({ code: 'EROFS' });
    const rw = await open(to, { writeSnapshot: true });
    await rw.writeFile('/b', 'b');
    expect((await s.list('/')).map((e) => e.name)).toEqual(['a']); // the source is separate
  });

  it('restores a snapshot into a live prefix as an ordinary filesystem (force to replace one)', async () => {
    const from = name('src');
    const to = member(from, 'snap');
    const s = await open(from);
    await s.writeFile('/kept', 'v1');
    await snapshotFilesystem({ url: fx.redis.url, from, to });
    await s.writeFile('/kept', 'v2, longer');
    await s.writeFile('/later', 'x');
    await expect(restoreFilesystem({ url: fx.redis.url, from: to, to: from })).rejects.toMatchObject({ code: 'EEXIST' });
    expect((await s.readFile('/kept')).toString()).toBe('v2, longer'); // refusing touched nothing
    await s.close();
    await restoreFilesystem({ url: fx.redis.url, from: to, to: from, force: true });
    const back = await open(from);
    expect(back.readOnly).toBe(false);
    expect((await back.readFile('/kept')).toString()).toBe('v1');
    await expect(back.stat('/later')).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await listFilesystems({ url: fx.redis.url })).find((f) => f.prefix === from)?.snapshot).toBeUndefined();
  });

  it('refuses a second snapshot of a source, or into a target, while one is in progress', async () => {
    const from = name('src');
    const [to, other] = [member(from, 'snap'), member(from, 'other')];
    await (await open(from)).writeFile('/a', 'a');
    // A snapshot in progress, as another process would leave it mid-copy: its lease keys.
    const k = keysFor(from);
    await fx.raw.hSet(k.snapshot, { to, id: 'someone' });
    await fx.raw.pExpire(k.snapshot, 30_000);
    await fx.raw.hSet(keysFor(to).snapshotLock, { from, id: 'someone' });
    await fx.raw.pExpire(keysFor(to).snapshotLock, 30_000);
    await expect(snapshotFilesystem({ url: fx.redis.url, from, to: other })).rejects.toMatchObject({ code: 'EBUSY' });
    await expect(snapshotFilesystem({ url: fx.redis.url, from: other, to })).rejects.toMatchObject({ code: 'ENOENT' });
    await (await open(other)).writeFile('/o', 'o');
    await expect(snapshotFilesystem({ url: fx.redis.url, from: other, to })).rejects.toMatchObject({ code: 'EBUSY' });
    await expect(deleteFilesystem({ url: fx.redis.url, prefix: from })).rejects.toMatchObject({ code: 'EBUSY' });
    // Nothing was left in the refused targets.
    expect(await fx.raw.exists(keysFor(other).snapshotLock)).toBe(0);
    expect(await fx.raw.hGet(keysFor(to).snapshotLock, 'id')).toBe('someone');
    await fx.raw.del([k.snapshot, keysFor(to).snapshotLock]);
    await snapshotFilesystem({ url: fx.redis.url, from, to });
  });

  it('gives up cleanly when its lease is lost mid-copy: no half snapshot stays', async () => {
    const from = name('src');
    const to = member(from, 'snap');
    const s = await open(from);
    for (let i = 0; i < 500; i++) await s.writeFile(`/f${i}`, 'x'); // several batches
    const k = keysFor(from);
    // Another client removes the snapshot's lease as soon as it appears (as an expiry would).
    const spoiler = (async () => {
      await waitFor(async () => (await fx.raw.exists(k.snapshot)) === 1, { timeoutMs: 10_000, intervalMs: 0, what: 'the snapshot to start' });
      await fx.raw.del(k.snapshot);
    })();
    await expect(snapshotFilesystem({ url: fx.redis.url, from, to })).rejects.toMatchObject({ code: 'ESTALE' });
    await spoiler;
    expect((await listFilesystems({ url: fx.redis.url })).some((f) => f.prefix === to)).toBe(false);
    expect(await countKeys(keysFor(to).metaPattern)).toBe(0);
    // The maps it had copied referenced the source's blocks once more: those references are gone.
    expect(await fx.raw.exists([k.refcounts, k.freeBlocks])).toBe(0);
    expect(await countKeys(k.blockPattern)).toBe(500);
    await s.writeFile('/after', 'ok'); // the source is unharmed and no longer preserving
    expect(await fx.raw.exists(k.snapshotDone)).toBe(0);
  });
});

describe('filesystems in use', () => {
  it('are not replaced or deleted while a store has them open', async () => {
    const live = name('live');
    const snap = member(live, 'snap');
    const s = await open(live);
    await s.writeFile('/x', 'x');
    await snapshotFilesystem({ url: fx.redis.url, from: live, to: snap });
    const viewer = await open(snap);
    await expect(restoreFilesystem({ url: fx.redis.url, from: snap, to: live, force: true })).rejects.toMatchObject({
      code: 'EBUSY',
      message: expect.stringMatching(/in use by 1 connection/),
    });
    await expect(deleteFilesystem({ url: fx.redis.url, prefix: snap })).rejects.toMatchObject({ code: 'EBUSY' });
    expect((await s.readFile('/x')).toString()).toBe('x');
    await s.close();
    await viewer.close();
    await restoreFilesystem({ url: fx.redis.url, from: snap, to: live, force: true });
    await deleteFilesystem({ url: fx.redis.url, prefix: snap });
  });

  it('look names up with plain EVALSHA for a user whose ACL lacks EVALSHA_RO', async () => {
    const prefix = name('noro');
    await fx.raw.sendCommand(['ACL', 'SETUSER', 'noro', 'reset', 'on', '>pw', '~*', '+@all', '-evalsha_ro', '-eval_ro']);
    const store = await fx.fresh({ url: fx.redis.url.replace('redis://', 'redis://noro:pw@'), prefix });
    await store.mkdirp('/a/b');
    await store.writeFile('/a/b/c', 'found');
    expect((await store.readFile('/a/b/c')).toString()).toBe('found');
    expect((await store.lookup(store.rootIno, 'a')).type).toBe('dir');
  });

  it('still open for a user whose ACL forbids naming the connection (unnamed, then)', async () => {
    const prefix = name('acl');
    await fx.raw.sendCommand(['ACL', 'SETUSER', 'nonamer', 'reset', 'on', '>pw', '~*', '+@all', '-client']);
    const url = fx.redis.url.replace('redis://', 'redis://nonamer:pw@');
    const store = await fx.fresh({ url, prefix });
    await store.writeFile('/x', 'works');
    expect((await store.readFile('/x')).toString()).toBe('works');
  });
});

describe('a server that goes away mid-copy', () => {
  it('fails the snapshot with EIO instead of hanging', async () => {
    await using doomed = await startRedis();
    const s = await openStore({ url: doomed.url, prefix: 'a' });
    for (let i = 0; i < 2000; i++) await s.writeFile(`/f${i}`, 'x');
    await s.close();
    const watcher = createClient({ url: doomed.url });
    watcher.on('error', () => undefined);
    await watcher.connect();
    let settled = false;
    const outcome = snapshotFilesystem({ url: doomed.url, from: 'a', to: 'a@b' }).then(
      () => 'finished',
      (err: unknown) => err,
    ).finally(() => {
      settled = true;
    });
    await waitFor(async () => settled || (await watcher.exists(keysFor('a').snapshot)) === 1, {
      timeoutMs: 10_000,
      intervalMs: 0,
      what: 'the snapshot to start',
    });
    expect(settled).toBe(false);
    // Hold the copy mid-way (its next batch waits on the paused server), then take the server away.
    await watcher.sendCommand(['CLIENT', 'PAUSE', '30000', 'ALL']);
    watcher.destroy();
    await doomed.stop();
    expect(await outcome).toMatchObject({ code: 'EIO' });
  });
});

describe('a prefix being written by a snapshot', () => {
  it('cannot be opened (and so formatted) until the snapshot is done', async () => {
    const from = name('src');
    const to = member(from, 'snap');
    await (await open(from)).writeFile('/a', 'a');
    await fx.raw.hSet(keysFor(to).snapshotLock, { from, id: 'in-progress' });
    await fx.raw.pExpire(keysFor(to).snapshotLock, 30_000);
    await expect(open(to)).rejects.toMatchObject({ code: 'EBUSY', message: expect.stringMatching(/snapshot or restore in progress/) });
    await expect(open(to, { readOnly: true })).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fx.raw.exists(keysFor(to).superblock)).toBe(0);
    await fx.raw.del(keysFor(to).snapshotLock);
  });
});
