/**
 * The upgrade of a layout-1 or layout-2 filesystem to layout 3 (`redisfs upgrade`), in place and
 * without copying data, in up to two passes:
 *  - the block pass (layout 1 only): a layout-1 block key `P:b:<ino>:<index>` is already a
 *    block key of family P (block id `<ino>:<index>`), so it only builds the block maps
 *    (`{P}:m:<ino>`) and drops the blocks layout 1 had not deleted yet. It reads the inode
 *    hashes, so it runs first. Layout 1 then is layout 2 in all but the version.
 *  - the inode pass: each layout-2 inode hash `{P}:i:<ino>` becomes a packed record in its bucket
 *    `{P}:in:<ino / 64>` (and a symlink's target the string `{P}:l:<ino>`).
 * Everything else is the same in all three layouts.
 *
 * Protocol (lua-upgrade.ts), every step one short script that can run again with the same effect:
 *  1. upgradeStart sets the superblock field `upgrade` (the pass, the SCAN cursor to resume from,
 *     and the server process it belongs to); layout 2 becomes version 3 at once. From then on
 *     openStore refuses the prefix (an older redisfs refuses version 3). A field already set means
 *     an upgrade was cut short: it resumes that pass from the cursor.
 *  2. Each pass SCANs its pattern from that cursor, ~200 keys per call, and converts what a page
 *     returned in scripts of ~100 items, the last one saving the next cursor in the same step. A
 *     crash between a SCAN and its scripts only repeats that page; SCAN may return a key twice:
 *     a block mapped twice changes nothing (ZADD), an inode converted is gone (its hash).
 *  3. Once the block pass's cursor is back at 0, upgradeBlocksDone drops layout 1's
 *     pending-deletion set, sets version 3 and records the inode pass from 0, in one step; once
 *     the inode pass's cursor is back at 0, upgradeFinish removes `upgrade`: the filesystem mounts.
 * Only blocks that no file may reference are deleted (past the end of a file, or of an inode that
 * is gone or is no regular file), and an inode hash goes only in the step that writes its record,
 * so an upgrade cut short anywhere loses nothing. A hash that cannot be packed without losing
 * something (corrupt) is left as it is and reported; fsck reports it too.
 */
import { LAYOUT_VERSION, UPGRADABLE_LAYOUTS, parseInodeKey, parseLayout1BlockKey, type KeyLayout } from '@redisfs/schema';
import { FsError } from './errors.js';
import { describeTarget, type RedisClient } from './internal/connect.js';
import { SCAN_COUNT, layoutOf, withClient, type AdminTarget } from './internal/admin-client.js';
import { assertNotOpen } from './internal/clients.js';
import { ScriptRunner, type ScriptName } from './internal/scripts.js';
import { toFsError } from './internal/redis-errors.js';
import { commandAt, infoAt, topologyOf } from './internal/topology.js';

/** A pass of the upgrade: `blocks` (layout 1 only: block maps), then `inodes` (records into buckets). */
export type UpgradePhase = 'blocks' | 'inodes';

/** What an upgrade has done so far (this run only, when it resumed one cut short). */
export interface UpgradeProgress {
  /** The pass under way. */
  phase: UpgradePhase;
  /** Keys this pass's SCAN has returned (a key may count twice): blocks, or layout-2 inode hashes. */
  scanned: number;
  /** Blocks put in a block map. */
  blocksMapped: number;
  /** Block keys deleted: past the end of their file, or of an inode that is gone or is no regular file. */
  blocksDropped: number;
  /** Layout-2 inode hashes converted into packed records. */
  inodesConverted: number;
  /**
   * Progress only: an estimate of the keys this pass's scan will return in all, this run
   * (`scanned` / the share of the keyspace the SCAN cursor has walked since this run began);
   * undefined at first, and in a cluster.
   */
  total?: number | undefined;
}

/** Options of {@link upgradeFilesystem}. */
export interface UpgradeOptions extends AdminTarget {
  /** Prefix of the filesystem to upgrade (a family's, or a member's `F@S` for layout 2). */
  prefix: string;
  /** Called after each SCAN page (no extra command). An exception thrown here stops the upgrade (it resumes on the next run). */
  onProgress?: ((progress: UpgradeProgress) => void) | undefined;
}

