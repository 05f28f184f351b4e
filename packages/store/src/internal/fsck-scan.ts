/**
 * fsck, reading: walks the keys of one filesystem with SCAN MATCH (never KEYS, which blocks the
 * server) and reads what it finds in pipelined batches (commands issued in the same tick travel
 * together). Metadata is kept in memory, in a compact image; block keys are not kept: they are
 * handed to a visitor batch by batch, once the metadata is known.
 *
 * SCAN may return a key more than once (while Redis rehashes): everything here tolerates that.
 */
import {
  decodeInode,
  fileTypeOfMode,
  parseBlockKey,
  parseInodeKey,
  type FileType,
  type KeyLayout,
} from '@redisfs/schema';
import type { RedisClient } from './connect.js';

/** Keys per SCAN call (a hint to Redis) and reads per pipelined batch. */
const SCAN_COUNT = 1000;
const BATCH = 500;
/** A directory with more entries than this is read with HSCAN rather than one HGETALL. */
const BIG_DIR = 10_000;

/** One inode hash, as fsck needs it. */
export interface InodeImage {
  ino: number;
  /** False when the hash does not decode (a corrupt field, an unknown file type, not a hash). */
  readable: boolean;
  /** Why it is unreadable. */
  reason?: string;
  /** The file type; for an unreadable inode, a best guess from its mode field (or undefined). */
  type: FileType | undefined;
  nlink: number;
  /** Size in bytes; for an unreadable inode, a best guess (0 when none). */
  size: number;
  /** Parent directory (directories only). */
  parent: number | undefined;
  /** The stored fields a repair compares before it changes anything (nlink, parent, ctime). */
  rawNlink: string;
  rawParent: string;
  rawCtime: string;
}

/** What the metadata scan found. */
export interface MetaImage {
  /** The superblock hash; undefined when the key is missing, `{}` when it is not a hash. */
  superblock: Record<string, string> | undefined;
  /** `{P}:st`; undefined when missing. */
  stats: Record<string, string> | undefined;
  /** `{P}:ino` as stored; undefined when missing. */
  counter: string | undefined;
  /** Members of `{P}:gc`. */
  gc: string[];
  inodes: Map<number, InodeImage>;
  /** Directory hashes: dir inode → (entry name → stored value). */
  dirs: Map<number, Map<string, string>>;
  /** Inodes that have an xattr hash. */
  xattrs: Set<number>;
  /** Keys under the prefix that the layout does not define, or that have the wrong type. */
  unexpected: Map<string, string>;
  /** Metadata keys scanned (a key SCAN repeated counts twice). */
  keysScanned: number;
}

/** Called after each batch with the number of keys scanned so far in this phase. */
export type ScanProgress = (scanned: number) => void;

/** The SCAN patterns of metadata keys (`{P}:*`) and of data blocks (the others). */
function patterns(layout: KeyLayout): { meta: string[]; blocks: string[] } {
  const meta = layout.scanPatterns.filter((p) => p.startsWith(layout.metaPrefix));
  return { meta, blocks: layout.scanPatterns.filter((p) => !meta.includes(p)) };
}

/** Reads the superblock, counters, pending deletions, every inode, directory and xattr key. */
export async function scanMetadata(client: RedisClient, layout: KeyLayout, progress?: ScanProgress): Promise<MetaImage> {
  const image: MetaImage = {
    superblock: undefined,
    stats: undefined,
    counter: undefined,
    gc: [],
    inodes: new Map(),
    dirs: new Map(),
    xattrs: new Set(),
    unexpected: new Map(),
    keysScanned: 0,
  };
  const singletons = new Set([layout.superblock, layout.inoCounter, layout.stats, layout.gc, ...layout.transientKeys]);
  for (const pattern of patterns(layout).meta) {
    for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: SCAN_COUNT })) {
      const inodes: number[] = [];
      const dirs: number[] = [];
      for (const key of keys) {
        if (singletons.has(key)) continue;
        const parsed = parseInodeKey(layout, key);
        if (!parsed) image.unexpected.set(key, 'is not a key of the redisfs layout');
        else if (parsed.kind === 'inode') inodes.push(parsed.ino);
        else if (parsed.kind === 'dir') dirs.push(parsed.ino);
        else image.xattrs.add(parsed.ino);
      }
      for (let i = 0; i < inodes.length; i += BATCH) await readInodes(client, layout, inodes.slice(i, i + BATCH), image);
      for (let i = 0; i < dirs.length; i += BATCH) await readDirs(client, layout, dirs.slice(i, i + BATCH), image);
      image.keysScanned += keys.length;
      progress?.(image.keysScanned);
    }
  }
  await readSingletons(client, layout, image);
  return image;
}

/**
 * Walks every data-block key, calling `visit(ino, index, key)` for each; a key under the block
 * pattern that is not a block of this layout goes to `unexpected`. Returns the keys scanned.
 */
export async function scanBlocks(
  client: RedisClient,
  layout: KeyLayout,
  visit: (ino: number, index: number, key: string) => void,
  unexpected: (key: string) => void,
  progress?: ScanProgress,
): Promise<number> {
  let scanned = 0;
  for (const pattern of patterns(layout).blocks) {
    for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: SCAN_COUNT })) {
      for (const key of keys) {
        const block = parseBlockKey(layout, key);
        // Only the canonical form (no leading zeros) is a block the store would ever read.
        if (block && layout.block(block.ino, block.index) === key) visit(block.ino, block.index, key);
        else unexpected(key);
      }
      scanned += keys.length;
      progress?.(scanned);
    }
  }
  return scanned;
}

