/**
 * Reading an inode's packed record from TypeScript (layout 3: field `ino` of the bucket hash
 * `MP in:<ino / 64>`), for the reads that go without a script: a data window, a directory
 * listing's check, readlink. Records are binary: always read through the Buffer client.
 */
import { decodeInodeRecord, type InodeRecord } from '@redisfs/schema';
import { FsError } from '../errors.js';
import type { Ino } from '../types.js';
import type { StoreContext } from './context.js';

/** Sends the read of inode `ino`'s record now (it joins the connection's pipeline). */
export function fetchInode(ctx: StoreContext, ino: Ino): Promise<InodeRecord | undefined> {
  return ctx.bin.hGet(ctx.keys.inodes(ino), String(ino)).then((v) => (v == null ? undefined : decodeStored(ino, v)));
}

/** Inode `ino`'s record; ENOENT when there is none, EIO when it is corrupt. */
export async function readInode(ctx: StoreContext, ino: Ino): Promise<InodeRecord> {
  const rec = await fetchInode(ctx, ino);
  if (!rec) throw new FsError('ENOENT', `inode ${ino}`);
  return rec;
}

function decodeStored(ino: Ino, v: Buffer): InodeRecord {
  try {
    return decodeInodeRecord(v);
  } catch (err) {
    throw new FsError('EIO', `corrupt inode ${ino}`, { cause: err });
  }
}
