/**
 * flock and fcntl byte-range locks across hosts: two Locks (two connections, two session ids) on
 * one filesystem in a real redis-server, and on a Redis Cluster and through Sentinel when the
 * machine can start them. A "host" here is what one mount holds: a connection and a session id.
 */
import { keysFor } from '@redisfs/schema';
import { describeWithRedis, startRedisCluster, startRedisSentinel, waitFor } from '@redisfs/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { connectClient } from './internal/connect.js';
import { Locks, type LockWatch } from './internal/locks.js';
import { MAX_LOCK_RANGES } from './internal/lua-locks.js';
import { ScriptRunner } from './internal/scripts.js';
import { destroyClient } from './internal/topology.js';
import { TEST_OWNER, storeFixture } from './internal/test-fixture.js';
import { openStore, type Store } from './index.js';

const t = storeFixture('lk');
const SID_A = '00000000000000aa';
const SID_B = '00000000000000bb';
/** Longer than the test timeout: only a release message can end such a wait in time. */
const FOREVER_MS = 120_000;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** One mount's lock state: its own connection and session id. */
async function host(prefix: string, sid: string | undefined, url = t.redis.url): Promise<Locks> {
  const client = await connectClient({ url });
  const keys = keysFor(prefix);
  const locks = new Locks({ client, keys, scripts: new ScriptRunner(client, keys.superblock), warn: () => {} }, () => sid);
  cleanups.push(async () => {
    await locks.close();
    destroyClient(client);
  });
  return locks;
}

async function watching(locks: Locks, ino: number): Promise<LockWatch> {
  const w = await locks.watch(ino);
  cleanups.push(() => w.close());
  return w;
}

/** A filesystem with one file, and two hosts on it. */
async function setup(): Promise<{ s: Store; ino: number; a: Locks; b: Locks }> {
  const s = await t.fresh();
  const ino = (await s.mknod(s.rootIno, 'f', 0o644, TEST_OWNER)).ino;
  return { s, ino, a: await host(s.prefix, SID_A), b: await host(s.prefix, SID_B) };
}

/** Every message published on the filesystem's lock channel from now on. */
async function channelMessages(prefix: string): Promise<string[]> {
  const messages: string[] = [];
  const sub = t.raw.duplicate();
  await sub.connect();
  await sub.subscribe(keysFor(prefix).lockChannel, (m) => messages.push(m));
  cleanups.push(async () => sub.destroy());
  return messages;
}

const ALL = { start: 0, end: Infinity };

describe('flock', () => {
  it('grants shared locks together, refuses exclusive against them, converts an owner\'s own lock', async () => {
    const { ino, a, b } = await setup();
    expect(await a.flock(ino, '1', 'R')).toBe(true);
    expect(await b.flock(ino, '1', 'R')).toBe(true); // same kernel owner, other host: another owner
    expect(await b.flock(ino, '1', 'W')).toBe(false); // a conversion refused keeps the shared lock
    expect(await a.flock(ino, '2', 'W')).toBe(false);
    await a.funlock(ino, '1');
    expect(await b.flock(ino, '1', 'W')).toBe(true); // now alone: upgraded
    expect(await a.flock(ino, '1', 'R')).toBe(false);
    expect(await b.flock(ino, '1', 'R')).toBe(true); // downgrade
    expect(await a.flock(ino, '1', 'R')).toBe(true);
  });

  it('wakes a watcher on the other host when the lock is dropped or downgraded', async () => {
    const { ino, a, b } = await setup();
    expect(await a.flock(ino, 'o', 'W')).toBe(true);
    const w = await watching(b, ino);
    expect(await b.flock(ino, 'o', 'R')).toBe(false);
    const woken = w.next(FOREVER_MS);
    await a.flock(ino, 'o', 'R');
    await woken;
    expect(await b.flock(ino, 'o', 'R')).toBe(true);
    expect(await b.flock(ino, 'o', 'W')).toBe(false);
    const again = w.next(FOREVER_MS);
    await a.funlock(ino, 'o');
    await again;
    expect(await b.flock(ino, 'o', 'W')).toBe(true);
  });

  it('is independent of byte-range locks', async () => {
    const { ino, a, b } = await setup();
    expect(await a.flock(ino, 'o', 'W')).toBe(true);
    expect(await b.setLock(ino, 'o', 'W', ALL, 7)).toBe(true);
  });
});

