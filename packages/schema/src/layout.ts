/**
 * The Redis key layout of one redisfs filesystem (layout version 3).
 *
 * A prefix P names a filesystem: a family name F (`skx`), or a member of F's family (`skx@mon`:
 * a snapshot or a clone of it). Every metadata key of P, and every family-wide key, carries the
 * hash tag `{F}`, so one Lua script can change any of them atomically, also in Redis Cluster.
 * Data blocks carry no tag, so in a cluster they spread over every master. A regular file's
 * block map (`m:<ino>`, a sorted set: member = block id, score = block index) says which blocks
 * exist, so deleting or shrinking costs what is stored, not the file's size. Blocks are never
 * changed once shared: members of one family share them, counted in `{F}#rc`.
 *
 * MP is P's metadata prefix: `{F}:` for P = F, `{F}@S:` for P = F@S.
 *
 * | key                 | type   | contents                                                              |
 * |---------------------|--------|-----------------------------------------------------------------------|
 * | `MP sb`             | hash   | superblock: `version`, `bsize`, `codec`, `created` (ns), `maxsize`; on a snapshot also `snapof` (source prefix) and `snapat` (ns) |
 * | `MP ino`            | string | last inode number reserved (INCRBY, in batches; never reused)          |
 * | `MP st`             | hash   | usage counters: `inodes` (live inodes), `bytes` (sum of file sizes)    |
 * | `MP in:<b>`         | hash   | inodes <b>×64 … <b>×64+63: field = ino, value = packed record (inode-record.ts) |
 * | `MP l:<ino>`        | string | symlink <ino>'s target (its bytes)                                    |
 * | `MP d:<ino>`        | hash   | directory <ino>: field = entry name (its bytes), value = type char + child ino |
 * | `MP x:<ino>`        | hash   | extended attributes of <ino>: field = name, value = raw bytes          |
 * | `MP m:<ino>`        | zset   | block map of regular file <ino>: member = block id, score = index      |
 * | `MP gc`             | set    | inodes whose map has entries to release (file freed, or shrunk)        |
 * | `MP snap`           | hash   | snapshot in progress from P: `to` (target prefix), `id`; has a lease TTL |
 * | `MP snap:done`      | set    | keys of P already preserved for the snapshot in progress (TTL)         |
 * | `MP snapfrom`       | hash   | P is being written as a snapshot: `from`, `id`; has a lease TTL        |
 * | `MP ss`             | zset   | sessions (mounts) of P: member = session id, score = lease expiry (ms, Redis time) |
 * | `MP s:<sid>`        | hash   | one session: `host`, `pid`, `mnt` (mountpoint), `ver`, `start` (ms)    |
 * | `MP so:<sid>`       | hash   | inodes session <sid> holds open: field = ino, value = open count       |
 * | `MP sl:<sid>`       | set    | inodes on which session <sid> holds locks                              |
 * | `MP o:<ino>`        | set    | sessions holding <ino> open                                            |
 * | `MP orph`           | set    | inodes with link count 0 kept because a session holds them open       |
 * | `MP lf:<ino>`       | hash   | flock(2) locks on <ino>: field = `<sid>:<owner>`, value = `R` or `W`   |
 * | `MP lp:<ino>`       | hash   | fcntl(2) byte-range locks on <ino>: field = `<sid>:<owner>`, value = ranges |
 * | `{F}#rc`            | hash   | block id → number of maps referencing it, for shared blocks (absent = 1) |
 * | `{F}#free`          | set    | block ids no map references: their keys are deleted by the collector   |
 * | `{F}#bid`           | string | last block id reserved (INCRBY, in batches; never reused)              |
 * | `{F}#dead`          | set    | member prefixes being deleted (their keys released in batches)         |
 * | `F:b:<id>`          | string | one data block: 1 codec byte + payload (see block.ts)                  |
 *
 * A directory's entries hash does not exist while the directory is empty (Redis drops empty
 * hashes). "." and ".." are not stored: ".." is the inode field `p` of a directory. Entry names
 * and symlink targets (`MP l:<ino>`) are bytes, stored exactly: any byte but '/' and NUL in a
 * name, any but NUL in a target; they need not be valid UTF-8 (a reader must not decode them).
 */
