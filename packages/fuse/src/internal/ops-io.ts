/**
 * Handlers for file I/O: open, create, read, write, flush, fsync, release. Writes go to the open
 * file's write buffer (write-buffer.ts); reads first store the buffered writes of the same inode
 * (from any handle), so a reader always sees what was written through this mount, then go
 * through the handle's read-ahead (read-ahead.ts). open reads the file's attributes from the
 * store, not the cache (close-to-open: see FsState.refresh).
 *
 * fuse-native hands read/write a Buffer over libfuse's memory that is detached once answered:
 * write data is copied before the first await, read data is copied in before answering.
 */
import { constants as fsConstants } from 'node:fs';
import type Fuse from 'fuse-native';
import { MAX_FILE_SIZE, isFsError } from '@redisfs/store';
import { FuseOpError } from './errno.js';
import type { FsState } from './fs-state.js';
import type { OpenFile } from './open-files.js';
import { ReadAhead, ReadAheadTable } from './read-ahead.js';
import { valueReply, voidReply } from './run-op.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC, O_EXCL, O_SYNC, O_DSYNC } = fsConstants;
/** The access-mode bits of open flags (Node has no O_ACCMODE constant). */
const O_ACCMODE = O_RDONLY | O_WRONLY | O_RDWR;

function isWritable(flags: number): boolean {
  return (flags & O_ACCMODE) !== O_RDONLY;
}

