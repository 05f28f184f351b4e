/**
 * File data: reads and writes at any offset over fixed-size compressed blocks. A write touches
 * only the blocks it covers and stores them, with the new size and times, in write scripts of
 * at most SCRIPT_BYTES each (lua.ts, writeBlocks): a script is in Redis whole or not at all, it
 * commits the size only up to its own last byte, and the scripts of one write land in file order,
 * so a write cut short (crash, lost connection) leaves a prefix of itself, never a size that
 * exposes bytes not stored. A snapshot in progress preserves the blocks a script replaces (w()).
 * A large write is pipelined: the blocks of the next script are compressed while the previous
 * one runs, and no single script holds Redis (and every other client's request) up for long.
 *
 * A partial block is not read first when it can be helped: the script writes its bytes into the
 * stored block itself when that block is raw (one round trip, no SHA-1, no codec on this side).
 * A compressed block, or one that holds stale bytes past the end of the file, is read, modified
 * and stored only if it has not changed since it was read (compare-and-set on its SHA-1), else
 * read again. Either way, two clients writing different bytes of one block both keep their
 * bytes. All-zero blocks are holes.
 */
import { createHash } from 'node:crypto';
import { BLOCK_CODECS, MAX_FILE_SIZE, decodeGcEntry } from '@redisfs/schema';
import { FsError } from '../errors.js';
import type { Ino } from '../types.js';
import { decodeBlock, encodeBlock, isAllZero } from './codec.js';
import type { StoreContext } from './context.js';
import { nowNs } from './attr.js';

/** Block bytes per write script: small enough that Redis is not held up for long by one. */
const SCRIPT_BYTES = 1024 * 1024;
/** Write scripts of one write sent and not yet answered, at most. */
const SCRIPTS_IN_FLIGHT = 2;

/** A block as read for a read-modify-write: its payload and the version the write must find. */
interface ReadBlock {
  payload: Buffer | undefined;
  /** '-' when absent, else the SHA-1 (hex) of the stored bytes, as Lua's redis.sha1hex gives it. */
  version: string;
  /** Whether it is stored raw (could be written in place). */
  raw: boolean;
}

async function readBlock(ctx: StoreContext, ino: Ino, index: number): Promise<ReadBlock> {
  const stored = (await ctx.bin.get(ctx.keys.block(ino, index))) as Buffer | null;
  if (!stored) return { payload: undefined, version: '-', raw: true };
  const version = createHash('sha1').update(stored).digest('hex');
  return { payload: await decodeStored(ctx, ino, index, stored), version, raw: stored[0] === RAW_BYTE };
}
const RAW_BYTE = BLOCK_CODECS.raw;

async function decodeStored(ctx: StoreContext, ino: Ino, index: number, stored: Buffer): Promise<Buffer> {
  try {
    return await decodeBlock(stored);
  } catch (err) {
    ctx.warn(`corrupt block ${index} of inode ${ino}`, err);
    throw new FsError('EIO', `corrupt block ${index} of inode ${ino}`, { cause: err });
  }
}

/** A block payload as stored; empty for an all-zero payload, which the scripts store as a hole. */
async function encodeForStore(ctx: StoreContext, payload: Buffer): Promise<Buffer> {
  return isAllZero(payload) ? EMPTY : await encodeBlock(payload, ctx.codec);
}
const EMPTY = Buffer.alloc(0);

/** One block of a write script: its ARGV triple (see lua.ts, writeBlocks, for the modes). */
interface BlockOp {
  index: number;
  value: Buffer;
  /** '' whole block; '-' or a SHA-1: whole block, compare-and-set; '@<n>': raw bytes at n. */
  mode: string;
}

/** How many times a piece of a write is redone when other clients keep changing its blocks. */
const MAX_TRIES = 50;

/** Sends one write script; resolves to its reply: a size, '', 'RETRY' or 'RMW'. */
async function sendOps(ctx: StoreContext, ino: Ino, ops: BlockOp[], end: number | undefined): Promise<string> {
  const args: (string | Buffer)[] = [String(ino), end === undefined ? '' : String(end), nowNs(), String(ctx.blockSize)];
  for (const op of ops) args.push(String(op.index), op.value, op.mode);
  return String(await ctx.scripts.run('writeBlocks', ctx.keys.metaPrefix, args));
}

/**
 * Stores the blocks `build` makes (with `end`, also commits the size; returns the size). When a
 * block read for a read-modify-write changed before the store (another client wrote it), builds
 * and tries again, so that concurrent writes to different bytes of one block both stay.
 */
