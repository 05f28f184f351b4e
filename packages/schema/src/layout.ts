/**
 * The Redis key layout of one redisfs filesystem (layout version 1).
 *
 * Every key of filesystem P is listed here; nothing else is written. Metadata keys carry the hash
 * tag `{P}`, so every key one atomic operation (a Lua script) touches lives in one Redis Cluster
 * slot. Data blocks carry no tag, so they could spread across slots; they are written before the
 * metadata that exposes them, and removed after the metadata that referenced them, so a crash
 * leaves at worst unreferenced blocks (listed in `{P}:gc` where known, found by fsck otherwise).
 *
 * | key                 | type   | contents                                                              |
 * |---------------------|--------|-----------------------------------------------------------------------|
 * | `{P}:sb`            | hash   | superblock: `version`, `bsize`, `codec`, `created` (ns), `maxsize`     |
 * | `{P}:ino`           | string | last inode number reserved (INCRBY, in batches; never reused)          |
 * | `{P}:st`            | hash   | usage counters: `inodes` (live inodes), `bytes` (sum of file sizes)    |
 * | `{P}:i:<ino>`       | hash   | inode: see {@link INODE_FIELDS}                                        |
 * | `{P}:d:<ino>`       | hash   | directory <ino>: field = entry name, value = type char + child ino     |
 * | `{P}:x:<ino>`       | hash   | extended attributes of <ino>: field = name, value = raw bytes          |
 * | `{P}:gc`            | set    | pending block deletions, members `<ino>:<from>:<to>` (block indexes)   |
 * | `P:b:<ino>:<index>` | string | data block <index> of <ino>: 1 codec byte + payload (see block.ts)     |
 *
 * A directory's entries hash does not exist while the directory is empty (Redis drops empty
 * hashes). "." and ".." are not stored: ".." is the inode field `p` of a directory.
 */
import { PREFIX_PATTERN } from './limits.js';

/** Builds every key of one filesystem. Create with {@link keysFor}. */
export interface KeyLayout {
  /** The filesystem prefix, e.g. `skx`. */
  readonly prefix: string;
  /** `{P}:` — the start of every metadata key (what Lua scripts build keys from). */
  readonly metaPrefix: string;
  readonly superblock: string;
  readonly inoCounter: string;
  readonly stats: string;
  readonly gc: string;
  inode(ino: number): string;
  dir(ino: number): string;
  xattr(ino: number): string;
  block(ino: number, index: number): string;
  /** SCAN MATCH patterns that together cover every key of the filesystem. */
  readonly scanPatterns: readonly string[];
}

/** Checks a prefix against {@link PREFIX_PATTERN}; throws a RangeError that says why. */
export function assertPrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new RangeError(
      `invalid prefix ${JSON.stringify(prefix)}: use 1-64 letters, digits, '_', '-' or '.'`,
    );
  }
}

/** The key builders of filesystem `prefix`. */
export function keysFor(prefix: string): KeyLayout {
  assertPrefix(prefix);
  const meta = `{${prefix}}:`;
  return {
    prefix,
    metaPrefix: meta,
    superblock: `${meta}sb`,
    inoCounter: `${meta}ino`,
    stats: `${meta}st`,
    gc: `${meta}gc`,
    inode: (ino) => `${meta}i:${ino}`,
    dir: (ino) => `${meta}d:${ino}`,
    xattr: (ino) => `${meta}x:${ino}`,
    block: (ino, index) => `${prefix}:b:${ino}:${index}`,
    scanPatterns: [`${meta}*`, `${prefix}:b:*`],
  };
}

/** Parses a block key of this layout back into its inode and index; undefined if it is not one. */
export function parseBlockKey(layout: KeyLayout, key: string): { ino: number; index: number } | undefined {
  const head = `${layout.prefix}:b:`;
  if (!key.startsWith(head)) return undefined;
  const m = /^(\d+):(\d+)$/.exec(key.slice(head.length));
  if (!m) return undefined;
  return { ino: Number(m[1]), index: Number(m[2]) };
}

/**
 * Lua functions that build metadata keys inside scripts, from the metadata prefix passed as
 * ARGV[1]. Kept here so that key strings live in this package only.
 */
export const LUA_KEY_FUNCTIONS = `
local MP = ARGV[1]
local function ikey(ino) return MP .. 'i:' .. ino end
local function dkey(ino) return MP .. 'd:' .. ino end
local function xkey(ino) return MP .. 'x:' .. ino end
local STATS = MP .. 'st'
local GC = MP .. 'gc'
`;
