/**
 * File data: reads and writes at any offset over fixed-size compressed blocks. A write touches
 * only the blocks it covers (read-modify-write for partial ones), stores them, then commits the
 * new size and times with one script: data before the metadata that exposes it.
 */
import { MAX_FILE_SIZE, decodeGcEntry } from '@redisfs/schema';
import { FsError } from '../errors.js';
import type { Ino } from '../types.js';
import { decodeBlock, encodeBlock, isAllZero } from './codec.js';
import type { StoreContext } from './context.js';
import { nowNs } from './attr.js';

async function loadBlock(ctx: StoreContext, ino: Ino, index: number): Promise<Buffer | undefined> {
  const stored = (await ctx.bin.get(ctx.keys.block(ino, index))) as Buffer | null;
  if (!stored) return undefined;
  try {
    return await decodeBlock(stored);
  } catch (err) {
    ctx.warn(`corrupt block ${index} of inode ${ino}`, err);
    throw new FsError('EIO', `corrupt block ${index} of inode ${ino}`, { cause: err });
  }
}

/** Stores a block payload; an all-zero payload removes the block (a hole). */
async function storeBlock(ctx: StoreContext, ino: Ino, index: number, payload: Buffer): Promise<void> {
  const key = ctx.keys.block(ino, index);
  if (isAllZero(payload)) {
    await ctx.client.unlink(key);
    return;
  }
  await ctx.bin.set(key, await encodeBlock(payload, ctx.codec));
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
  if (data.length > 0) {
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    const jobs: Promise<void>[] = [];
    for (let i = first; i <= last; i++) jobs.push(writeOneBlock(ctx, ino, i, offset, data));
    await Promise.all(jobs);
  }
  const reply = await ctx.scripts.run('commitWrite', ctx.keys.metaPrefix, [String(ino), String(end), nowNs()]);
  return Number(reply);
}

async function writeOneBlock(ctx: StoreContext, ino: Ino, index: number, offset: number, data: Buffer): Promise<void> {
  const bs = ctx.blockSize;
  const blockStart = index * bs;
  const from = Math.max(offset, blockStart);
  const to = Math.min(offset + data.length, blockStart + bs);
  const slice = data.subarray(from - offset, to - offset);
  if (from === blockStart && to === blockStart + bs) {
    await storeBlock(ctx, ino, index, slice);
    return;
  }
  // Size and block in one round trip. Bytes at or past the size are not file data (a truncate
  // interrupted by a crash may have left some): they are kept out, so they read as zeros.
  const [sizeStr, old] = await Promise.all([ctx.client.hGet(ctx.keys.inode(ino), 's'), loadBlock(ctx, ino, index)]);
  if (sizeStr == null) throw new FsError('ENOENT', `inode ${ino}`);
  const valid = old ? old.subarray(0, Math.max(0, Math.min(old.length, Number(sizeStr) - blockStart))) : undefined;
  const payload = Buffer.alloc(Math.max(valid?.length ?? 0, to - blockStart));
  valid?.copy(payload);
  slice.copy(payload, from - blockStart);
  await storeBlock(ctx, ino, index, payload);
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
  const payload = await loadBlock(ctx, ino, index);
  const keep = size - index * ctx.blockSize;
  if (payload && payload.length > keep) await storeBlock(ctx, ino, index, payload.subarray(0, keep));
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
  if (tailIndex >= 0) {
    const payload = await loadBlock(ctx, ino, tailIndex);
    const keep = newSize - tailIndex * ctx.blockSize;
    if (payload && payload.length > keep) await storeBlock(ctx, ino, tailIndex, payload.subarray(0, keep));
  }
  if (gcMember) await collectGarbage(ctx, gcMember);
}

const DELETE_BATCH = 512;

/** Deletes the blocks a `{P}:gc` member names, then the member itself. */
export async function collectGarbage(ctx: StoreContext, member: string): Promise<void> {
  const entry = decodeGcEntry(member);
  if (entry) {
    // A truncated file may have grown again since (another client, or before recovery after a
    // crash): blocks below its current size are live data, never garbage.
    const size = await ctx.client.hGet(ctx.keys.inode(entry.ino), 's');
    const from = size == null ? entry.from : Math.max(entry.from, Math.ceil(Number(size) / ctx.blockSize));
    for (let i = from; i < entry.to; i += DELETE_BATCH) {
      const keys: string[] = [];
      for (let j = i; j < Math.min(entry.to, i + DELETE_BATCH); j++) keys.push(ctx.keys.block(entry.ino, j));
      await ctx.client.unlink(keys);
    }
  }
  await ctx.client.sRem(ctx.keys.gc, member);
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
