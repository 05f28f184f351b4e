import { describe, expect, it } from 'vitest';
import {
  BLOCK_ID_PATTERN,
  INODES_PER_BUCKET,
  INODE_RECORD_HEAD,
  LAYOUT_VERSION,
  UPGRADABLE_LAYOUTS,
  decodeInodeRecord,
  encodeInodeRecord,
  inodeBucket,
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
  FILE_TYPE_MODES,
  joinBlock,
  keysFor,
  parseBlockKey,
  parseFamilyMapKey,
  parseBucketKey,
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
    expect([k.superblock, k.inodes(1), k.dir(1), k.xattr(7), k.map(7), k.stats, k.gc, k.inoCounter]).toEqual([
      '{skx}:sb', '{skx}:in:0', '{skx}:d:1', '{skx}:x:7', '{skx}:m:7', '{skx}:st', '{skx}:gc', '{skx}:ino',
    ]);
    // 64 inodes per bucket hash: ino 0…63 in bucket 0, 64…127 in bucket 1, and so on.
    expect([k.inodes(63), k.inodes(64), k.inodes(127), k.inodes(128), k.inodes(2 ** 40 + 65)]).toEqual([
      '{skx}:in:0', '{skx}:in:1', '{skx}:in:1', '{skx}:in:2', `{skx}:in:${2 ** 34 + 1}`,
    ]);
    expect(INODES_PER_BUCKET).toBe(64);
    expect([inodeBucket(1), inodeBucket(64), inodeBucket(2 ** 40 + 65)]).toEqual([0, 1, 2 ** 34 + 1]);
    // A symlink's target is a string key of its own; layout 2's inode hash is named for the upgrade.
    expect([k.target(5), k.layout2Inode(5)]).toEqual(['{skx}:l:5', '{skx}:i:5']);
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
    expect([m.superblock, m.inodes(1), m.dir(1), m.xattr(7), m.map(7), m.stats, m.gc, m.inoCounter, m.snapshotLock]).toEqual([
      '{skx}@mon:sb', '{skx}@mon:in:0', '{skx}@mon:d:1', '{skx}@mon:x:7', '{skx}@mon:m:7', '{skx}@mon:st', '{skx}@mon:gc',
      '{skx}@mon:ino', '{skx}@mon:snapfrom',
    ]);
    expect([m.target(7), m.layout2Inode(7)]).toEqual(['{skx}@mon:l:7', '{skx}@mon:i:7']);
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
        k.superblock, k.inoCounter, k.stats, k.gc, k.snapshot, k.snapshotDone, k.snapshotLock, k.inodes(1), k.inodes(9000), k.target(1),
        k.layout2Inode(1), k.dir(1), k.xattr(1), k.map(1), k.refcounts, k.freeBlocks, k.blockCounter, k.deadMembers,
      ];
      for (const key of tagged) expect(firstTag(key), key).toBe(`{${familyOf(prefix)}}`);
      expect(k.block('7')).not.toContain('{');
    }
  });

  it('keeps the patterns of different prefixes apart (SCAN MATCH)', () => {
    const f = keysFor('skx');
    const m = keysFor('skx@mon');
    const other = keysFor('skx2');
    expect(matches(f.metaPattern, f.inodes(1))).toBe(true);
    expect(matches(f.metaPattern, f.target(1))).toBe(true);
    expect(matches(f.metaPattern, m.inodes(1))).toBe(false);
    expect(matches(f.metaPattern, f.refcounts)).toBe(false);
    expect(matches(m.metaPattern, f.inodes(1))).toBe(false);
    expect(matches(m.metaPattern, keysFor('skx@monday').inodes(1))).toBe(false);
    expect(matches(f.metaPattern, other.inodes(1))).toBe(false);
    expect(matches(f.blockPattern, f.block('1'))).toBe(true);
    expect(matches(f.blockPattern, other.block('1'))).toBe(false);
    // Layout 2's inode hashes of this prefix only (the upgrade's inode pass), not its buckets.
    expect(matches(f.layout2InodePattern, f.layout2Inode(12))).toBe(true);
    expect([m.layout2Inode(12), other.layout2Inode(12), f.inodes(12), f.dir(12)].some((key) => matches(f.layout2InodePattern, key))).toBe(false);
    // Every member's block maps, this one's included; nothing of another family.
    const anyMap = (k: typeof f, key: string) => k.familyMapPatterns.some((p) => matches(p, key));
    for (const key of [f.map(3), m.map(3), keysFor('skx@a.b-c').map(12)]) {
      expect(anyMap(f, key), key).toBe(true);
      expect(anyMap(m, key), key).toBe(true);
    }
    for (const key of [other.map(3), keysFor('sk@x').map(3), f.inodes(3), f.target(3), m.dir(3), f.refcounts, f.block('3')]) {
      expect(anyMap(f, key), key).toBe(false);
    }
  });

  it('parses the block map keys of every member of a family back into member and inode', () => {
    const m = keysFor('skx@mon');
    expect(parseFamilyMapKey(m, keysFor('skx').map(7))).toEqual({ prefix: 'skx', ino: 7 });
    expect(parseFamilyMapKey(m, m.map(7))).toEqual({ prefix: 'skx@mon', ino: 7 });
    expect(parseFamilyMapKey(keysFor('skx'), keysFor('skx@a.b').map(1))).toEqual({ prefix: 'skx@a.b', ino: 1 });
    for (const bad of [
      keysFor('skx2').map(7), m.inodes(7), m.target(7), m.refcounts, '{skx}:m:07', '{skx}:m:0', '{skx}@:m:1', '{skx}@a:b:m:1', '{skx}@a@b:m:1',
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
    for (const key of [k.inodes(1), k.target(1), k.map(3), k.superblock, k.refcounts, k.freeBlocks, k.blockCounter, k.deadMembers, k.block('7')]) {
      expect(anyOf(k.scanPatterns, key), key).toBe(true);
    }
    for (const key of [f.inodes(1), keysFor('skx@other').map(3), keysFor('skx2').refcounts, keysFor('skx2').block('7')]) {
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
      '{skx}:i:5', '{skx}@mon:i:5', '{skx}:in:0', '{skx}:l:5', 'skx:m:5', '{skx}#m:5', '{skx}:m:5:1',
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

  it('parses directory, xattr, block map, target and layout-2 inode keys back, only in their canonical form', () => {
    const k = keysFor('skx');
    expect(parseInodeKey(k, k.layout2Inode(42))).toEqual({ kind: 'inode2', ino: 42 });
    expect(parseInodeKey(k, k.dir(1))).toEqual({ kind: 'dir', ino: 1 });
    expect(parseInodeKey(k, k.xattr(7))).toEqual({ kind: 'xattr', ino: 7 });
    expect(parseInodeKey(k, k.map(9))).toEqual({ kind: 'map', ino: 9 });
    expect(parseInodeKey(k, k.target(11))).toEqual({ kind: 'target', ino: 11 });
    expect(parseInodeKey(k, k.target(2 ** 40))).toEqual({ kind: 'target', ino: 2 ** 40 });
    const m = keysFor('skx@mon');
    expect(parseInodeKey(m, m.map(9))).toEqual({ kind: 'map', ino: 9 });
    expect(parseInodeKey(m, m.target(9))).toEqual({ kind: 'target', ino: 9 });
    for (const other of [
      k.superblock, k.stats, k.gc, k.inoCounter, k.refcounts, k.block('42'), '{skx}:i:07', '{skx}:i:0', '{skx}:i:', '{skx}:i:1:2',
      '{skx}:l:07', '{skx}:l:0', '{skx}:l:', '{skx2}:i:1', '{skx}:q:1', m.layout2Inode(1), m.map(3), m.target(3),
      // A bucket key is no per-inode key: parseBucketKey reads it.
      k.inodes(1), k.inodes(200),
    ]) {
      expect(parseInodeKey(k, other), other).toBeUndefined();
    }
    expect(parseInodeKey(m, k.layout2Inode(1))).toBeUndefined();
  });

  it('parses inode bucket keys back into their bucket number, only in their canonical form', () => {
    const k = keysFor('skx');
    const m = keysFor('skx@mon');
    expect(parseBucketKey(k, k.inodes(1))).toBe(0);
    expect(parseBucketKey(k, k.inodes(64))).toBe(1);
    expect(parseBucketKey(k, k.inodes(2 ** 50))).toBe(2 ** 44);
    expect(parseBucketKey(m, m.inodes(130))).toBe(2);
    expect(parseBucketKey(k, '{skx}:in:0')).toBe(0);
    for (const bad of [
      '{skx}:in:', '{skx}:in:00', '{skx}:in:01', '{skx}:in:-1', '{skx}:in:1.5', '{skx}:in:1:2', '{skx}:in:x', `{skx}:in:${'9'.repeat(16)}`,
      '{skx2}:in:1', '{skx}:i:1', '{skx}:in1', k.dir(1), k.target(1), k.layout2Inode(1), k.superblock, m.inodes(1), 'skx:in:1',
    ]) {
      expect(parseBucketKey(k, bad), bad).toBeUndefined();
    }
    expect(parseBucketKey(m, k.inodes(1))).toBeUndefined();
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
      k.orphans, k.inodes(5), k.target(5), k.superblock, k.gc, `{skx}@mon:s:0123456789ABCDEF`, `{skx}@mon:s:${sid}0`, '{skx}@mon:o:05', '{skx}@mon:o:x',
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

describe('packed inode records (layout 3)', () => {
  const NS = 1_000_000_000n;
  const file: InodeRecord = {
    mode: 0o100644, uid: 1000, gid: 100, size: 0, nlink: 1, rdev: 0,
    atimeNs: 1_700_000_000_123_456_789n, mtimeNs: 1_700_000_000_000_000_001n, ctimeNs: 1_700_000_000_999_999_999n,
    target: undefined, generation: 1, parent: undefined, tailDirty: false,
  };
  const roundTrip = (rec: InodeRecord) => decodeInodeRecord(encodeInodeRecord(rec));

  it('round-trips every field, times to the nanosecond before 1970 and far after, and large numbers', () => {
    expect(roundTrip(file)).toEqual(file);
    const big: InodeRecord = {
      ...file,
      mode: 0o107777, uid: 2 ** 32 - 1, gid: 2 ** 32 - 2, nlink: 2 ** 32 - 1, size: 2 ** 50,
      // 1969-12-31T23:59:59.999999999Z, 1901-12-13 (before any 32-bit time_t), and the year 2500 (16,725,225,600 s) plus 1 ns.
      atimeNs: -1n, mtimeNs: -2_147_483_649n * NS - 123n, ctimeNs: 16_725_225_600n * NS + 1n,
    };
    expect(roundTrip(big)).toEqual(big);
    // Seconds take 5 bytes, signed: ± 2^39 s (some 17,000 years) either side of 1970.
    const edges: InodeRecord = { ...file, atimeNs: -(2n ** 39n) * NS, mtimeNs: (2n ** 39n - 1n) * NS + 999_999_999n, ctimeNs: -999_999_999n };
    expect(roundTrip(edges)).toEqual(edges);
    expect(roundTrip({ ...file, size: Number.MAX_SAFE_INTEGER }).size).toBe(Number.MAX_SAFE_INTEGER);
    const dev: InodeRecord = { ...file, mode: 0o020620, rdev: 0x0501, tailDirty: false };
    expect(roundTrip(dev)).toEqual(dev);
    expect(roundTrip({ ...dev, rdev: 2 ** 32 - 1 }).rdev).toBe(2 ** 32 - 1);
    const dir: InodeRecord = { ...file, mode: 0o040755, nlink: 3, size: 4096, parent: 2 ** 40 + 3 };
    expect(roundTrip(dir)).toEqual(dir);
    expect(roundTrip({ ...dir, parent: 1 }).parent).toBe(1);
    const dirty: InodeRecord = { ...file, size: 70_000, tailDirty: true };
    expect(roundTrip(dirty)).toEqual(dirty);
    // Absent tailDirty reads back as false; the generation is not stored (always 1); the target lives apart.
    const { tailDirty: _z, ...plain } = file;
    expect(roundTrip(plain).tailDirty).toBe(false);
    expect(roundTrip({ ...file, generation: 7 }).generation).toBe(1);
    expect(roundTrip({ ...file, mode: 0o120777, size: 3, target: 'abc' })).toEqual({ ...file, mode: 0o120777, size: 3, target: undefined });
  });

  it('stores the format its table documents, big-endian', () => {
    const rec: InodeRecord = {
      mode: 0o040755, uid: 1000, gid: 100, size: 4096, nlink: 2, rdev: 0,
      atimeNs: 1_500_000_000n, mtimeNs: -1n, ctimeNs: 0n, target: undefined, generation: 1, parent: 1, tailDirty: true,
    };
    const hex = [
      '05', // flags: z (1) | parent follows (4)
      '41ed', // mode
      '000003e8', '00000064', // uid, gid
      '00000002', // nlink
      '00000000001000', // size (7 bytes)
      '0000000001', '1dcd6500', // atime: 1 s, 500,000,000 ns
      'ffffffffff', '3b9ac9ff', // mtime: -1 s, 999,999,999 ns (seconds floor, nanoseconds never negative)
      '0000000000', '00000000', // ctime
      '00000000000001', // parent (7 bytes)
    ].join('');
    expect(encodeInodeRecord(rec).toString('hex')).toBe(hex);
    expect(decodeInodeRecord(Buffer.from(hex, 'hex'))).toEqual(rec);
    const dev = encodeInodeRecord({ ...rec, mode: 0o060660, parent: undefined, tailDirty: false, rdev: 0x0801 });
    expect(dev.subarray(0, 1).toString('hex')).toBe('02');
    expect(dev.subarray(INODE_RECORD_HEAD).toString('hex')).toBe('00000801');
  });

  it('takes 49 bytes for a file, and at most 64 for any inode (the most a compact hash value may be)', () => {
    expect(INODE_RECORD_HEAD).toBe(49);
    expect(encodeInodeRecord(file)).toHaveLength(49);
    // The largest record of every kind: every number at its widest, a long symlink target (not in the record).
    for (const [type, bits] of Object.entries(FILE_TYPE_MODES)) {
      const rec: InodeRecord = {
        ...file, mode: bits | 0o7777, uid: 2 ** 32 - 1, gid: 2 ** 32 - 1, nlink: 2 ** 32 - 1, size: Number.MAX_SAFE_INTEGER,
        atimeNs: -(2n ** 39n) * NS, mtimeNs: -(2n ** 39n) * NS, ctimeNs: -(2n ** 39n) * NS, tailDirty: true,
        rdev: type === 'chr' || type === 'blk' ? 2 ** 32 - 1 : 0,
        parent: type === 'dir' ? Number.MAX_SAFE_INTEGER : undefined,
        target: type === 'symlink' ? 'x'.repeat(4096) : undefined,
      };
      expect(encodeInodeRecord(rec).length, type).toBeLessThanOrEqual(64);
    }
    // Even with both optional fields.
    expect(encodeInodeRecord({ ...file, rdev: 1, parent: 1 })).toHaveLength(60);
  });

  it('refuses to encode what the record cannot hold', () => {
    for (const size of [-1, 1.5, 2 ** 53]) expect(() => encodeInodeRecord({ ...file, size }), String(size)).toThrow(RangeError);
    expect(() => encodeInodeRecord({ ...file, parent: -1 })).toThrow(RangeError);
    expect(() => encodeInodeRecord({ ...file, uid: 2 ** 32 })).toThrow(RangeError);
    expect(() => encodeInodeRecord({ ...file, atimeNs: 2n ** 39n * NS })).toThrow(RangeError);
  });

  it('rejects corrupt records: too short, too long for their flags, unknown flags, nanoseconds out of range', () => {
    const good = encodeInodeRecord(file);
    const dir = encodeInodeRecord({ ...file, mode: 0o040755, parent: 1 });
    const withFlags = (buf: Buffer, flags: number) => Buffer.concat([Buffer.from([flags]), buf.subarray(1)]);
    const withNsec = (buf: Buffer, at: number, nsec: number) => {
      const out = Buffer.from(buf);
      out.writeUInt32BE(nsec, at);
      return out;
    };
    const bad: Record<string, Buffer> = {
      empty: Buffer.alloc(0),
      'garbage text': Buffer.from('garbage'),
      'one byte short': good.subarray(0, 48),
      'one byte long': Buffer.concat([good, Buffer.from([0])]),
      'a parent flag with no parent': withFlags(good, 4),
      'an rdev flag with no rdev': withFlags(good, 2),
      'a parent but no parent flag': withFlags(dir, 0),
      'a directory cut short': dir.subarray(0, 55),
      'unknown flag 8': withFlags(good, 8),
      'unknown flag 128': withFlags(good, 0x80),
      'atime nanoseconds of 1e9': withNsec(good, 27, 1e9),
      'mtime nanoseconds of 2^32-1': withNsec(good, 36, 2 ** 32 - 1),
      'ctime nanoseconds of 1e9': withNsec(good, 45, 1e9),
    };
    for (const [what, buf] of Object.entries(bad)) expect(() => decodeInodeRecord(buf), what).toThrow(RangeError);
    // The last valid nanosecond count still reads.
    expect(decodeInodeRecord(withNsec(good, 27, 999_999_999)).atimeNs).toBe(1_700_000_000_999_999_999n);
  });
});

describe('records', () => {
  const inode: InodeRecord = {
    mode: 0o100644, uid: 1000, gid: 100, size: 2 ** 40, nlink: 2, rdev: 0,
    atimeNs: 1_700_000_000_123_456_789n, mtimeNs: 1n, ctimeNs: 2n,
    target: undefined, generation: 1, parent: undefined, tailDirty: false,
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
    expect(LAYOUT_VERSION).toBe(3);
    expect(UPGRADABLE_LAYOUTS).toEqual([1, 2]);
    expect(superblockSchema.parse(sb).bsize).toBe(65536);
    expect(superblockSchema.parse({ ...sb, snapof: 'skx', snapat: '5' })).toMatchObject({ snapof: 'skx', snapat: 5n });
    expect(encodeSuperblock(superblockSchema.parse({ ...sb, snapof: 'skx', snapat: '5' }))).toEqual({ ...sb, snapof: 'skx', snapat: '5' });
    expect(superblockSchema.safeParse({ ...sb, bsize: '100' }).success).toBe(false);
    expect(superblockSchema.safeParse({ ...sb, codec: 'lz4' }).success).toBe(false);
  });
});