async function readInodes(client: RedisClient, layout: KeyLayout, inos: number[], image: MetaImage): Promise<void> {
  const replies = await Promise.allSettled(inos.map((ino) => client.hGetAll(layout.inode(ino))));
  replies.forEach((reply, i) => {
    const ino = inos[i]!;
    if (reply.status === 'rejected') {
      rethrowUnlessWrongType(reply.reason);
      image.inodes.set(ino, unreadable(ino, {}, 'the key is not a hash'));
      return;
    }
    // Empty: deleted since SCAN returned it.
    if (Object.keys(reply.value).length > 0) image.inodes.set(ino, toInodeImage(ino, reply.value));
  });
}

function toInodeImage(ino: number, hash: Record<string, string>): InodeImage {
  let rec;
  try {
    rec = decodeInode(hash);
  } catch (err) {
    const fields = err instanceof Error && 'issues' in err ? issueFields(err.issues) : '';
    return unreadable(ino, hash, `corrupt or missing field${fields}`);
  }
  const type = fileTypeOfMode(rec.mode);
  if (!type) return unreadable(ino, hash, `unknown file type in mode ${rec.mode}`);
  return {
    ino,
    readable: true,
    type,
    nlink: rec.nlink,
    size: rec.size,
    parent: rec.parent,
    rawNlink: hash.n ?? '',
    rawParent: hash.p ?? '',
    rawCtime: hash.c ?? '',
  };
}

function issueFields(issues: unknown): string {
  if (!Array.isArray(issues)) return '';
  const names = issues.map((i: { path?: unknown[] }) => String(i.path?.[0] ?? '?'));
  return names.length > 0 ? ` ${[...new Set(names)].map((n) => `'${n}'`).join(', ')}` : '';
}

function unreadable(ino: number, hash: Record<string, string>, reason: string): InodeImage {
  const num = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined);
  const mode = num(hash.m);
  return {
    ino,
    readable: false,
    reason,
    type: mode === undefined ? undefined : fileTypeOfMode(mode),
    nlink: num(hash.n) ?? 0,
    size: num(hash.s) ?? 0,
    parent: num(hash.p),
    rawNlink: hash.n ?? '',
    rawParent: hash.p ?? '',
    rawCtime: hash.c ?? '',
  };
}

async function readDirs(client: RedisClient, layout: KeyLayout, inos: number[], image: MetaImage): Promise<void> {
  const fresh = inos.filter((ino) => !image.dirs.has(ino));
  const sizes = await Promise.allSettled(fresh.map((ino) => client.hLen(layout.dir(ino))));
  const small: number[] = [];
  const big: number[] = [];
  sizes.forEach((reply, i) => {
    const ino = fresh[i]!;
    if (reply.status === 'rejected') {
      rethrowUnlessWrongType(reply.reason);
      image.unexpected.set(layout.dir(ino), 'is not a hash (a directory key must be one)');
    } else if (reply.value > BIG_DIR) big.push(ino);
    else if (reply.value > 0) small.push(ino);
  });
  const hashes = await Promise.allSettled(small.map((ino) => client.hGetAll(layout.dir(ino))));
  hashes.forEach((reply, i) => {
    if (reply.status === 'rejected') rethrowUnlessWrongType(reply.reason);
    else if (Object.keys(reply.value).length > 0) image.dirs.set(small[i]!, new Map(Object.entries(reply.value)));
  });
  for (const ino of big) {
    // HSCAN may repeat a field: the map keeps one.
    const entries = new Map<string, string>();
    for await (const page of client.hScanIterator(layout.dir(ino), { COUNT: SCAN_COUNT })) {
      for (const { field, value } of page) entries.set(field, value);
    }
    if (entries.size > 0) image.dirs.set(ino, entries);
  }
}

async function readSingletons(client: RedisClient, layout: KeyLayout, image: MetaImage): Promise<void> {
  const [sb, st, counter] = await Promise.allSettled([
    client.hGetAll(layout.superblock),
    client.hGetAll(layout.stats),
    client.get(layout.inoCounter),
  ]);
  if (sb.status === 'fulfilled') image.superblock = Object.keys(sb.value).length > 0 ? sb.value : undefined;
  else {
    rethrowUnlessWrongType(sb.reason);
    image.superblock = {}; // there, but not a hash: corrupt
  }
  if (st.status === 'fulfilled') image.stats = Object.keys(st.value).length > 0 ? st.value : undefined;
  else {
    rethrowUnlessWrongType(st.reason);
    image.unexpected.set(layout.stats, 'is not a hash (the usage counters must be one)');
  }
  if (counter.status === 'fulfilled') image.counter = counter.value ?? undefined;
  else {
    rethrowUnlessWrongType(counter.reason);
    image.unexpected.set(layout.inoCounter, 'is not a string (the inode counter must be one)');
  }
  try {
    for await (const members of client.sScanIterator(layout.gc, { COUNT: SCAN_COUNT })) image.gc.push(...members);
  } catch (err) {
    rethrowUnlessWrongType(err);
    image.unexpected.set(layout.gc, 'is not a set (pending deletions must be one)');
  }
}

/** A WRONGTYPE reply is a finding about the data; anything else (connection lost…) is not. */
function rethrowUnlessWrongType(err: unknown): void {
  if (!(err instanceof Error && err.message.startsWith('WRONGTYPE'))) throw err;
}
