/**
 * The upgrade of a layout-1 filesystem to layout 2 (`redisfs upgrade`), in place and without
 * copying data: a layout-1 block key `P:b:<ino>:<index>` is already a layout-2 block key of
 * family P (block id `<ino>:<index>`), so the upgrade only builds the block maps (`{P}:m:<ino>`)
 * and drops the blocks layout 1 had not deleted yet. Everything else is the same in both layouts.
 *
 * Protocol (lua-upgrade.ts), every step one short script that can run again with the same effect:
 *  1. upgradeStart sets the superblock field `upgrade` (the SCAN cursor to resume from, and the
 *     server process it belongs to); from then on openStore refuses the prefix. A field already
 *     set means an upgrade was cut short: it resumes from the cursor.
 *  2. SCAN `P:b:*` from that cursor, ~200 keys per call; upgradeBatch maps or drops each block of
 *     a batch and saves the next cursor, in one step. A crash between a SCAN and its script only
 *     repeats that batch; SCAN may return a key twice, which maps it twice (ZADD: no change).
 *  3. Once the cursor is back at 0, upgradeFinish drops layout 1's pending-deletion set, sets
 *     version 2 and removes `upgrade`, in one step: the filesystem mounts again.
 * Only blocks that no layout-2 file may reference are deleted (past the end of a file, or of an
 * inode that is gone or is no regular file), so an upgrade cut short anywhere loses nothing.
 */
import { LAYOUT_VERSION, parseLayout1BlockKey, type KeyLayout } from '@redisfs/schema';
import { FsError } from './errors.js';
import { describeTarget, type RedisClient } from './internal/connect.js';
import { SCAN_COUNT, layoutOf, withClient, type AdminTarget } from './internal/admin-client.js';
import { assertNotOpen } from './internal/clients.js';
import { ScriptRunner } from './internal/scripts.js';
import { toFsError } from './internal/redis-errors.js';
import { infoAt, topologyOf } from './internal/topology.js';

/** What an upgrade has done so far (this run only, when it resumed one cut short). */
export interface UpgradeProgress {
  /** Keys SCAN returned for the block pattern (a key may count twice). */
  scanned: number;
  /** Blocks put in a block map. */
  blocksMapped: number;
  /** Block keys deleted: past the end of their file, or of an inode that is gone or is no regular file. */
  blocksDropped: number;
  /**
   * Progress only: an estimate of the keys the scan will return in all, this run (`scanned` / the
   * share of the keyspace the SCAN cursor has walked since this run began); undefined at first.
   */
  total?: number | undefined;
}

/** Options of {@link upgradeFilesystem}. */
export interface UpgradeOptions extends AdminTarget {
  /** Prefix of the filesystem to upgrade (a layout-1 prefix: no `@`). */
  prefix: string;
  /** Called after each SCAN page (no extra command). An exception thrown here stops the upgrade (it resumes on the next run). */
  onProgress?: ((progress: UpgradeProgress) => void) | undefined;
}

/** The result of {@link upgradeFilesystem}. */
export interface UpgradeResult extends Omit<UpgradeProgress, 'total'> {
  prefix: string;
  /** The filesystem was already layout 2: nothing was done. */
  alreadyCurrent: boolean;
  /**
   * How this run began: `new`; `resumed` an upgrade cut short, from its saved cursor; `restarted`
   * one cut short from the start, its cursor being from another Redis process (a restart, a
   * failover), where it would miss keys. Absent when alreadyCurrent.
   */
  began?: 'new' | 'resumed' | 'restarted';
  /** Keys matching the block pattern that are no layout-1 block (layout-2 ids, strays): left alone. */
  keysIgnored: number;
  /** Members of layout 1's pending-deletion set `{P}:gc` removed (their blocks were dropped). */
  gcEntriesDropped: number;
}

/** SCAN calls that found no block without saving the cursor, at most (saving costs a round trip). */
const SAVE_EVERY = 32;
/** Blocks per script: ~0.5 ms of Redis time (measured: ~5 µs a block), so other clients hardly wait. */
const BLOCKS_PER_SCRIPT = 100;

