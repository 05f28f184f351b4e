/**
 * openStore: connect, check the server and the superblock, create the filesystem when the prefix
 * holds none, and finish block deletions a crash left pending.
 */
import {
  DEFAULT_BLOCK_SIZE, DEFAULT_PREFIX, LAYOUT_VERSION, MAX_FILE_SIZE, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE,
  encodeSuperblock, isSupportedLayout, keysFor, superblockSchema, UPGRADABLE_LAYOUTS,
} from '@redisfs/schema';
import type { Store } from './api.js';
import { FsError } from './errors.js';
import type { StoreOptions } from './types.js';
import { bufferView, connectClient, describeTarget, type RedisClient } from './internal/connect.js';
import { ScriptRunner } from './internal/scripts.js';
import { mountClientName } from './internal/clients.js';
import { toFsError } from './internal/redis-errors.js';
import { BlockIds } from './internal/data.js';
import { Collector } from './internal/collector.js';
import { nowNs } from './internal/attr.js';
import type { StoreContext } from './internal/context.js';
import { RedisStore } from './redis-store.js';
import { Session } from './internal/session.js';
import { destroyClient, infoAt, topologyOf } from './internal/topology.js';

/** Whether the server is a replica (role:slave in INFO replication). */
async function isReplica(client: RedisClient, routingKey: string): Promise<boolean> {
  const info = await infoAt(client, routingKey, 'replication');
  return /^role:slave\s*$/m.test(info);
}

/**
 * Opens the filesystem under `prefix` on a Redis server. Creates it when the prefix holds none
 * (unless readOnly or create: false). Fails with a clear FsError: EIO when Redis cannot be
 * reached, EROFS when the server is a replica and readOnly is not set, ENOENT when there is no
 * filesystem to open, EINVAL when its layout version is unknown.
 */
export async function openStore(options: StoreOptions = {}): Promise<Store> {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  let keys;
  try {
    keys = keysFor(prefix);
  } catch (err) {
    throw new FsError('EINVAL', (err as Error).message);
  }
  let readOnly = options.readOnly ?? false;
  const syncReplicas = options.syncReplicas ?? 0;
  if (!Number.isInteger(syncReplicas) || syncReplicas < 0) throw new FsError('EINVAL', 'syncReplicas must be a whole number ≥ 0');
  const target = describeTarget(options);
  const client = await connectClient({
    ...options,
    clientName: mountClientName(prefix, readOnly),
    // One server: an operation's deadline is opTimeoutMs, and so is its wait through LOADING.
    busyWaitMs: options.opTimeoutMs ?? 10_000,
  });
  try {
    if (!readOnly && (await isReplica(client, keys.superblock))) {
      throw new FsError(
        'EROFS',
        `Redis at ${target} is a read-only replica: mount it with --read-only`,
      );
    }
    const bin = bufferView(client);
    const scripts = new ScriptRunner(client, keys.superblock, bin);
    let raw = await client.hGetAll(keys.superblock);
    if (Object.keys(raw).length === 0) {
      if (readOnly || options.create === false) {
        throw new FsError('ENOENT', `no redisfs filesystem with prefix '${prefix}' at ${target}`);
      }
      const bsize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
      if (!Number.isInteger(bsize) || bsize < MIN_BLOCK_SIZE || bsize > MAX_BLOCK_SIZE || (bsize & (bsize - 1)) !== 0) {
        throw new FsError('EINVAL', `block size must be a power of two from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE}`);
      }
      const sb = encodeSuperblock({ version: LAYOUT_VERSION, bsize, codec: 'zlib', created: BigInt(nowNs()), maxsize: MAX_FILE_SIZE });
      await scripts
        .run('format', keys.metaPrefix, [
          nowNs(), String(process.getuid?.() ?? 0), String(process.getgid?.() ?? 0),
          ...Object.entries(sb).flat(),
        ])
        .catch((err: unknown) => {
          if (toFsError(err, 'format').code !== 'EBUSY') throw err;
          throw new FsError('EBUSY', `prefix '${prefix}' at ${target} is being written by a snapshot or restore in progress: mount it once that is done`);
        });
      raw = await client.hGetAll(keys.superblock);
    }
    const version = Number(raw.version);
    // One line, naming the command to run (the mount prints it as it is).
    if (raw.upgrade !== undefined) {
      throw new FsError(
        'EINVAL',
        `prefix '${prefix}' is in the middle of an upgrade to layout ${LAYOUT_VERSION} (cut short, or still running): ` +
          `run \`redisfs upgrade --prefix ${prefix}\` (unmounted) to finish it, then mount it`,
      );
    }
    if (UPGRADABLE_LAYOUTS.includes(version)) {
      throw new FsError(
        'EINVAL',
        `prefix '${prefix}' holds layout version ${raw.version}, which this redisfs converts but does not mount: ` +
          `run \`redisfs upgrade --prefix ${prefix}\` (unmounted), then mount it`,
      );
    }
    if (!isSupportedLayout(version)) {
      throw new FsError(
        'EINVAL',
        `prefix '${prefix}' holds layout version ${raw.version ?? '?'}; this redisfs reads version ${LAYOUT_VERSION}` +
          (version > LAYOUT_VERSION ? ' (upgrade redisfs)' : ''),
      );
    }
    const parsed = superblockSchema.safeParse(raw);
    if (!parsed.success) throw new FsError('EIO', `corrupt superblock at prefix '${prefix}'`, { cause: parsed.error });
    const warn = options.onWarning ?? ((m: string) => process.emitWarning(m, 'RedisfsWarning'));
    const { snapof, snapat } = parsed.data;
    if (snapof !== undefined && !readOnly && options.writeSnapshot !== true) {
      readOnly = true;
      const when = snapat === undefined ? '' : ` taken at ${new Date(Number(snapat / 1_000_000n)).toISOString()}`;
      warn(`prefix '${prefix}' is a snapshot of '${snapof}'${when}: opened read-only (mount it with --read-write to change it)`);
    }
    let collector: Collector | undefined;
    const ctx: StoreContext = {
      client,
      bin,
      keys,
      scripts,
      blockSize: parsed.data.bsize,
      codec: parsed.data.codec,
      readOnly,
      // In a cluster, blocks live on other masters than the metadata: out of a script's reach.
      inlineBlocks: options.inlineBlocks ?? topologyOf(client).kind !== 'cluster',
      syncReplicas: options.syncReplicas ?? 0,
      syncTimeoutMs: options.syncTimeoutMs ?? 5000,
      blockIds: undefined as unknown as BlockIds,
      collect: () => collector?.kick(),
      warn,
    };
    ctx.blockIds = new BlockIds(ctx);
    // A mount registers its session (one round trip); it then ends the sessions others left
    // expired, in the background.
    if (!readOnly && options.session) {
      try {
        ctx.session = await Session.register(ctx, options.session);
      } catch (err) {
        if (err instanceof RangeError) throw new FsError('EINVAL', err.message);
        throw err;
      }
    }
    // Work left by others (a crash, a deleted snapshot) is picked up in the background: an open
    // never waits for it.
    if (!readOnly) {
      collector = new Collector(ctx);
      collector.start();
    }
    const failover = topologyOf(client).kind !== 'single';
    return new RedisStore(ctx, options.opTimeoutMs ?? (failover ? 60_000 : 10_000), collector);
  } catch (err) {
    destroyClient(client);
    if (err instanceof FsError) throw err;
    // A refusal by the server keeps its meaning (NOPERM → EACCES, READONLY → EROFS, OOM → ENOSPC).
    throw toFsError(err, `opening prefix '${prefix}' at ${target}`);
  }
}
