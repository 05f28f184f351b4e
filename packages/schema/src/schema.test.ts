import { describe, expect, it } from 'vitest';
import {
  blockCount,
  decodeDirEntry,
  decodeGcEntry,
  decodeInode,
  encodeDirEntry,
  encodeGcEntry,
  encodeInode,
  fileTypeOfMode,
  joinBlock,
  keysFor,
  parseBlockKey,
  parseInodeKey,
  splitBlock,
  superblockSchema,
  type InodeRecord,
} from './index.js';

describe('key layout', () => {
  it('puts metadata under the filesystem hash tag and data blocks outside it', () => {
    const k = keysFor('skx');
    expect([k.superblock, k.inode(1), k.dir(1), k.xattr(7), k.stats, k.gc, k.inoCounter]).toEqual([
      '{skx}:sb', '{skx}:i:1', '{skx}:d:1', '{skx}:x:7', '{skx}:st', '{skx}:gc', '{skx}:ino',
    ]);
    expect(k.block(42, 3)).toBe('skx:b:42:3');
    expect(parseBlockKey(k, 'skx:b:42:3')).toEqual({ ino: 42, index: 3 });
    expect(parseBlockKey(k, 'skx2:b:42:3')).toBeUndefined();
    expect(k.scanPatterns).toEqual(['{skx}:*', 'skx:b:*']);
  });

  it('parses inode, directory and xattr keys back, only in their canonical form', () => {
    const k = keysFor('skx');
    expect(parseInodeKey(k, k.inode(42))).toEqual({ kind: 'inode', ino: 42 });
    expect(parseInodeKey(k, k.dir(1))).toEqual({ kind: 'dir', ino: 1 });
    expect(parseInodeKey(k, k.xattr(7))).toEqual({ kind: 'xattr', ino: 7 });
    for (const other of [k.superblock, k.stats, k.gc, k.inoCounter, k.block(42, 0), '{skx}:i:07', '{skx}:i:0', '{skx}:i:', '{skx}:i:1:2', '{skx2}:i:1', '{skx}:q:1']) {
      expect(parseInodeKey(k, other)).toBeUndefined();
    }
  });

  it('refuses prefixes that could overlap another filesystem or break hash tags', () => {
    for (const bad of ['', 'a:b', '{x}', 'a b', 'x'.repeat(65), 'a*']) expect(() => keysFor(bad)).toThrow(RangeError);
  });
});

describe('records', () => {
  const inode: InodeRecord = {
    mode: 0o100644, uid: 1000, gid: 100, size: 2 ** 40, nlink: 2, rdev: 0,
    atimeNs: 1_700_000_000_123_456_789n, mtimeNs: 1n, ctimeNs: 2n,
    target: undefined, generation: 1, parent: undefined,
  };

  it('round-trips an inode with nanosecond times and large sizes', () => {
    expect(decodeInode(encodeInode(inode))).toEqual(inode);
    expect(fileTypeOfMode(inode.mode)).toBe('file');
    expect(fileTypeOfMode(0o040755)).toBe('dir');
  });

  it('rejects corrupt inode records', () => {
    expect(() => decodeInode({ ...encodeInode(inode), m: 'x' })).toThrow();
    const { s: _s, ...noSize } = encodeInode(inode);
    expect(() => decodeInode(noSize)).toThrow();
  });

  it('encodes directory entries and gc entries compactly', () => {
    expect(encodeDirEntry('file', 42)).toBe('f42');
    expect(decodeDirEntry('d7')).toEqual({ type: 'dir', ino: 7 });
    for (const bad of ['', 'x1', 'f', 'f0', 'f1.5', 'f-1']) expect(() => decodeDirEntry(bad)).toThrow(RangeError);
    expect(decodeGcEntry(encodeGcEntry({ ino: 5, from: 2, to: 9 }))).toEqual({ ino: 5, from: 2, to: 9 });
    expect(decodeGcEntry('junk')).toBeUndefined();
  });

  it('frames blocks with their codec byte', () => {
    const stored = joinBlock('zlib', Buffer.from('abc'));
    expect(stored[0]).toBe(1);
    expect(splitBlock(stored)).toEqual({ codec: 'zlib', payload: Buffer.from('abc') });
    expect(() => splitBlock(Buffer.from([9, 1]))).toThrow(RangeError);
    expect(blockCount(0, 65536)).toBe(0);
    expect(blockCount(65537, 65536)).toBe(2);
  });

  it('validates the superblock', () => {
    const sb = { version: '1', bsize: '65536', codec: 'zlib', created: '1', maxsize: '1125899906842624' };
    expect(superblockSchema.parse(sb).bsize).toBe(65536);
    expect(superblockSchema.safeParse({ ...sb, bsize: '100' }).success).toBe(false);
    expect(superblockSchema.safeParse({ ...sb, codec: 'lz4' }).success).toBe(false);
  });
});
