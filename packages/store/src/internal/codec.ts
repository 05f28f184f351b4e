/**
 * Block compression. zlib runs on libuv's thread pool (async API), off the event loop. A block
 * that does not shrink is stored raw, and a block that is all zeros is not stored at all (a hole).
 */
import { promisify } from 'node:util';
import { deflate, inflate, constants } from 'node:zlib';
import { joinBlock, splitBlock } from '@redisfs/schema';

const deflateAsync = promisify(deflate);
const inflateAsync = promisify(inflate);

export type StoredCodec = 'zlib' | 'raw';

const ZEROS = Buffer.alloc(4 * 1024 * 1024);

/** Whether every byte of `buf` is zero. */
export function isAllZero(buf: Buffer): boolean {
  for (let off = 0; off < buf.length; off += ZEROS.length) {
    const part = buf.subarray(off, Math.min(buf.length, off + ZEROS.length));
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

/** Encodes a block payload for storage with the filesystem's codec. */
export async function encodeBlock(payload: Buffer, codec: StoredCodec): Promise<Buffer> {
  if (codec === 'zlib' && payload.length >= 64) {
    const packed = await deflateAsync(payload, { level: constants.Z_BEST_SPEED });
    if (packed.length < payload.length) return joinBlock('zlib', packed);
  }
  return joinBlock('raw', payload);
}

/** Decodes a stored block back to its payload. Throws on a corrupt block. */
export async function decodeBlock(stored: Buffer): Promise<Buffer> {
  const { codec, payload } = splitBlock(stored);
  return codec === 'zlib' ? inflateAsync(payload) : payload;
}