async function storeBlocks(ctx: StoreContext, ino: Ino, build: () => Promise<BlockOp[]>, end?: number): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const ops = await build();
    if (ops.length === 0 && end === undefined) return 0; // nothing to store or commit
    const reply = await sendOps(ctx, ino, ops, end);
    if (reply !== 'RETRY' && reply !== 'RMW') return Number(reply);
    if (attempt >= MAX_TRIES) {
      throw new FsError('EIO', `inode ${ino}: its blocks kept changing under ${MAX_TRIES} attempts to write them`);
    }
  }
}

/** Reads up to `length` bytes at `offset` of a regular file; one round trip. */
export async function readData(ctx: StoreContext, ino: Ino, offset: number, length: number): Promise<Buffer> {
  if (offset < 0 || length < 0) throw new FsError('EINVAL', 'negative offset or length');
  const bs = ctx.blockSize;
  const first = Math.floor(offset / bs);
  const last = length > 0 ? Math.floor((offset + length - 1) / bs) : first - 1;
  // Issued in the same tick, node-redis pipelines the size read and the block reads together.
  const sizeP = ctx.client.hGet(ctx.keys.inode(ino), 's');
  const storedPs: Promise<Buffer | null>[] = [];
  for (let i = first; i <= last; i++) storedPs.push(ctx.bin.get(ctx.keys.block(ino, i)));
  const [sizeStr, stored] = await Promise.all([sizeP, Promise.all(storedPs)]);
  if (sizeStr == null) throw new FsError('ENOENT', `inode ${ino}`);
  const size = Number(sizeStr);
  const end = Math.min(offset + length, size);
  if (end <= offset) return Buffer.alloc(0);
  const blocks = await Promise.all(stored.map((b, k) => (b ? decodeStored(ctx, ino, first + k, b) : undefined)));
  // Filled block by block; only what no payload covers (holes, short blocks) is zeroed.
  const out = Buffer.allocUnsafe(end - offset);
  let filled = offset;
  blocks.forEach((payload, k) => {
    const blockStart = (first + k) * bs;
    const from = Math.max(offset, blockStart);
    const to = Math.min(end, blockStart + (payload?.length ?? 0));
    if (!payload || to <= from) return;
    if (from > filled) out.fill(0, filled - offset, from - offset);
    payload.copy(out, from - offset, from - blockStart, to - blockStart);
    filled = to;
  });
  if (filled < end) out.fill(0, filled - offset);
  return out;
}

/** Writes `data` at `offset`; returns the file's new size. */
export async function writeData(ctx: StoreContext, ino: Ino, offset: number, data: Buffer): Promise<number> {
  if (offset < 0) throw new FsError('EINVAL', 'negative offset');
  const end = offset + data.length;
  if (end > MAX_FILE_SIZE) throw new FsError('EFBIG', `files are limited to ${MAX_FILE_SIZE} bytes`);
  if (data.length === 0) return storeBlocks(ctx, ino, async () => [], end);
  const pieces = splitPieces(ctx.blockSize, offset, data);
  let size = 0;
  const inFlight: Promise<number>[] = [];
  let next = stagePiece(ctx, ino, pieces[0]!);
  try {
    for (let k = 0; k < pieces.length; k++) {
      const staged = await next;
      // Compress the next piece while this one is stored.
      if (k + 1 < pieces.length) next = quiet(stagePiece(ctx, ino, pieces[k + 1]!));
      // Scripts must land in file order: everything sent before a piece that may need to be sent
      // again (one with partial blocks) is answered first, and that piece too before the next.
      const room = staged.mayRetry ? 0 : SCRIPTS_IN_FLIGHT - 1;
      while (inFlight.length > room) size = Math.max(size, await inFlight.shift()!);
      inFlight.push(quiet(commitPiece(ctx, ino, staged)));
      if (staged.mayRetry) size = Math.max(size, await inFlight.shift()!);
    }
    for (const p of inFlight) size = Math.max(size, await p);
    return size;
  } catch (err) {
    await Promise.allSettled([next, ...inFlight]); // nothing of this write runs on after it failed
    throw err;
  }
}

/** `p`, marked as handled: it may reject while the caller awaits something else first. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** A run of the written bytes covering at most SCRIPT_BYTES of blocks. */
interface Piece {
  offset: number;
  data: Buffer;
}