/**
 * Converts filesystem `prefix` from layout 1 to layout 2, in place. It must not be mounted
 * meanwhile (older redisfs versions mount layout 1; this one refuses it until the upgrade is
 * done). Resumable: run it again after a crash or kill, at any point, and it goes on from where
 * it stopped. Fails with ENOENT (no filesystem), EINVAL (bad prefix, a layout it does not
 * convert), EBUSY (mounted, as far as CLIENT LIST tells; a snapshot of or into it in progress),
 * ESTALE (another run finished it, or it was deleted, meanwhile), EIO.
 */
export async function upgradeFilesystem(options: UpgradeOptions): Promise<UpgradeResult> {
  const layout = layoutOf(options.prefix);
  const { prefix } = layout;
  const where = describeTarget(options);
  return withClient(options, `upgrading '${prefix}'`, async (client) => {
    const result: UpgradeResult = {
      prefix, alreadyCurrent: false, scanned: 0, blocksMapped: 0, blocksDropped: 0, keysIgnored: 0, gcEntriesDropped: 0,
    };
    const [version, upgrading] = await client.hmGet(layout.superblock, ['version', 'upgrade']);
    if (version == null) throw new FsError('ENOENT', `no filesystem at prefix '${prefix}' on ${where}`);
    if (version === '2' && upgrading == null) return { ...result, alreadyCurrent: true };
    if (version !== '1' && version !== '2') {
      const newer = Number(version) > 2 ? ' (it is newer than this redisfs: upgrade redisfs)' : '';
      throw new FsError('EINVAL', `prefix '${prefix}' holds layout version ${version}; redisfs upgrade converts layout 1 to 2${newer}`);
    }
    if (version === '1' && prefix !== layout.family) {
      // Layout 1 had no '@': this is a copy of a layout-1 filesystem that a layout-2 tool made. It
      // names the blocks of F (P:b:<ino>:<index> with P = F) as its own, which F's upgrade maps
      // or drops: upgrading both would lose data.
      throw new FsError(
        'EINVAL',
        `prefix '${prefix}' holds layout 1, which had no '@' in prefixes: it is a copy of a layout-1 filesystem made ` +
          `by a newer redisfs-snapshot and shares the blocks of '${layout.family}'; delete it, upgrade '${layout.family}', then copy it again`,
      );
    }
    await assertIdle(client, layout);
    await assertNotOpen(client, prefix, `upgrade '${prefix}'`);
    const scripts = new ScriptRunner(client, layout.superblock);
    if (topologyOf(client).kind === 'cluster' && Number(await client.hGet(layout.superblock, 'version')) !== LAYOUT_VERSION) {
      // Layout 1 wrote blocks and metadata in one script: it never ran on a cluster.
      throw new FsError('EINVAL', `prefix '${prefix}' is not layout ${LAYOUT_VERSION}: upgrade it on a single server, then move it to the cluster`);
    }
    const run = await runIdOf(client, layout.superblock);
    const start = (await explain(scripts.run('upgradeStart', layout.metaPrefix, [run]), prefix)) as string[];
    if (start[0] === 'current') return { ...result, alreadyCurrent: true };
    if (start[0] !== 'run') throw new FsError('EINVAL', `prefix '${prefix}' holds layout version ${start[1]}; redisfs upgrade converts layout 1 to 2`);
    result.began = start[2] === 'resume' ? 'resumed' : start[2] === 'restart' ? 'restarted' : 'new';
    let cursor = start[1] ?? '0';
    const startedAt = walkedShare(cursor);
    let unsaved = 0;
    do {
      const page = await client.scan(cursor, { MATCH: layout.blockPattern, COUNT: SCAN_COUNT });
      const next = String(page.cursor);
      const pairs: string[] = [];
      for (const key of page.keys) {
        result.scanned++;
        const block = layout1Block(layout, String(key));
        if (block) pairs.push(String(block.ino), String(block.index));
        else result.keysIgnored++;
      }
      // The cursor is saved with the last batch of its page (a crash before repeats the page), never
      // once it is 0 (that would mean "start over": a crash before the finish repeats the last page).
      const save = next !== '0' && (pairs.length > 0 || ++unsaved >= SAVE_EVERY) ? `${next}@${run}` : '';
      const step = 2 * BLOCKS_PER_SCRIPT;
      for (let i = 0; i < pairs.length || (i === 0 && save !== ''); i += step) {
        const last = i + step >= pairs.length;
        const reply = (await explain(
          scripts.run('upgradeBatch', layout.metaPrefix, [last ? save : '', ...pairs.slice(i, i + step)]),
          prefix,
        )) as [number, number];
        result.blocksMapped += Number(reply[0]);
        result.blocksDropped += Number(reply[1]);
      }
      if (save !== '') unsaved = 0;
      const walked = (next === '0' ? 1 : walkedShare(next)) - startedAt;
      options.onProgress?.({
        scanned: result.scanned,
        blocksMapped: result.blocksMapped,
        blocksDropped: result.blocksDropped,
        total: walked > 0 ? Math.round(result.scanned / walked) : undefined,
      });
      cursor = next;
    } while (cursor !== '0');
    result.gcEntriesDropped = Number(await explain(scripts.run('upgradeFinish', layout.metaPrefix, []), prefix));
    return result;
  });
}