/** The result of {@link upgradeFilesystem}. */
export interface UpgradeResult {
  prefix: string;
  /** The filesystem was already layout 3: nothing was done. */
  alreadyCurrent: boolean;
  /**
   * How this run began: `new`; `resumed` an upgrade cut short, from its saved cursor; `restarted`
   * one cut short from the start of its pass, its cursor being from another Redis process (a
   * restart, a failover), where it would miss keys. Absent when alreadyCurrent.
   */
  began?: 'new' | 'resumed' | 'restarted';
  /** The passes this run made, in order (`blocks` only for layout 1). */
  passes: UpgradePhase[];
  /** Keys the passes' SCANs returned (a key may count twice). */
  scanned: number;
  blocksMapped: number;
  blocksDropped: number;
  /** Keys matching a pass's pattern that are none of its keys (layout-2 block ids, strays): left alone. */
  keysIgnored: number;
  /** Members of layout 1's pending-deletion set `{P}:gc` removed (their blocks were dropped). */
  gcEntriesDropped: number;
  inodesConverted: number;
  /**
   * Layout-2 inode hashes left as they were: they cannot be packed without losing something (a
   * field missing, not a decimal number, too large, or unknown). The filesystem is layout 3
   * without them: fsck reports them (layout-2 leftovers).
   */
  inodesKept: number;
  /** Their inode numbers (the first {@link KEPT_LISTED}). */
  keptInodes: number[];
}

/** Kept inodes listed in a result, at most. */
const KEPT_LISTED = 100;
/** SCAN calls that found nothing to convert without saving the cursor, at most (saving costs a round trip). */
const SAVE_EVERY = 32;
/** Blocks per script: ~0.5 ms of Redis time (measured: ~5 µs a block), so other clients hardly wait. */
const BLOCKS_PER_SCRIPT = 100;
/** Inodes per script: a HGETALL, a HSET and a DEL each; ~1 ms of Redis time. */
const INODES_PER_SCRIPT = 100;

/**
 * Converts filesystem `prefix` from layout 1 or 2 to layout 3, in place. It must not be mounted
 * meanwhile (older redisfs versions mount layouts 1 and 2; this one refuses them until the
 * upgrade is done). Resumable: run it again after a crash or kill, at any point, and it goes on
 * from where it stopped. Fails with ENOENT (no filesystem), EINVAL (bad prefix, a layout it does
 * not convert), EBUSY (mounted, as far as CLIENT LIST tells; a snapshot of or into it in
 * progress), ESTALE (another run finished it, or it was deleted, meanwhile), EIO.
 */
export async function upgradeFilesystem(options: UpgradeOptions): Promise<UpgradeResult> {
  const layout = layoutOf(options.prefix);
  const { prefix } = layout;
  const where = describeTarget(options);
  return withClient(options, `upgrading '${prefix}'`, async (client) => {
    const result: UpgradeResult = {
      prefix, alreadyCurrent: false, passes: [], scanned: 0, blocksMapped: 0, blocksDropped: 0, keysIgnored: 0,
      gcEntriesDropped: 0, inodesConverted: 0, inodesKept: 0, keptInodes: [],
    };
    const [version, upgrading] = await client.hmGet(layout.superblock, ['version', 'upgrade']);
    if (version == null) throw new FsError('ENOENT', `no filesystem at prefix '${prefix}' on ${where}`);
    if (version === String(LAYOUT_VERSION) && upgrading == null) return { ...result, alreadyCurrent: true };
    if (!UPGRADABLE_LAYOUTS.includes(Number(version)) && version !== String(LAYOUT_VERSION)) throw unknownVersion(prefix, version);
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
    const cluster = topologyOf(client).kind === 'cluster';
    if (cluster && version === '1') {
      // Layout 1 wrote blocks and metadata in one script: it never ran on a cluster.
      throw new FsError('EINVAL', `prefix '${prefix}' holds layout 1: upgrade it on a single server, then move it to the cluster`);
    }
    await assertIdle(client, layout);
    await assertNotOpen(client, prefix, `upgrade '${prefix}'`);
    const scripts = new ScriptRunner(client, layout.superblock);
    const run = await runIdOf(client, layout.superblock);
    const start = (await explain(scripts.run('upgradeStart', layout.metaPrefix, [run]), prefix)) as string[];
    if (start[0] === 'current') return { ...result, alreadyCurrent: true };
    if (start[0] !== 'run') throw unknownVersion(prefix, start[1] ?? '');
    result.began = start[3] === 'resume' ? 'resumed' : start[3] === 'restart' ? 'restarted' : 'new';
    const walk = { client, scripts, layout, run, cluster, result, onProgress: options.onProgress };
    let cursor = start[2] ?? '0';
    if (start[1] === 'b') {
      await scanPass(walk, blockPass(layout, result), cursor);
      result.gcEntriesDropped = Number(await explain(scripts.run('upgradeBlocksDone', layout.metaPrefix, [run]), prefix));
      cursor = '0';
    }
    await scanPass(walk, inodePass(layout, result), cursor);
    await explain(scripts.run('upgradeFinish', layout.metaPrefix, []), prefix);
    return result;
  });
}

