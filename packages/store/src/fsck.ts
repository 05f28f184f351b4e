/**
 * fsck: checks (and with `repair`, fixes) the consistency of one filesystem, and of the blocks
 * its family shares (a filesystem, its snapshots and clones share one pool of blocks).
 *
 * A consistent filesystem: every directory entry names a live inode of the type the entry says;
 * every live inode except the root is reachable from the root; a file's nlink is the number of
 * entries naming it, a directory's is 2 + its subdirectories, and a directory has exactly one
 * name, in the directory its `p` field records; every inode record (a field of its bucket
 * `{P}:in:<n / 64>`) decodes; dir and xattr hashes belong to live inodes, a symlink target key
 * `{P}:l:<n>` to a live symlink, and every symlink has one; a block map belongs to a live regular
 * file, holds no entry at or past its end, and names only blocks that are stored (or is pending in
 * `{P}:gc`); `{P}:st` matches the inodes and bytes counted; `{P}:ino` is at least every inode
 * number in use. A consistent family: `{F}#rc` holds the number of map entries, over every member,
 * of exactly the blocks that have two or more; every stored block is referenced by some map or
 * listed in `{F}#free`, and no referenced block is listed there. Work the collector has not done
 * yet (`{P}:gc`, `{F}#free`, `{F}#dead`) is reported as pending, not as a problem. Sessions
 * (mounts, internal/fsck-sessions.ts): every session is alive (its lease runs past Redis's time);
 * a file with no name and link count 0 is held open by a live session (reported as kept open after
 * removal, not as a problem); holds name inodes and sessions that exist; locks belong to live
 * sessions; no entry is one of libfuse's hidden files (`.fuse_hidden…`), which redisfs mounts no
 * longer make.
 *
 * Reading is SCAN in batches with pipelined reads (the filesystem's keys, then the family's
 * blocks, every member's block maps, `{F}#rc` and `{F}#free`): safe on a live filesystem, but a
 * check that runs while others write may report transient problems, since an operation may run
 * between two SCAN batches (a rename can move an entry from a directory not read yet into one
 * already read). Memory holds the filesystem's metadata and one number per block id of the family.
 * `repair` is meant for a quiet family (unmounted, or mounted by nobody who writes, in any member,
 * since reference counts and blocks are shared), and is refused (EBUSY) while a snapshot is taken
 * from or into the prefix or any member of its family that holds blocks. Each repair is one
 * atomic step that re-checks what it cheaply can (an entry is removed only if it still holds the
 * value seen, an nlink or a reference count is set only if it did not change...), but some
 * conditions (no entry names this inode, no map references this block) cannot be re-checked
 * atomically. Repairing runs passes (check, repair, check again) until nothing repairable is
 * left, so that the children of a deleted orphan directory go in the same run; `{P}:st` is
 * recomputed last, once nothing else changes what it counts.
 *
 * A filesystem of an older layout (1, 2) is not checked: `redisfs upgrade` converts it first.
 */
import { UPGRADABLE_LAYOUTS, isSupportedLayout, type KeyLayout } from '@redisfs/schema';
import { FsError } from './errors.js';
import { holdsAnyKey, inodeCount, layoutOf, withClient, type AdminTarget } from './internal/admin-client.js';
import { describeTarget, type RedisClient } from './internal/connect.js';
import { checkImage, type Finding } from './internal/fsck-check.js';
import { BlockTable, FamilyCheck } from './internal/fsck-family.js';
import { MapCheck } from './internal/fsck-maps.js';
import { applyRepair } from './internal/fsck-repair.js';
import { checkSessions, type FsckKeptOpen, type FsckSession } from './internal/fsck-sessions.js';

export type { FsckKeptOpen, FsckSession };
import {
  countDeadMembers, membersBeingCopied, readLayoutFields, scanBlocks, scanMaps, scanMetadata, scanRefcountsAndFree, storedBlocks,
  type MetaImage,
} from './internal/fsck-scan.js';
import { ScriptRunner } from './internal/scripts.js';

