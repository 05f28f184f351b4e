/**
 * Layout 3's packed inode record: the value of one inode's field in its bucket hash
 * `MP in:<ino / 64>`. Packing many inodes per key is what keeps an empty file under 150 bytes of
 * Redis memory: a key of its own costs about 90 bytes (dictionary entry, key name, object header)
 * before any field, while a field of a small hash (a listpack, while every value is ≤ 64 bytes
 * and the hash has ≤ 128 fields: Redis's defaults) costs its bytes and two more.
 *
 * Big-endian, 49 bytes, then the optional fields the flags name:
 *
 * | bytes | field |
 * | --- | --- |
 * | 1 | flags: 1 = `z` (tail may hold bytes past the size), 2 = rdev follows, 4 = parent follows |
 * | 2 | mode |
 * | 4 + 4 | uid, gid |
 * | 4 | nlink |
 * | 7 | size |
 * | (5 + 4) × 3 | atime, mtime, ctime: seconds (signed) and nanoseconds |
 * | 4 | rdev (flag 2) |
 * | 7 | parent directory's inode (flag 4: directories) |
 *
 * A symlink's target is not in the record (it would push the value past 64 bytes, and one such
 * value turns the whole bucket into a hash table): it is the string key `MP l:<ino>`. Lua reads
 * and writes records with {@link LUA_INODE_CODEC}, which must stay the same format.
 */
import type { InodeRecord } from './records.js';

/** Inodes per bucket hash: inode `ino` lives in bucket `floor(ino / 64)`, under field `ino`. */
export const INODES_PER_BUCKET = 64;

/** The bucket (hash `MP in:<bucket>`) that holds inode `ino`. */
export function inodeBucket(ino: number): number {
  return Math.floor(ino / INODES_PER_BUCKET);
}

const FLAG_TAIL_DIRTY = 1;
const FLAG_RDEV = 2;
const FLAG_PARENT = 4;
/** Bytes of the fixed part of a record. */
export const INODE_RECORD_HEAD = 49;
const NS = 1_000_000_000n;
const U32 = 2 ** 32;

function writeU56(buf: Buffer, value: number, at: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`inode record: ${value} is no unsigned integer`);
  buf.writeUIntBE(Math.floor(value / U32), at, 3);
  buf.writeUInt32BE(value % U32, at + 3);
}

function readU56(buf: Buffer, at: number): number {
  return buf.readUIntBE(at, 3) * U32 + buf.readUInt32BE(at + 3);
}

function writeTime(buf: Buffer, ns: bigint, at: number): void {
  // Floor division, so that nanoseconds are always 0..999,999,999 (times before 1970 too).
  let sec = ns / NS;
  if (ns < 0n && sec * NS !== ns) sec -= 1n;
  buf.writeIntBE(Number(sec), at, 5);
  buf.writeUInt32BE(Number(ns - sec * NS), at + 5);
}

function readTime(buf: Buffer, at: number): bigint {
  const nsec = buf.readUInt32BE(at + 5);
  if (nsec >= 1e9) throw new RangeError(`inode record: nanoseconds ${nsec} out of range`);
  return BigInt(buf.readIntBE(at, 5)) * NS + BigInt(nsec);
}

/** Packs an inode (its target, if any, is stored apart: not in the record). */
export function encodeInodeRecord(rec: InodeRecord): Buffer {
  const hasRdev = rec.rdev !== 0;
  const hasParent = rec.parent !== undefined;
  const buf = Buffer.alloc(INODE_RECORD_HEAD + (hasRdev ? 4 : 0) + (hasParent ? 7 : 0));
  buf.writeUInt8((rec.tailDirty ? FLAG_TAIL_DIRTY : 0) | (hasRdev ? FLAG_RDEV : 0) | (hasParent ? FLAG_PARENT : 0), 0);
  buf.writeUInt16BE(rec.mode, 1);
  buf.writeUInt32BE(rec.uid, 3);
  buf.writeUInt32BE(rec.gid, 7);
  buf.writeUInt32BE(rec.nlink, 11);
  writeU56(buf, rec.size, 15);
  writeTime(buf, rec.atimeNs, 22);
  writeTime(buf, rec.mtimeNs, 31);
  writeTime(buf, rec.ctimeNs, 40);
  let at = INODE_RECORD_HEAD;
  if (hasRdev) {
    buf.writeUInt32BE(rec.rdev, at);
    at += 4;
  }
  if (hasParent) writeU56(buf, rec.parent!, at);
  return buf;
}

