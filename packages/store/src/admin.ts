/**
 * Whole-filesystem administration: list the filesystems a server holds, delete one.
 * (Copies, snapshots and restores: snapshot.ts.) Keys are walked with SCAN in bounded batches,
 * never KEYS. The superblock is deleted first, so a half-done delete is never mountable.
 */
import { UPGRADABLE_LAYOUTS, keysFor, statsSchema, superblockSchema } from '@redisfs/schema';
import { FsError } from './errors.js';
import { describeTarget } from './internal/connect.js';
import { SCAN_COUNT, bucketCapacityOf, inodeCount, layoutOf, withClient, type AdminTarget } from './internal/admin-client.js';
import { assertNotOpen } from './internal/clients.js';
import { ScriptRunner } from './internal/scripts.js';
import { drainFreeBlocks, releaseMember } from './internal/release.js';
import { toFsError } from './internal/redis-errors.js';
import { scanMatching, unlinkKeys } from './internal/topology.js';

export type { AdminTarget } from './internal/admin-client.js';

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
  /** For a snapshot: the prefix it was taken from and when (the point in time it holds). */
  snapshot?: { of: string; atNs: bigint };
  /** A snapshot of this filesystem is being taken right now. */
  snapshotInProgress?: boolean;
}

/** Every redisfs filesystem on the server (one holding a superblock), sorted by prefix. */
export async function listFilesystems(target: AdminTarget = {}): Promise<FilesystemInfo[]> {
  return withClient(target, 'listing filesystems', async (client) => {
    const prefixes = new Set<string>();
    // SCAN MATCH treats '{' literally, so match the tail and check each candidate exactly.
    for await (const keys of scanMatching(client, '*:sb', SCAN_COUNT)) {
      for (const key of keys) {
        const m = SUPERBLOCK_KEY.exec(key);
        const prefix = m ? m[1]! + (m[2] ?? '') : undefined;
        if (prefix !== undefined && keysFor(prefix).superblock === key) prefixes.add(prefix);
      }
    }
    const out: FilesystemInfo[] = [];
    for (const prefix of [...prefixes].sort()) {
      const keys = keysFor(prefix);
      const [sbRaw, stRaw, busy] = await Promise.all([
        client.hGetAll(keys.superblock),
        client.hGetAll(keys.stats),
        client.exists(keys.snapshot),
      ]);
      const sb = superblockSchema.safeParse(sbRaw);
      const st = statsSchema.safeParse(stRaw);
      const info: FilesystemInfo = {
        prefix,
        version: sb.success ? sb.data.version : undefined,
        createdNs: sb.success ? sb.data.created : undefined,
        inodes: st.success ? st.data.inodes : 0,
        bytes: st.success ? st.data.bytes : 0,
      };
      if (sb.success && sb.data.snapof !== undefined && sb.data.snapat !== undefined) {
        info.snapshot = { of: sb.data.snapof, atNs: sb.data.snapat };
      }
      if (busy === 1) info.snapshotInProgress = true;
      out.push(info);
    }
    return out;
  });
}

/** Where {@link deleteFilesystem} stands: told when each phase begins (done 0) and after each batch. */
export interface DeleteProgress {
  /**
   * `releasing`: the filesystem's keys are deleted (block maps release their blocks), counted in
   * inodes; `freeing`: the data blocks no other member of the family shares are deleted.
   */
  phase: 'releasing' | 'freeing';
  /**
   * Inodes released (each inode bucket released counted full, up to the total: an upper bound),
   * or blocks deleted, so far in this phase.
   */
  done: number;
  /**
   * An estimate, undefined when unknown: the inodes `{P}:st` counted; the blocks `{F}#free` listed
   * when the phase began (blocks of a layout-1 filesystem, deleted last, are not counted in it).
   */
  total: number | undefined;
}

/** Options of {@link deleteFilesystem}. */
export interface DeleteFilesystemOptions extends AdminTarget {
  /** Prefix of the filesystem to delete. */
  prefix: string;
  /** Refuse (EPERM) unless it is a snapshot. */
  onlySnapshot?: boolean | undefined;
  /** Progress, at batch granularity; reading its totals costs one HGET and one SCARD. */
  onProgress?: ((progress: DeleteProgress) => void) | undefined;
}