/** Every kind of problem fsck reports: a closed list. */
export const FSCK_PROBLEM_KINDS = [
  /** `{P}:sb` is missing while other keys of the prefix exist (fatal: nothing else is checked). */
  'superblock-missing',
  /** `{P}:sb` does not decode (fatal). */
  'superblock-corrupt',
  /** Inode 1 is missing (repair recreates it, owned by root, mode 0755) or is not a directory. */
  'root-missing',
  /** An entry's value is not a type character followed by an inode number. */
  'entry-corrupt',
  /** An entry names an inode that does not exist. */
  'entry-dangling',
  /** An entry's type character does not match its inode's mode. */
  'entry-type-mismatch',
  /**
   * An inode's record (a field of its bucket `{P}:in:<n / 64>`) does not decode, its bucket is
   * not a hash, or a symlink's target key `{P}:l:<n>` is missing (never repaired: it may hold data).
   */
  'inode-unreadable',
  /** An inode's nlink differs from the entries that name it (2 + subdirectories for a directory). */
  'nlink-wrong',
  /** A live inode (not the root) that is not reachable from the root: no entry names it. */
  'orphan-inode',
  /** A directory (or the root) named by more than one entry. */
  'dir-multiple-names',
  /** A directory's `p` field is not the directory that names it (root: not 1). */
  'dir-parent-wrong',
  /** An entries hash `{P}:d:<n>` whose inode is missing or not a directory. */
  'stray-dir-hash',
  /** An xattr hash `{P}:x:<n>` whose inode is missing. */
  'stray-xattr-hash',
  /** A symlink target `{P}:l:<n>` whose inode is missing or not a symlink (repair deletes it). */
  'stray-target',
  /** A block map `{P}:m:<n>` whose inode is missing or not a regular file, not pending in `{P}:gc` (repair releases it). */
  'orphan-map',
  /** Block map entries at or past the end of their file, not pending in `{P}:gc` (repair releases them). */
  'block-past-eof',
  /** A block map entry that is not a block id at a block index (repair removes it, releasing its reference). */
  'map-entry-corrupt',
  /** A block map entry of a live file whose block key does not exist: data lost (repair removes the entry: zeros). */
  'block-missing',
  /** `{F}#rc` differs from the map entries, over every member of the family, that reference a block. */
  'refcount-wrong',
  /** A block listed in `{F}#free` (to be deleted) that a map references. */
  'block-freed-in-use',
  /** A stored block no map of any member references, not listed in `{F}#free` (repair deletes it). */
  'block-unreferenced',
  /** `{P}:st` differs from the inodes and bytes counted. */
  'stats-mismatch',
  /** `{P}:ino` is missing or lower than an inode number in use (a new file could reuse it). */
  'inode-counter-behind',
  /**
   * A key under the prefix (or the block pattern) that the layout does not define, or that has
   * the wrong type; an inode bucket holding a field that is no inode of it; a layout-2 inode hash
   * `{P}:i:<n>` left over (`redisfs upgrade` converts those). Never repaired.
   */
  'unexpected-key',
  /** A session (mount) whose lease expired, or that was declared dead and not fully ended (repair ends it: its holds and locks go). */
  'session-expired',
  /** A file with no name and link count 0 (removed while open) that no live session holds (repair frees it). */
  'removed-file-unheld',
  /** A hold of an inode that does not exist or by a session that does not exist, or a `{P}:orph` member that is no such file (repair drops it). */
  'open-entry-stale',
  /** Locks of sessions that are not alive, which no session end drops (repair drops them). */
  'lock-stale',
  /** An entry named like libfuse's hidden files (`.fuse_hidden<16 hex digits>`), left by an earlier redisfs mount (repair unlinks it). */
  'fuse-hidden-entry',
] as const;
export type FsckProblemKind = (typeof FSCK_PROBLEM_KINDS)[number];

/** One problem found. */
export interface FsckProblem {
  kind: FsckProblemKind;
  /** One line for a human, naming the inode, entry or key involved. */
  message: string;
  /** The inode the problem is about (for an entry problem: the inode it names, when known). */
  ino?: number;
  /**
   * For an entry problem: the directory holding the entry, and its name: readable (valid UTF-8
   * as it is; other bytes, control characters and the backslash escaped: `\xff`, `\x0a`, `\\`)
   * and exact.
   */
  dir?: number;
  name?: string;
  nameBytes?: Buffer;
  /** The Redis key involved. */
  key?: string;
  /** Whether `repair: true` fixes it. */
  repairable: boolean;
}

