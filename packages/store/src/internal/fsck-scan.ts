/**
 * fsck, reading: walks the keys of one filesystem, and the block maps and data blocks of its
 * whole family, with SCAN MATCH (never KEYS, which blocks the server), and reads what it finds
 * in pipelined batches (commands issued in the same tick travel together). Metadata is kept in
 * memory, in a compact image; block keys and map entries are not kept: they are handed to
 * visitors batch by batch (fsck-family.ts counts them per block id).
 *
 * SCAN may return a key more than once (while Redis rehashes), and HSCAN, SSCAN and ZSCAN an
 * element more than once: everything here and in the visitors tolerates that.
 */
import {
  INODES_PER_BUCKET,
  INODE_RECORD_HEAD,
  decodeInodeRecord,
  fileTypeOfMode,
  inodeBucket,
  inodeRecordFixed,
  keysFor,
  parseBlockKey,
  parseBucketKey,
  parseFamilyMapKey,
  parseInodeKey,
  parseSessionKey,
  type FileType,
  type KeyLayout,
} from '@redisfs/schema';
import type { RedisClient } from './connect.js';
import { hGetAllBinary, hScanBinary, hScanEntries, scanMatching, sScanMembers, zScanMembers } from './topology.js';
import { byteKey } from './names.js';
import { SessionKeys, type SessionImage } from './fsck-session-scan.js';
import { entryIno, parseIno } from './fsck-check.js';

/** Keys per SCAN call (a hint to Redis) and reads per pipelined batch. */
const SCAN_COUNT = 1000;
const BATCH = 500;
/** A directory with more entries than this is read with HSCAN rather than one HGETALL. */
const BIG_DIR = 10_000;

/** One inode record (a field of its bucket `MP in:<ino / 64>`), as fsck needs it. */
export interface InodeImage {
  ino: number;
  /** False when the record does not decode (corrupt, an unknown file type, its bucket not a hash). */
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
  /**
   * The fields a repair compares before it changes anything (nlink, parent, ctime), as the
   * scripts read them from the record (decimal strings; '' when absent or unreadable).
   */
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
  /** Members of `{P}:gc` (inodes whose block map has entries waiting for the collector). */
  gc: string[];
  /** Inodes that have a block map key (their entries are read by {@link scanMaps}). */
  maps: Set<number>;
  inodes: Map<number, InodeImage>;
  /**
   * Directory hashes: dir inode → (entry name → stored value). Names are bytes, read exactly
   * (never decoded as UTF-8) and keyed by {@link byteKey} (one char per byte: fromByteKey gives
   * the bytes back, showName a readable form).
   */
  dirs: Map<number, Map<string, string>>;
  /** Inodes that have an xattr hash. */
  xattrs: Set<number>;
  /** Inodes that have a symlink target key `MP l:<ino>`. */
  targets: Set<number>;
  /**
   * Buckets whose key is not a hash: their inodes cannot be read. Each inode of one that
   * another key names (an entry, a hash, a map, a target, a hold) is in `inodes`, unreadable.
   */
  badBuckets: Set<number>;
  /** Keys under the prefix that the layout does not define, or that have the wrong type. */
  unexpected: Map<string, string>;
  /** Metadata keys scanned (a key SCAN repeated counts twice). */
  keysScanned: number;
  /** The session and lock keys, and `{P}:orph` (read after the scan). */
  sessions: SessionImage;
}

/** Called after each batch with the number of keys scanned so far in this phase (the metadata scan adds the inodes read). */
export type ScanProgress = (scanned: number, inodes?: number) => void;

/**
 * The superblock's `version` and `upgrade` fields, read before anything else (a filesystem of
 * another layout is not scanned); undefined when there is no superblock or it is not a hash.
 */
export async function readLayoutFields(
  client: RedisClient,
  layout: KeyLayout,
): Promise<{ version: string | undefined; upgrade: string | undefined } | undefined> {
  try {
    const [version, upgrade] = await client.hmGet(layout.superblock, ['version', 'upgrade']);
    return version == null && upgrade == null ? undefined : { version: version ?? undefined, upgrade: upgrade ?? undefined };
  } catch (err) {
    rethrowUnlessWrongType(err);
    return undefined; // the full scan reports it
  }
}

/**
 * Reads the superblock, counters, pending deletions, every inode bucket and directory, and notes
 * every xattr hash, block map and symlink target key.
 */
