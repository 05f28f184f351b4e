/**
 * File data: reads and writes at any offset over fixed-size compressed blocks. A write touches
 * only the blocks it covers (read-modify-write for partial ones) and stores them together with
 * the new size and times in one script: a write is in Redis whole or not at all, and a snapshot
 * in progress preserves the blocks it replaces (see lua.ts, w()). A partial block is stored only
 * if it has not changed since it was read (compare-and-set on its SHA-1), so that two clients
 * writing different bytes of one block both keep their bytes.
 */
import { createHash } from 'node:crypto';
import { MAX_FILE_SIZE, decodeGcEntry } from '@redisfs/schema';
import { FsError } from '../errors.js';
import type { Ino } from '../types.js';
import { decodeBlock, encodeBlock, isAllZero } from './codec.js';
import type { StoreContext } from './context.js';
import { nowNs } from './attr.js';

/** A block as read for a read-modify-write: its payload and the version the write must find. */
interface ReadBlock {
  payload: Buffer | undefined;
  /** '-' when absent, else the SHA-1 (hex) of the stored bytes, as Lua's redis.sha1hex gives it. */
  version: string;
}

async function readBlock(ctx: StoreContext, ino: Ino, index: number, withVersion = true): Promise<ReadBlock> {
  const stored = (await ctx.bin.get(ctx.keys.block(ino, index))) as Buffer | null;
  if (!stored) return { payload: undefined, version: '-' };
  const version = withVersion ? createHash('sha1').update(stored).digest('hex') : '';
  try {
    return { payload: await decodeBlock(stored), version };
  } catch (err) {
    ctx.warn(`corrupt block ${index} of inode ${ino}`, err);
    throw new FsError('EIO', `corrupt block ${index} of inode ${ino}`, { cause: err });
  }
}

async function loadBlock(ctx: StoreContext, ino: Ino, index: number): Promise<Buffer | undefined> {
  return (await readBlock(ctx, ino, index, false)).payload;
}

/** A block payload as stored; empty for an all-zero payload, which the scripts store as a hole. */
async function encodeForStore(ctx: StoreContext, payload: Buffer): Promise<Buffer> {
  return isAllZero(payload) ? EMPTY : await encodeBlock(payload, ctx.codec);
}
const EMPTY = Buffer.alloc(0);

/** A block to store; `expect` is the version it was read at (read-modify-write), if any. */
interface BlockWrite {
  index: number;
  payload: Buffer;
  expect?: string;
}

/** How many times a read-modify-write is redone when other clients keep changing its blocks. */
const MAX_TRIES = 50;

/**
 * Stores the blocks `build` makes (with `end`, also commits the size; returns the size). When a
 * block read for a read-modify-write changed before the store (another client wrote it), builds
 * and tries again, so that concurrent writes to different bytes of one block both stay.
 */
async function storeBlocks(ctx: StoreContext, ino: Ino, build: () => Promise<BlockWrite[]>, end?: number): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const blocks = await build();
    if (blocks.length === 0 && end === undefined) return 0; // nothing to store or commit
    // Compressed side by side: zlib runs on the libuv thread pool.
    const encoded = await Promise.all(blocks.map((b) => encodeForStore(ctx, b.payload)));
    const args: (string | Buffer)[] = [String(ino), end === undefined ? '' : String(end), nowNs()];
    blocks.forEach((b, i) => args.push(String(b.index), encoded[i]!, b.expect ?? ''));
    const reply = await ctx.scripts.run('writeBlocks', ctx.keys.metaPrefix, args);
    if (reply !== 'RETRY') return Number(reply);
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
  const blockPs: Promise<Buffer | undefined>[] = [];
  for (let i = first; i <= last; i++) blockPs.push(loadBlock(ctx, ino, i));
  const [sizeStr, blocks] = await Promise.all([sizeP, Promise.all(blockPs)]);
  if (sizeStr == null) throw new FsError('ENOENT', `inode ${ino}`);
  const size = Number(sizeStr);
  const end = Math.min(offset + length, size);
  if (end <= offset) return Buffer.alloc(0);
  const out = Buffer.alloc(end - offset);
  blocks.forEach((payload, k) => {
    if (!payload) return;
    const blockStart = (first + k) * bs;
    const from = Math.max(offset, blockStart);
    const to = Math.min(end, blockStart + payload.length);
    if (to > from) payload.copy(out, from - offset, from - blockStart, to - blockStart);
  });
  return out;
}

/** Writes `data` at `offset`; returns the file's new size. */
export async function writeData(ctx: StoreContext, ino: Ino, offset: number, data: Buffer): Promise<number> {
  if (offset < 0) throw new FsError('EINVAL', 'negative offset');
  const end = offset + data.length;
  if (end > MAX_FILE_SIZE) throw new FsError('EFBIG', `files are limited to ${MAX_FILE_SIZE} bytes`);
  const bs = ctx.blockSize;
  const build = () => {
    const jobs: Promise<BlockWrite>[] = [];
    if (data.length > 0) {
      const first = Math.floor(offset / bs);
      const last = Math.floor((end - 1) / bs);
      for (let i = first; i <= last; i++) jobs.push(blockAfterWrite(ctx, ino, i, offset, data));
    }
    return Promise.all(jobs);
  };
  return storeBlocks(ctx, ino, build, end);
}

/** Block `index` once `data` is written at `offset`. */
async function blockAfterWrite(ctx: StoreContext, ino: Ino, index: number, offset: number, data: Buffer): Promise<BlockWrite> {
  const bs = ctx.blockSize;
  const blockStart = index * bs;
  const from = Math.max(offset, blockStart);
  const to = Math.min(offset + data.length, blockStart + bs);
  const slice = data.subarray(from - offset, to - offset);
  if (from === blockStart && to === blockStart + bs) return { index, payload: slice };
  // Size and block in one round trip. Bytes at or past the size are not file data (a truncate
  // interrupted by a crash may have left some): they are kept out, so they read as zeros.
  const [sizeStr, old] = await Promise.all([ctx.client.hGet(ctx.keys.inode(ino), 's'), readBlock(ctx, ino, index)]);
  if (sizeStr == null) throw new FsError('ENOENT', `inode ${ino}`);
  const stored = old.payload;
  const valid = stored ? stored.subarray(0, Math.max(0, Math.min(stored.length, Number(sizeStr) - blockStart))) : undefined;
  const payload = Buffer.alloc(Math.max(valid?.length ?? 0, to - blockStart));
  valid?.copy(payload);
  slice.copy(payload, from - blockStart);
  return { index, payload, expect: old.version };
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
    return b.payload && b.payload.length > keep ? [{ index, payload: b.payload.subarray(0, keep), expect: b.version }] : [];
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