/** One change `repair` made. */
export interface FsckRepair {
  /** The kind of problem it fixed. */
  kind: FsckProblemKind;
  /** What was done, for a human. */
  message: string;
  ino?: number;
  key?: string;
}

/** What the first check saw. */
export interface FsckCounts {
  /** Inode records (live inodes). */
  inodes: number;
  /** Directories among them. */
  directories: number;
  /** Directory entries. */
  entries: number;
  /** Entries of its block maps: the blocks its files reference (some may be shared). */
  blocks: number;
  /** Data-block keys of the whole family scanned (its members share them). */
  familyBlocks: number;
}

/** Work the collector has not done yet: not a problem, but it holds memory until done. */
export interface FsckPending {
  /** Files whose block map has entries to release (`{P}:gc`: freed or shrunk files). */
  gcInodes: number;
  /** Blocks nothing references any more, whose keys are yet to be deleted (`{F}#free`). */
  freeBlocks: number;
  /** Deleted members of the family whose keys are still being released (`{F}#dead`). */
  deadMembers: number;
}

/** The result of {@link checkFilesystem}. */
export interface FsckReport {
  prefix: string;
  /** Whether the check had to stop early (superblock missing or corrupt): nothing else was checked. */
  fatal: boolean;
  /** Problems the first check found. */
  problems: FsckProblem[];
  /** What `repair` changed; empty without it. */
  repaired: FsckRepair[];
  /** Problems left: those a final check still finds after repairing; `problems` without repair. */
  remaining: FsckProblem[];
  counts: FsckCounts;
  /** What the collector has still to do, as the last check saw it (a read-write mount of the family does it). */
  pending: FsckPending;
  /** The sessions (mounts) of the filesystem, alive or not, as the last check saw them. */
  sessions: FsckSession[];
  /** Files removed while open that live sessions hold (not problems: freed at their last close), as the last check saw them. */
  keptOpen: FsckKeptOpen[];
  /** Checks run (1 without repair; with it, one more after each round of repairs). */
  passes: number;
}

/** Progress of a run: told when each phase of a check begins (done 0), after each batch, and after each repair. */
export interface FsckProgress {
  /** metadata: the filesystem's keys; blocks, maps, refcounts: the family's; repair. */
  phase: 'metadata' | 'blocks' | 'maps' | 'refcounts' | 'repair';
  /** 1 for the first check; repair passes count up from there. */
  pass: number;
  /**
   * Done so far in this phase: metadata, inodes read; blocks, data-block keys; maps, block-map
   * keys (of the whole family); refcounts, entries of `{F}#rc` and `{F}#free`; repair, repairs
   * tried (over every pass).
   */
  done: number;
  /**
   * An estimate, undefined when unknown: metadata, the inodes `{P}:st` counts; blocks, the blocks
   * this filesystem's files span (its family may store more, sparse files fewer); maps, this
   * filesystem's block maps (other members of the family add theirs); refcounts, unknown; repair,
   * the repairs tried so far and those of this pass.
   */
  total: number | undefined;
}

/** Options of {@link checkFilesystem}. */
export interface FsckOptions extends AdminTarget {
  /** Prefix of the filesystem to check. */
  prefix: string;
  /** Fix what can be fixed (orphans, counts, entries, maps, blocks). Only on a quiet family. */
  repair?: boolean | undefined;
  /** Called as the check proceeds (after each SCAN batch, each repair); its totals cost one HGET per check. */
  onProgress?: ((progress: FsckProgress) => void) | undefined;
}

/** Checks beyond the first when repairing: each repairs what the previous found. */
const MAX_REPAIR_PASSES = 6;

/**
 * Checks filesystem `prefix` (read-only unless `repair`) and reports what it found and fixed.
 * Fails with EINVAL (bad prefix, unknown layout version, layout 1: upgrade it first), ENOENT (the
 * prefix holds no key at all), EBUSY (repair while a snapshot is taken from or into the prefix
 * or a member of its family), EIO/EACCES (Redis unreachable or failing). See the module comment
 * for live filesystems.
 */
