/**
 * Whole-filesystem administration: copy a filesystem to another prefix on the same server,
 * list the filesystems a server holds, delete one.
 *
 * Everything walks keys with SCAN in bounded batches (never KEYS, which blocks the server) and
 * copies with the server-side COPY command (Redis >= 6.2), so no data block passes through Node.
 *
 * Consistency: a copy is made key by key. It is exact when nobody writes to the source meanwhile;
 * with a live writer the copy may mix states from different moments (not point-in-time).
 * The superblock is copied last and deleted first, so a half-done copy or delete is never
 * mountable (openStore sees no superblock).
 */
import { assertPrefix, keysFor, statsSchema, superblockSchema, type KeyLayout } from '@redisfs/schema';
import { FsError } from './errors.js';
import { connectClient, describeTarget, type RedisClient } from './internal/connect.js';
import { toFsError } from './internal/redis-errors.js';

/** Where the Redis server is: as in openStore. */
export interface AdminTarget {
  /** redis:// or rediss:// URL; default redis://127.0.0.1:6379. */
  url?: string | undefined;
  /** Unix socket path; takes precedence over url's host/port. */
  socket?: string | undefined;
  /** Time to wait for the connection, in ms; default 5 000. */
  connectTimeoutMs?: number | undefined;
}

/** Options of {@link copyFilesystem}. */
export interface CopyFilesystemOptions extends AdminTarget {
  /** Prefix of the filesystem to copy. */
  from: string;
  /** Prefix to copy it to. Must hold no key unless `force`. */
  to: string;
  /** Delete every key of `to` first instead of refusing. */
  force?: boolean | undefined;
}

/** What {@link copyFilesystem} did. */
export interface CopyResult {
  /** Keys copied (superblock included). */
  copiedKeys: number;
  /** Keys of the destination deleted first (force only). */
  deletedKeys: number;
}

/** One filesystem found by {@link listFilesystems}. */
export interface FilesystemInfo {
  prefix: string;
  /** Layout version from the superblock; undefined when the superblock is corrupt. */
  version: number | undefined;
  /** Creation time in nanoseconds since the Unix epoch; undefined when the superblock is corrupt. */
  createdNs: bigint | undefined;
  /** Live inodes. */
  inodes: number;
  /** Sum of file sizes, in bytes. */
  bytes: number;
}

/** Keys per SCAN call (a hint to Redis) and commands per pipelined batch. */
const SCAN_COUNT = 500;
const BATCH = 500;
/** COPY appeared in Redis 6.2. */
const MIN_REDIS_FOR_COPY: readonly [number, number] = [6, 2];

/**
 * Copies filesystem `from` to prefix `to` on the same server, server-side.
 * Fails with EINVAL (bad prefix, same prefix, Redis < 6.2), ENOENT (no filesystem at `from`),
 * EEXIST (`to` holds keys and `force` is not set), EIO (Redis unreachable or failing).
 * Not point-in-time with a concurrent writer to `from`; see the module comment.
 */
export async function copyFilesystem(options: CopyFilesystemOptions): Promise<CopyResult> {
  const src = layoutOf(options.from);
  const dst = layoutOf(options.to);
  if (src.prefix === dst.prefix) throw new FsError('EINVAL', `--from and --to are the same prefix '${src.prefix}'`);
  return withClient(options, `copying '${src.prefix}' to '${dst.prefix}'`, async (client) => {
    await assertCopySupported(client, options);
    if ((await client.exists(src.superblock)) === 0) {
      throw new FsError('ENOENT', `no filesystem at prefix '${src.prefix}' on ${describeTarget(options)}`);
    }
    let deletedKeys = 0;
    if (await holdsAnyKey(client, dst)) {
      if (!options.force) {
        throw new FsError(
          'EEXIST',
          `prefix '${dst.prefix}' already holds keys on ${describeTarget(options)}: delete it first or use --force (force: true)`,
        );
      }
      deletedKeys = await unlinkAll(client, dst);
    }
    let copiedKeys = 0;
    const heads = aligned(src, dst);
    for (const { pattern, fromHead, toHead } of heads) {
      for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: SCAN_COUNT })) {
        const pairs = keys
          .filter((k) => k !== src.superblock && k.startsWith(fromHead))
          .map((k) => [k, toHead + k.slice(fromHead.length)] as const);
        for (let i = 0; i < pairs.length; i += BATCH) {
          const multi = client.multi();
          for (const [from, to] of pairs.slice(i, i + BATCH)) multi.copy(from, to);
          const replies = await multi.execAsPipeline();
          // 0: the source key vanished since SCAN returned it (a concurrent delete); skip it.
          copiedKeys += replies.filter((r) => Number(r) === 1).length;
        }
      }
    }
    // Last, so that the copy becomes mountable only once every other key is there.
    if ((await client.copy(src.superblock, dst.superblock)) !== 1) {
      throw new FsError('EIO', `the superblock of '${src.prefix}' vanished during the copy; '${dst.prefix}' is incomplete`);
    }
    return { copiedKeys: copiedKeys + 1, deletedKeys };
  });
}