/**
 * Unpacks a record (`target` is undefined: read `MP l:<ino>` for it); throws a RangeError when it
 * is corrupt (too short or too long for its flags, unknown flags, nanoseconds out of range).
 */
/**
 * The fixed fields of a record that need no check (mode, owner, link count, size), read from
 * its first INODE_RECORD_HEAD bytes: decodeInodeRecord's, and what fsck can still tell of a
 * record that does not decode.
 */
export function inodeRecordFixed(buf: Buffer): Pick<InodeRecord, 'mode' | 'uid' | 'gid' | 'nlink' | 'size'> {
  return {
    mode: buf.readUInt16BE(1),
    uid: buf.readUInt32BE(3),
    gid: buf.readUInt32BE(7),
    nlink: buf.readUInt32BE(11),
    size: readU56(buf, 15),
  };
}

export function decodeInodeRecord(buf: Buffer): InodeRecord {
  if (buf.length < INODE_RECORD_HEAD) throw new RangeError(`inode record of ${buf.length} bytes, expected at least ${INODE_RECORD_HEAD}`);
  const flags = buf.readUInt8(0);
  if (flags & ~(FLAG_TAIL_DIRTY | FLAG_RDEV | FLAG_PARENT)) throw new RangeError(`inode record: unknown flags ${flags}`);
  const want = INODE_RECORD_HEAD + (flags & FLAG_RDEV ? 4 : 0) + (flags & FLAG_PARENT ? 7 : 0);
  if (buf.length !== want) throw new RangeError(`inode record of ${buf.length} bytes, its flags say ${want}`);
  let at = INODE_RECORD_HEAD;
  let rdev = 0;
  if (flags & FLAG_RDEV) {
    rdev = buf.readUInt32BE(at);
    at += 4;
  }
  return {
    ...inodeRecordFixed(buf),
    atimeNs: readTime(buf, 22),
    mtimeNs: readTime(buf, 31),
    ctimeNs: readTime(buf, 40),
    rdev,
    target: undefined,
    generation: 1,
    parent: flags & FLAG_PARENT ? readU56(buf, at) : undefined,
    tailDirty: (flags & FLAG_TAIL_DIRTY) !== 0,
  };
}

/**
 * The record codec in Lua, for the scripts (same format as above). A record is a table of
 * decimal strings keyed by layout 2's inode hash fields (`m u g s n a t c`, and `r p z` when
 * set): scripts read and change fields as they did the hash's. `idecode` gives `{ x = '1' }` for
 * a corrupt record (present, but no field reads). Times are decimal nanosecond strings.
 */
