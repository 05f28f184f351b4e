/**
 * Test-only: inodes as Redis stores them (layout 3), for tests that look under the store or a mount. An inode is not a
 * key of its own: it is field `<ino>` of the bucket hash `keysFor(prefix).inodes(ino)`, shared
 * with 63 other inodes, and its value is a packed binary record. So "is inode 5 stored?" is
 * HEXISTS, not EXISTS, and a record is read as a Buffer (a string reply would corrupt it) and
 * decoded with @redisfs/schema's decodeInodeRecord.
 */
import { RESP_TYPES } from '@redis/client';
import { decodeInodeRecord, keysFor, parseBucketKey, type InodeRecord } from '@redisfs/schema';
import { redisCommand, type RedisAddress } from './redis-server.js';

/** What storedInode needs of a node-redis client (any of its flavours). */
interface Client {
  withTypeMapping(mapping: { [RESP_TYPES.BLOB_STRING]: BufferConstructor }): { hGet(key: string, field: string): Promise<unknown> };
}

/** Inode `ino` of `prefix` as stored (its decoded record), undefined when there is none. */
export async function storedInode(client: Client, prefix: string, ino: number): Promise<InodeRecord | undefined> {
  const binary = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
  const v = (await binary.hGet(keysFor(prefix).inodes(ino), String(ino))) as Buffer | null;
  return v == null ? undefined : decodeInodeRecord(v);
}

/** Whether inode `ino` of `prefix` is stored (over a fresh connection: safe against servers a test kills). */
export async function inodeStored(redis: RedisAddress, prefix: string, ino: number): Promise<boolean> {
  return Number(await redisCommand(redis, ['HEXISTS', keysFor(prefix).inodes(ino), ino])) === 1;
}

/**
 * The inodes stored in the bucket keys among `keys` (a key list of `prefix`, such as prefixKeys
 * gives), each as `<bucket key> ∋ <ino>`, sorted: what a list of keys no longer shows by itself
 * (a freed inode leaves its bucket key behind while other inodes share it).
 */
export async function storedInodeEntries(redis: RedisAddress, prefix: string, keys: readonly string[]): Promise<string[]> {
  const k = keysFor(prefix);
  const out: string[] = [];
  for (const key of keys) {
    if (parseBucketKey(k, key) === undefined) continue;
    for (const ino of (await redisCommand(redis, ['HKEYS', key])) as string[]) out.push(`${key} ∋ ${ino}`);
  }
  return out.sort();
}