/**
 * Deletes filesystem `prefix`: its superblock first (a half-done delete is not mountable), in
 * the same script that lists it in `{F}#dead`; then its keys, in batches (block maps release
 * their blocks: those no other member of the family shares are deleted). A delete cut short is
 * finished by running it again, or by the collector of any read-write mount of the family.
 * Returns the number of keys deleted; ENOENT when the prefix holds no filesystem, EBUSY while a
 * snapshot of it or a copy into it runs, EPERM with `onlySnapshot` when it is not a snapshot;
 * EBUSY while a store (a mount) has it open, as far as CLIENT LIST tells this user.
 */
export async function deleteFilesystem(options: DeleteFilesystemOptions): Promise<{ deletedKeys: number }> {
  const layout = layoutOf(options.prefix);
  const busy = () => new FsError('EBUSY', `prefix '${layout.prefix}' is busy: a snapshot of it, or a copy into it, is in progress`);
  const { onProgress } = options;
  return withClient(options, `deleting '${layout.prefix}'`, async (client) => {
    // The inode count is read before `forget` removes the counters, with the first check (one round trip).
    const [copying, inodes] = await Promise.all([
      client.exists([layout.snapshot, layout.snapshotLock]),
      onProgress ? inodeCount(client, layout) : undefined,
    ]);
    if (copying > 0) throw busy();
    await assertNotOpen(client, layout.prefix, `delete '${layout.prefix}'`);
    if (options.onlySnapshot) {
      const sb = await client.hGetAll(layout.superblock);
      if (Object.keys(sb).length > 0 && sb.snapof === undefined) {
        throw new FsError(
          'EPERM',
          `prefix '${layout.prefix}' is a filesystem, not a snapshot: unmount it and use --force to delete it`,
        );
      }
    }
    const scripts = new ScriptRunner(client, layout.superblock);
    // Layout 1 named blocks by inode and index, under the prefix itself (a family of one).
    const layout1 = UPGRADABLE_LAYOUTS.includes(Number(await client.hGet(layout.superblock, 'version')));
    const existed = Number(
      await scripts.run('forget', layout.metaPrefix, []).catch((err: unknown) => {
        if (toFsError(err, '').code !== 'EBUSY') throw err;
        throw busy(); // a snapshot started since the check above
      }),
    );
    let released = 0;
    onProgress?.({ phase: 'releasing', done: 0, total: inodes });
    // The batch is gone when told: its buckets are counted full, up to the total.
    const releasing = onProgress && ((keys: readonly string[]) => {
      released = Math.min(inodes ?? Infinity, released + bucketCapacityOf(layout, keys));
      onProgress({ phase: 'releasing', done: released, total: inodes });
    });
    const member = await releaseMember(client, scripts, layout, layout.prefix, undefined, releasing);
    if (existed === 0 && member.keys === 0) {
      throw new FsError('ENOENT', `no filesystem at prefix '${layout.prefix}' on ${describeTarget(options)}`);
    }
    const toFree = onProgress ? await client.sCard(layout.freeBlocks) : undefined;
    onProgress?.({ phase: 'freeing', done: 0, total: toFree });
    const freed = await drainFreeBlocks(client, layout, false, onProgress && ((done) => onProgress({ phase: 'freeing', done, total: toFree })));
    let layout1Blocks = 0;
    if (layout1) {
      for await (const keys of scanMatching(client, layout.blockPattern, SCAN_COUNT)) {
        if (keys.length > 0) layout1Blocks += await unlinkKeys(client, keys);
        onProgress?.({ phase: 'freeing', done: freed + layout1Blocks, total: undefined });
      }
    }
    return { deletedKeys: existed + member.keys + layout1Blocks };
  });
}

/** `{F}:sb` → F, `{F}@S:sb` → F@S (a candidate; confirmed against keysFor). */
const SUPERBLOCK_KEY = /^\{([A-Za-z0-9_.-]+)\}(@[A-Za-z0-9_.-]+)?:sb$/;