/** Every redisfs filesystem on the server (one holding a superblock), sorted by prefix. */
export async function listFilesystems(target: AdminTarget = {}): Promise<FilesystemInfo[]> {
  return withClient(target, 'listing filesystems', async (client) => {
    const prefixes = new Set<string>();
    // SCAN MATCH treats '{' literally, so match the tail and check each candidate exactly.
    for await (const keys of client.scanIterator({ MATCH: '*:sb', COUNT: SCAN_COUNT })) {
      for (const key of keys) {
        const prefix = SUPERBLOCK_KEY.exec(key)?.[1];
        if (prefix !== undefined && keysFor(prefix).superblock === key) prefixes.add(prefix);
      }
    }
    const out: FilesystemInfo[] = [];
    for (const prefix of [...prefixes].sort()) {
      const keys = keysFor(prefix);
      const [sbRaw, stRaw] = await Promise.all([client.hGetAll(keys.superblock), client.hGetAll(keys.stats)]);
      const sb = superblockSchema.safeParse(sbRaw);
      const st = statsSchema.safeParse(stRaw);
      out.push({
        prefix,
        version: sb.success ? sb.data.version : undefined,
        createdNs: sb.success ? sb.data.created : undefined,
        inodes: st.success ? st.data.inodes : 0,
        bytes: st.success ? st.data.bytes : 0,
      });
    }
    return out;
  });
}

/**
 * Deletes every key of filesystem `prefix` (superblock first, so a half-done delete is not
 * mountable). Returns the number of keys deleted; ENOENT when the prefix holds no key.
 * The caller must make sure the filesystem is not mounted.
 */
export async function deleteFilesystem(options: AdminTarget & { prefix: string }): Promise<{ deletedKeys: number }> {
  const layout = layoutOf(options.prefix);
  return withClient(options, `deleting '${layout.prefix}'`, async (client) => {
    const deletedKeys = await unlinkAll(client, layout);
    if (deletedKeys === 0) {
      throw new FsError('ENOENT', `no filesystem at prefix '${layout.prefix}' on ${describeTarget(options)}`);
    }
    return { deletedKeys };
  });
}

/** `{P}:sb` → P (a candidate; confirmed against keysFor). */
const SUPERBLOCK_KEY = /^\{([A-Za-z0-9_.-]+)\}:sb$/;

function layoutOf(prefix: string): KeyLayout {
  try {
    assertPrefix(prefix);
  } catch (err) {
    throw new FsError('EINVAL', (err as Error).message);
  }
  return keysFor(prefix);
}

/**
 * Pairs each scan pattern of `src` with its key head in both layouts: `{A}:*` ↔ `{B}:`,
 * `A:b:*` ↔ `B:b:`. A key is renamed by swapping its head.
 */
function aligned(src: KeyLayout, dst: KeyLayout): { pattern: string; fromHead: string; toHead: string }[] {
  return src.scanPatterns.map((pattern, i) => {
    const other = dst.scanPatterns[i];
    if (!pattern.endsWith('*') || other === undefined || !other.endsWith('*')) {
      throw new FsError('EINVAL', `unexpected scan pattern ${JSON.stringify(pattern)} in the key layout`);
    }
    return { pattern, fromHead: pattern.slice(0, -1), toHead: other.slice(0, -1) };
  });
}

async function holdsAnyKey(client: RedisClient, layout: KeyLayout): Promise<boolean> {
  for (const pattern of layout.scanPatterns) {
    for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: SCAN_COUNT })) {
      if (keys.length > 0) return true;
    }
  }
  return false;
}

/** UNLINKs every key of a layout in batches, superblock first. Returns how many existed. */
async function unlinkAll(client: RedisClient, layout: KeyLayout): Promise<number> {
  let n = await client.unlink(layout.superblock);
  for (const pattern of layout.scanPatterns) {
    for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: SCAN_COUNT })) {
      for (let i = 0; i < keys.length; i += BATCH) n += await client.unlink(keys.slice(i, i + BATCH));
    }
  }
  return n;
}

async function assertCopySupported(client: RedisClient, target: AdminTarget): Promise<void> {
  const info = await client.info('server');
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

async function withClient<T>(target: AdminTarget, what: string, fn: (client: RedisClient) => Promise<T>): Promise<T> {
  const client = await connectClient(target);
  try {
    return await fn(client);
  } catch (err) {
    throw toFsError(err, what);
  } finally {
    try {
      await client.close();
    } catch {
      client.destroy();
    }
  }
}