export async function scanMetadata(client: RedisClient, layout: KeyLayout, progress?: ScanProgress): Promise<MetaImage> {
  const sessionKeys = new SessionKeys();
  const image: Omit<MetaImage, 'sessions'> = {
    superblock: undefined,
    stats: undefined,
    counter: undefined,
    gc: [],
    maps: new Set(),
    inodes: new Map(),
    dirs: new Map(),
    xattrs: new Set(),
    targets: new Set(),
    badBuckets: new Set(),
    unexpected: new Map(),
    keysScanned: 0,
  };
  const singletons = new Set([layout.superblock, layout.inoCounter, layout.stats, layout.gc, layout.orphans, ...layout.transientKeys]);
  const bucketsRead = new Set<number>();
  for await (const keys of scanMatching(client, layout.metaPattern, SCAN_COUNT)) {
    const buckets: number[] = [];
    const dirs: number[] = [];
    for (const key of keys) {
      if (singletons.has(key)) continue;
      const bucket = parseBucketKey(layout, key);
      if (bucket !== undefined) {
        // A bucket SCAN repeats is read once: its inodes are in the image already.
        if (!bucketsRead.has(bucket)) buckets.push(bucket);
        bucketsRead.add(bucket);
        continue;
      }
      const parsed = parseInodeKey(layout, key);
      const session = parsed ? undefined : parseSessionKey(layout, key);
      if (session) sessionKeys.note(session);
      else if (!parsed) image.unexpected.set(key, 'is not a key of the redisfs layout');
      else if (parsed.kind === 'inode2') {
        image.unexpected.set(key, 'is an inode hash of layout 2 (an upgrade cut short?): run `redisfs upgrade`; fsck leaves it alone');
      } else if (parsed.kind === 'dir') dirs.push(parsed.ino);
      else if (parsed.kind === 'map') image.maps.add(parsed.ino);
      else if (parsed.kind === 'target') image.targets.add(parsed.ino);
      else image.xattrs.add(parsed.ino);
    }
    for (let i = 0; i < buckets.length; i += BATCH) await readBuckets(client, layout, buckets.slice(i, i + BATCH), image);
    for (let i = 0; i < dirs.length; i += BATCH) await readDirs(client, layout, dirs.slice(i, i + BATCH), image);
    image.keysScanned += keys.length;
    progress?.(image.keysScanned, image.inodes.size);
  }
  await readSingletons(client, layout, image);
  const sessions = await sessionKeys.read(client, layout, image.unexpected);
  coverBadBuckets(layout, image, sessions);
  return { ...image, sessions };
}

/**
 * Walks every data-block key of the family, calling `visit(id)` for each; a key under the
 * block pattern that is not a block key goes to `unexpected`. Returns the keys scanned.
 */
export async function scanBlocks(
  client: RedisClient,
  layout: KeyLayout,
  visit: (id: string) => void,
  unexpected: (key: string) => void,
  progress?: ScanProgress,
): Promise<number> {
  let scanned = 0;
  for await (const keys of scanMatching(client, layout.blockPattern, SCAN_COUNT)) {
    for (const key of keys) {
      const id = parseBlockKey(layout, key);
      if (id === undefined) unexpected(key);
      else visit(id);
    }
    scanned += keys.length;
    progress?.(scanned);
  }
  return scanned;
}

/** One entry of a block map: the block id (member) and its index (score, as Redis holds it). */
export interface MapEntry {
  id: string;
  index: number;
}

/**
 * Walks the block map of every member of the family (ZSCAN each, a batch of maps at a time),
 * calling `visit(prefix, ino, entries)` per page of entries; a map key that is not a sorted set
 * goes to `notZset(prefix, ino, key)`. Returns the members that hold block maps, and the keys scanned.
 */
export async function scanMaps(
  client: RedisClient,
  layout: KeyLayout,
  visit: (prefix: string, ino: number, entries: MapEntry[]) => void,
  notZset: (prefix: string, ino: number, key: string) => void,
  progress?: ScanProgress,
): Promise<{ members: Set<string>; scanned: number }> {
  const members = new Set<string>();
  // Each map is counted once, each of its entries once: SCAN and ZSCAN may repeat elements, and a
  // reference counted twice would make a wrong reference count look right (or a right one wrong).
  const done = new Set<string>();
  let scanned = 0;
  for (const pattern of layout.familyMapPatterns) {
    for await (const keys of scanMatching(client, pattern, SCAN_COUNT)) {
      const maps = keys.flatMap((key) => {
        const parsed = done.has(key) ? undefined : parseFamilyMapKey(layout, key);
        if (!parsed) return [];
        done.add(key);
        return [{ key, ...parsed }];
      });
      for (let i = 0; i < maps.length; i += BATCH) {
        await Promise.all(
          maps.slice(i, i + BATCH).map(async ({ key, prefix, ino }) => {
            const seen = new Set<string>();
            try {
              for await (const page of zScanMembers(client, key, SCAN_COUNT)) {
                const fresh = page.filter((e) => !seen.has(e.value));
                for (const e of fresh) seen.add(e.value);
                if (fresh.length === 0) continue;
                members.add(prefix);
                visit(prefix, ino, fresh.map((e) => ({ id: e.value, index: e.score })));
              }
            } catch (err) {
              rethrowUnlessWrongType(err);
              notZset(prefix, ino, key);
            }
          }),
        );
      }
      scanned += keys.length;
      progress?.(scanned);
    }
  }
  return { members, scanned };
}

