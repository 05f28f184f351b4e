/**
 * Data-block encoding: `P:b:<ino>:<index>` holds one byte of codec (see BLOCK_CODECS) followed
 * by the payload. A block covers bytes [index*bsize, (index+1)*bsize) of the file; its decoded
 * payload may be shorter than bsize, and the missing tail reads as zeros. A missing block is a
 * hole and reads as zeros.
 */
import { BLOCK_CODECS, type BlockCodec } from './records.js';

const CODEC_BY_BYTE = new Map<number, BlockCodec>(
  Object.entries(BLOCK_CODECS).map(([name, byte]) => [byte, name as BlockCodec]),
);

/** Splits a stored block into its codec and payload; throws a RangeError for an unknown codec. */
export function splitBlock(stored: Buffer): { codec: BlockCodec; payload: Buffer } {
  const codec = CODEC_BY_BYTE.get(stored[0] ?? -1);
  if (!codec) throw new RangeError(`unknown block codec byte ${stored[0]}`);
  return { codec, payload: stored.subarray(1) };
}

/** Joins codec and payload into the stored form. */
export function joinBlock(codec: BlockCodec, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(payload.length + 1);
  out[0] = BLOCK_CODECS[codec];
  payload.copy(out, 1);
  return out;
}

/** Index of the block holding byte `offset`. */
export function blockIndex(offset: number, blockSize: number): number {
  return Math.floor(offset / blockSize);
}

/** Number of blocks needed to hold `size` bytes. */
export function blockCount(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}
