/**
 * Point-in-time copies of a live filesystem inside one Redis server: snapshots and restores.
 *
 * Protocol (copy-on-write, never blocking Redis for long):
 *  1. snapLock: the target prefix is locked (`{T}:snapfrom`, a lease renewed while copying).
 *  2. snapStart: one script sets `{S}:snap` = {to: T, id}. That instant is the snapshot's point
 *     in time. From then on every script that changes a key of S first preserves the key's
 *     current value (or its absence) in T and records the key in `{S}:snap:done` (lua.ts, w()).
 *     Every change to a filesystem is one such script, so each operation is either wholly before
 *     the point (its effects are in the keys copied) or wholly after (its keys were preserved
 *     first).
 *  3. snapCopy, in SCAN batches of ~200 keys: copies (server-side COPY) each metadata key of S
 *     not in `{S}:snap:done`, but for session and lock keys (isSessionKey: the mounts of S, not
 *     its contents) (a copied block map adds a reference to each of its blocks: data
 *     blocks are shared, never copied; T must be a member of S's family). Such a key has not changed since the point in time. SCAN returns every key
 *     that exists from the start of the walk to its end; a key deleted meanwhile was preserved by
 *     the script that deleted it; a key created meanwhile is in `{S}:snap:done` and skipped.
 *  4. snapFinish: writes T's superblock (last: a partial copy is never mountable) and removes
 *     `{S}:snap`, in one step.
 * If the copier dies, its lease expires (LEASE_MS): writers stop preserving, and the half-made
 * target (no superblock) is removed by the next copy to it with force.
 */
import { randomUUID } from 'node:crypto';
import { DEFAULT_BLOCK_SIZE, LAYOUT_VERSION, sameFamily, type KeyLayout } from '@redisfs/schema';
import { FsError } from './errors.js';
import { describeTarget, type RedisClient } from './internal/connect.js';
import {
  assertCopySupported, bucketCapacityOf, holdsAnyKey, inodeCount, inodesIn, layoutOf, scanKeys, withClient, type AdminTarget,
} from './internal/admin-client.js';
import { drainFreeBlocks, releaseGcWork, releaseKeys, sweepOrphans } from './internal/release.js';
import { ScriptRunner } from './internal/scripts.js';
import { assertNotOpen } from './internal/clients.js';
import { toFsError } from './internal/redis-errors.js';

/**
 * Keys per copy script: a script copies them in about 2–4 ms (a file's inode and its block map,
 * whose blocks each gain a reference), short enough not to hold other clients up.
 */
const COPY_BATCH = 200;

/** How long a snapshot holds its locks without renewing them (each batch renews them). */
const LEASE_MS = 30_000;

/** Options of {@link snapshotFilesystem} and {@link restoreFilesystem}. */
export interface CopyFilesystemOptions extends AdminTarget {
  /** Prefix of the filesystem to copy. */
  from: string;
  /** Prefix to copy it to. Must hold no key unless `force`. */
  to: string;
  /** Delete every key of `to` first instead of refusing. */
  force?: boolean | undefined;
  /** Progress, at batch granularity; reading its totals costs an HGET of each `{P}:st` and a SCARD of `{F}#free` (with `force`). */
  onProgress?: ((progress: CopyProgress) => void) | undefined;
}

/** Where a copy stands: told when each phase begins (done 0) and after each batch. */
export interface CopyProgress {
  /**
   * With `force` on an existing target, first `replacing`: its keys are deleted (counted in
   * inodes), then `freeing`: the blocks no other member shares are deleted. Then `copying`: the
   * source's keys (counted in inodes).
   */
  phase: 'replacing' | 'freeing' | 'copying';
  /** Inodes, or blocks, done so far in this phase. */
  done: number;
  /**
   * An estimate, undefined when unknown: the inodes `{P}:st` counted (of the target when
   * replacing, of the source when copying; files created meanwhile are not in it), the blocks
   * `{F}#free` listed when freeing began.
   */
  total: number | undefined;
}

/** What a copy did. */
export interface CopyResult {
  /** Keys copied by the copier (superblock included); writers may have preserved more. */
  copiedKeys: number;
  /** Keys of the destination deleted first (force only). */
  deletedKeys: number;
  /** The point in time the copy holds, in ns since the epoch (Redis server time). */
  atNs: bigint;
}

