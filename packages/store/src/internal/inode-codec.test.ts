/**
 * The packed inode record has two codecs: encodeInodeRecord / decodeInodeRecord (TypeScript)
 * and LUA_INODE_CODEC (the scripts). They must write and read the very same bytes: checked here
 * against a real redis-server, whose Lua (5.1, numbers are doubles, `struct` for packing) is the
 * one the scripts run in.
 */
import { RESP_TYPES } from '@redis/client';
import {
  FILE_TYPE_MODES, LUA_INODE_CODEC, LUA_KEY_FUNCTIONS, SYMLINK_MAX, decodeInode, decodeInodeRecord, encodeInodeRecord, keysFor,
  parseBucketKey, type InodeRecord,
} from '@redisfs/schema';
import { describe, expect, it } from 'vitest';
import { pairsToRecord } from './attr.js';
import { TEST_OWNER as owner, rawInode, storeFixture } from './test-fixture.js';
import { scanMatching, type RedisClient } from './topology.js';

const t = storeFixture('codec');
const NS = 1_000_000_000n;
const MP = keysFor('codec').metaPrefix;
/** The fields a Lua record table may hold, in the order the decode script returns them. */
const LUA_FIELDS = ['m', 'u', 'g', 's', 'n', 'r', 'a', 't', 'c', 'p', 'z', 'x'] as const;

/** A script of the codec (LUA_KEY_FUNCTIONS reads the metadata prefix from ARGV[1]). */
const lua = (body: string) => `${LUA_KEY_FUNCTIONS}${LUA_INODE_CODEC}\n${body}`;
/** ARGV[2…]: field, value, …  →  iencode of that table. */
const ENCODE = lua(`local r = {}
for i = 2, #ARGV, 2 do r[ARGV[i]] = ARGV[i + 1] end
return iencode(r)`);
/** ARGV[2]: a record  →  its fields in LUA_FIELDS order ('' when absent), then ireply (what scripts reply), then iencode(idecode(v)). */
const DECODE = lua(`local r = idecode(ARGV[2])
local fields = {}
for i, f in ipairs({ ${LUA_FIELDS.map((f) => `'${f}'`).join(', ')} }) do fields[i] = r[f] or '' end
local again = r.x and '' or iencode(r)
return { fields, ireply(ARGV[2]), again }`);

/** The connection's view that returns strings as Buffers: records are binary. */
const bin = () => t.raw.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });

/** A record as a Lua script holds it: decimal strings keyed by layout 2's field names. */
function luaFields(rec: InodeRecord): Record<string, string> {
  const out: Record<string, string> = {
    m: String(rec.mode), u: String(rec.uid), g: String(rec.gid), s: String(rec.size), n: String(rec.nlink),
    a: rec.atimeNs.toString(), t: rec.mtimeNs.toString(), c: rec.ctimeNs.toString(),
  };
  if (rec.rdev) out.r = String(rec.rdev);
  if (rec.parent !== undefined) out.p = String(rec.parent);
  if (rec.tailDirty) out.z = '1';
  return out;
}

async function luaEncode(fields: Record<string, string>): Promise<Buffer> {
  return (await bin().eval(ENCODE, { keys: [], arguments: [MP, ...Object.entries(fields).flat()] })) as unknown as Buffer;
}

async function luaDecode(v: Buffer): Promise<{ fields: Record<string, string>; flat: Record<string, string>; again: Buffer }> {
  const [fields, flat, again] = (await bin().eval(DECODE, { keys: [], arguments: [MP, v] })) as unknown as [Buffer[], Buffer[], Buffer];
  const out: Record<string, string> = {};
  LUA_FIELDS.forEach((f, i) => {
    const value = fields[i]!.toString();
    if (value !== '') out[f] = value;
  });
  return { fields: out, flat: pairsToRecord(flat.map(String)), again };
}

const file: InodeRecord = {
  mode: 0o100644, uid: 1000, gid: 100, size: 12_345, nlink: 1, rdev: 0,
  atimeNs: 1_700_000_000_123_456_789n, mtimeNs: 1_700_000_000_000_000_001n, ctimeNs: 1_700_000_001_999_999_999n,
  target: undefined, generation: 1, parent: undefined, tailDirty: false,
};