/**
 * Walks the family's reference counts (`{F}#rc`: id → count) and then its free list
 * (`{F}#free`), calling the visitors per element. A key of the wrong type goes to `unexpected`.
 */
export async function scanRefcountsAndFree(
  client: RedisClient,
  layout: KeyLayout,
  visit: { refcount(id: string, raw: string): void; free(id: string): void; unexpected(key: string, why: string): void },
  progress?: ScanProgress,
): Promise<void> {
  let scanned = 0;
  try {
    for await (const page of hScanEntries(client, layout.refcounts, SCAN_COUNT)) {
      for (const { field, value } of page) visit.refcount(field, value);
      progress?.((scanned += page.length));
    }
  } catch (err) {
    rethrowUnlessWrongType(err);
    visit.unexpected(layout.refcounts, 'is not a hash (the reference counts must be one)');
  }
  try {
    for await (const page of sScanMembers(client, layout.freeBlocks, SCAN_COUNT)) {
      for (const id of page) visit.free(id);
      progress?.((scanned += page.length));
    }
  } catch (err) {
    rethrowUnlessWrongType(err);
    visit.unexpected(layout.freeBlocks, 'is not a set (the free block list must be one)');
  }
}

/** Members of the family being deleted (`{F}#dead`); 0 when the key is not a set. */
export async function countDeadMembers(client: RedisClient, layout: KeyLayout): Promise<number> {
  try {
    return await client.sCard(layout.deadMembers);
  } catch (err) {
    rethrowUnlessWrongType(err);
    return 0;
  }
}

/** Which of `ids` have a block key now (pipelined EXISTS, in batches). */
export async function storedBlocks(client: RedisClient, layout: KeyLayout, ids: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (let i = 0; i < ids.length; i += BATCH) {
    const batch = ids.slice(i, i + BATCH);
    const replies = await Promise.all(batch.map((id) => client.exists(layout.block(id))));
    replies.forEach((n, k) => {
      if (n > 0) out.add(batch[k]!);
    });
  }
  return out;
}

/** Which of the member prefixes have a snapshot in progress from or into them. */
export async function membersBeingCopied(client: RedisClient, members: Iterable<string>): Promise<string[]> {
  const list = [...members];
  const busy = await Promise.all(
    list.map(async (prefix) => {
      const k = keysFor(prefix);
      return (await client.exists([k.snapshot, k.snapshotLock])) > 0;
    }),
  );
  return list.filter((_, i) => busy[i]);
}

/**
 * Reads inode buckets (one HGETALL each, as Buffers: records are binary; a bucket holds at most
 * INODES_PER_BUCKET fields). A field that is not the canonical number of an inode of its bucket
 * is reported with the bucket key; a record that does not decode is an unreadable inode (the
 * others of its bucket are read all the same).
 */
async function readBuckets(client: RedisClient, layout: KeyLayout, buckets: number[], image: Omit<MetaImage, 'sessions'>): Promise<void> {
  const keyOf = (bucket: number) => layout.inodes(bucket * INODES_PER_BUCKET);
  const replies = await Promise.allSettled(buckets.map((b) => hGetAllBinary(client, keyOf(b))));
  replies.forEach((reply, i) => {
    const bucket = buckets[i]!;
    const key = keyOf(bucket);
    if (reply.status === 'rejected') {
      rethrowUnlessWrongType(reply.reason);
      image.badBuckets.add(bucket);
      image.unexpected.set(key, 'is not a hash (an inode bucket must be one): its inodes cannot be read');
      return;
    }
    const stray: string[] = [];
    for (const { field, value } of reply.value) {
      const name = field.toString('latin1');
      const ino = parseIno(name);
      if (ino === undefined || inodeBucket(ino) !== bucket) stray.push(name);
      else image.inodes.set(ino, toInodeImage(ino, value));
    }
    if (stray.length > 0) {
      const shown = stray.sort().slice(0, 5).map((n) => JSON.stringify(n)).join(', ') + (stray.length > 5 ? `, … (${stray.length} in all)` : '');
      image.unexpected.set(key, `holds field(s) ${shown} that are not inodes of this bucket (never repaired)`);
    }
  });
}