export const LUA_INODE_CODEC = `
local IREC_HEAD = '>BHI4I4I4I7i5I4i5I4i5I4'
local function dec(x) return string.format('%d', x) end
-- A decimal nanosecond string → seconds (floor) and nanoseconds 0..999999999.
local function ns_parse(v)
  v = tostring(v)
  local neg = string.sub(v, 1, 1) == '-'
  if neg then v = string.sub(v, 2) end
  local n = #v
  local sec = n > 9 and tonumber(string.sub(v, 1, n - 9)) or 0
  local nsec = tonumber(string.sub(v, math.max(1, n - 8))) or 0
  if neg then
    if nsec > 0 then sec, nsec = -sec - 1, 1000000000 - nsec else sec = -sec end
  end
  return sec, nsec
end
-- The same, remembering the last one: a script writes one time into several fields.
local ns_last, ns_sec, ns_nsec
local function ns_split(v)
  if v ~= ns_last then
    ns_last = v
    ns_sec, ns_nsec = ns_parse(v)
  end
  return ns_sec, ns_nsec
end
local function ns_join(sec, nsec)
  local neg = sec < 0
  if neg then
    sec = -sec
    if nsec > 0 then sec, nsec = sec - 1, 1000000000 - nsec end
  end
  local s = sec == 0 and dec(nsec) or (dec(sec) .. string.format('%09d', nsec))
  return neg and ('-' .. s) or s
end
local function idecode(v)
  -- Corrupt (as decodeInodeRecord judges): unknown flags, a length its flags do not give.
  local f = string.byte(v, 1)
  if not f or f > 7 then return { x = '1' } end
  if #v ~= 49 + (bit.band(f, 2) ~= 0 and 4 or 0) + (bit.band(f, 4) ~= 0 and 7 or 0) then return { x = '1' } end
  local _, m, u, g, n, s, as, an, ts, tn, cs, cn, pos = struct.unpack(IREC_HEAD, v)
  if an >= 1000000000 or tn >= 1000000000 or cn >= 1000000000 then return { x = '1' } end
  local r = { m = dec(m), u = dec(u), g = dec(g), n = dec(n), s = dec(s),
    a = ns_join(as, an), t = ns_join(ts, tn), c = ns_join(cs, cn) }
  if bit.band(f, 1) ~= 0 then r.z = '1' end
  if bit.band(f, 2) ~= 0 then
    local rdev
    rdev, pos = struct.unpack('>I4', v, pos)
    r.r = dec(rdev)
  end
  if bit.band(f, 4) ~= 0 then r.p = dec((struct.unpack('>I7', v, pos))) end
  return r
end
local function iencode(r)
  local as, an = ns_split(r.a or '0')
  local ts, tn = ns_split(r.t or '0')
  local cs, cn = ns_split(r.c or '0')
  local rdev, parent = tonumber(r.r or '0') or 0, tonumber(r.p or '')
  local f = (r.z and 1 or 0) + (rdev ~= 0 and 2 or 0) + (parent and 4 or 0)
  local v = struct.pack(IREC_HEAD, f, tonumber(r.m) or 0, tonumber(r.u) or 0, tonumber(r.g) or 0,
    tonumber(r.n) or 0, tonumber(r.s) or 0, as, an, ts, tn, cs, cn)
  if rdev ~= 0 then v = v .. struct.pack('>I4', rdev) end
  if parent then v = v .. struct.pack('>I7', parent) end
  return v
end
-- Where each fixed field of a record lies: 1-based position, struct format, bytes. Scripts read
-- and rewrite these in place (iget, iset), without decoding the whole record.
-- (One flat table: scripts build these tables at every call.)
local IREC_AT = { m = 2, u = 4, g = 8, n = 12, s = 16, a = 23, t = 32, c = 41 }
local function irec_fmt(f)
  if f == 'a' or f == 't' or f == 'c' then return '>i5I4', 9 end
  if f == 'm' then return '>H', 2 end
  if f == 's' then return '>I7', 7 end
  return '>I4', 4
end
-- Whether a record's flags and length are right (what scripts check before using it, cheaply;
-- nanoseconds out of range are caught where a time is decoded: idecode, decodeInode).
local function ivalid(v)
  local f = string.byte(v, 1)
  return f ~= nil and f <= 7 and #v == 49 + (bit.band(f, 2) ~= 0 and 4 or 0) + (bit.band(f, 4) ~= 0 and 7 or 0)
end
-- One fixed field of a well-formed record, as a decimal string.
local function ifield(v, f)
  local at = IREC_AT[f]
  local format, len = irec_fmt(f)
  if len == 9 then
    local sec, nsec = struct.unpack(format, v, at)
    return ns_join(sec, nsec)
  end
  return dec((struct.unpack(format, v, at)))
end
-- The record with one fixed field replaced by a decimal string's value.
local function ipatch(v, f, value)
  local at = IREC_AT[f]
  local format, len = irec_fmt(f)
  local bytes
  if len == 9 then bytes = struct.pack(format, ns_split(value)) else bytes = struct.pack(format, tonumber(value) or 0) end
  return string.sub(v, 1, at - 1) .. bytes .. string.sub(v, at + len)
end
-- A well-formed record as a script's reply lists it: field names and numbers (integer replies),
-- with each time as seconds and nanoseconds (as, an, ts, tn, cs, cn), which decodeInode joins.
-- Only size and parent are formatted: this is what every change replies, so it is kept cheap. A corrupt
-- record gives the field x, which decodeInode refuses. Also returns the mode and the size.
local function ireply(v)
  if not ivalid(v) then return { 'x', '1' } end
  local f, m, u, g, n, s, as, an, ts, tn, cs, cn, pos = struct.unpack(IREC_HEAD, v)
  -- Size and parent as text: node-redis reads an integer reply past about 2^53 - 60 inexactly.
  local out = { 'm', m, 'u', u, 'g', g, 'n', n, 's', dec(s), 'as', as, 'an', an, 'ts', ts, 'tn', tn, 'cs', cs, 'cn', cn }
  if bit.band(f, 2) ~= 0 then
    local rdev
    rdev, pos = struct.unpack('>I4', v, pos)
    out[#out + 1] = 'r'
    out[#out + 1] = rdev
  end
  if bit.band(f, 4) ~= 0 then
    out[#out + 1] = 'p'
    out[#out + 1] = dec((struct.unpack('>I7', v, pos)))
  end
  return out, m, s
end
`;