describe('fcntl byte-range locks', () => {
  it('grants disjoint ranges and shared over shared, refuses a write lock over another owner\'s lock', async () => {
    const { ino, a, b } = await setup();
    expect(await a.setLock(ino, 'o', 'W', { start: 0, end: 100 }, 10)).toBe(true);
    expect(await b.setLock(ino, 'o', 'W', { start: 100, end: 200 }, 20)).toBe(true);
    expect(await b.setLock(ino, 'o', 'W', { start: 99, end: 100 }, 20)).toBe(false);
    expect(await b.setLock(ino, 'o', 'R', { start: 50, end: 150 }, 20)).toBe(false);
    expect(await a.setLock(ino, 'o', 'R', { start: 300, end: 400 }, 10)).toBe(true);
    expect(await b.setLock(ino, 'o', 'R', { start: 350, end: 450 }, 20)).toBe(true);
    expect(await b.setLock(ino, 'o', 'W', { start: 399, end: 500 }, 20)).toBe(false);
    // Nothing changed by the refusals: b still holds exactly what it was granted.
    expect(await a.getLock(ino, 'o', 'W', { start: 100, end: 1000 })).toMatchObject({ start: 100, end: 200, type: 'W' });
    expect(await a.getLock(ino, 'o', 'R', { start: 200, end: 1000 })).toBeUndefined();
    expect(await a.getLock(ino, 'o', 'W', { start: 200, end: 1000 })).toMatchObject({ start: 350, end: 450, type: 'R' });
  });

  it('splits a range unlocked in its middle, and merges adjacent ranges of one type', async () => {
    const { s, ino, a, b } = await setup();
    expect(await a.setLock(ino, 'o', 'W', { start: 0, end: 100 }, 10)).toBe(true);
    expect(await a.setLock(ino, 'o', 'W', { start: 100, end: 200 }, 10)).toBe(true);
    expect(await t.raw.hGet(keysFor(s.prefix).posixLocks(ino), `${SID_A}:o`)).toBe('W,0,200,10');
    expect(await a.setLock(ino, 'o', 'U', { start: 50, end: 150 }, 10)).toBe(true);
    expect(await b.getLock(ino, 'x', 'R', { start: 0, end: 1000 })).toMatchObject({ start: 0, end: 50 });
    expect(await b.getLock(ino, 'x', 'R', { start: 50, end: 1000 })).toMatchObject({ start: 150, end: 200 });
    expect(await b.setLock(ino, 'x', 'W', { start: 50, end: 150 }, 20)).toBe(true);
    // A read lock in the middle of a write lock: three pieces.
    expect(await a.setLock(ino, 'o', 'W', { start: 1000, end: 2000 }, 10)).toBe(true);
    expect(await a.setLock(ino, 'o', 'R', { start: 1200, end: 1300 }, 11)).toBe(true);
    expect(await t.raw.hGet(keysFor(s.prefix).posixLocks(ino), `${SID_A}:o`)).toBe('W,0,50,10;W,150,200,10;W,1000,1200,10;R,1200,1300,11;W,1300,2000,10');
    expect(await b.setLock(ino, 'x', 'R', { start: 1250, end: 1260 }, 20)).toBe(true);
  });

  it('locks to the end of the file, and keeps offsets near 2^50 exact', async () => {
    const { s, ino, a, b } = await setup();
    const big = 2 ** 50 + 3;
    expect(await a.setLock(ino, 'o', 'W', { start: big, end: Infinity }, 10)).toBe(true);
    expect(await t.raw.hGet(keysFor(s.prefix).posixLocks(ino), `${SID_A}:o`)).toBe(`W,${big},inf,10`);
    expect(await b.setLock(ino, 'o', 'R', { start: big - 1, end: big }, 20)).toBe(true);
    expect(await b.setLock(ino, 'o', 'R', { start: big - 1, end: big + 1 }, 20)).toBe(false);
    expect(await b.setLock(ino, 'o', 'R', { start: 2 ** 53 - 2, end: 2 ** 53 - 1 }, 20)).toBe(false);
    expect(await b.getLock(ino, 'o', 'R', ALL)).toMatchObject({ start: big, end: Infinity });
    expect(await a.setLock(ino, 'o', 'U', { start: big + 2, end: big + 5 }, 10)).toBe(true);
    expect(await b.getLock(ino, 'o', 'R', { start: big + 1, end: Infinity })).toMatchObject({ start: big, end: big + 2 });
    expect(await b.getLock(ino, 'o', 'R', { start: big + 2, end: Infinity })).toMatchObject({ start: big + 5, end: Infinity });
    expect(await b.setLock(ino, 'o', 'W', { start: big + 2, end: big + 5 }, 20)).toBe(true);
  });

  it('F_GETLK names the holder: type, range, pid, session and owner; never the asking owner itself', async () => {
    const { ino, a, b } = await setup();
    expect(await a.setLock(ino, 'owner-1', 'W', { start: 10, end: 20 }, 4242)).toBe(true);
    expect(await a.getLock(ino, 'owner-1', 'W', ALL)).toBeUndefined();
    expect(await b.getLock(ino, 'owner-1', 'R', ALL)).toEqual({ type: 'W', start: 10, end: 20, pid: 4242, sessionId: SID_A, owner: 'owner-1' });
    expect(await a.getLock(ino, 'owner-2', 'R', { start: 0, end: 10 })).toBeUndefined();
    expect(await a.getLock(ino, 'owner-2', 'R', { start: 19, end: 30 })).toMatchObject({ sessionId: SID_A, owner: 'owner-1', pid: 4242 });
  });

  it('releasePosix drops all of an owner\'s ranges and wakes waiters; releases that free nothing publish nothing', async () => {
    const { s, ino, a, b } = await setup();
    const messages = await channelMessages(s.prefix);
    expect(await a.setLock(ino, 'o', 'W', { start: 0, end: 10 }, 10)).toBe(true);
    expect(await a.setLock(ino, 'o', 'R', { start: 20, end: Infinity }, 10)).toBe(true);
    expect(await a.setLock(ino, 'o', 'W', { start: 20, end: 30 }, 10)).toBe(true); // an upgrade frees nothing
    await a.releasePosix(ino, 'other');
    await a.setLock(ino, 'o', 'U', { start: 10, end: 20 }, 10);
    await a.funlock(ino, 'o');
    const w = await watching(b, ino);
    expect(await b.setLock(ino, 'o', 'W', { start: 5, end: 25 }, 20)).toBe(false);
    const woken = w.next(FOREVER_MS);
    await a.releasePosix(ino, 'o');
    await woken;
    expect(await b.setLock(ino, 'o', 'W', ALL, 20)).toBe(true);
    expect(Number(await t.raw.hExists(keysFor(s.prefix).posixLocks(ino), `${SID_A}:o`))).toBe(0);
    // Messages of one connection arrive in order: the no-op ones would have come first.
    await waitFor(() => messages.length > 0, { timeoutMs: 5000, what: 'the release message' });
    expect(messages).toEqual([String(ino)]);
  });

  it('keeps sl:<sid> to the inodes the session holds any lock on', async () => {
    const { s, ino, a, b } = await setup();
    const keys = keysFor(s.prefix);
    const ino2 = (await s.mknod(s.rootIno, 'g', 0o644, TEST_OWNER)).ino;
    const held = async (sid: string) => (await t.raw.sMembers(keys.sessionLocks(sid))).map(Number).sort((x, y) => x - y);
    await a.flock(ino, 'o', 'R');
    await a.setLock(ino, 'p', 'R', { start: 0, end: 1 }, 1);
    await a.setLock(ino2, 'p', 'W', ALL, 1);
    expect(await b.setLock(ino2, 'p', 'R', ALL, 2)).toBe(false); // refused: gains b nothing
    expect(await held(SID_A)).toEqual([ino, ino2]);
    expect(await held(SID_B)).toEqual([]);
    await a.funlock(ino, 'o');
    expect(await held(SID_A)).toEqual([ino, ino2]); // the byte-range lock remains
    await a.setLock(ino, 'p', 'U', ALL, 1);
    await a.releasePosix(ino2, 'p');
    expect(await held(SID_A)).toEqual([]);
    expect(await t.raw.exists([keys.flocks(ino), keys.posixLocks(ino), keys.posixLocks(ino2), keys.sessionLocks(SID_A)])).toBe(0);
  });
});