function toInodeImage(ino: number, value: Buffer): InodeImage {
  let rec;
  try {
    rec = decodeInodeRecord(value);
  } catch (err) {
    return unreadable(ino, value, err instanceof Error ? err.message : String(err));
  }
  const type = fileTypeOfMode(rec.mode);
  if (!type) return unreadable(ino, value, `unknown file type in mode ${rec.mode}`);
  return {
    ino,
    readable: true,
    type,
    nlink: rec.nlink,
    size: rec.size,
    parent: rec.parent,
    // As the scripts' idecode gives them: decimal strings, nanoseconds for times.
    rawNlink: String(rec.nlink),
    rawParent: rec.parent === undefined ? '' : String(rec.parent),
    rawCtime: rec.ctimeNs.toString(),
  };
}

/**
 * An inode whose record does not decode. When its fixed part is all there (the fault is in its
 * flags, its length or a time), its type, nlink and size are best guesses from it.
 */
function unreadable(ino: number, value: Buffer | undefined, reason: string): InodeImage {
  const head = value !== undefined && value.length >= INODE_RECORD_HEAD ? inodeRecordFixed(value) : undefined;
  return {
    ino,
    readable: false,
    reason,
    type: head ? fileTypeOfMode(head.mode) : undefined,
    nlink: head?.nlink ?? 0,
    size: head?.size ?? 0,
    parent: undefined,
    rawNlink: '',
    rawParent: '',
    rawCtime: '',
  };
}

/**
 * Marks unreadable every inode of a bucket that is not a hash which some key names: so that its
 * entries are not taken for dangling ones, nor its hashes, map or target for strays.
 */
function coverBadBuckets(layout: KeyLayout, image: Omit<MetaImage, 'sessions'>, sessions: SessionImage): void {
  if (image.badBuckets.size === 0) return;
  const named = new Set<number>([...image.dirs.keys(), ...image.xattrs, ...image.maps, ...image.targets, ...sessions.orphans, ...sessions.openBy.keys()]);
  for (const entries of image.dirs.values()) {
    for (const value of entries.values()) {
      const ino = entryIno(value);
      if (ino !== undefined) named.add(ino);
    }
  }
  for (const held of sessions.open.values()) for (const ino of held.keys()) named.add(ino);
  for (const ino of named) {
    if (image.badBuckets.has(inodeBucket(ino)) && !image.inodes.has(ino)) {
      image.inodes.set(ino, unreadable(ino, undefined, `its bucket ${layout.inodes(ino)} is not a hash`));
    }
  }
}

async function readDirs(client: RedisClient, layout: KeyLayout, inos: number[], image: Omit<MetaImage, 'sessions'>): Promise<void> {
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
  // Names through the Buffer replies: a UTF-8 decoding would merge the names it cannot decode.
  const entry = ({ field, value }: { field: Buffer; value: Buffer }): [string, string] => [byteKey(field), value.toString('latin1')];
  const hashes = await Promise.allSettled(small.map((ino) => hGetAllBinary(client, layout.dir(ino))));
  hashes.forEach((reply, i) => {
    if (reply.status === 'rejected') rethrowUnlessWrongType(reply.reason);
    else if (reply.value.length > 0) image.dirs.set(small[i]!, new Map(reply.value.map(entry)));
  });
  for (const ino of big) {
    // HSCAN may repeat a field: the map keeps one.
    const entries = new Map<string, string>();
    for await (const page of hScanBinary(client, layout.dir(ino), SCAN_COUNT)) {
      for (const e of page) entries.set(...entry(e));
    }
    if (entries.size > 0) image.dirs.set(ino, entries);
  }
}

async function readSingletons(client: RedisClient, layout: KeyLayout, image: Omit<MetaImage, 'sessions'>): Promise<void> {
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
    for await (const members of sScanMembers(client, layout.gc, SCAN_COUNT)) image.gc.push(...members);
  } catch (err) {
    rethrowUnlessWrongType(err);
    image.unexpected.set(layout.gc, 'is not a set (pending deletions must be one)');
  }
}

/** A WRONGTYPE reply is a finding about the data; anything else (connection lost…) is not. */
function rethrowUnlessWrongType(err: unknown): void {
  if (!(err instanceof Error && err.message.startsWith('WRONGTYPE'))) throw err;
}