/**
 * Takes a point-in-time snapshot of filesystem `from` into prefix `to`, while it may be mounted
 * and written. The snapshot is marked as such (mounts read-only unless asked otherwise).
 * Fails with EINVAL (bad prefix, same prefix, Redis < 6.2), ENOENT (no filesystem at `from`),
 * EEXIST (`to` holds keys and `force` is not set), EBUSY (a snapshot of `from` or into `to` is
 * in progress), ESTALE (the copy lost its lease: it stalled for over 30 s), EIO.
 */
export function snapshotFilesystem(options: CopyFilesystemOptions): Promise<CopyResult> {
  return pointInTimeCopy(options, true);
}

/**
 * Copies filesystem `from` (typically a snapshot) into `to` as an ordinary, writable filesystem:
 * restores a snapshot into a live prefix. An existing `to` is replaced only with `force`, and
 * not while a store (a mount) has it open (EBUSY). Point-in-time, and fails like {@link snapshotFilesystem}.
 */
export function restoreFilesystem(options: CopyFilesystemOptions): Promise<CopyResult> {
  return pointInTimeCopy(options, false);
}

/** Same as {@link restoreFilesystem}: a point-in-time copy that is an ordinary filesystem. */
export const copyFilesystem = restoreFilesystem;

async function pointInTimeCopy(options: CopyFilesystemOptions, markSnapshot: boolean): Promise<CopyResult> {
  const src = layoutOf(options.from);
  const dst = layoutOf(options.to);
  if (src.prefix === dst.prefix) throw new FsError('EINVAL', `--from and --to are the same prefix '${src.prefix}'`);
  if (!sameFamily(src.prefix, dst.prefix)) {
    throw new FsError(
      'EINVAL',
      `'${dst.prefix}' is not in the family of '${src.prefix}': a snapshot, clone or restore shares blocks with its source, ` +
        `so name it '${src.family}@<label>' (or '${src.family}' to roll back to it)`,
    );
  }
  const where = describeTarget(options);
  return withClient(options, `copying '${src.prefix}' to '${dst.prefix}'`, async (client) => {
    await assertCopySupported(client, options);
    const { onProgress } = options;
    // The totals are read with the superblock (one round trip); the target's is only used with force.
    const [[version, upgrading], srcInodes, dstInodes] = await Promise.all([
      client.hmGet(src.superblock, ['version', 'upgrade']),
      onProgress ? inodeCount(client, src) : undefined,
      onProgress && options.force ? inodeCount(client, dst) : undefined,
    ]);
    if (version == null) throw new FsError('ENOENT', `no filesystem at prefix '${src.prefix}' on ${where}`);
    if (Number(version) !== LAYOUT_VERSION || upgrading != null) {
      throw new FsError(
        'EINVAL',
        `'${src.prefix}' holds layout version ${version}${upgrading != null ? ' (being upgraded)' : ''}: ` +
          `run \`redisfs upgrade --prefix ${src.prefix}\` before copying it`,
      );
    }
    const scripts = new ScriptRunner(client, src.superblock);
    const id = randomUUID();
    const lease = String(LEASE_MS);
    const existed = await explain(
      scripts.run('snapLock', dst.metaPrefix, [src.prefix, id, lease, options.force ? '1' : '']),
      {
        EBUSY: `prefix '${dst.prefix}' is busy: a copy into it or a snapshot of it is in progress, or its delete is unfinished (run redisfs-snapshot delete --prefix ${dst.prefix} again)`,
        EEXIST: existsMessage(dst.prefix, where),
      },
    );
    let started = false;
    let targetIsOurs = false; // from here on, whatever the target holds was put there by this copy
    try {
      let deletedKeys = 0;
      if (Number(existed) === 1 || (await holdsAnyKey(client, dst, [dst.snapshotLock]))) {
        if (!options.force) throw new FsError('EEXIST', existsMessage(dst.prefix, where));
        await assertNotOpen(client, dst.prefix, `replace '${dst.prefix}'`);
        let replaced = 0;
        onProgress?.({ phase: 'replacing', done: 0, total: dstInodes });
        const replacing = onProgress && ((keys: readonly string[]) => {
          // Gone when told: each bucket counted full, up to the total.
          replaced = Math.min(dstInodes ?? Infinity, replaced + bucketCapacityOf(dst, keys));
          onProgress({ phase: 'replacing', done: replaced, total: dstInodes });
        });
        deletedKeys = (await releaseKeys(client, scripts, dst, [dst.snapshotLock], undefined, replacing)).keys;
        const toFree = onProgress ? await client.sCard(dst.freeBlocks) : undefined;
        onProgress?.({ phase: 'freeing', done: 0, total: toFree });
        await drainFreeBlocks(client, dst, false, onProgress && ((done) => onProgress({ phase: 'freeing', done, total: toFree })));
      }
      targetIsOurs = true;
      const at = (await explain(scripts.run('snapStart', src.metaPrefix, [dst.prefix, id, lease]), {
        EBUSY: `a snapshot of '${src.prefix}' is already in progress`,
        ENOENT: `no filesystem at prefix '${src.prefix}' on ${where}`,
      })) as string;
      started = true;
      let copiedKeys = 0;
      // Inodes of the batches copied (or preserved by writers already: handled either way).
      let copied = 0;
      onProgress?.({ phase: 'copying', done: 0, total: srcInodes });
      // One batch copied while the next SCAN runs: both go down the one connection in order.
      let inFlight: { reply: Promise<unknown>; inodes: number } | undefined;
      const land = async (batch: { reply: Promise<unknown>; inodes: number }) => {
        copiedKeys += Number(await batch.reply);
        copied += batch.inodes;
        onProgress?.({ phase: 'copying', done: copied, total: srcInodes });
      };
      for await (const keys of scanKeys(client, src, COPY_BATCH)) {
        const next = explain(scripts.run('snapCopy', src.metaPrefix, [id, lease, ...keys]), LEASE_LOST);
        next.catch(() => undefined);
        if (inFlight) await land(inFlight);
        inFlight = { reply: next, inodes: onProgress ? await inodesIn(client, src, keys) : 0 };
      }
      if (inFlight) await land(inFlight);
      await explain(scripts.run('snapFinish', src.metaPrefix, [id, markSnapshot ? '1' : '', at]), LEASE_LOST);
      await collectCopiedWork(client, scripts, dst, src);
      return { copiedKeys: copiedKeys + 1, deletedKeys, atNs: BigInt(at) };
    } catch (err) {
      await cleanUp(client, scripts, { src: src.metaPrefix, dst: dst.metaPrefix, id, started, targetIsOurs, target: dst });
      throw err;
    }
  });
}