/** Cuts a write into pieces at multiples of SCRIPT_BYTES (whole blocks; at least one). */
function splitPieces(bs: number, offset: number, data: Buffer): Piece[] {
  const span = Math.max(1, Math.floor(SCRIPT_BYTES / bs)) * bs;
  const end = offset + data.length;
  const pieces: Piece[] = [];
  for (let from = offset; from < end; ) {
    const to = Math.min(end, (Math.floor(from / span) + 1) * span);
    pieces.push({ offset: from, data: data.subarray(from - offset, to - offset) });
    from = to;
  }
  return pieces;
}

/** A piece ready to send: its whole blocks encoded; partial blocks as in-place writes. */
interface StagedPiece {
  piece: Piece;
  whole: BlockOp[];
  partial: BlockOp[];
  /** Whether the script may answer RETRY or RMW (it has partial blocks). */
  mayRetry: boolean;
}

async function stagePiece(ctx: StoreContext, ino: Ino, piece: Piece): Promise<StagedPiece> {
  const bs = ctx.blockSize;
  const end = piece.offset + piece.data.length;
  const wholeIdx: number[] = [];
  const partialIdx: number[] = [];
  for (let i = Math.floor(piece.offset / bs); i * bs < end; i++) {
    (i * bs >= piece.offset && (i + 1) * bs <= end ? wholeIdx : partialIdx).push(i);
  }
  // Compressed side by side: zlib runs on the libuv thread pool.
  const whole = await Promise.all(
    wholeIdx.map(async (index) => ({ index, value: await encodeForStore(ctx, sliceOf(bs, piece, index).slice), mode: '' })),
  );
  const partial = partialIdx.length > 0 ? await partialOps(ctx, ino, piece, partialIdx, !rmwHint(ctx).has(ino)) : [];
  return { piece, whole, partial, mayRetry: partialIdx.length > 0 };
}

/** Sends a staged piece, redoing its partial blocks as read-modify-writes when needed. */
async function commitPiece(ctx: StoreContext, ino: Ino, staged: StagedPiece): Promise<number> {
  const { piece, whole } = staged;
  const end = piece.offset + piece.data.length;
  let partial = staged.partial;
  const partialIdx = partial.map((op) => op.index);
  for (let attempt = 1; ; attempt++) {
    const reply = await sendOps(ctx, ino, [...whole, ...partial], end);
    if (reply !== 'RETRY' && reply !== 'RMW') return Number(reply);
    if (reply === 'RMW') rememberRmw(ctx, ino);
    if (attempt >= MAX_TRIES) {
      throw new FsError('EIO', `inode ${ino}: its blocks kept changing under ${MAX_TRIES} attempts to write them`);
    }
    partial = await partialOps(ctx, ino, piece, partialIdx, false);
  }
}

/** The bytes of `piece` that fall in block `index`, and where they go in it. */
function sliceOf(bs: number, piece: Piece, index: number): { slice: Buffer; at: number } {
  const blockStart = index * bs;
  const from = Math.max(piece.offset, blockStart);
  const to = Math.min(piece.offset + piece.data.length, blockStart + bs);
  return { slice: piece.data.subarray(from - piece.offset, to - piece.offset), at: from - blockStart };
}

/**
 * Ops for the partial blocks of a piece: in place (`inPlace`, and the bytes are not all zeros,
 * which must be able to make a hole), else read-modify-write with compare-and-set.
 */
async function partialOps(ctx: StoreContext, ino: Ino, piece: Piece, indexes: number[], inPlace: boolean): Promise<BlockOp[]> {
  const bs = ctx.blockSize;
  return Promise.all(
    indexes.map(async (index) => {
      const { slice, at } = sliceOf(bs, piece, index);
      if (inPlace && !isAllZero(slice)) return { index, value: slice, mode: `@${at}` };
      return blockAfterWrite(ctx, ino, index, slice, at);
    }),
  );
}

/** Block `index` read, with `slice` written at byte `at`: a whole block with compare-and-set. */
async function blockAfterWrite(ctx: StoreContext, ino: Ino, index: number, slice: Buffer, at: number): Promise<BlockOp> {
  const blockStart = index * ctx.blockSize;
  // Size and block in one round trip. Bytes at or past the size are not file data (a truncate
  // interrupted by a crash may have left some): they are kept out, so they read as zeros.
  const [sizeStr, old] = await Promise.all([ctx.client.hGet(ctx.keys.inode(ino), 's'), readBlock(ctx, ino, index)]);
  if (sizeStr == null) throw new FsError('ENOENT', `inode ${ino}`);
  const stored = old.payload;
  const valid = stored ? stored.subarray(0, Math.max(0, Math.min(stored.length, Number(sizeStr) - blockStart))) : undefined;
  if (old.raw && valid?.length === stored?.length) forgetRmw(ctx, ino); // next time: in place
  const payload = Buffer.alloc(Math.max(valid?.length ?? 0, at + slice.length));
  valid?.copy(payload);
  slice.copy(payload, at);
  return { index, value: await encodeForStore(ctx, payload), mode: old.version };
}

