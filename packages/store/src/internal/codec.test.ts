import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeBlock, encodeBlock, isAllZero, looksCompressible, sampleEntropy } from './codec.js';

const BLOCK = 65536;
const RAW = 0;
const ZLIB = 1;
/** Hex text: 16 symbols, deflates to about half. */
const hex = () => Buffer.from(randomBytes(BLOCK / 2).toString('hex'));

describe('block codec', () => {
  it('measures the byte entropy of a sample', () => {
    expect(sampleEntropy(randomBytes(BLOCK))).toBeGreaterThan(7.9);
    expect(sampleEntropy(hex())).toBeCloseTo(4, 1);
    expect(sampleEntropy(Buffer.alloc(BLOCK, 7))).toBe(0);
  });

  it('stores random bytes raw without deflating them, and reads them back', async () => {
    const payload = randomBytes(BLOCK);
    expect(looksCompressible(payload)).toBe(false);
    const stored = await encodeBlock(payload, 'zlib');
    expect(stored[0]).toBe(RAW);
    expect(stored.length).toBe(BLOCK + 1);
    expect((await decodeBlock(stored)).equals(payload)).toBe(true);
  });

  it('keeps compressible blocks compressed', async () => {
    for (const payload of [hex(), Buffer.alloc(BLOCK, 65), Buffer.concat([randomBytes(100), Buffer.alloc(BLOCK - 100, 1)])]) {
      expect(looksCompressible(payload)).toBe(true);
      const stored = await encodeBlock(payload, 'zlib');
      expect(stored[0]).toBe(ZLIB);
      expect(stored.length).toBeLessThan(payload.length * 0.6);
      expect((await decodeBlock(stored)).equals(payload)).toBe(true);
    }
  });

  it('judges a block between clearly random and clearly skewed by deflating a sample', async () => {
    // A random 1 KiB repeated: its bytes look nearly uniform, yet it deflates very well.
    const unit = randomBytes(1024);
    const repeated = Buffer.concat(Array.from({ length: BLOCK / 1024 }, () => unit));
    expect(sampleEntropy(repeated)).toBeGreaterThan(7);
    expect(looksCompressible(repeated)).toBe(true);
    expect((await encodeBlock(repeated, 'zlib'))[0]).toBe(ZLIB);
    // 200 equally likely byte values: 7.6 bits per byte, deflate saves too little.
    const wide = Buffer.from(Array.from({ length: BLOCK }, () => Math.floor(Math.random() * 200)));
    expect(looksCompressible(wide)).toBe(false);
    expect((await encodeBlock(wide, 'zlib'))[0]).toBe(RAW);
  });

  it('tries small payloads whatever they hold, and stores raw what does not shrink', async () => {
    const small = randomBytes(3000);
    expect(looksCompressible(small)).toBe(true);
    const stored = await encodeBlock(small, 'zlib');
    expect(stored[0]).toBe(RAW);
    expect((await decodeBlock(stored)).equals(small)).toBe(true);
  });

  it('stores everything raw with the raw codec', async () => {
    expect((await encodeBlock(hex(), 'raw'))[0]).toBe(RAW);
  });

  it('tells all-zero payloads (holes) apart', () => {
    expect(isAllZero(Buffer.alloc(5 * 1024 * 1024))).toBe(true);
    const b = Buffer.alloc(5 * 1024 * 1024);
    b[5 * 1024 * 1024 - 1] = 1;
    expect(isAllZero(b)).toBe(false);
  });
});