/**
 * The copy holds what the source's collector had not done yet at the point in time: block maps
 * of removed files and entries past a shrunk file's size, listed in the copy's `MP gc`. No file
 * of the copy can read them, and a snapshot is read-only (no collector of its own), so they are
 * released here, in the collector's own short steps; blocks the source still holds stay. So are
 * the files removed while open that the source kept for its sessions (`MP orph`): sessions are
 * not copied, so nothing holds them in the copy.
 */
async function collectCopiedWork(client: RedisClient, scripts: ScriptRunner, dst: KeyLayout, src: KeyLayout): Promise<void> {
  const bsize = Number((await client.hGet(src.superblock, 'bsize')) ?? DEFAULT_BLOCK_SIZE);
  await sweepOrphans(client, scripts, dst);
  await releaseGcWork(client, scripts, dst, bsize);
}

const LEASE_LOST = {
  ESTALE: `the copy lost its lease (it stalled for over ${LEASE_MS / 1000} s, or its locks were removed); nothing was kept`,
};

function existsMessage(prefix: string, where: string): string {
  return `prefix '${prefix}' already holds keys on ${where}: delete it first, or use --force to replace it`;
}

/** Awaits a script, giving its `RFS:<CODE>` errors a message that says what happened. */
async function explain<T>(p: Promise<T>, messages: Partial<Record<string, string>>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const { code } = toFsError(err, '');
    const message = messages[code];
    if (message) throw new FsError(code, message, { cause: err });
    throw err;
  }
}

/** After a failure: stop preserving, remove the half-made target, release its lock. Best effort. */
async function cleanUp(
  client: RedisClient,
  scripts: ScriptRunner,
  c: { src: string; dst: string; id: string; started: boolean; targetIsOurs: boolean; target: KeyLayout },
): Promise<void> {
  try {
    if (c.started) await scripts.run('snapAbort', c.src, [c.id]);
    // Still ours? Then nobody else writes into the target: remove what this copy put there.
    if (c.targetIsOurs && (await client.hGet(c.target.snapshotLock, 'id')) === c.id) {
      await releaseKeys(client, scripts, c.target, [c.target.snapshotLock]);
      await drainFreeBlocks(client, c.target);
    }
    await scripts.run('snapUnlock', c.dst, [c.id]);
  } catch {
    // The lease expires by itself; a later copy with force removes what is left.
  }
}