import { INODES_PER_BUCKET, inodeBucket } from './inode-record.js';
import { FAMILY_PATTERN, PREFIX_PATTERN } from './limits.js';

/** Builds every key of one filesystem. Create with {@link keysFor}. */
export interface KeyLayout {
  /** The filesystem prefix, e.g. `skx` or `skx@mon`. */
  readonly prefix: string;
  /** The family name: the prefix without its `@label` (`skx`). */
  readonly family: string;
  /** The family's hash tag, `{F}`: every metadata and family key of this prefix carries it. */
  readonly hashTag: string;
  /** `{F}:` or `{F}@S:` — the start of every metadata key of this prefix (what scripts build keys from). */
  readonly metaPrefix: string;
  /** Family-wide keys (shared by every member of the family). */
  readonly refcounts: string;
  readonly freeBlocks: string;
  readonly blockCounter: string;
  readonly deadMembers: string;
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
  /** Sessions (mounts) of this prefix: zset, member = session id, score = lease expiry (ms). */
  readonly sessions: string;
  /** Inodes with link count 0 kept because a session holds them open (set). */
  readonly orphans: string;
  /** Pub/sub channel (not a key): a message (an inode number) says locks of that inode were released. */
  readonly lockChannel: string;
  /** One session's description (hash: host, pid, mnt, ver, start). */
  session(sid: string): string;
  /** Inodes session `sid` holds open (hash: ino → open count). */
  sessionOpen(sid: string): string;
  /** Inodes on which session `sid` holds locks (set). */
  sessionLocks(sid: string): string;
  /** Sessions holding inode `ino` open (set of session ids). */
  openBy(ino: number): string;
  /** flock(2) locks on `ino` (hash: `<sid>:<owner>` → `R`/`W`). */
  flocks(ino: number): string;
  /** fcntl(2) byte-range locks on `ino` (hash: `<sid>:<owner>` → ranges). */
  posixLocks(ino: number): string;
  /** The bucket hash holding inode `ino` (field = `ino`, value = its packed record: inode-record.ts). */
  inodes(ino: number): string;
  /** A symlink's target (string: its bytes). */
  target(ino: number): string;
  /** Layout 2's inode hash (read only by the upgrade, and by fsck to find leftovers). */
  layout2Inode(ino: number): string;
  dir(ino: number): string;
  xattr(ino: number): string;
  /** Block map of a regular file (zset: member = block id, score = block index). */
  map(ino: number): string;
  /** A data block, by id (family-wide; no hash tag). */
  block(id: string): string;
  /** SCAN MATCH pattern of this prefix's own metadata keys (not the family's or the blocks). */
  readonly metaPattern: string;
  /** SCAN MATCH pattern of the family's data blocks. */
  readonly blockPattern: string;
  /** SCAN MATCH pattern of this prefix's layout-2 inode hashes (the upgrade's inode pass). */
  readonly layout2InodePattern: string;
  /** SCAN MATCH pattern of the family's own keys (`{F}#…`: reference counts, free blocks, …). */
  readonly familyPattern: string;
  /**
   * SCAN MATCH patterns that together cover every key this prefix depends on: its own
   * metadata, and its family's keys and blocks (which other members of the family share).
   */
  readonly scanPatterns: readonly string[];
  /**
   * SCAN MATCH patterns that together match the block map of every member of the family (this
   * one included), and few other keys: check each key with {@link parseFamilyMapKey}.
   */
  readonly familyMapPatterns: readonly string[];
}

/** Checks a prefix against {@link PREFIX_PATTERN}; throws a RangeError that says why. */
export function assertPrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new RangeError(
      `invalid prefix ${JSON.stringify(prefix)}: use 1-64 letters, digits, '_', '-' or '.'`,
    );
  }
}

/** The family of a prefix: `skx@mon` → `skx`. */
export function familyOf(prefix: string): string {
  const at = prefix.indexOf('@');
  return at < 0 ? prefix : prefix.slice(0, at);
}