/** Records that cover every field at its edges: times before 1970 and far after, widest numbers. */
const RECORDS: Record<string, InodeRecord> = {
  'a file': file,
  'an empty file at the epoch': { ...file, size: 0, atimeNs: 0n, mtimeNs: 7n, ctimeNs: 5n * NS },
  'times before 1970': { ...file, atimeNs: -1n, mtimeNs: -1_500_000_000n, ctimeNs: -7n },
  'whole seconds before 1970': { ...file, atimeNs: -NS, mtimeNs: -86_400n * NS, ctimeNs: -2_147_483_649n * NS - 123n },
  'the year 2500': { ...file, atimeNs: 16_725_225_600n * NS + 1n, mtimeNs: 16_725_225_600n * NS, ctimeNs: 16_725_225_599n * NS + 999_999_999n },
  'the widest times': { ...file, atimeNs: -(2n ** 39n) * NS, mtimeNs: (2n ** 39n - 1n) * NS + 999_999_999n, ctimeNs: -(2n ** 39n) * NS + 1n },
  'the widest numbers': { ...file, mode: 0o107777, uid: 2 ** 32 - 1, gid: 2 ** 32 - 1, nlink: 2 ** 32 - 1, size: 2 ** 50 },
  'the largest size': { ...file, size: Number.MAX_SAFE_INTEGER },
  'a tail-dirty file': { ...file, size: 70_000, tailDirty: true },
  'a character device': { ...file, mode: 0o020620, size: 0, rdev: 0x0501 },
  'a block device with the widest rdev': { ...file, mode: 0o060660, size: 0, rdev: 2 ** 32 - 1 },
  'a directory': { ...file, mode: 0o040755, nlink: 2, size: 4096, parent: 1 },
  'a directory with a large parent': { ...file, mode: 0o040755, nlink: 5, size: 4096, parent: Number.MAX_SAFE_INTEGER },
  'every optional field': { ...file, rdev: 9, parent: 2 ** 40 + 3, tailDirty: true },
  'a symlink': { ...file, mode: 0o120777, size: 11 },
};

describe('the Lua inode codec', () => {
  it('encodes a field table to the bytes encodeInodeRecord gives', async () => {
    for (const [what, rec] of Object.entries(RECORDS)) {
      expect((await luaEncode(luaFields(rec))).toString('hex'), what).toBe(encodeInodeRecord(rec).toString('hex'));
    }
  });

  it('decodes what encodeInodeRecord wrote into decimal strings, nanosecond times negative too', async () => {
    for (const [what, rec] of Object.entries(RECORDS)) {
      const v = encodeInodeRecord(rec);
      const { fields, again } = await luaDecode(v);
      expect(fields, what).toEqual(luaFields(rec));
      // Read and written back unchanged (a script that changes one field keeps the others' bytes).
      expect(again.toString('hex'), what).toBe(v.toString('hex'));
    }
    // The decimal nanosecond strings, spelt out.
    const { fields } = await luaDecode(encodeInodeRecord(RECORDS['times before 1970']!));
    expect([fields.a, fields.t, fields.c]).toEqual(['-1', '-1500000000', '-7']);
    const epoch = await luaDecode(encodeInodeRecord(RECORDS['an empty file at the epoch']!));
    expect([epoch.fields.a, epoch.fields.t, epoch.fields.c]).toEqual(['0', '7', '5000000000']);
  });

  it('lists a record as the scripts reply it (ireply), which decodeInode reads back (what getattr replies go through)', async () => {
    for (const [what, rec] of Object.entries(RECORDS)) {
      const { flat } = await luaDecode(encodeInodeRecord(rec));
      // The list leaves out `z` (no reply needs it) and the target (its own key).
      expect(() => decodeInode(flat), `${what}: ${JSON.stringify(flat)}`).not.toThrow();
      expect(decodeInode(flat), what).toEqual({ ...rec, target: undefined, tailDirty: false });
    }
  });

  it('treats as corrupt every record decodeInodeRecord refuses', async () => {
    const good = encodeInodeRecord(file);
    const withByte = (buf: Buffer, at: number, value: number) => {
      const out = Buffer.from(buf);
      out[at] = value;
      return out;
    };
    const withNsec = (at: number, nsec: number) => {
      const out = Buffer.from(good);
      out.writeUInt32BE(nsec, at);
      return out;
    };
    const bad: Record<string, Buffer> = {
      'garbage text': Buffer.from('garbage'),
      'one byte short': good.subarray(0, 48),
      'one byte long': Buffer.concat([good, Buffer.from([0])]),
      'a parent flag with no parent': withByte(good, 0, 4),
      'an rdev flag with no rdev': withByte(good, 0, 2),
      'unknown flag 8': withByte(good, 0, 8),
      'unknown flag 128': withByte(good, 0, 0x80),
      'nanoseconds of 1e9': withNsec(27, 1e9),
      'nanoseconds of 2^32-1': withNsec(45, 2 ** 32 - 1),
    };
    // What idecode makes of each: `{ x = '1' }` (corrupt), as decodeInodeRecord does; not an inode, nor a script error.
    const outcomes: Record<string, string> = {};
    for (const [what, v] of Object.entries(bad)) {
      expect(() => decodeInodeRecord(v), what).toThrow(RangeError);
      outcomes[what] = await luaDecode(v).then(
        ({ fields }) => (fields.x === '1' && Object.keys(fields).length === 1 ? 'corrupt' : `read as ${JSON.stringify(fields)}`),
        (err: unknown) => `script error: ${String(err)}`,
      );
    }
    expect(outcomes).toEqual(Object.fromEntries(Object.keys(bad).map((what) => [what, 'corrupt'])));
  });
});

