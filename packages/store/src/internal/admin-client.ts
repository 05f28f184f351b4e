/**
 * Plumbing shared by the whole-filesystem tools (snapshot, list, delete): one client per call,
 * prefix validation, SCAN-based key walks in bounded batches (never KEYS).
 */
import { INODES_PER_BUCKET, assertPrefix, keysFor, parseBucketKey, type KeyLayout } from '@redisfs/schema';
import { FsError } from '../errors.js';
import { connectClient, describeTarget, type RedisClient } from './connect.js';
import { toFsError } from './redis-errors.js';
import { destroyClient, infoOfMasters, scanMatching, unlinkKeys } from './topology.js';

/** Where the Redis server is: as in openStore. */
export interface AdminTarget {
  /** redis:// or rediss:// URL; default redis://127.0.0.1:6379. */
  url?: string | undefined;
  /** Unix socket path; takes precedence over url's host/port. */
  socket?: string | undefined;
  /** Time to wait for the connection, in ms; default 5 000. */
  connectTimeoutMs?: number | undefined;
}

/** Keys per SCAN call (a hint to Redis) and keys per command. */
export const SCAN_COUNT = 200;
export const BATCH = 200;

/** The key layout of a prefix, or EINVAL saying why the prefix is invalid. */
export function layoutOf(prefix: string): KeyLayout {
  try {
    assertPrefix(prefix);
  } catch (err) {
    throw new FsError('EINVAL', (err as Error).message);
  }
  return keysFor(prefix);
}

/**
 * Every metadata key of a prefix (not its family's keys or data blocks), in SCAN batches (a key
 * may come twice; SCAN allows that).
 */
export async function* scanKeys(client: RedisClient, layout: KeyLayout, batch = BATCH): AsyncGenerator<string[]> {
  for await (const keys of scanMatching(client, layout.metaPattern, batch)) {
    for (let i = 0; i < keys.length; i += batch) yield keys.slice(i, i + batch);
  }
}

/**
 * The inode count of `{P}:st` (what `df -i` shows), the cheap total of a job that walks a
 * filesystem's keys (progress counts the inodes of the bucket keys among them); undefined when
 * unknown.
 */
export async function inodeCount(client: RedisClient, layout: KeyLayout): Promise<number | undefined> {
  try {
    const n = Number(await client.hGet(layout.stats, 'inodes'));
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined; // not a hash: no total
  }
}

/**
 * The inodes the bucket keys (`MP in:<b>`) among `keys` hold: their HLENs, pipelined (a key
 * that is gone, or not a hash, counts 0). Progress of a walk that reads keys, in inodes.
 */
export async function inodesIn(client: RedisClient, layout: KeyLayout, keys: readonly string[]): Promise<number> {
  const buckets = [...new Set(keys.filter((key) => parseBucketKey(layout, key) !== undefined))];
  // Progress only: a bucket that cannot be counted counts 0 (the walk itself reports failures).
  const sizes = await Promise.all(buckets.map((key) => client.hLen(key).catch(() => 0)));
  return sizes.reduce((sum, n) => sum + n, 0);
}

/**
 * At most how many inodes the bucket keys among `keys` held (INODES_PER_BUCKET each): progress,
 * in inodes, of a walk told of keys once it has deleted them (when HLEN can no longer say).
 * Inode numbers are taken in batches, so buckets are mostly full: cap the sum at the walk's total.
 */
export function bucketCapacityOf(layout: KeyLayout, keys: readonly string[]): number {
  let n = 0;
  for (const key of keys) if (parseBucketKey(layout, key) !== undefined) n += INODES_PER_BUCKET;
  return n;
}

/** Whether any key of the layout exists, apart from `except`. */
export async function holdsAnyKey(client: RedisClient, layout: KeyLayout, except: readonly string[] = []): Promise<boolean> {
  for await (const keys of scanKeys(client, layout)) {
    if (keys.some((k) => !except.includes(k))) return true;
  }
  return false;
}

/** UNLINKs every key of a layout but `except`, superblock first. Returns how many existed. */
export async function unlinkAll(client: RedisClient, layout: KeyLayout, except: readonly string[] = []): Promise<number> {
  let n = await client.unlink(layout.superblock);
  for await (const keys of scanKeys(client, layout)) {
    const doomed = keys.filter((k) => !except.includes(k));
    if (doomed.length > 0) n += await unlinkKeys(client, doomed);
  }
  return n;
}

/** COPY appeared in Redis 6.2. */
const MIN_REDIS_FOR_COPY: readonly [number, number] = [6, 2];

export async function assertCopySupported(client: RedisClient, target: AdminTarget): Promise<void> {
  const info = await infoOfMasters(client, 'server').then((all) => all[0] ?? '');
  const version = /^redis_version:(\d+)\.(\d+)/m.exec(info);
  if (!version) return; // a Redis-compatible server that does not say; let COPY fail if it must
  const [major, minor] = [Number(version[1]), Number(version[2])];
  const [needMajor, needMinor] = MIN_REDIS_FOR_COPY;
  if (major < needMajor || (major === needMajor && minor < needMinor)) {
    throw new FsError(
      'EINVAL',
      `Redis at ${describeTarget(target)} is ${major}.${minor}; copying needs ${needMajor}.${needMinor} or later (COPY)`,
    );
  }
}

/** Runs `fn` with a fresh client, closed after; every failure becomes an FsError. */
export async function withClient<T>(target: AdminTarget, what: string, fn: (client: RedisClient) => Promise<T>): Promise<T> {
  // No reconnecting: a server that goes away mid-copy fails the command instead of hanging it.
  const client = await connectClient({ ...target, reconnect: false });
  try {
    return await fn(client);
  } catch (err) {
    throw toFsError(err, what);
  } finally {
    try {
      await client.close();
    } catch {
      try {
        destroyClient(client);
      } catch {
        // already closed: the server went away
      }
    }
  }
}