/** Whether two prefixes are members of one family (and so may share blocks). */
export function sameFamily(a: string, b: string): boolean {
  return familyOf(a) === familyOf(b);
}

/** SCAN MATCH escapes: braces and the like are literal in key names. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** The key builders of filesystem `prefix`. */
export function keysFor(prefix: string): KeyLayout {
  assertPrefix(prefix);
  const family = familyOf(prefix);
  if (!FAMILY_PATTERN.test(family)) throw new RangeError(`invalid prefix ${JSON.stringify(prefix)}`);
  const tag = `{${family}}`;
  const meta = prefix === family ? `${tag}:` : `${tag}${prefix.slice(family.length)}:`;
  const fam = `${tag}#`;
  return {
    prefix,
    family,
    hashTag: tag,
    metaPrefix: meta,
    refcounts: `${fam}rc`,
    freeBlocks: `${fam}free`,
    blockCounter: `${fam}bid`,
    deadMembers: `${fam}dead`,
    superblock: `${meta}sb`,
    inoCounter: `${meta}ino`,
    stats: `${meta}st`,
    gc: `${meta}gc`,
    snapshot: `${meta}snap`,
    snapshotDone: `${meta}snap:done`,
    snapshotLock: `${meta}snapfrom`,
    transientKeys: [`${meta}snap`, `${meta}snap:done`, `${meta}snapfrom`],
    sessions: `${meta}ss`,
    orphans: `${meta}orph`,
    lockChannel: `${meta}lk`,
    session: (sid) => `${meta}s:${sid}`,
    sessionOpen: (sid) => `${meta}so:${sid}`,
    sessionLocks: (sid) => `${meta}sl:${sid}`,
    openBy: (ino) => `${meta}o:${ino}`,
    flocks: (ino) => `${meta}lf:${ino}`,
    posixLocks: (ino) => `${meta}lp:${ino}`,
    inodes: (ino) => `${meta}in:${inodeBucket(ino)}`,
    target: (ino) => `${meta}l:${ino}`,
    layout2Inode: (ino) => `${meta}i:${ino}`,
    dir: (ino) => `${meta}d:${ino}`,
    xattr: (ino) => `${meta}x:${ino}`,
    map: (ino) => `${meta}m:${ino}`,
    block: (id) => `${family}:b:${id}`,
    metaPattern: `${globEscape(meta)}*`,
    blockPattern: `${globEscape(family)}:b:*`,
    layout2InodePattern: `${globEscape(meta)}i:*`,
    familyPattern: `${globEscape(fam)}*`,
    scanPatterns: [`${globEscape(meta)}*`, `${globEscape(fam)}*`, `${globEscape(family)}:b:*`],
    familyMapPatterns: [`${globEscape(tag)}:m:*`, `${globEscape(tag)}@*:m:*`],
  };
}

/**
 * The member prefix and inode number of a block map key of any member of this layout's family
 * (`{F}:m:<ino>` → F, `{F}@S:m:<ino>` → F@S); undefined for any other key, or one not in the
 * canonical form its builder makes.
 */
export function parseFamilyMapKey(layout: KeyLayout, key: string): { prefix: string; ino: number } | undefined {
  if (!key.startsWith(layout.hashTag)) return undefined;
  const m = /^(@[^:]*)?:m:([1-9]\d{0,15})$/.exec(key.slice(layout.hashTag.length));
  const prefix = `${layout.family}${m?.[1] ?? ''}`;
  const ino = Number(m?.[2]);
  if (!m || !PREFIX_PATTERN.test(prefix) || !Number.isSafeInteger(ino)) return undefined;
  return { prefix, ino };
}

/**
 * The block id of a block key of this layout's family; undefined if it is not one. Ids are
 * decimal numbers (`{F}#bid`), or `<ino>:<index>` for blocks kept in place by the upgrade from
 * layout 1.
 */
export function parseBlockKey(layout: KeyLayout, key: string): string | undefined {
  const head = `${layout.family}:b:`;
  if (!key.startsWith(head)) return undefined;
  const id = key.slice(head.length);
  return BLOCK_ID_PATTERN.test(id) ? id : undefined;
}

