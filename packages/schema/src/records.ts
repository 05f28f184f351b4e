/**
 * The stored records and their encodings, each decoded with a zod schema so that a corrupt
 * record is reported (EIO upstream) instead of crashing the reader.
 */
import { z } from 'zod';
import { LAYOUT_VERSION, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from './limits.js';

/**
 * Fields of an inode, as scripts read and write them (Lua tables of decimal strings), as their
 * replies list them, and as layout 2 stored them (the hash `{P}:i:<ino>`). Layout 3 packs them
 * into one binary record per inode (inode-record.ts). Times are nanoseconds since the Unix epoch.
 */
export const INODE_FIELDS = {
  /** st_mode: file type bits and permission bits, decimal. */
  mode: 'm',
  uid: 'u',
  gid: 'g',
  /** st_size in bytes (symlink: length of the target). */
  size: 's',
  nlink: 'n',
  rdev: 'r',
  atime: 'a',
  mtime: 't',
  ctime: 'c',
  /** Symlink target (symlinks only): bytes, not necessarily UTF-8. */
  target: 'l',
  /** Generation number, 1 at creation (inode numbers are never reused, so it stays 1). */
  generation: 'v',
  /** Parent directory inode (directories only; ".." of the directory). */
  parent: 'p',
  /**
   * Present (`1`) while the last block of a regular file may hold bytes past its size: set by a
   * shrink into the middle of a stored block, cleared when that block is rewritten. A growth
   * rewrites the block first, so those bytes never become file data.
   */
  tailDirty: 'z',
} as const;

/** File types, as the one-character code stored in directory entries. */
export const FILE_TYPE_CODES = {
  file: 'f',
  dir: 'd',
  symlink: 'l',
  chr: 'c',
  blk: 'b',
  fifo: 'p',
  sock: 's',
} as const;
export type FileType = keyof typeof FILE_TYPE_CODES;

/** S_IFMT values per file type (Linux). */
export const S_IFMT = 0o170000;
export const FILE_TYPE_MODES: Record<FileType, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  chr: 0o020000,
  blk: 0o060000,
  fifo: 0o010000,
  sock: 0o140000,
};

/** The file type of a st_mode; undefined for an unknown type. */
export function fileTypeOfMode(mode: number): FileType | undefined {
  const fmt = mode & S_IFMT;
  for (const [type, bits] of Object.entries(FILE_TYPE_MODES)) if (bits === fmt) return type as FileType;
  return undefined;
}

const decimal = z.string().regex(/^\d+$/);
const intField = decimal.transform((s) => Number(s));
/** Nanoseconds since the epoch: negative before 1970. */
const nsField = z.string().regex(/^-?\d+$/).transform((s) => BigInt(s));

/** zod schema of an inode hash as HGETALL returns it. */
export const inodeRecordSchema = z.object({
  [INODE_FIELDS.mode]: intField,
  [INODE_FIELDS.uid]: intField,
  [INODE_FIELDS.gid]: intField,
  [INODE_FIELDS.size]: intField,
  [INODE_FIELDS.nlink]: intField,
  [INODE_FIELDS.rdev]: intField.optional(),
  [INODE_FIELDS.atime]: nsField,
  [INODE_FIELDS.mtime]: nsField,
  [INODE_FIELDS.ctime]: nsField,
  [INODE_FIELDS.target]: z.string().optional(),
  [INODE_FIELDS.generation]: intField.optional(),
  [INODE_FIELDS.parent]: intField.optional(),
  [INODE_FIELDS.tailDirty]: z.literal('1').optional(),
});

/** An inode as the rest of the code sees it. */
export interface InodeRecord {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  rdev: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  target: string | undefined;
  generation: number;
  parent: number | undefined;
  /** Field `z`: the last block may hold bytes past the size (see INODE_FIELDS.tailDirty). */
  tailDirty?: boolean;
}

const SPLIT_TIME = /^-?\d{1,15}$/;
const NSEC = /^\d{1,9}$/;

/**
 * Scripts reply each time as seconds and nanoseconds (`as` `an`, `ts` `tn`, `cs` `cn`: no
 * formatting in Lua); layout 2's hash held nanoseconds (`a`, `t`, `c`). Gives the latter form.
 */
function joinSplitTimes(hash: Record<string, string>): Record<string, string> {
  if (hash.as === undefined && hash.ts === undefined && hash.cs === undefined) return hash;
  // Only the fields zod knows: unknown keys send zod's object parser down a slow path (10×).
  const { as: as_, an, ts, tn, cs, cn, ...out } = hash;
  for (const [f, s, n] of [['a', as_, an], ['t', ts, tn], ['c', cs, cn]] as const) {
    if (s === undefined || n === undefined || !SPLIT_TIME.test(s) || !NSEC.test(n)) continue; // zod reports the missing time
    out[f] = (BigInt(s) * 1_000_000_000n + BigInt(n)).toString();
  }
  return out;
}