describe('limits', () => {
  it(`an owner holds at most ${MAX_LOCK_RANGES} ranges on an inode; more is refused with nothing changed`, async () => {
    const { s, ino, a } = await setup();
    for (let i = 0; i < MAX_LOCK_RANGES; i++) {
      expect(await a.setLock(ino, 'o', 'R', { start: 2 * i, end: 2 * i + 1 }, 1)).toBe(true);
    }
    const before = await t.raw.hGet(keysFor(s.prefix).posixLocks(ino), `${SID_A}:o`);
    await expect(a.setLock(ino, 'o', 'R', { start: 5000, end: 5001 }, 1)).rejects.toMatchObject({ code: 'ENOLCK' });
    expect(await t.raw.hGet(keysFor(s.prefix).posixLocks(ino), `${SID_A}:o`)).toBe(before);
    // Filling a gap merges three ranges into one: allowed.
    expect(await a.setLock(ino, 'o', 'R', { start: 1, end: 2 }, 1)).toBe(true);
  });
});

describe('waiting', () => {
  it('remembers a release that came before next(), and an abort rejects a wait promptly', async () => {
    const { ino, a, b } = await setup();
    const w = await watching(b, ino);
    await a.flock(ino, 'o', 'W');
    await a.funlock(ino, 'o');
    await w.next(FOREVER_MS); // the release came before the call
    const controller = new AbortController();
    const started = Date.now();
    const waiting = w.next(FOREVER_MS, controller.signal);
    const reason = new Error('interrupted');
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(w.next(FOREVER_MS, controller.signal)).rejects.toBe(reason);
    const started2 = Date.now();
    await w.next(50); // no release: the timeout ends it
    expect(Date.now() - started2).toBeGreaterThanOrEqual(45);
  });

  it('subscribes at the first watch only, wakes waiters after its connection is killed, closes with the Locks', async () => {
    const { s, ino, a, b } = await setup();
    const channel = keysFor(s.prefix).lockChannel;
    const subscribers = async () => Number((await t.raw.pubSubNumSub(channel))[channel] ?? 0);
    expect(await a.flock(ino, 'o', 'W')).toBe(true);
    expect(await b.flock(ino, 'o', 'W')).toBe(false);
    expect(await subscribers()).toBe(0); // no watch yet: no subscriber
    const w = await watching(b, ino);
    expect(await subscribers()).toBe(1);
    const woken = w.next(FOREVER_MS);
    await t.raw.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
    await woken; // messages may have been lost while it was away: every waiter retries
    await waitFor(async () => (await subscribers()) === 1, { timeoutMs: 10_000, what: 'the subscriber to come back' });
    const again = w.next(FOREVER_MS);
    await a.funlock(ino, 'o'); // released after the reconnection: the message arrives
    await again;
    const waiting = w.next(FOREVER_MS);
    await b.close();
    await waiting; // close ends the wait
    expect(await subscribers()).toBe(0);
  });
});