describe('times through a store', () => {
  it('keep the nanosecond before 1970 and in the year 2500', async () => {
    const s = await t.fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    for (const [atimeNs, mtimeNs] of [[-1n, -1_500_000_000n], [16_725_225_600n * NS + 1n, -2_147_483_649n * NS - 123n]] as const) {
      await s.setattr(f.ino, { atimeNs, mtimeNs });
      expect(await rawInode(t.raw, s.prefix, f.ino)).toMatchObject({ atimeNs, mtimeNs });
      expect(await s.getattr(f.ino)).toMatchObject({ atimeNs, mtimeNs });
    }
  });
});

describe('inode buckets', () => {
  it('keep the compact encoding (listpack) with inodes of every kind, a symlink\'s longest target apart', async () => {
    const s = await t.fresh();
    const k = keysFor(s.prefix);
    const d = await s.mkdir(s.rootIno, 'd', 0o755, owner);
    const link = await s.symlink(d.ino, 'l', 'x'.repeat(SYMLINK_MAX - 1), owner);
    await s.mknod(d.ino, 'c', FILE_TYPE_MODES.chr | 0o620, owner, 2 ** 32 - 1);
    await s.mknod(d.ino, 'p', FILE_TYPE_MODES.fifo | 0o644, owner);
    await s.mknod(d.ino, 's', FILE_TYPE_MODES.sock | 0o644, owner);
    const files = await Promise.all(Array.from({ length: 150 }, (_, i) => s.mknod(d.ino, `f${i}`, 0o644, owner)));
    await s.setattr(files[0]!.ino, { size: 2 ** 50 });
    for (let i = 1; i < 4; i++) await s.mkdir(d.ino, `sub${i}`, 0o755, owner);
    const buckets: string[] = [];
    for await (const batch of scanMatching(t.raw as unknown as RedisClient, k.metaPattern, 1000)) {
      buckets.push(...(batch as string[]).filter((key) => parseBucketKey(k, key) !== undefined));
    }
    expect(buckets.length).toBeGreaterThanOrEqual(3);
    for (const key of buckets) {
      expect(await t.raw.sendCommand(['OBJECT', 'ENCODING', key]), key).toBe('listpack');
      // Every record is one decodable value of at most 64 bytes, under its own inode number.
      const records = (await bin().hGetAll(key)) as unknown as Record<string, Buffer>;
      for (const [ino, v] of Object.entries(records)) {
        expect(v.length, ino).toBeLessThanOrEqual(64);
        expect(() => decodeInodeRecord(v), ino).not.toThrow();
        expect(k.inodes(Number(ino)), ino).toBe(key);
      }
    }
    expect(await t.raw.strLen(k.target(link.ino))).toBe(SYMLINK_MAX - 1);
  });
});