/** What a block id looks like: a counter value, or `<ino>:<index>` (kept from layout 1). */
export const BLOCK_ID_PATTERN = /^[1-9]\d{0,15}(:\d{1,16})?$/;

/** Layout 1's block key `P:b:<ino>:<index>`, for the upgrade; undefined if `key` is not one. */
export function parseLayout1BlockKey(prefix: string, key: string): { ino: number; index: number } | undefined {
  const head = `${prefix}:b:`;
  if (!key.startsWith(head)) return undefined;
  const m = /^(\d+):(\d+)$/.exec(key.slice(head.length));
  if (!m) return undefined;
  return { ino: Number(m[1]), index: Number(m[2]) };
}

/** What a session id looks like (16 lowercase hex digits). */
export const SESSION_ID_PATTERN = /^[0-9a-f]{16}$/;

/**
 * Whether `key` is one of this prefix's session or lock keys (`ss`, `s:`, `so:`, `sl:`, `o:`,
 * `lf:`, `lp:`): state of the mounts using the filesystem, not its contents. Never copied into a
 * snapshot or clone, never preserved by copy-on-write.
 */
export function isSessionKey(layout: KeyLayout, key: string): boolean {
  if (!key.startsWith(layout.metaPrefix)) return false;
  const rest = key.slice(layout.metaPrefix.length);
  return rest === 'ss' || /^(s|so|sl):[0-9a-f]{16}$/.test(rest) || /^(o|lf|lp):[1-9]\d{0,15}$/.test(rest);
}

/** What a session or lock key names: see {@link parseSessionKey}. */
export type SessionKey =
  | { kind: 'sessions' }
  | { kind: 'session' | 'sessionOpen' | 'sessionLocks'; sid: string }
  | { kind: 'openBy' | 'flocks' | 'posixLocks'; ino: number };

const SESSION_KEY_KINDS = {
  s: 'session',
  so: 'sessionOpen',
  sl: 'sessionLocks',
  o: 'openBy',
  lf: 'flocks',
  lp: 'posixLocks',
} as const;

/**
 * Parses one of this prefix's session or lock keys (those {@link isSessionKey} accepts) into
 * what it names; undefined for any other key.
 */
export function parseSessionKey(layout: KeyLayout, key: string): SessionKey | undefined {
  if (!isSessionKey(layout, key)) return undefined;
  const rest = key.slice(layout.metaPrefix.length);
  if (rest === 'ss') return { kind: 'sessions' };
  const colon = rest.indexOf(':');
  const kind = SESSION_KEY_KINDS[rest.slice(0, colon) as keyof typeof SESSION_KEY_KINDS];
  const id = rest.slice(colon + 1);
  if (kind === 'session' || kind === 'sessionOpen' || kind === 'sessionLocks') return { kind, sid: id };
  const ino = Number(id);
  return Number.isSafeInteger(ino) ? { kind, ino } : undefined;
}

/**
 * The per-inode metadata keys: `{P}:d:<ino>` (entries), `{P}:x:<ino>` (xattrs), `{P}:m:<ino>`
 * (block map), `{P}:l:<ino>` (symlink target), and layout 2's inode hash `{P}:i:<ino>`
 * (`inode2`: only before an upgrade). Inodes themselves live in buckets: {@link parseBucketKey}.
 */
export type InodeKeyKind = 'inode2' | 'dir' | 'xattr' | 'map' | 'target';

const INODE_KEY_KINDS: Readonly<Record<string, InodeKeyKind>> = { i: 'inode2', d: 'dir', x: 'xattr', m: 'map', l: 'target' };

/**
 * Parses a directory, xattr, block map, symlink target or layout-2 inode key of this layout back
 * into its kind and inode number; undefined if it is none of them, or not in the canonical form
 * its builder makes (`d:07`).
 */
export function parseInodeKey(layout: KeyLayout, key: string): { kind: InodeKeyKind; ino: number } | undefined {
  if (!key.startsWith(layout.metaPrefix)) return undefined;
  const m = /^([idxml]):([1-9]\d{0,15})$/.exec(key.slice(layout.metaPrefix.length));
  const kind = m ? INODE_KEY_KINDS[m[1] ?? ''] : undefined;
  const ino = Number(m?.[2]);
  if (!kind || !Number.isSafeInteger(ino)) return undefined;
  return { kind, ino };
}

