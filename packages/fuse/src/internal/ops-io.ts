/**
 * Handlers for file I/O: open, create, read, write, flush, fsync, release. Writes go to the open
 * file's write buffer (write-buffer.ts); reads first store the buffered writes of the same inode
 * (from any handle), so a reader always sees what was written through this mount. open reads
 * the file's attributes from the store, not the cache (close-to-open: see FsState.refresh).
 *
 * fuse-native hands read/write a Buffer over libfuse's memory that is detached once answered:
 * write data is copied before the first await, read data is copied in before answering.
 */
import { constants as fsConstants } from 'node:fs';
import type Fuse from 'fuse-native';
import { FuseOpError } from './errno.js';
import type { FsState } from './fs-state.js';
import { valueReply, voidReply } from './run-op.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC, O_SYNC, O_DSYNC } = fsConstants;
/** The access-mode bits of open flags (Node has no O_ACCMODE constant). */
const O_ACCMODE = O_RDONLY | O_WRONLY | O_RDWR;

function isWritable(flags: number): boolean {
  return (flags & O_ACCMODE) !== O_RDONLY;
}

export function ioOps(s: FsState): Fuse.Ops {
  return {
    open(path, flags, cb) {
      s.run('open', () => `${path} 0x${flags.toString(16)}`, valueReply(cb), async () => {
        const writable = isWritable(flags);
        if (writable || flags & O_TRUNC) s.assertWritable('open for writing');
        // Close-to-open: fresh attributes (another host may have rewritten the file), so the
        // getattr the kernel sends next (fstat, or a read past its old i_size) sees the new size.
        // The kernel drops its page cache of the file on this open (the reply sets no keep_cache).
        const attr = await s.refresh(path);
        if (writable && attr.type === 'dir') throw new FuseOpError('EISDIR', path);
        // libfuse 2 sends O_TRUNC as a truncate before open; honour it anyway if it arrives.
        if (writable && flags & O_TRUNC && attr.size > 0) await s.setattr(attr.ino, { size: 0 });
        const buffer = writable ? s.newBuffer(attr.ino) : undefined;
        return s.files.add({ ino: attr.ino, path, flags, buffer }).fd;
      });
    },

    create(path, mode, cb) {
      s.run('create', () => `${path} ${mode.toString(8)}`, valueReply(cb), async () => {
        const caller = s.caller(); // before any await
        s.assertWritable('create');
        const { dirPath, dir, name } = await s.resolveParent(path);
        const entry = s.newEntry(dir, caller, mode, false);
        const attr = await s.store.mknod(dir.ino, name, entry.mode, entry.owner);
        s.cache.invalidatePath(dirPath);
        s.cache.set(path, attr);
        s.xattrMisses.noteEmpty(attr.ino); // so security.capability, asked at each write, is answered at once
        s.publish(path, attr);
        return s.files.add({ ino: attr.ino, path, flags: O_RDWR, buffer: s.newBuffer(attr.ino) }).fd;
      });
    },

    read(path, fd, buf, len, pos, cb) {
      s.run<Buffer>(
        'read',
        () => `${path} ${len}@${pos}`,
        (errno, data) => cb(errno === 0 && data ? data.copy(buf, 0, 0, Math.min(len, data.length)) : errno),
        async () => {
          const { ino } = s.file(fd);
          await s.files.drainIno(ino);
          return s.store.read(ino, pos, len);
        },
      );
    },

    write(path, fd, buf, len, pos, cb) {
      s.run<number>(
        'write',
        () => `${path} ${len}@${pos}`,
        (errno) => cb(errno === 0 ? len : errno),
        async () => {
          const data = Buffer.from(buf.subarray(0, len)); // runs synchronously: buf is still valid
          s.assertWritable('write');
          const file = s.file(fd);
          if (!file.buffer) throw new FuseOpError('EBADF', `${path} is not open for writing`);
          await file.buffer.write(pos, data);
          // Its size as stat shows it may have grown: what the binding holds is outdated.
          s.unpublish(file.ino);
          s.republish(path);
          if (file.flags & (O_SYNC | O_DSYNC)) await file.buffer.flush();
          return len;
        },
      );
    },

    flush(path, fd, cb) {
      // Sent on every close(2) of a handle: its result is close's result.
      s.run('flush', path, voidReply(cb), async () => {
        await s.files.get(fd)?.buffer?.flush();
      });
    },

    fsync(path, datasync, fd, cb) {
      s.run('fsync', path, voidReply(cb), async () => {
        const file = s.files.get(fd);
        if (file) await file.buffer?.flush();
        else await s.files.drainIno((await s.resolve(path)).ino);
      });
    },

    release(path, fd, cb) {
      s.run('release', path, voidReply(cb), async () => {
        const file = s.files.get(fd);
        try {
          await file?.buffer?.flush();
        } finally {
          s.files.remove(fd);
        }
      });
    },
  };
}