/**
 * Decodes an inode's fields, as a script replies them (times split in seconds and nanoseconds)
 * or as layout 2's hash held them; throws a ZodError when they are corrupt.
 */
export function decodeInode(hash: Record<string, string>): InodeRecord {
  const r = inodeRecordSchema.parse(joinSplitTimes(hash));
  return {
    mode: r.m,
    uid: r.u,
    gid: r.g,
    size: r.s,
    nlink: r.n,
    rdev: r.r ?? 0,
    atimeNs: r.a,
    mtimeNs: r.t,
    ctimeNs: r.c,
    target: r.l,
    generation: r.v ?? 1,
    parent: r.p,
    tailDirty: r.z === '1',
  };
}

/** Encodes an inode into hash fields (for writers such as format and fsck --repair). */
export function encodeInode(rec: InodeRecord): Record<string, string> {
  const out: Record<string, string> = {
    m: String(rec.mode),
    u: String(rec.uid),
    g: String(rec.gid),
    s: String(rec.size),
    n: String(rec.nlink),
    a: rec.atimeNs.toString(),
    t: rec.mtimeNs.toString(),
    c: rec.ctimeNs.toString(),
    v: String(rec.generation),
  };
  if (rec.rdev) out.r = String(rec.rdev);
  if (rec.target !== undefined) out.l = rec.target;
  if (rec.parent !== undefined) out.p = String(rec.parent);
  if (rec.tailDirty) out.z = '1';
  return out;
}

const CODE_TO_TYPE = new Map<string, FileType>(
  Object.entries(FILE_TYPE_CODES).map(([t, c]) => [c, t as FileType]),
);

/** A directory entry value: type code followed by the child's inode number, e.g. `f42`. */
export function encodeDirEntry(type: FileType, ino: number): string {
  return `${FILE_TYPE_CODES[type]}${ino}`;
}

/** Decodes a directory entry value; throws a RangeError when it is corrupt. */
export function decodeDirEntry(value: string): { type: FileType; ino: number } {
  const type = CODE_TO_TYPE.get(value.charAt(0));
  const ino = Number(value.slice(1));
  if (!type || !Number.isSafeInteger(ino) || ino < 1 || !/^\d+$/.test(value.slice(1))) {
    throw new RangeError(`corrupt directory entry ${JSON.stringify(value)}`);
  }
  return { type, ino };
}

/** Block codecs: the first byte of every stored block. */
export const BLOCK_CODECS = { raw: 0, zlib: 1 } as const;
export type BlockCodec = keyof typeof BLOCK_CODECS;

/** zod schema of the superblock hash `{P}:sb`. */
export const superblockSchema = z.object({
  version: intField.pipe(z.number().int().min(1)),
  bsize: intField.pipe(z.number().int().min(MIN_BLOCK_SIZE).max(MAX_BLOCK_SIZE)),
  codec: z.enum(['zlib', 'raw']),
  created: nsField,
  maxsize: intField,
  /** Set on a snapshot: the prefix it was taken from. */
  snapof: z.string().optional(),
  /** Set on a snapshot: when it was taken (the point in time it holds), ns since the epoch. */
  snapat: nsField.optional(),
  /** Set while `redisfs upgrade` converts a layout-1 filesystem: `<SCAN cursor>@<Redis run id>`. */
  upgrade: z.string().optional(),
});
export type Superblock = z.infer<typeof superblockSchema>;

/** Encodes a superblock into hash fields. */
export function encodeSuperblock(sb: Superblock): Record<string, string> {
  return {
    version: String(sb.version),
    bsize: String(sb.bsize),
    codec: sb.codec,
    created: sb.created.toString(),
    maxsize: String(sb.maxsize),
    ...(sb.snapof === undefined ? {} : { snapof: sb.snapof }),
    ...(sb.snapat === undefined ? {} : { snapat: sb.snapat.toString() }),
    ...(sb.upgrade === undefined ? {} : { upgrade: sb.upgrade }),
  };
}

/** Whether this code can mount a filesystem with the given superblock version. */
export function isSupportedLayout(version: number): boolean {
  return version === LAYOUT_VERSION;
}

/** zod schema of the usage counters `{P}:st`. */
export const statsSchema = z.object({
  inodes: intField.default(0),
  bytes: intField.default(0),
});

/**
 * A member of `MP gc`: an inode whose block map has entries to release. When the inode is gone
 * the whole map is released; otherwise the entries at or past its size (a shrink left them).
 */
export function encodeGcEntry(ino: number): string {
  return String(ino);
}
export function decodeGcEntry(member: string): number | undefined {
  return /^[1-9]\d{0,15}$/.test(member) ? Number(member) : undefined;
}