/** One pass: what it scans for, and how its scripts take the keys. */
interface Pass {
  phase: UpgradePhase;
  /** SCAN MATCH pattern. */
  pattern: string;
  /** What the field `upgrade` says before the cursor in this pass. */
  tag: string;
  script: ScriptName;
  /** The script's arguments for one key; undefined for a key this pass leaves alone. */
  argsOf(key: string): string[] | undefined;
  /** Arguments per script call. */
  perScript: number;
  /** Adds a script's reply to the result. */
  tally(reply: unknown): void;
}

interface Walk {
  client: RedisClient;
  scripts: ScriptRunner;
  layout: KeyLayout;
  run: string;
  cluster: boolean;
  result: UpgradeResult;
  onProgress: ((progress: UpgradeProgress) => void) | undefined;
}

function blockPass(layout: KeyLayout, result: UpgradeResult): Pass {
  return {
    phase: 'blocks',
    pattern: layout.blockPattern,
    tag: '',
    script: 'upgradeBatch',
    argsOf: (key) => {
      const block = layout1Block(layout, key);
      return block && [String(block.ino), String(block.index)];
    },
    perScript: 2 * BLOCKS_PER_SCRIPT,
    tally: (reply) => {
      const [mapped, dropped] = reply as [number, number];
      result.blocksMapped += Number(mapped);
      result.blocksDropped += Number(dropped);
    },
  };
}

function inodePass(layout: KeyLayout, result: UpgradeResult): Pass {
  return {
    phase: 'inodes',
    pattern: layout.layout2InodePattern,
    tag: 'i:',
    script: 'upgradeInodes',
    argsOf: (key) => {
      const parsed = parseInodeKey(layout, key);
      return parsed?.kind === 'inode2' ? [String(parsed.ino)] : undefined;
    },
    perScript: INODES_PER_SCRIPT,
    tally: (reply) => {
      const [converted, kept] = reply as [number, unknown[]];
      result.inodesConverted += Number(converted);
      result.inodesKept += kept.length;
      for (const ino of kept) if (result.keptInodes.length < KEPT_LISTED) result.keptInodes.push(Number(ino));
    },
  };
}

/** Runs one pass from `cursor` until its SCAN is back at 0. */
async function scanPass(walk: Walk, pass: Pass, cursor: string): Promise<void> {
  const { client, scripts, layout, run, result } = walk;
  result.passes.push(pass.phase);
  const startedAt = walkedShare(cursor);
  let scanned = 0;
  let unsaved = 0;
  do {
    const [next, keys] = await scanPage(client, layout.superblock, cursor, pass.pattern);
    const args: string[] = [];
    for (const key of keys) {
      scanned++;
      const a = pass.argsOf(key);
      if (a) args.push(...a);
      else result.keysIgnored++;
    }
    // The cursor is saved with the last batch of its page (a crash before repeats the page), never
    // once it is 0 (that would mean "start over": a crash before the end repeats the last page).
    const save = next !== '0' && (args.length > 0 || ++unsaved >= SAVE_EVERY) ? `${pass.tag}${next}@${run}` : '';
    for (let i = 0; i < args.length || (i === 0 && save !== ''); i += pass.perScript) {
      const last = i + pass.perScript >= args.length;
      pass.tally(await explain(scripts.run(pass.script, layout.metaPrefix, [last ? save : '', ...args.slice(i, i + pass.perScript)]), layout.prefix));
    }
    if (save !== '') unsaved = 0;
    result.scanned += keys.length;
    const walked = (next === '0' ? 1 : walkedShare(next)) - startedAt;
    walk.onProgress?.({
      phase: pass.phase,
      scanned,
      blocksMapped: result.blocksMapped,
      blocksDropped: result.blocksDropped,
      inodesConverted: result.inodesConverted,
      total: !walk.cluster && walked > 0 ? Math.round(scanned / walked) : undefined,
    });
    cursor = next;
  } while (cursor !== '0');
}

/** One SCAN call on the server holding the prefix's metadata (in a cluster, its slot's master). */
async function scanPage(client: RedisClient, routingKey: string, cursor: string, match: string): Promise<[string, string[]]> {
  const reply = (await commandAt(client, routingKey, ['SCAN', cursor, 'MATCH', match, 'COUNT', String(SCAN_COUNT)])) as [unknown, unknown[]];
  return [String(reply[0]), reply[1].map(String)];
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
 * may deny). Holds on a single server (a cluster node's cursor also encodes its slot).
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

function unknownVersion(prefix: string, version: string): FsError {
  const newer = Number(version) > LAYOUT_VERSION ? ' (it is newer than this redisfs: upgrade redisfs)' : '';
  return new FsError(
    'EINVAL',
    `prefix '${prefix}' holds layout version ${version}; redisfs upgrade converts layouts ${UPGRADABLE_LAYOUTS.join(' and ')} to ${LAYOUT_VERSION}${newer}`,
  );
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
 * INFO is refused (an ACL): a resumed upgrade then starts its pass over, which is always correct.
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