export async function checkFilesystem(options: FsckOptions): Promise<FsckReport> {
  const layout = layoutOf(options.prefix);
  return withClient(options, `checking '${layout.prefix}'`, async (client) => {
    let pass = 1;
    const first = await checkOnce(client, layout, options, pass);
    const report: FsckReport = {
      prefix: layout.prefix,
      fatal: first.fatal,
      problems: first.findings.map((f) => f.problem),
      repaired: [],
      remaining: first.findings.map((f) => f.problem),
      counts: first.counts,
      pending: first.pending,
      sessions: first.sessions,
      keptOpen: first.keptOpen,
      passes: 1,
    };
    if (first.fatal || !options.repair) return report;
    // Refused during a snapshot even when there is nothing to repair: the answer to --repair
    // must not depend on what the check happened to find (README: exit 8).
    await assertNoSnapshot(client, layout, options, first.members);
    if (first.findings.every((f) => f.action === undefined)) return report;
    const scripts = new ScriptRunner(client, layout.superblock);
    let current = first;
    let done = 0;
    while (pass <= MAX_REPAIR_PASSES) {
      const fixable = current.findings.filter((f) => f.action !== undefined);
      // Counters last: only once nothing else changes what they count. Reference counts and the
      // free list first: releasing a map (an orphan's, say) trusts them to tell a shared block.
      const structural = fixable.filter((f) => f.action?.op !== 'set-stats');
      const batch = (structural.length > 0 ? structural : fixable).sort((a, b) => repairOrder(a) - repairOrder(b));
      if (batch.length === 0) break;
      await assertNoSnapshot(client, layout, options, current.members);
      let changed = 0;
      const total = done + batch.length;
      for (const finding of batch) {
        const repaired = await applyRepair(client, layout, finding, current.blockSize, scripts);
        if (repaired) {
          report.repaired.push(repaired);
          changed++;
        }
        options.onProgress?.({ phase: 'repair', pass, done: ++done, total });
      }
      current = await checkOnce(client, layout, options, ++pass);
      report.passes = pass;
      // Every repair refused (its condition changed under it): another round would do the same.
      if (changed === 0 || current.fatal) break;
    }
    report.remaining = current.findings.map((f) => f.problem);
    report.fatal = current.fatal;
    report.pending = current.pending;
    report.sessions = current.sessions;
    report.keptOpen = current.keptOpen;
    return report;
  });
}

/**
 * Block bookkeeping (what every release relies on) before anything that releases blocks; the end
 * of dead sessions before what they held is judged on its own.
 */
function repairOrder(f: Finding): number {
  if (f.action?.op === 'set-refcount' || f.action?.op === 'unfree-block') return 0;
  return f.action?.op === 'end-session' ? 1 : 2;
}

/**
 * Repairs write keys directly, not through the copy-on-write hooks of the store's scripts: while
 * a snapshot is taken from or into this prefix they would leak into it, or be overwritten; and
 * while one is taken from or into another member, the references it adds would be miscounted.
 */
async function assertNoSnapshot(client: RedisClient, layout: KeyLayout, target: AdminTarget, members: ReadonlySet<string>): Promise<void> {
  const busy = await membersBeingCopied(client, new Set([layout.prefix, ...members]));
  if (busy.length === 0) return;
  const which = busy.includes(layout.prefix) ? `'${layout.prefix}'` : `'${busy[0]}', a member of the family of '${layout.prefix}'`;
  throw new FsError(
    'EBUSY',
    `a snapshot is being taken from or into ${which} on ${describeTarget(target)}: not repairing; retry once it is done`,
  );
}

/** Refuses a filesystem of another layout before reading it: layout 1 needs `redisfs upgrade` first. */
async function assertCheckableLayout(client: RedisClient, layout: KeyLayout): Promise<void> {
  const fields = await readLayoutFields(client, layout);
  if (!fields || fields.version === undefined || !/^\d+$/.test(fields.version)) return; // the check reports it
  const version = Number(fields.version);
  if (UPGRADABLE_LAYOUTS.includes(version) || fields.upgrade !== undefined) {
    throw new FsError(
      'EINVAL',
      `prefix '${layout.prefix}' holds layout version ${version}${fields.upgrade === undefined ? '' : ' (an upgrade was cut short)'}: ` +
        `convert it with \`redisfs upgrade --prefix ${layout.prefix}\` (unmounted), then check it`,
    );
  }
  if (!isSupportedLayout(version)) {
    throw new FsError('EINVAL', `prefix '${layout.prefix}' holds layout version ${version}, which this redisfs cannot check`);
  }
}

