/**
 * Block compression. zlib runs on libuv's thread pool (async API), off the event loop. A block
 * that does not shrink is stored raw, and a block that is all zeros is not stored at all (a hole).
 *
 * Deflating 64 KiB of incompressible bytes (media, archives, encrypted or random data) costs
 * about 1 ms of CPU for nothing, so a block is judged by a sample first: the byte entropy of
 * four 1 KiB spots across it (a few µs). Nearly uniform bytes (over 7.9 bits per byte; random
 * bytes measure 7.95) are stored raw without deflating; clearly skewed ones (under 7) are
 * deflated; in between, the first 4 KiB are deflated at level 1 (tens of µs, inline: handing
 * that to the thread pool costs more) and the block is deflated only if they shrank well. A
 * deflated block that did not shrink is stored raw. (Uniform bytes that repeat only at distances
 * over a few KiB, a random 8 KiB written twice, are stored raw: a loss of space, never of data.)
 */
import { promisify } from 'node:util';
import { deflate, deflateRawSync, inflate, constants } from 'node:zlib';
import { joinBlock, splitBlock } from '@redisfs/schema';

const deflateAsync = promisify(deflate);
const inflateAsync = promisify(inflate);

export type StoredCodec = 'zlib' | 'raw';

const ZEROS = Buffer.alloc(4 * 1024 * 1024);

/** Bytes of the block deflated when its entropy alone does not decide. */
const SAMPLE_BYTES = 4096;
/** A deflated sample must be smaller than this share of its size for its block to be deflated. */
const SAMPLE_MAX_RATIO = 0.9;
/** Spots of SPOT_BYTES whose bytes are counted to measure a block's entropy. */
const SPOTS = 4;
const SPOT_BYTES = 1024;
/** Entropy (bits per byte) above which a block is not deflated, below which it is, without a trial. */
const ENTROPY_RAW = 7.9;
const ENTROPY_DEFLATE = 7;

/** Whether every byte of `buf` is zero. */
export function isAllZero(buf: Buffer): boolean {
  for (let off = 0; off < buf.length; off += ZEROS.length) {
    const part = buf.subarray(off, Math.min(buf.length, off + ZEROS.length));
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

/**
 * Whether `payload` is worth deflating, judged by a sample (see the module comment). Payloads
 * of up to SPOTS * SPOT_BYTES are always worth a try: the sample would cost as much.
 */
export function looksCompressible(payload: Buffer): boolean {
  if (payload.length <= SPOTS * SPOT_BYTES) return true;
  const bits = sampleEntropy(payload);
  if (bits > ENTROPY_RAW) return false;
  if (bits < ENTROPY_DEFLATE) return true;
  const sample = payload.subarray(0, SAMPLE_BYTES);
  return deflateRawSync(sample, { level: constants.Z_BEST_SPEED }).length < sample.length * SAMPLE_MAX_RATIO;
}

const counts = new Uint32Array(256);
/** c * log2(c) for every count a sample can reach. */
const C_LOG_C = Float64Array.from({ length: SPOTS * SPOT_BYTES + 1 }, (_, c) => (c > 0 ? c * Math.log2(c) : 0));

/** Shannon entropy, in bits per byte, of SPOTS spots of SPOT_BYTES spread over `payload`. */
export function sampleEntropy(payload: Uint8Array): number {
  counts.fill(0);
  const stride = Math.floor((payload.length - SPOT_BYTES) / (SPOTS - 1));
  for (let s = 0; s < SPOTS; s++) {
    const from = s * stride;
    for (let i = from; i < from + SPOT_BYTES; i++) counts[payload[i]!]!++;
  }
  // H = log2(n) - (1/n) * sum(c * log2(c))
  const n = SPOTS * SPOT_BYTES;
  let sum = 0;
  for (let b = 0; b < 256; b++) sum += C_LOG_C[counts[b]!]!;
  return Math.log2(n) - sum / n;
}

/** Encodes a block payload for storage with the filesystem's codec. */
export async function encodeBlock(payload: Buffer, codec: StoredCodec): Promise<Buffer> {
  if (codec === 'zlib' && payload.length >= 64 && looksCompressible(payload)) {
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
