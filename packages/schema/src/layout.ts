/**
 * The Redis key layout of one redisfs filesystem (layout version 1).
 *
 * Every key of filesystem P is listed here; nothing else is written. Metadata keys carry the hash
 * tag `{P}`, so every key one atomic operation (a Lua script) touches lives in one Redis Cluster
 * slot. Data blocks carry no tag: a write stores its blocks and the size that exposes them in
 * one script (fine on one server; Redis Cluster would need them in the inode's slot). Blocks are
 * removed after the metadata that referenced them, so a crash leaves at worst unreferenced
 * blocks (listed in `{P}:gc` where known, found by fsck otherwise).
 *
 * | key                 | type   | contents                                                              |
 * |---------------------|--------|-----------------------------------------------------------------------|
 * | `{P}:sb`            | hash   | superblock: `version`, `bsize`, `codec`, `created` (ns), `maxsize`; on a snapshot also `snapof` (source prefix) and `snapat` (ns) |
 * | `{P}:ino`           | string | last inode number reserved (INCRBY, in batches; never reused)          |
 * | `{P}:st`            | hash   | usage counters: `inodes` (live inodes), `bytes` (sum of file sizes)    |
 * | `{P}:i:<ino>`       | hash   | inode: see {@link INODE_FIELDS}                                        |
 * | `{P}:d:<ino>`       | hash   | directory <ino>: field = entry name, value = type char + child ino     |
 * | `{P}:x:<ino>`       | hash   | extended attributes of <ino>: field = name, value = raw bytes          |
 * | `{P}:gc`            | set    | pending block deletions, members `<ino>:<from>:<to>` (block indexes)   |
 * | `{P}:snap`          | hash   | snapshot in progress from P: `to` (target prefix), `id`; has a lease TTL |
 * | `{P}:snap:done`     | set    | keys of P already preserved for the snapshot in progress (TTL)         |
 * | `{P}:snapfrom`      | hash   | P is being written as a snapshot: `from`, `id`; has a lease TTL        |
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
  /** Snapshot in progress *from* this filesystem (copy-on-write hooks read it). */
  readonly snapshot: string;
  /** Keys already preserved for the snapshot in progress. */
  readonly snapshotDone: string;
  /** Lock held while this prefix is being written as a snapshot. */
  readonly snapshotLock: string;
  /** Keys that describe a snapshot in progress rather than filesystem contents: never copied. */
  readonly transientKeys: readonly string[];
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
    snapshot: `${meta}snap`,
    snapshotDone: `${meta}snap:done`,
    snapshotLock: `${meta}snapfrom`,
    transientKeys: [`${meta}snap`, `${meta}snap:done`, `${meta}snapfrom`],
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

/** The per-inode metadata keys: `{P}:i:<ino>` (inode), `{P}:d:<ino>` (entries), `{P}:x:<ino>` (xattrs). */
export type InodeKeyKind = 'inode' | 'dir' | 'xattr';

const INODE_KEY_KINDS: Readonly<Record<string, InodeKeyKind>> = { i: 'inode', d: 'dir', x: 'xattr' };

/**
 * Parses an inode, directory or xattr key of this layout back into its kind and inode number;
 * undefined if it is none of them, or not in the canonical form its builder makes (`i:07`).
 */
export function parseInodeKey(layout: KeyLayout, key: string): { kind: InodeKeyKind; ino: number } | undefined {
  if (!key.startsWith(layout.metaPrefix)) return undefined;
  const m = /^([idx]):([1-9]\d{0,15})$/.exec(key.slice(layout.metaPrefix.length));
  const kind = m ? INODE_KEY_KINDS[m[1] ?? ''] : undefined;
  const ino = Number(m?.[2]);
  if (!kind || !Number.isSafeInteger(ino)) return undefined;
  return { kind, ino };
}

/**
 * Lua functions that build metadata keys inside scripts, from the metadata prefix passed as
 * ARGV[1]. Kept here so that key strings live in this package only.
 */
export const LUA_KEY_FUNCTIONS = `
local MP = ARGV[1]
local PFX = string.sub(MP, 2, -3)
local function ikey(ino) return MP .. 'i:' .. ino end
local function dkey(ino) return MP .. 'd:' .. ino end
local function xkey(ino) return MP .. 'x:' .. ino end
local function bkey(ino, index) return PFX .. ':b:' .. ino .. ':' .. index end
local STATS = MP .. 'st'
local GC = MP .. 'gc'
local SB = MP .. 'sb'
local SNAP = MP .. 'snap'
local SNAP_DONE = MP .. 'snap:done'
local function meta_of(prefix) return '{' .. prefix .. '}:' end
local function snap_lock_of(prefix) return meta_of(prefix) .. 'snapfrom' end
-- The name of this filesystem's key \`key\` in filesystem \`prefix\` (same role, other prefix).
local function retarget(key, prefix)
  if string.sub(key, 1, #MP) == MP then return meta_of(prefix) .. string.sub(key, #MP + 1) end
  return prefix .. string.sub(key, #PFX + 1)
end
`;