/** The bucket number of an inode bucket key `{P}:in:<bucket>` of this layout; undefined for any other key. */
export function parseBucketKey(layout: KeyLayout, key: string): number | undefined {
  if (!key.startsWith(layout.metaPrefix)) return undefined;
  const m = /^in:(0|[1-9]\d{0,14})$/.exec(key.slice(layout.metaPrefix.length));
  const bucket = Number(m?.[1]);
  return m && Number.isSafeInteger(bucket) ? bucket : undefined;
}

/**
 * Lua functions that build keys inside scripts, from the metadata prefix passed as ARGV[1]
 * (`{F}:` or `{F}@S:`). Kept here so that key strings live in this package only.
 */
export const LUA_KEY_FUNCTIONS = `
local MP = ARGV[1]
local FAM = string.match(MP, '^{(.-)}')
local PFX = FAM .. string.sub(MP, #FAM + 3, -2)
local FP = '{' .. FAM .. '}#'
-- Inode ino is field ino of its bucket hash (inodes per bucket: INODES_PER_BUCKET).
local function ibkey(ino) return MP .. 'in:' .. string.format('%d', math.floor(tonumber(ino) / ${INODES_PER_BUCKET})) end
local function lkey(ino) return MP .. 'l:' .. ino end
local function i2key(ino) return MP .. 'i:' .. ino end
local function dkey(ino) return MP .. 'd:' .. ino end
local function xkey(ino) return MP .. 'x:' .. ino end
local function mkey(ino) return MP .. 'm:' .. ino end
local function bkey(id) return FAM .. ':b:' .. id end
local STATS = MP .. 'st'
local GC = MP .. 'gc'
local SB = MP .. 'sb'
local SNAP = MP .. 'snap'
local SNAP_DONE = MP .. 'snap:done'
local RC = FP .. 'rc'
local FREE = FP .. 'free'
local DEAD = FP .. 'dead'
-- Sessions and locks (session keys are never preserved for a snapshot nor copied).
local SESSIONS = MP .. 'ss'
local ORPHANS = MP .. 'orph'
local LOCK_CHANNEL = MP .. 'lk'
local function skey(sid) return MP .. 's:' .. sid end
local function sokey(sid) return MP .. 'so:' .. sid end
local function slkey(sid) return MP .. 'sl:' .. sid end
local function okey(ino) return MP .. 'o:' .. ino end
local function lfkey(ino) return MP .. 'lf:' .. ino end
local function lpkey(ino) return MP .. 'lp:' .. ino end
-- Whether a metadata key of this member is a session or lock key (isSessionKey): state of the
-- mounts, never copied into a snapshot or clone.
local function is_session_key(key)
  if string.sub(key, 1, #MP) ~= MP then return false end
  local rest = string.sub(key, #MP + 1)
  if rest == 'ss' then return true end
  local kind, id = string.match(rest, '^(%l%l?):(.+)$')
  if kind == 's' or kind == 'so' or kind == 'sl' then
    return #id == 16 and string.match(id, '^[0-9a-f]+$') ~= nil
  end
  if kind == 'o' or kind == 'lf' or kind == 'lp' then
    return #id <= 16 and string.match(id, '^[1-9]%d*$') ~= nil
  end
  return false
end
-- The metadata prefix of another member of this family (or of any prefix).
local function meta_of(prefix)
  local at = string.find(prefix, '@', 1, true)
  if at then return '{' .. string.sub(prefix, 1, at - 1) .. '}' .. string.sub(prefix, at) .. ':' end
  return '{' .. prefix .. '}:'
end
local function snap_lock_of(prefix) return meta_of(prefix) .. 'snapfrom' end
-- The name of this member's metadata key \`key\` in member \`prefix\` (same role, other member).
local function retarget(key, prefix) return meta_of(prefix) .. string.sub(key, #MP + 1) end
-- Whether a metadata key of this member is a block map.
local function is_map(key) return string.sub(key, #MP + 1, #MP + 2) == 'm:' end
`;
