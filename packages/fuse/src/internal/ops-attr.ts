/** Handlers for attributes: getattr, access, statfs, truncate, chmod, chown, utimens. */
import type { AttrChanges } from '@redisfs/store';
import type Fuse from 'fuse-native';
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
      s.run('getattr', path, valueReply(cb), async () => s.statOf(path, await s.resolve(path)));
    },

    fgetattr(path, fd, cb) {
      s.run('fgetattr', path, valueReply(cb), async () => {
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
