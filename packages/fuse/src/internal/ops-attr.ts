/** Handlers for attributes: getattr, access, statfs, truncate, chmod, chown, utimens. */
import { isFsError, type AttrChanges } from '@redisfs/store';
import type Fuse from 'fuse-native';
import { FuseOpError } from './errno.js';
import type { FsState } from './fs-state.js';
import { valueReply, voidReply } from './run-op.js';
import { toStatfs } from './stat.js';

/** chown(2) passes -1 (as unsigned 32 bits: 0xffffffff) for "leave unchanged". */
const KEEP_ID = 0xffffffff;

function isKeep(id: number): boolean {
  return id === KEEP_ID || id === -1;
}

export function attrOps(s: FsState): Fuse.Ops {
  return {
    init(cb) {
      s.run('init', '', voidReply(cb), () => undefined);
    },

    access(path, mode, cb) {
      // default_permissions makes the kernel check permissions; this only confirms existence.
      s.run('access', path, voidReply(cb), async () => {
        await s.resolve(path);
      });
    },

    statfs(path, cb) {
      s.run('statfs', path, valueReply(cb), async () =>
        toStatfs(await s.store.statfs(), { readOnly: s.readOnly, fsid: s.fsid }),
      );
    },

    getattr(path, cb) {
      s.run('getattr', path, valueReply(cb), async () => {
        try {
          return s.statOf(path, await s.resolve(path));
        } catch (err) {
          if (!isFsError(err, 'ENOENT')) throw err;
          // A name the kernel may hold as a stale dentry (a file next to one a lock was just
          // granted on, since removed by another host: FsState.staleOnce). ESTALE, once, makes it
          // look the name up again and retry (vfs_statx, do_filp_open, faccessat…), so
          // open(O_CREAT) creates it instead of failing in its permission check with ENOENT.
          if (s.staleOnce(path)) throw new FuseOpError('ESTALE', `${path} was removed by another host`);
          // (fstat(2) of a file another host removed, by a process that has it open, also lands
          // here: the kernel asks by path, without the handle, so it answers ENOENT once the cache
          // timeout has passed. Answering for the open file instead would make the name look
          // present to that process's own open(O_CREAT) of it, which could then not create it.)
          throw err;
        }
      });
    },

    fgetattr(path, fd, cb) {
      s.run('fgetattr', path ?? '(removed)', valueReply(cb), async () => {
        const file = s.files.get(fd);
        return s.statOf(path, file ? await s.attrOfIno(file.ino) : await s.resolve(path));
      });
    },

    truncate(path, size, cb) {
      s.run('truncate', () => `${path} ${size}`, voidReply(cb), async () => {
        s.assertWritable('truncate');
        await s.setattr((await s.resolve(path)).ino, { size }, path);
      });
    },

    ftruncate(path, fd, size, cb) {
      s.run('ftruncate', () => `${path} ${size}`, voidReply(cb), async () => {
        s.assertWritable('ftruncate');
        await s.setattr(s.file(fd).ino, { size });
      });
    },

    chmod(path, mode, cb) {
      s.run('chmod', () => `${path} ${mode.toString(8)}`, voidReply(cb), async () => {
        s.assertWritable('chmod');
        await s.setattr((await s.resolve(path)).ino, { mode: mode & 0o7777 }, path);
      });
    },

    chown(path, uid, gid, cb) {
      s.run('chown', () => `${path} ${uid}:${gid}`, voidReply(cb), async () => {
        s.assertWritable('chown');
        const changes: AttrChanges = {};
        if (!isKeep(uid)) changes.uid = uid;
        if (!isKeep(gid)) changes.gid = gid;
        const attr = await s.resolve(path);
        if (changes.uid !== undefined || changes.gid !== undefined) await s.setattr(attr.ino, changes, path);
      });
    },

    utimens(path, atime, mtime, cb) {
      s.run('utimens', path, voidReply(cb), async () => {
        s.assertWritable('utimens');
        const changes: AttrChanges = {};
        if (atime !== undefined) changes.atimeNs = atime;
        if (mtime !== undefined) changes.mtimeNs = mtime;
        const attr = await s.resolve(path);
        // Both UTIME_OMIT: nothing changes, not even ctime (utimensat(2)).
        if (atime !== undefined || mtime !== undefined) await s.setattr(attr.ino, changes, path);
      });
    },
  };
}
