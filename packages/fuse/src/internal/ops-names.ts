/**
 * Handlers for the namespace: readdir, readlink, mknod, mkdir, symlink, link, unlink, rmdir,
 * rename. Each change invalidates the cached paths it affects (the entry, its inode's other
 * names, its parent directory whose size/nlink/mtime changed, and for a directory, its subtree).
 * Names and symlink targets are bytes: byte strings here, Buffers at the store (byte-names.ts).
 */
import { posix } from 'node:path';
import type Fuse from 'fuse-native';
import { fromBytes, toBytes } from './byte-names.js';
import { FuseOpError } from './errno.js';
import type { FsState } from './fs-state.js';
import { valueReply, voidReply } from './run-op.js';
import { direntStat } from './stat.js';

interface Listing {
  names: string[];
  stats: Partial<Fuse.Stat>[];
}

/** The names libfuse 2 gives a file removed while open (lib/fuse.c, hidden_name). */
const HIDDEN_NAME = /^\.fuse_hidden[0-9a-f]{16}$/;

export function nameOps(s: FsState): Fuse.Ops {
  /** Removes the name `path` from the store (unlink, and libfuse's hiding rename). */
  async function removeName(path: string): Promise<void> {
    const { dirPath, dir, name } = await s.resolveParent(path);
    try {
      await s.store.unlink(dir.ino, name);
    } finally {
      s.forgetPositive(path);
      s.cache.invalidatePath(path);
      s.settleParent(dirPath, dir.ino);
    }
  }

  return {
    readdir(path, cb) {
      // No offsets: libfuse 2's high-level API takes the whole listing in one call.
      s.run<Listing>(
        'readdir',
        path ?? '(removed)',
        (errno, listing) => (errno === 0 && listing ? cb(0, listing.names, listing.stats) : cb(errno)),
        async () => {
          // (A removed directory has no path: Linux refuses to list it before asking.)
          if (path === null) throw new FuseOpError('ENOENT', 'the directory was removed');
          const dir = await s.resolve(path);
          const [entries, parent] = await Promise.all([
            s.store.readdir(dir.ino),
            path === '/' ? dir : s.resolve(posix.dirname(path)).catch(() => dir),
          ]);
          const names = ['.', '..'];
          const stats = [direntStat(dir.ino, 'dir'), direntStat(parent.ino, 'dir')];
          const listed = entries.map((e) => ({ name: fromBytes(e.nameBytes), ino: e.ino }));
          entries.forEach((e, i) => {
            names.push(listed[i]!.name);
            stats.push(direntStat(e.ino, e.type));
          });
          await s.prefetchEntries(path, listed);
          s.noteListing(path, dir.ino, listed);
          return { names, stats };
        },
      );
    },

    readlink(path, cb) {
      s.run('readlink', path, valueReply(cb), async () => fromBytes(await s.store.readlinkBytes((await s.resolve(path)).ino)));
    },

    mknod(path, mode, dev, cb) {
      s.run('mknod', () => `${path} ${mode.toString(8)}`, voidReply(cb), async () => {
        const caller = s.caller(); // before any await
        s.assertWritable('mknod');
        const { dirPath, dir, name } = await s.resolveParent(path);
        const entry = s.newEntry(dir, caller, mode, false);
        const attr = await s.store.mknod(dir.ino, name, entry.mode, entry.owner, dev);
        s.settleParent(dirPath, dir.ino);
        s.cache.set(path, attr);
      });
    },

    mkdir(path, mode, cb) {
      s.run('mkdir', () => `${path} ${mode.toString(8)}`, voidReply(cb), async () => {
        const caller = s.caller(); // before any await
        s.assertWritable('mkdir');
        const { dirPath, dir, name } = await s.resolveParent(path);
        const entry = s.newEntry(dir, caller, mode & 0o7777, true);
        const attr = await s.store.mkdir(dir.ino, name, entry.mode, entry.owner);
        s.settleParent(dirPath, dir.ino);
        s.cache.set(path, attr);
      });
    },

    symlink(target, linkPath, cb) {
      s.run('symlink', () => `${linkPath} -> ${target}`, voidReply(cb), async () => {
        const caller = s.caller(); // before any await
        s.assertWritable('symlink');
        const { dirPath, dir, name } = await s.resolveParent(linkPath);
        const { owner } = s.newEntry(dir, caller, 0o777, false);
        const attr = await s.store.symlink(dir.ino, name, toBytes(target), owner);
        s.settleParent(dirPath, dir.ino);
        s.cache.set(linkPath, attr);
      });
    },

    link(src, dest, cb) {
      s.run('link', () => `${src} ${dest}`, voidReply(cb), async () => {
        s.assertWritable('link');
        const [existing, { dirPath, dir, name }] = await Promise.all([s.resolve(src), s.resolveParent(dest)]);
        const attr = await s.store.link(existing.ino, dir.ino, name);
        s.settleParent(dirPath, dir.ino);
        s.cache.update(attr);
        s.cache.set(dest, attr);
      });
    },

    unlink(path, cb) {
      s.run('unlink', path, voidReply(cb), async () => {
        s.assertWritable('unlink');
        // libfuse removing its hidden name at the last close: the store has no such name.
        if (s.hidden.delete(path)) return;
        await removeName(path);
      });
    },

    rmdir(path, cb) {
      s.run('rmdir', path, voidReply(cb), async () => {
        s.assertWritable('rmdir');
        const { dirPath, dir, name } = await s.resolveParent(path);
        try {
          await s.store.rmdir(dir.ino, name);
        } finally {
          s.forgetPositive(path, true);
          s.cache.invalidateTree(path);
          s.settleParent(dirPath, dir.ino);
        }
      });
    },

    rename(src, dest, cb) {
      s.run('rename', () => `${src} ${dest}`, voidReply(cb), async () => {
        s.assertWritable('rename');
        if (HIDDEN_NAME.test(posix.basename(dest)) && !s.hidden.has(src)) {
          // libfuse hiding a file removed while open here (see FsState.hidden): the removal.
          const { ino } = await s.resolve(src);
          await removeName(src);
          s.hidden.set(dest, ino);
          return;
        }
        const [from, to] = await Promise.all([s.resolveParent(src), s.resolveParent(dest)]);
        try {
          await s.store.rename(from.dir.ino, from.name, to.dir.ino, to.name);
        } finally {
          // A renamed directory moves its whole subtree; a replaced target loses a link.
          s.forgetPositive(src, true);
          s.cache.invalidateTree(src);
          s.cache.invalidateTree(dest);
          s.settleParent(from.dirPath, from.dir.ino);
          if (to.dir.ino !== from.dir.ino) s.settleParent(to.dirPath, to.dir.ino);
        }
      });
    },
  };
}
