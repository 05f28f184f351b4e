/** Decoding inode replies into Attr; a corrupt record becomes EIO, never a crash. */
import { decodeInode, fileTypeOfMode } from '@redisfs/schema';
import { FsError } from '../errors.js';
import type { Attr, Ino } from '../types.js';

/** A flat [field, value, …] array (HGETALL inside Lua) as a record. */
export function pairsToRecord(flat: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(flat)) return out;
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

/** Builds an Attr from an inode hash; throws FsError EIO when the record is corrupt. */
export function toAttr(ino: Ino, hash: Record<string, string>): Attr {
  let rec;
  try {
    rec = decodeInode(hash);
  } catch (err) {
    throw new FsError('EIO', `corrupt inode ${ino}`, { cause: err });
  }
  const type = fileTypeOfMode(rec.mode);
  if (!type) throw new FsError('EIO', `corrupt inode ${ino}: unknown file type in mode ${rec.mode}`);
  return {
    ino,
    type,
    mode: rec.mode,
    uid: rec.uid,
    gid: rec.gid,
    size: rec.size,
    nlink: rec.nlink,
    rdev: rec.rdev,
    atimeNs: rec.atimeNs,
    mtimeNs: rec.mtimeNs,
    ctimeNs: rec.ctimeNs,
    // k: sectors the file's stored blocks hold, computed by the scripts that read attributes.
    blocks: hash.k !== undefined && /^\d+$/.test(hash.k) ? Number(hash.k) : Math.ceil(rec.size / 512),
    generation: rec.generation,
  };
}

/** Decodes a script's `{ino, HGETALL}` reply. */
export function replyToAttr(reply: unknown): Attr {
  if (!Array.isArray(reply) || reply.length < 2) throw new FsError('EIO', 'unexpected script reply');
  const ino = Number(reply[0]);
  return toAttr(ino, pairsToRecord(reply[1]));
}

const WALL_DRIFT_NS = 1_000_000_000n;
let baseWall = BigInt(Date.now()) * 1_000_000n;
let baseMono = process.hrtime.bigint();

/**
 * The current time in nanoseconds since the epoch, as a decimal string: the wall clock at a base
 * point plus monotonic time since, so successive calls never go backwards within a process. It is
 * re-based when the wall clock moved more than a second away (NTP step, suspend).
 */
export function nowNs(): string {
  const mono = process.hrtime.bigint();
  let now = baseWall + (mono - baseMono);
  const wall = BigInt(Date.now()) * 1_000_000n;
  if (now - wall > WALL_DRIFT_NS || wall - now > WALL_DRIFT_NS) {
    baseWall = wall;
    baseMono = mono;
    now = wall;
  }
  return now.toString();
}