export function ioOps(s: FsState): Fuse.Ops {
  /** Read-ahead per open handle (read-ahead.ts): never shared between opens. */
  const readAheads = new ReadAheadTable<OpenFile>();
  return {
    open(path, flags, cb) {
      s.run('open', () => `${path} 0x${flags.toString(16)}`, valueReply(cb), async () => {
        const writable = isWritable(flags);
        if (writable || flags & O_TRUNC) s.assertWritable('open for writing');
        // Close-to-open: fresh attributes (another host may have rewritten the file), so the
        // getattr the kernel sends next (fstat, or a read past its old i_size) sees the new size.
        // The kernel drops its page cache of the file on this open (the reply sets no keep_cache).
        let attr;
        try {
          attr = await s.openPath(path);
        } catch (err) {
          // The kernel opens what its dentry cache names: a name another host removed (within
          // the entry timeout) is gone here. ESTALE makes the kernel look the name up again and
          // retry once (do_filp_open): the caller then gets ENOENT, or with O_CREAT a new file,
          // as if its cache had been fresh (SQLite recreating its journal from two hosts).
          if (isFsError(err, 'ENOENT')) {
            s.forgetPositive(path); // so that the kernel's lookup in its retry is answered ENOENT
            throw new FuseOpError('ESTALE', `${path} was removed by another host`);
          }
          throw err;
        }
        const held = attr.type === 'file' && s.store.sessionId !== undefined && !s.hidden.has(path);
        try {
          s.publish(path, attr); // the getattr the kernel sends next is answered by the binding
          if (writable && attr.type === 'dir') throw new FuseOpError('EISDIR', path);
          // libfuse 2 sends O_TRUNC as a truncate before open; honour it anyway if it arrives.
          if (writable && flags & O_TRUNC && attr.size > 0) await s.setattr(attr.ino, { size: 0 });
        } catch (err) {
          if (held) s.releaseHold(attr.ino);
          throw err;
        }
        return s.addFile({ ino: attr.ino, path, flags, buffer: writable ? s.newBuffer(attr.ino) : undefined, held });
      });
    },

    create(path, mode, flags, cb) {
      s.run('create', () => `${path} ${mode.toString(8)} 0x${flags.toString(16)}`, valueReply(cb), async () => {
        const caller = s.caller(); // before any await
        s.assertWritable('create');
        const { dirPath, dir, name } = await s.resolveParent(path);
        const entry = s.newEntry(dir, caller, mode, false);
        // Without O_EXCL, a name another host created since this kernel looked it up is opened,
        // as open(2) does (POSIX): the kernel saw no such name, so it sent create, not open.
        const { attr, created } = await s.store.createOpen(dir.ino, name, entry.mode, entry.owner, { exclusive: (flags & O_EXCL) !== 0 });
        const held = s.store.sessionId !== undefined;
        try {
          s.settleParent(dirPath, dir.ino);
          if (!created) {
            // The kernel checked the directory only: check the file as open(2) would.
            if (!mayOpen(attr, caller, flags)) throw new FuseOpError('EACCES', path);
            if (flags & O_TRUNC && isWritable(flags) && attr.size > 0) {
              const truncated = await s.setattr(attr.ino, { size: 0 });
              s.remember(path, truncated);
            } else {
              s.remember(path, attr);
            }
          } else {
            s.xattrMisses.noteEmpty(attr.ino); // so security.capability, asked at each write, is answered at once
            s.remember(path, attr);
          }
        } catch (err) {
          if (held) s.releaseHold(attr.ino);
          throw err;
        }
        return s.addFile({ ino: attr.ino, path, flags: created ? O_RDWR : flags, buffer: s.newBuffer(attr.ino), held });
      });
    },

    read(path, fd, buf, len, pos, cb) {
      s.run<Buffer>(
        'read',
        () => `${path} ${len}@${pos}`,
        (errno, data) => cb(errno === 0 && data ? data.copy(buf, 0, 0, Math.min(len, data.length)) : errno),
        async () => {
          const file = s.file(fd);
          const { ino } = file;
          await s.files.drainIno(ino);
          const ahead = readAheads.get(
            file,
            () => new ReadAhead((offset, length) => s.store.read(ino, offset, length), { counts: s.env.counts?.readAhead }),
            (f) => s.files.get(f.fd) === f,
          );
          // The attribute cache's epoch moves on every change this mount makes (stored writes
          // included), so read-ahead never answers with bytes older than one.
          return ahead.read(pos, len, s.cache.epoch);
        },
      );
    },

    write(path, fd, buf, len, pos, cb) {
      s.run<number>(
        'write',
        () => `${path} ${len}@${pos}`,
        (errno, written) => cb(errno === 0 ? (written ?? len) : errno),
        async () => {
          // The largest file size, checked as a local filesystem checks its own (the kernel's
          // generic_write_check_limits): a write that starts at the limit fails with EFBIG, one
          // that crosses it is cut short to what fits, so the caller's next write gets EFBIG.
          // Never accepted into the buffer and failed later at close, losing what fitted.
          const fits = Math.max(0, Math.min(len, MAX_FILE_SIZE - pos));
          const data = Buffer.from(buf.subarray(0, fits)); // runs synchronously: buf is still valid
          s.markClean(fd, false); // before this write is answered, so the next close flushes
          s.assertWritable('write');
          const file = s.file(fd);
          if (!file.buffer) throw new FuseOpError('EBADF', `${path} is not open for writing`);
          if (fits === 0 && len > 0) throw new FuseOpError('EFBIG', `${path}: files are limited to ${MAX_FILE_SIZE} bytes`);
          await file.buffer.write(pos, data);
          s.markClean(fd, false); // again: a flush that ended meanwhile may have marked it clean
          // Its size as stat shows it may have grown: what the binding holds is outdated.
          s.outdate(file.ino);
          s.republish(path);
          if (file.flags & (O_SYNC | O_DSYNC)) await file.buffer.flush({ fsync: true });
          return fits;
        },
      );
    },

    flush(path, fd, cb) {
      // Sent on every close(2) of a handle: its result is close's result.
      s.run('flush', path ?? '(removed)', voidReply(cb), async () => {
        const file = s.files.get(fd);
        await file?.buffer?.flush();
        if (file) s.markCleanIfIdle(file);
      });
    },

    fsync(path, datasync, fd, cb) {
      s.run('fsync', path ?? '(removed)', voidReply(cb), async () => {
        const file = s.files.get(fd);
        if (file) await file.buffer?.flush({ fsync: true });
        else await s.files.drainIno((await s.resolve(path)).ino);
      });
    },

    release(path, fd, flockOwner, cb) {
      s.run('release', path ?? '(removed)', voidReply(cb), async () => {
        const file = s.files.get(fd);
        s.markClean(fd, false); // the number may be given to another handle next
        try {
          await file?.buffer?.flush();
        } finally {
          s.files.remove(fd);
          if (file) await s.closeFile(file, flockOwner);
        }
      });
    },
  };
}

/** Whether the caller may open an existing file with `flags` (owner, group or other bits; root may). */
function mayOpen(attr: { mode: number; uid: number; gid: number }, caller: { uid: number; gid: number }, flags: number): boolean {
  if (caller.uid === 0) return true;
  // (The caller's supplementary groups are not known here: only its primary group counts.)
  const shift = caller.uid === attr.uid ? 6 : caller.gid === attr.gid ? 3 : 0;
  const bits = (attr.mode >> shift) & 7;
  const access = flags & O_ACCMODE;
  const wantRead = access === O_RDONLY || access === O_RDWR;
  const wantWrite = access === O_WRONLY || access === O_RDWR || (flags & O_TRUNC) !== 0;
  return (!wantRead || (bits & 4) !== 0) && (!wantWrite || (bits & 2) !== 0);
}
