/**
 * fsck: checks (and with `repair`, fixes) the consistency of one filesystem.
 *
 * A consistent filesystem: every directory entry names a live inode of the type the entry says;
 * every live inode except the root is reachable from the root; a file's nlink is the number of
 * entries naming it, a directory's is 2 + its subdirectories, and a directory has exactly one
 * name, in the directory its `p` field records; dir and xattr hashes belong to live inodes; data
 * blocks belong to regular files and lie below their size (or are pending deletion in `{P}:gc`);
 * `{P}:st` matches the inodes and bytes counted; `{P}:ino` is at least every inode number in use.
 *
 * Reading is SCAN in batches with pipelined reads: safe on a live filesystem, but a check that
 * runs while others write may report transient problems, since an operation may run between two
 * SCAN batches (a rename can move an entry from a directory not read yet into one already read).
 * `repair` is meant for a quiet filesystem (unmounted, or mounted by nobody who writes), and is
 * refused (EBUSY) while a snapshot is taken from or into the prefix. Each repair is one atomic
 * step that re-checks what it cheaply can (an entry is removed only if it still holds the value
 * seen, an nlink is set only if it did not change...), but some conditions (no entry names this
 * inode) cannot be re-checked atomically. Repairing runs passes (check, repair, check again)
 * until nothing repairable is left, so that the children of a deleted orphan directory go in the
 * same run; `{P}:st` is recomputed last, once nothing else changes what it counts.
 */
import type { KeyLayout } from '@redisfs/schema';
import { FsError } from './errors.js';
import { holdsAnyKey, layoutOf, withClient, type AdminTarget } from './internal/admin-client.js';
import { describeTarget, type RedisClient } from './internal/connect.js';
import { checkImage, type Finding } from './internal/fsck-check.js';
import { applyRepair } from './internal/fsck-repair.js';
import { scanBlocks, scanMetadata } from './internal/fsck-scan.js';

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
  /** An inode hash does not decode (never repaired: it may hold data). */
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
  /** A data block of a missing inode or of an inode that is not a regular file. */
  'stray-block',
  /** A data block at or past the end of its file, not pending deletion in `{P}:gc`. */
  'block-past-eof',
  /** `{P}:st` differs from the inodes and bytes counted. */
  'stats-mismatch',
  /** `{P}:ino` is missing or lower than an inode number in use (a new file could reuse it). */
  'inode-counter-behind',
  /** A key under the prefix that the layout does not define, or that has the wrong type (never repaired). */
  'unexpected-key',
] as const;
export type FsckProblemKind = (typeof FSCK_PROBLEM_KINDS)[number];

/** One problem found. */
export interface FsckProblem {
  kind: FsckProblemKind;
  /** One line for a human, naming the inode, entry or key involved. */
  message: string;
  /** The inode the problem is about (for an entry problem: the inode it names, when known). */
  ino?: number;
  /** For an entry problem: the directory holding the entry, and its name. */
  dir?: number;
  name?: string;
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
  /** Inode hashes (live inodes). */
  inodes: number;
  /** Directories among them. */
  directories: number;
  /** Directory entries. */
  entries: number;
  /** Data-block keys scanned. */
  blocks: number;
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
  /** Checks run (1 without repair; with it, one more after each round of repairs). */
  passes: number;
}

/** Progress of a run: the phase and how many keys (or repairs) it has done so far. */
export interface FsckProgress {
  phase: 'metadata' | 'blocks' | 'repair';
  /** 1 for the first check; repair passes count up from there. */
  pass: number;
  done: number;
}

/** Options of {@link checkFilesystem}. */
export interface FsckOptions extends AdminTarget {
  /** Prefix of the filesystem to check. */
  prefix: string;
  /** Fix what can be fixed (orphans, counts, entries, stray keys). Only on a quiet filesystem. */
  repair?: boolean | undefined;
  /** Called as the check proceeds (after each SCAN batch, each repair). */
  onProgress?: ((progress: FsckProgress) => void) | undefined;
}

/** Checks beyond the first when repairing: each repairs what the previous found. */
const MAX_REPAIR_PASSES = 6;

/**
 * Checks filesystem `prefix` (read-only unless `repair`) and reports what it found and fixed.
 * Fails with EINVAL (bad prefix, unknown layout version), ENOENT (the prefix holds no key at
 * all), EBUSY (repair while a snapshot is taken from or into the prefix), EIO/EACCES (Redis
 * unreachable or failing). See the module comment for live filesystems.
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
      passes: 1,
    };
    if (first.fatal || !options.repair || first.findings.every((f) => f.action === undefined)) return report;
    await assertNoSnapshot(client, layout, options);
    let current = first;
    let done = 0;
    while (pass <= MAX_REPAIR_PASSES) {
      const fixable = current.findings.filter((f) => f.action !== undefined);
      // Counters last: only once nothing else changes what they count.
      const structural = fixable.filter((f) => f.action?.op !== 'set-stats');
      const batch = structural.length > 0 ? structural : fixable;
      if (batch.length === 0) break;
      let changed = 0;
      for (const finding of batch) {
        const repaired = await applyRepair(client, layout, finding, current.blockSize);
        if (repaired) {
          report.repaired.push(repaired);
          changed++;
        }
        options.onProgress?.({ phase: 'repair', pass, done: ++done });
      }
      current = await checkOnce(client, layout, options, ++pass);
      report.passes = pass;
      // Every repair refused (its condition changed under it): another round would do the same.
      if (changed === 0 || current.fatal) break;
    }
    report.remaining = current.findings.map((f) => f.problem);
    report.fatal = current.fatal;
    return report;
  });
}

/**
 * Repairs write keys directly, not through the copy-on-write hooks of the store's scripts: while
 * a snapshot is taken from or into this prefix they would leak into it, or be overwritten.
 */
async function assertNoSnapshot(client: RedisClient, layout: KeyLayout, target: AdminTarget): Promise<void> {
  if ((await client.exists([layout.snapshot, layout.snapshotLock])) === 0) return;
  throw new FsError(
    'EBUSY',
    `a snapshot is being taken from or into '${layout.prefix}' on ${describeTarget(target)}: not repairing; retry once it is done`,
  );
}

interface CheckResult {
  fatal: boolean;
  findings: Finding[];
  counts: FsckCounts;
  blockSize: number;
}

/** One full check: metadata scan and analysis, then the block scan. */
async function checkOnce(client: RedisClient, layout: KeyLayout, options: FsckOptions, pass: number): Promise<CheckResult> {
  const image = await scanMetadata(client, layout, (done) => options.onProgress?.({ phase: 'metadata', pass, done }));
  if (image.superblock === undefined && image.keysScanned === 0 && !(await holdsAnyKey(client, layout))) {
    throw new FsError('ENOENT', `no filesystem at prefix '${layout.prefix}' on ${describeTarget(options)}`);
  }
  const check = checkImage(image, layout);
  if (check.fatal) return { fatal: true, findings: check.findings(), counts: check.counts(0), blockSize: 0 };
  const blocks = await scanBlocks(
    client,
    layout,
    (ino, index, key) => check.block(ino, index, key),
    (key) => check.unexpected(key, 'is not a key of the redisfs layout'),
    (done) => options.onProgress?.({ phase: 'blocks', pass, done }),
  );
  return { fatal: false, findings: check.findings(), counts: check.counts(blocks), blockSize: check.blockSize };
}
