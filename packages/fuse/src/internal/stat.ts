/** Store attributes → the stat / statvfs shapes fuse-native expects. */
import { constants as fsConstants } from 'node:fs';
import type { Attr, FileType, FsStats, Ino } from '@redisfs/store';
import type Fuse from 'fuse-native';

/** S_IFMT bits of each file type (d_type in readdir comes from these). */
export const TYPE_BITS: Record<FileType, number> = {
  file: fsConstants.S_IFREG,
  dir: fsConstants.S_IFDIR,
  symlink: fsConstants.S_IFLNK,
  chr: fsConstants.S_IFCHR,
  blk: fsConstants.S_IFBLK,
  fifo: fsConstants.S_IFIFO,
  sock: fsConstants.S_IFSOCK,
};

/**
 * stat(2) of an inode. `pendingEnd` is the end of data written through this mount but not yet
 * stored: the size reported is at least that, so the kernel never shrinks a file being written.
 */
export function toStat(attr: Attr, blksize: number, pendingEnd = -1): Fuse.Stat {
  const size = Math.max(attr.size, pendingEnd);
  return {
    mode: attr.mode,
    uid: attr.uid,
    gid: attr.gid,
    size,
    nlink: attr.nlink,
    rdev: attr.rdev,
    ino: attr.ino,
    blocks: size === attr.size ? attr.blocks : Math.ceil(size / 512),
    blksize,
    atime: attr.atimeNs,
    mtime: attr.mtimeNs,
    ctime: attr.ctimeNs,
  };
}

/** What readdir tells the kernel about an entry: its inode number and type. */
export function direntStat(ino: Ino, type: FileType): Partial<Fuse.Stat> {
  return { ino, mode: TYPE_BITS[type] };
}

/** Reported capacity when Redis has no maxmemory: 1 PiB. */
export const DEFAULT_CAPACITY_BYTES = 2 ** 50;
const UINT32_MAX = 0xffffffff;
/** ST_RDONLY of statvfs(3). */
const ST_RDONLY = 1;

/** A stable 32-bit id for a filesystem (FNV-1a of its prefix), for f_fsid. */
export function fsidOf(prefix: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(prefix)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * statvfs(3). Capacity is Redis's maxmemory, or the machine's memory when Redis has no limit
 * (1 PiB when neither is known); "used" is the memory Redis holds (used_memory), so `df` shows
 * what is stored (holes and compression included) and a full Redis shows 100%. fuse-native
 * passes each field as 32 bits, so the fragment size grows (by powers of two from the block
 * size) until the block count fits.
 */
export function toStatfs(stats: FsStats, options: { readOnly: boolean; fsid: number }): Fuse.Statfs {
  const total = stats.maxBytes > 0 ? stats.maxBytes : DEFAULT_CAPACITY_BYTES;
  let frsize = Math.max(512, stats.blockSize);
  while (Math.floor(total / frsize) > UINT32_MAX) frsize *= 2;
  const blocks = Math.floor(total / frsize);
  const bfree = Math.max(0, blocks - Math.ceil(stats.bytesUsed / frsize));
  const files = UINT32_MAX;
  const ffree = Math.max(0, files - stats.inodes);
  return {
    bsize: stats.blockSize,
    frsize,
    blocks,
    bfree,
    bavail: bfree,
    files,
    ffree,
    favail: ffree,
    fsid: options.fsid,
    flag: options.readOnly ? ST_RDONLY : 0,
    namemax: stats.nameMax,
  };
}
