/**
 * Test-only: what the store's tests against a real redis-server share. A server and a raw
 * client for the whole file, fresh stores on their own prefixes, all closed after the file, and
 * the round trips an action costs. Not exported from the package (the server comes from
 * @redisfs/testing, the harness shared with the e2e suite).
 *
 *   const t = storeFixture('t');
 *   const s = await t.fresh();
 */
import { createClient } from '@redis/client';
import { encodeInodeRecord, keysFor, type InodeRecord } from '@redisfs/schema';
import { afterAll, beforeAll } from 'vitest';
import { type StartedRedis, startRedis, storedInode } from '@redisfs/testing';
import { openStore, type Store, type StoreOptions } from '../index.js';

const makeRaw = (url: string) => createClient({ url });
export type RawClient = ReturnType<typeof makeRaw>;

/** The owner the tests create files as. */
export const TEST_OWNER = { uid: 1000, gid: 100 };

export interface StoreFixture {
  /** The file's server and a plain client of it (valid inside tests). */
  readonly redis: StartedRedis;
  readonly raw: RawClient;
  /** A prefix no store of this file has used yet. */
  newPrefix(): string;
  /**
   * A store, closed after the file: on a new prefix, or on `options.prefix` (another client of
   * an existing filesystem).
   */
  fresh(options?: StoreOptions & { prefix?: string }): Promise<Store>;
}

/** Starts a redis-server for the test file (beforeAll) and stops it with every store (afterAll). */
export function storeFixture(label: string): StoreFixture {
  let redis: StartedRedis | undefined;
  let raw: RawClient | undefined;
  const open: Store[] = [];
  let n = 0;
  beforeAll(async () => {
    redis = await startRedis();
    raw = makeRaw(redis.url);
    await raw.connect();
  });
  afterAll(async () => {
    // The server is stopped even when a store fails to close (one a test broke on purpose).
    try {
      await Promise.allSettled(open.map((s) => s.close()));
      await raw?.close();
    } finally {
      await redis?.stop();
    }
  });
  return {
    get redis() {
      return redis!;
    },
    get raw() {
      return raw!;
    },
    newPrefix: () => `${label}${++n}`,
    async fresh(options = {}) {
      const store = await openStore({ url: redis!.url, prefix: `${label}${++n}`, ...options });
      open.push(store);
      return store;
    },
  };
}

/** What `fn` adds to the store's round-trip counts (Store.stats), zeros left out. */
export async function countsOf(store: Store, fn: () => Promise<unknown>): Promise<Record<string, number>> {
  // A collector round still running (the one every read-write open starts, or one an earlier
  // operation asked for) would add its commands to fn's: let it finish first.
  await store.collected();
  const before = store.stats().commands;
  await fn();
  const out: Record<string, number> = {};
  for (const [cmd, count] of Object.entries(store.stats().commands)) {
    const d = count - (before[cmd] ?? 0);
    if (d > 0) out[cmd] = d;
  }
  return out;
}

/** Test-only: inode `ino` of filesystem `prefix` as stored (its packed record), undefined when absent. */
export const rawInode = storedInode;

/** Test-only: changes fields of a stored inode behind the store's back (it must exist). */
export async function patchRawInode(raw: RawClient, prefix: string, ino: number, patch: Partial<InodeRecord>): Promise<void> {
  const rec = await rawInode(raw, prefix, ino);
  if (!rec) throw new Error(`no inode ${ino} in ${prefix}`);
  await setRawInode(raw, prefix, ino, encodeInodeRecord({ ...rec, ...patch }));
}

/** Test-only: stores `value` as inode `ino`'s record as it is (a corrupt one, say). */
export async function setRawInode(raw: RawClient, prefix: string, ino: number, value: Buffer | string): Promise<void> {
  await raw.hSet(keysFor(prefix).inodes(ino), String(ino), value);
}

/** Test-only: removes inode `ino`'s record behind the store's back. */
export async function deleteRawInode(raw: RawClient, prefix: string, ino: number): Promise<void> {
  await raw.hDel(keysFor(prefix).inodes(ino), String(ino));
}
