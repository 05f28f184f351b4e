import { describe, expect, it } from 'vitest';
import {
  BLOCK_ID_PATTERN,
  LAYOUT_VERSION,
  blockCount,
  decodeDirEntry,
  decodeGcEntry,
  decodeInode,
  encodeDirEntry,
  encodeGcEntry,
  encodeInode,
  encodeSuperblock,
  familyOf,
  fileTypeOfMode,
  joinBlock,
  keysFor,
  parseBlockKey,
  parseFamilyMapKey,
  parseInodeKey,
  parseLayout1BlockKey,
  parseSessionKey,
  isSessionKey,
  SESSION_ID_PATTERN,
  sameFamily,
  splitBlock,
  superblockSchema,
  type InodeRecord,
} from './index.js';

/** Whether SCAN MATCH `pattern` matches `key` (globs as Redis reads them: * any run, \x a literal x). */
function matches(pattern: string, key: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') re += (pattern[++i] ?? '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '*') re += '.*';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(key);
}

describe('key layout', () => {
  it('puts metadata and family keys under the family hash tag and data blocks outside it', () => {
    const k = keysFor('skx');
    expect([k.prefix, k.family, k.hashTag, k.metaPrefix]).toEqual(['skx', 'skx', '{skx}', '{skx}:']);
    expect([k.superblock, k.inode(1), k.dir(1), k.xattr(7), k.map(7), k.stats, k.gc, k.inoCounter]).toEqual([
      '{skx}:sb', '{skx}:i:1', '{skx}:d:1', '{skx}:x:7', '{skx}:m:7', '{skx}:st', '{skx}:gc', '{skx}:ino',
    ]);
    expect([k.snapshot, k.snapshotDone, k.snapshotLock]).toEqual(['{skx}:snap', '{skx}:snap:done', '{skx}:snapfrom']);
    expect(k.transientKeys).toEqual([k.snapshot, k.snapshotDone, k.snapshotLock]);
    expect([k.refcounts, k.freeBlocks, k.blockCounter, k.deadMembers]).toEqual(['{skx}#rc', '{skx}#free', '{skx}#bid', '{skx}#dead']);
    expect(k.block('42')).toBe('skx:b:42');
    expect([k.metaPattern, k.blockPattern]).toEqual(['{skx}:*', 'skx:b:*']);
  });

  it('gives a member of a family its own metadata and the family\'s shared keys and blocks', () => {
    const f = keysFor('skx');
    const m = keysFor('skx@mon');
    expect([m.prefix, m.family, m.hashTag, m.metaPrefix]).toEqual(['skx@mon', 'skx', '{skx}', '{skx}@mon:']);
    expect([m.superblock, m.inode(1), m.dir(1), m.xattr(7), m.map(7), m.stats, m.gc, m.inoCounter, m.snapshotLock]).toEqual([
      '{skx}@mon:sb', '{skx}@mon:i:1', '{skx}@mon:d:1', '{skx}@mon:x:7', '{skx}@mon:m:7', '{skx}@mon:st', '{skx}@mon:gc',
      '{skx}@mon:ino', '{skx}@mon:snapfrom',
    ]);
    // Shared with the family: reference counts, free ids, the id counter, the dead list, the blocks.
    expect([m.refcounts, m.freeBlocks, m.blockCounter, m.deadMembers]).toEqual([f.refcounts, f.freeBlocks, f.blockCounter, f.deadMembers]);
    expect(m.block('42')).toBe(f.block('42'));
    expect(m.blockPattern).toBe(f.blockPattern);
    expect(m.metaPattern).toBe('{skx}@mon:*');
    expect([familyOf('skx@mon'), familyOf('skx')]).toEqual(['skx', 'skx']);
    expect([sameFamily('skx', 'skx@mon'), sameFamily('skx@a', 'skx@b'), sameFamily('skx', 'skx2'), sameFamily('skx@a', 'sk@a')]).toEqual([
      true, true, false, false,
    ]);
  });

  it('gives every metadata and family key the hash tag {F} (one slot), and blocks none', () => {
    // Redis Cluster hashes the first {...} of a key: it must be the family's.
    const firstTag = (key: string) => /\{([^}]*)\}/.exec(key)?.[0];
    for (const prefix of ['skx', 'skx@mon', 'a.b-c_d@x.1']) {
      const k = keysFor(prefix);
      const tagged = [
        k.superblock, k.inoCounter, k.stats, k.gc, k.snapshot, k.snapshotDone, k.snapshotLock, k.inode(1), k.dir(1), k.xattr(1),
        k.map(1), k.refcounts, k.freeBlocks, k.blockCounter, k.deadMembers,
      ];
      for (const key of tagged) expect(firstTag(key), key).toBe(`{${familyOf(prefix)}}`);
      expect(k.block('7')).not.toContain('{');
    }
  });

  it('keeps the patterns of different prefixes apart (SCAN MATCH)', () => {
    const f = keysFor('skx');
    const m = keysFor('skx@mon');
    const other = keysFor('skx2');
    expect(matches(f.metaPattern, f.inode(1))).toBe(true);
    expect(matches(f.metaPattern, m.inode(1))).toBe(false);
    expect(matches(f.metaPattern, f.refcounts)).toBe(false);
    expect(matches(m.metaPattern, f.inode(1))).toBe(false);
    expect(matches(m.metaPattern, keysFor('skx@monday').inode(1))).toBe(false);
    expect(matches(f.metaPattern, other.inode(1))).toBe(false);
    expect(matches(f.blockPattern, f.block('1'))).toBe(true);
    expect(matches(f.blockPattern, other.block('1'))).toBe(false);
    // Every member's block maps, this one's included; nothing of another family.
    const anyMap = (k: typeof f, key: string) => k.familyMapPatterns.some((p) => matches(p, key));
    for (const key of [f.map(3), m.map(3), keysFor('skx@a.b-c').map(12)]) {
      expect(anyMap(f, key), key).toBe(true);
      expect(anyMap(m, key), key).toBe(true);
    }
    for (const key of [other.map(3), keysFor('sk@x').map(3), f.inode(3), m.dir(3), f.refcounts, f.block('3')]) {
      expect(anyMap(f, key), key).toBe(false);
    }
  });

  it('parses the block map keys of every member of a family back into member and inode', () => {
    const m = keysFor('skx@mon');
    expect(parseFamilyMapKey(m, keysFor('skx').map(7))).toEqual({ prefix: 'skx', ino: 7 });
    expect(parseFamilyMapKey(m, m.map(7))).toEqual({ prefix: 'skx@mon', ino: 7 });
    expect(parseFamilyMapKey(keysFor('skx'), keysFor('skx@a.b').map(1))).toEqual({ prefix: 'skx@a.b', ino: 1 });
    for (const bad of [
      keysFor('skx2').map(7), m.inode(7), m.refcounts, '{skx}:m:07', '{skx}:m:0', '{skx}@:m:1', '{skx}@a:b:m:1', '{skx}@a@b:m:1',
      '{skx}@mon:m:1:2', '{skx}#m:1',
    ]) {
      expect(parseFamilyMapKey(m, bad), bad).toBeUndefined();
    }
  });

  it('covers a member\'s own keys, its family\'s keys and blocks, and the maps of every member', () => {
    const k = keysFor('skx@mon');
    const f = keysFor('skx');
    expect(k.familyPattern).toBe('{skx}#*');
    expect(k.scanPatterns).toEqual([k.metaPattern, k.familyPattern, k.blockPattern]);
    const anyOf = (patterns: readonly string[], key: string) => patterns.some((p) => matches(p, key));
    for (const key of [k.inode(1), k.map(3), k.superblock, k.refcounts, k.freeBlocks, k.blockCounter, k.deadMembers, k.block('7')]) {
      expect(anyOf(k.scanPatterns, key), key).toBe(true);
    }
    for (const key of [f.inode(1), keysFor('skx@other').map(3), keysFor('skx2').refcounts, keysFor('skx2').block('7')]) {
      expect(anyOf(k.scanPatterns, key), key).toBe(false);
    }
    for (const key of [f.map(3), k.map(3), keysFor('skx@a.b-c').map(12)]) expect(anyOf(k.familyMapPatterns, key), key).toBe(true);
    for (const key of [keysFor('skx2').map(3), keysFor('skx2@mon').map(3)]) expect(anyOf(k.familyMapPatterns, key), key).toBe(false);
  });

  it('parses the block map keys of every member of the family back, only in their canonical form', () => {
    const k = keysFor('skx@mon');
    expect(parseFamilyMapKey(k, '{skx}:m:5')).toEqual({ prefix: 'skx', ino: 5 });
    expect(parseFamilyMapKey(k, keysFor('skx@x.1').map(9))).toEqual({ prefix: 'skx@x.1', ino: 9 });
    expect(parseFamilyMapKey(keysFor('skx'), k.map(2 ** 40))).toEqual({ prefix: 'skx@mon', ino: 2 ** 40 });
    for (const bad of [
      '{skx}:m:05', '{skx}:m:0', '{skx}:m:', '{skx}@:m:5', '{skx}@a@b:m:5', '{skx}@a{b}:m:5', '{skx2}:m:5', '{skx2}@mon:m:5',
      '{skx}:i:5', '{skx}@mon:i:5', 'skx:m:5', '{skx}#m:5', '{skx}:m:5:1',
    ]) {
      expect(parseFamilyMapKey(k, bad), bad).toBeUndefined();
    }
  });

  it('parses block keys of the family back into their ids (counter ids and ids kept from layout 1)', () => {
    const k = keysFor('skx@mon');
    expect(parseBlockKey(k, 'skx:b:42')).toBe('42');
    expect(parseBlockKey(k, 'skx:b:42:3')).toBe('42:3');
    expect(parseBlockKey(keysFor('skx'), keysFor('skx').block('9007'))).toBe('9007');
    for (const bad of ['skx2:b:42', '{skx}:b:42', 'skx:b:', 'skx:b:0', 'skx:b:042', 'skx:b:4x', 'skx:b:1:2:3']) {
      expect(parseBlockKey(k, bad), bad).toBeUndefined();
    }
    expect(BLOCK_ID_PATTERN.test('1')).toBe(true);
    expect(parseLayout1BlockKey('skx', 'skx:b:42:3')).toEqual({ ino: 42, index: 3 });
    expect(parseLayout1BlockKey('skx', 'skx:b:42')).toBeUndefined();
    expect(parseLayout1BlockKey('skx', 'skx2:b:42:3')).toBeUndefined();
  });

  it('parses inode, directory, xattr and block map keys back, only in their canonical form', () => {
    const k = keysFor('skx');
    expect(parseInodeKey(k, k.inode(42))).toEqual({ kind: 'inode', ino: 42 });
    expect(parseInodeKey(k, k.dir(1))).toEqual({ kind: 'dir', ino: 1 });
    expect(parseInodeKey(k, k.xattr(7))).toEqual({ kind: 'xattr', ino: 7 });
    expect(parseInodeKey(k, k.map(9))).toEqual({ kind: 'map', ino: 9 });
    const m = keysFor('skx@mon');
    expect(parseInodeKey(m, m.map(9))).toEqual({ kind: 'map', ino: 9 });
    for (const other of [
      k.superblock, k.stats, k.gc, k.inoCounter, k.refcounts, k.block('42'), '{skx}:i:07', '{skx}:i:0', '{skx}:i:', '{skx}:i:1:2',
      '{skx2}:i:1', '{skx}:q:1', m.inode(1), m.map(3),
    ]) {
      expect(parseInodeKey(k, other), other).toBeUndefined();
    }
    expect(parseInodeKey(m, k.inode(1))).toBeUndefined();
  });

  it('builds session and lock keys under the member\'s metadata prefix, and tells them from contents', () => {
    const k = keysFor('skx@mon');
    const sid = '0123456789abcdef';
    expect(SESSION_ID_PATTERN.test(sid)).toBe(true);
    expect([k.sessions, k.session(sid), k.sessionOpen(sid), k.sessionLocks(sid), k.openBy(5), k.flocks(6), k.posixLocks(7), k.orphans]).toEqual([
      '{skx}@mon:ss', `{skx}@mon:s:${sid}`, `{skx}@mon:so:${sid}`, `{skx}@mon:sl:${sid}`, '{skx}@mon:o:5', '{skx}@mon:lf:6', '{skx}@mon:lp:7', '{skx}@mon:orph',
    ]);
    expect(k.lockChannel).toBe('{skx}@mon:lk');
    expect(parseSessionKey(k, k.sessions)).toEqual({ kind: 'sessions' });
    expect(parseSessionKey(k, k.session(sid))).toEqual({ kind: 'session', sid });
    expect(parseSessionKey(k, k.sessionOpen(sid))).toEqual({ kind: 'sessionOpen', sid });
    expect(parseSessionKey(k, k.sessionLocks(sid))).toEqual({ kind: 'sessionLocks', sid });
    expect(parseSessionKey(k, k.openBy(5))).toEqual({ kind: 'openBy', ino: 5 });
    expect(parseSessionKey(k, k.flocks(6))).toEqual({ kind: 'flocks', ino: 6 });
    expect(parseSessionKey(k, k.posixLocks(7))).toEqual({ kind: 'posixLocks', ino: 7 });
    // orph is contents (an inode kept with link count 0): copied like the inodes it lists.
    const f = keysFor('skx');
    for (const other of [
      k.orphans, k.inode(5), k.superblock, k.gc, `{skx}@mon:s:0123456789ABCDEF`, `{skx}@mon:s:${sid}0`, '{skx}@mon:o:05', '{skx}@mon:o:x',
      '{skx}@mon:lk', f.sessions, f.session(sid), f.openBy(5),
    ]) {
      expect(isSessionKey(k, other), other).toBe(false);
      expect(parseSessionKey(k, other), other).toBeUndefined();
    }
  });

  it('refuses prefixes that could overlap another filesystem or break hash tags', () => {
    for (const bad of ['', 'a:b', '{x}', 'a b', 'x'.repeat(65), 'a*', 'a#b', '@a', 'a@', 'a@b@c', 'a@b:c', 'a@{b}', `a@${'x'.repeat(65)}`]) {
      expect(() => keysFor(bad), bad).toThrow(RangeError);
    }
    for (const good of ['a', 'skx@mon', 'a.b-c_d@2024-01-01.x']) expect(() => keysFor(good)).not.toThrow();
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
    // A gc member is an inode number (the collector releases its map past the inode's size).
    expect(encodeGcEntry(5)).toBe('5');
    expect(decodeGcEntry(encodeGcEntry(5))).toBe(5);
    for (const bad of ['junk', '0', '05', '5:2:9', '', '-1']) expect(decodeGcEntry(bad), bad).toBeUndefined();
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
    const sb = { version: String(LAYOUT_VERSION), bsize: '65536', codec: 'zlib', created: '1', maxsize: '1125899906842624' };
    expect(LAYOUT_VERSION).toBe(2);
    expect(superblockSchema.parse(sb).bsize).toBe(65536);
    expect(superblockSchema.parse({ ...sb, snapof: 'skx', snapat: '5' })).toMatchObject({ snapof: 'skx', snapat: 5n });
    expect(encodeSuperblock(superblockSchema.parse({ ...sb, snapof: 'skx', snapat: '5' }))).toEqual({ ...sb, snapof: 'skx', snapat: '5' });
    expect(superblockSchema.safeParse({ ...sb, bsize: '100' }).success).toBe(false);
    expect(superblockSchema.safeParse({ ...sb, codec: 'lz4' }).success).toBe(false);
  });
});