interface CheckResult {
  fatal: boolean;
  findings: Finding[];
  counts: FsckCounts;
  pending: FsckPending;
  blockSize: number;
  /** Members of the family that hold block maps. */
  members: ReadonlySet<string>;
  sessions: FsckSession[];
  keptOpen: FsckKeptOpen[];
}

/**
 * One full check: the filesystem's metadata, then the family's blocks, every member's block
 * maps (counting the references to each block, and judging this filesystem's), the reference
 * counts and the free list.
 */
async function checkOnce(client: RedisClient, layout: KeyLayout, options: FsckOptions, pass: number): Promise<CheckResult> {
  const { onProgress } = options;
  /** Tells that `phase` begins, with its total, and returns what its scan reports to. */
  const progress = (phase: FsckProgress['phase'], total: number | undefined) => {
    onProgress?.({ phase, pass, done: 0, total });
    return (done: number) => onProgress?.({ phase, pass, done, total });
  };
  const [, inodes] = await Promise.all([assertCheckableLayout(client, layout), onProgress ? inodeCount(client, layout) : undefined]);
  const metadata = progress('metadata', inodes);
  const image = await scanMetadata(client, layout, (scanned, inodesRead) => metadata(inodesRead ?? scanned));
  if (image.superblock === undefined && image.keysScanned === 0 && !(await holdsAnyKey(client, layout))) {
    throw new FsError('ENOENT', `no filesystem at prefix '${layout.prefix}' on ${describeTarget(options)}`);
  }
  const check = checkImage(image, layout);
  const gcInodes = new Set(image.gc).size;
  if (check.fatal) {
    return {
      fatal: true,
      findings: check.findings(() => 0, []),
      counts: check.counts({ mapped: 0, family: 0 }),
      pending: { gcInodes, freeBlocks: 0, deadMembers: await countDeadMembers(client, layout) },
      blockSize: 0,
      members: new Set(),
      sessions: [],
      keptOpen: [],
    };
  }
  const sessions = checkSessions(image, layout, check.removedInodes);
  const table = new BlockTable();
  const maps = new MapCheck(image, layout, check.blockSize, check.orphanInodes);
  const familyBlocks = await scanBlocks(
    client,
    layout,
    (id) => table.stored(id),
    (key) => check.unexpected(key, 'is under the block pattern but is not a block key'),
    progress('blocks', onProgress ? blocksSpanned(image, check.blockSize) : undefined),
  );
  const { members } = await scanMaps(
    client,
    layout,
    (prefix, ino, entries) => {
      for (const e of entries) table.reference(e.id);
      if (prefix === layout.prefix) maps.entries(ino, entries, (id) => table.isStored(id));
    },
    (prefix, ino, key) => {
      if (prefix === layout.prefix) check.unexpected(key, maps.notZset(ino));
    },
    progress('maps', image.maps.size),
  );
  const family = new FamilyCheck(layout, table, members);
  await scanRefcountsAndFree(
    client,
    layout,
    { refcount: (id, raw) => family.refcount(id, raw), free: (id) => family.free(id), unexpected: (key, why) => check.unexpected(key, why) },
    progress('refcounts', undefined),
  );
  // A block stored after the block scan went by (a write meanwhile) is not missing.
  const candidates = maps.missingCandidates();
  if (candidates.length > 0) maps.storedAfterAll(await storedBlocks(client, layout, candidates));
  return {
    fatal: false,
    findings: check.findings((ino) => maps.entriesOf(ino), [...maps.findings(), ...family.findings(), ...sessions.findings]),
    counts: check.counts({ mapped: maps.mapped, family: familyBlocks }),
    pending: { gcInodes, freeBlocks: family.freeBlocks, deadMembers: await countDeadMembers(client, layout) },
    blockSize: check.blockSize,
    members,
    sessions: sessions.sessions,
    keptOpen: sessions.keptOpen,
  };
}

/** The blocks the regular files of an image span: the blocks phase's estimate of what the family stores. */
function blocksSpanned(image: MetaImage, blockSize: number): number | undefined {
  if (!(blockSize > 0)) return undefined;
  let n = 0;
  for (const inode of image.inodes.values()) if (inode.type === 'file') n += Math.ceil(inode.size / blockSize);
  return n;
}