/**
 * A layout-1 block of this filesystem: `P:b:<ino>:<index>` exactly as layout 1 wrote it (decimal,
 * no leading zero, ino ≥ 1); anything else matching the pattern is left alone.
 */
function layout1Block(layout: KeyLayout, key: string): { ino: number; index: number } | undefined {
  const block = parseLayout1BlockKey(layout.prefix, key);
  if (!block || block.ino < 1 || !Number.isSafeInteger(block.ino) || !Number.isSafeInteger(block.index)) return undefined;
  return layout.block(`${block.ino}:${block.index}`) === key ? block : undefined;
}

/**
 * The share of the keyspace (0 to 1) a SCAN has walked when it returns `cursor`: SCAN counts
 * through the buckets of the key table with the bits of the cursor reversed, so reversing them
 * again gives how far it is, whatever the table's size (a key count without DBSIZE, which an ACL
 * may deny). Holds on a single server, where an upgrade runs (a cluster node's cursor also
 * encodes its slot).
 */
function walkedShare(cursor: string): number {
  let x = BigInt.asUintN(64, BigInt(/^\d+$/.test(cursor) ? cursor : '0'));
  let reversed = 0n;
  for (let i = 0; i < 64; i++) {
    reversed = (reversed << 1n) | (x & 1n);
    x >>= 1n;
  }
  return Number(reversed) / 2 ** 64;
}

/** EBUSY while a snapshot of the prefix, or a copy into it, runs (the scripts check again). */
async function assertIdle(client: RedisClient, layout: KeyLayout): Promise<void> {
  if ((await client.exists([layout.snapshot, layout.snapshotLock])) > 0) throw busy(layout.prefix);
}

function busy(prefix: string): FsError {
  return new FsError('EBUSY', `prefix '${prefix}' is busy: a snapshot of it, or a copy into it, is in progress; upgrade it once that is done`);
}

/**
 * The server process's run id (INFO server): a saved SCAN cursor is only good there. '' when
 * INFO is refused (an ACL): a resumed upgrade then starts its scan over, which is always correct.
 */
async function runIdOf(client: RedisClient, routingKey: string): Promise<string> {
  try {
    return /^run_id:([0-9a-f]+)\s*$/m.exec(await infoAt(client, routingKey, 'server'))?.[1] ?? '';
  } catch {
    return '';
  }
}

/** Awaits a script, giving its `RFS:<CODE>` errors a message that says what happened. */
async function explain<T>(p: Promise<T>, prefix: string): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const { code } = toFsError(err, '');
    if (code === 'EBUSY') throw busy(prefix);
    if (code === 'ENOENT') throw new FsError('ENOENT', `prefix '${prefix}' was deleted during its upgrade`, { cause: err });
    if (code === 'ESTALE') {
      throw new FsError('ESTALE', `the upgrade of '${prefix}' was finished by another run meanwhile, or its superblock changed`, { cause: err });
    }
    if (code === 'EIO' && /RFS:EIO/.test(String(err))) {
      throw new FsError('EIO', `prefix '${prefix}' has a corrupt superblock (block size): run redisfs fsck`, { cause: err });
    }
    throw err;
  }
}