describe('refusals', () => {
  it('a store without a session cannot lock (EROFS); a missing inode is ENOENT; bad arguments EINVAL', async () => {
    const { s, ino, a } = await setup();
    const ro = await host(s.prefix, undefined);
    await expect(ro.flock(ino, 'o', 'R')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(ro.funlock(ino, 'o')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(ro.setLock(ino, 'o', 'R', ALL, 1)).rejects.toMatchObject({ code: 'EROFS' });
    await expect(ro.getLock(ino, 'o', 'R', ALL)).rejects.toMatchObject({ code: 'EROFS' });
    await expect(ro.releasePosix(ino, 'o')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(ro.watch(ino)).rejects.toMatchObject({ code: 'EROFS' });
    await expect(a.flock(999_999, 'o', 'R')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(a.setLock(999_999, 'o', 'R', ALL, 1)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(a.getLock(999_999, 'o', 'R', ALL)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(a.setLock(ino, 'o', 'R', { start: 10, end: 10 }, 1)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(a.setLock(ino, 'o', 'R', { start: -1, end: 10 }, 1)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(a.setLock(ino, 'o', 'R', { start: 0, end: 2 ** 60 }, 1)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(a.setLock(ino, '', 'R', ALL, 1)).rejects.toMatchObject({ code: 'EINVAL' });
  });
});

describe('guard', () => {
  it('runs every operation through the store\'s guard', async () => {
    const { s, ino } = await setup();
    const client = await connectClient({ url: t.redis.url });
    const keys = keysFor(s.prefix);
    const seen: string[] = [];
    const guard = <T>(what: string, fn: () => Promise<T>) => {
      seen.push(what.split(' ')[0]!);
      return fn();
    };
    const locks = new Locks({ client, keys, scripts: new ScriptRunner(client, keys.superblock), warn: () => {} }, () => SID_A, guard);
    cleanups.push(async () => destroyClient(client));
    expect(await locks.flock(ino, 'o', 'W')).toBe(true);
    await locks.funlock(ino, 'o');
    expect(await locks.setLock(ino, 'o', 'W', ALL, 1)).toBe(true);
    expect(await locks.getLock(ino, 'p', 'W', ALL)).toMatchObject({ owner: 'o' });
    await locks.releasePosix(ino, 'o');
    expect(seen).toEqual(['flock', 'funlock', 'setlk', 'getlk', 'release']);
  });
});

/** Two hosts on a filesystem of another deployment: a release on one wakes a waiter on the other. */
function wakesAcrossHosts(url: () => string): void {
  it('a release on one host wakes a waiter on the other', async () => {
    const admin = await openStore({ url: url(), prefix: 'lkx' });
    cleanups.push(() => admin.close());
    const ino = (await admin.mknod(admin.rootIno, 'f', 0o644, TEST_OWNER)).ino;
    const a = await host('lkx', SID_A, url());
    const b = await host('lkx', SID_B, url());
    expect(await a.setLock(ino, 'o', 'W', ALL, 1)).toBe(true);
    const w = await watching(b, ino);
    expect(await b.setLock(ino, 'o', 'R', { start: 0, end: 1 }, 2)).toBe(false);
    const woken = w.next(FOREVER_MS);
    await a.setLock(ino, 'o', 'U', { start: 0, end: 1 }, 1);
    await woken;
    expect(await b.setLock(ino, 'o', 'R', { start: 0, end: 1 }, 2)).toBe(true);
  });
}

await describeWithRedis('locks on a Redis Cluster', { redisTools: true, start: () => startRedisCluster({ masters: 3, replicasPerMaster: 0 }) }, (cluster) => {
  wakesAcrossHosts(() => `redis://${cluster.seeds.map((n) => `${n.host}:${n.port}`).join(',')}`);
});

await describeWithRedis('locks through Sentinel', { redisTools: true, start: () => startRedisSentinel({ replicas: 0, sentinels: 1 }) }, (sentinel) => {
  wakesAcrossHosts(() => `redis+sentinel://${sentinel.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}/${sentinel.masterName}`);
});