/**
 * Inodes whose last partial write found a block that cannot be written in place (compressed):
 * their partial blocks are read first rather than tried in place (a wasted round trip each).
 */
const rmwHints = new WeakMap<StoreContext, Set<Ino>>();
const MAX_HINTS = 4096;

function rmwHint(ctx: StoreContext): Set<Ino> {
  let set = rmwHints.get(ctx);
  if (!set) rmwHints.set(ctx, (set = new Set()));
  return set;
}

function rememberRmw(ctx: StoreContext, ino: Ino): void {
  const set = rmwHint(ctx);
  if (set.size >= MAX_HINTS) set.clear();
  set.add(ino);
}

function forgetRmw(ctx: StoreContext, ino: Ino): void {
  rmwHints.get(ctx)?.delete(ino);
}

/**
 * Before a file grows by truncate: zero what its last block holds past the current size, so
 * the extension reads as zeros. Bytes past the size are not visible, so this changes nothing
 * a reader sees, and a crash right after it loses nothing.
 */
export async function clearPastEnd(ctx: StoreContext, ino: Ino, newSize: number): Promise<void> {
  const sizeStr = await ctx.client.hGet(ctx.keys.inode(ino), 's');
  if (sizeStr == null) return;
  const size = Number(sizeStr);
  // Only a growing truncate exposes those bytes; a shrinking one trims its new tail afterwards.
  if (newSize <= size || size % ctx.blockSize === 0) return;
  const index = Math.floor(size / ctx.blockSize);
  await trimBlock(ctx, ino, index, size - index * ctx.blockSize);
}

/** Cuts block `index` to its first `keep` bytes (the rest reads as zeros), if it is longer. */
async function trimBlock(ctx: StoreContext, ino: Ino, index: number, keep: number): Promise<void> {
  await storeBlocks(ctx, ino, async () => {
    const b = await readBlock(ctx, ino, index);
    if (!b.payload || b.payload.length <= keep) return [];
    return [{ index, value: await encodeForStore(ctx, b.payload.subarray(0, keep)), mode: b.version }];
  });
}

/**
 * After a shrinking truncate: zero the tail of the new last block and delete the blocks past
 * it (the pending deletion recorded in `{P}:gc` by the same script that changed the size).
 */
export async function finishTruncate(
  ctx: StoreContext,
  ino: Ino,
  newSize: number,
  tailIndex: number,
  gcMember: string,
): Promise<void> {
  if (tailIndex >= 0) await trimBlock(ctx, ino, tailIndex, newSize - tailIndex * ctx.blockSize);
  if (gcMember) await collectGarbage(ctx, gcMember);
}

/** Blocks deleted per script call: short enough not to hold Redis up, even copying them first. */
const DELETE_BATCH = 256;

/** Deletes the blocks a `{P}:gc` member names, then the member itself. */
export async function collectGarbage(ctx: StoreContext, member: string): Promise<void> {
  const entry = decodeGcEntry(member);
  const bsize = String(ctx.blockSize);
  if (!entry) {
    await ctx.scripts.run('dropBlocks', ctx.keys.metaPrefix, ['0', '0', '0', bsize, member]);
    return;
  }
  // The script spares blocks below the file's current size: a truncated file may have grown
  // again since (another client, or before recovery after a crash); those are live data.
  let i = entry.from;
  do {
    const to = Math.max(i, Math.min(entry.to, i + DELETE_BATCH));
    await ctx.scripts.run('dropBlocks', ctx.keys.metaPrefix, [
      String(entry.ino), String(i), String(to), bsize, to >= entry.to ? member : '',
    ]);
    i = to;
  } while (i < entry.to);
}

/** Finishes block deletions left pending by a crash (run at open, read-write only). */
export async function collectPendingGarbage(ctx: StoreContext): Promise<number> {
  let done = 0;
  for await (const members of ctx.client.sScanIterator(ctx.keys.gc, { COUNT: 100 })) {
    for (const member of members as string[]) {
      await collectGarbage(ctx, member);
      done++;
    }
  }
  return done;
}
