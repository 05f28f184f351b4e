/**
 * Reading what holds names: directory pages and symlink targets. Names and targets are bytes
 * (any byte but '/' and NUL in a name), so they are read through the Buffer view of the client
 * and never decoded: a UTF-8 decoding would merge every name it cannot decode into one U+FFFD.
 */
import { readInode } from './inode-read.js';
import { decodeDirEntry, fileTypeOfMode } from '@redisfs/schema';
import { FsError } from '../errors.js';
import type { DirPage, DirEntry, Ino } from '../types.js';
import type { StoreContext } from './context.js';
import { showName } from './names.js';

/** One HSCAN page of directory `ino` (see InodeApi.readdirPage); corrupt entries are skipped with a warning. */
export async function readDirPage(ctx: StoreContext, ino: Ino, cursor: string, count: number): Promise<DirPage> {
  const reply = await ctx.bin.hScan(ctx.keys.dir(ino), cursor, { COUNT: count });
  const entries: DirEntry[] = [];
  for (const { field, value } of reply.entries) {
    try {
      entries.push({ name: field.toString('utf8'), nameBytes: field, ...decodeDirEntry(value.toString('latin1')) });
    } catch (err) {
      ctx.warn(`directory ${ino}: skipping corrupt entry '${showName(field)}'`, err);
    }
  }
  const next = reply.cursor.toString();
  // No entries hash: an empty directory, or no directory at all.
  if (cursor === '0' && next === '0' && entries.length === 0) await assertDir(ctx, ino);
  return { entries, cursor: next };
}

async function assertDir(ctx: StoreContext, ino: Ino): Promise<void> {
  const rec = await readInode(ctx, ino);
  if (fileTypeOfMode(rec.mode) !== 'dir') throw new FsError('ENOTDIR', `inode ${ino}`);
}

/** The exact bytes of symlink `ino`'s target. */
export async function readLinkTarget(ctx: StoreContext, ino: Ino): Promise<Buffer> {
  // One round trip: both reads go out together.
  const [rec, target] = await Promise.all([readInode(ctx, ino), ctx.bin.get(ctx.keys.target(ino))]);
  if (fileTypeOfMode(rec.mode) !== 'symlink' || target == null) throw new FsError('EINVAL', `inode ${ino} is not a symlink`);
  return target;
}
