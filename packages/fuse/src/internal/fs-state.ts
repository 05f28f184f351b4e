/**
 * What every handler of one mount shares: the store, the attribute cache, the open-file table,
 * and the helpers that tie them together (path resolution through the cache, setattr that first
 * stores buffered writes, stat with the size of data not yet stored).
 */
import { posix } from 'node:path';
import type { Attr, AttrChanges, Ino, Owner, Store } from '@redisfs/store';
import type Fuse from 'fuse-native';
import { AttrCache } from './attr-cache.js';
import { FuseOpError } from './errno.js';
import { OpenFiles, type OpenFile } from './open-files.js';
import { runOp, type Detail, type OpEnv, type Reply } from './run-op.js';
import { fsidOf, toStat } from './stat.js';
import { WriteBuffer } from './write-buffer.js';
import { XattrMissCache } from './xattr-miss-cache.js';

/** set-group-ID bit: a directory that has it gives new entries its group (and subdirs the bit). */
const S_ISGID = 0o2000;

export interface FsStateOptions {
  store: Store;
  readOnly: boolean;
  cacheTimeoutMs: number;
  env: OpEnv;
  /** The caller of the current request (fuse.context); null outside a handler's first tick. */
  caller: () => Fuse.Caller | null;
}

export class FsState {
  readonly store: Store;
  readonly readOnly: boolean;
  readonly env: OpEnv;
  readonly cache: AttrCache;
  readonly xattrMisses: XattrMissCache;
  readonly files = new OpenFiles();
  readonly fsid: number;
  private readonly callerOf: () => Fuse.Caller | null;

  constructor(options: FsStateOptions) {
    this.store = options.store;
    this.readOnly = options.readOnly;
    this.env = options.env;
    this.cache = new AttrCache(options.cacheTimeoutMs);
    this.xattrMisses = new XattrMissCache(options.cacheTimeoutMs);
    this.fsid = fsidOf(options.store.prefix);
    this.callerOf = options.caller;
  }

  /** Runs one operation through the common wrapper (see run-op.ts). */
  run<T>(name: string, detail: Detail, reply: Reply<T>, fn: () => Promise<T> | T): void {
    runOp(this.env, name, detail, fn, reply);
  }

  /**
   * uid/gid of the calling process. Only valid before the operation's first await (runOp calls
   * the operation synchronously, so reading it first thing inside is fine).
   */
  caller(): Owner {
    const c = this.callerOf();
    return { uid: c?.uid ?? 0, gid: c?.gid ?? 0 };
  }

  /** Refuses a change on a read-only mount before anything reaches the store. */
  assertWritable(what: string): void {
    if (this.readOnly) throw new FuseOpError('EROFS', `${what}: read-only mount`);
  }

  /** Attributes of `path` (symlinks not followed): cached, else one store round trip. */
  async resolve(path: string): Promise<Attr> {
    const cached = this.cache.get(path);
    if (cached) return cached;
    const epoch = this.cache.epoch;
    const attr = await this.store.resolve(path);
    this.cache.set(path, attr, epoch);
    return attr;
  }

  /**
   * Attributes of `path` fresh from the store, never from the cache, which they then refresh
   * (for every name of the inode). Used on open: like NFS's close-to-open consistency, a file
   * another host wrote and closed opens here with that host's size, even if this mount cached
   * the file's attributes a moment before.
   */
  async refresh(path: string): Promise<Attr> {
    this.cache.invalidatePath(path);
    const epoch = this.cache.epoch;
    const attr = await this.store.resolve(path);
    this.cache.refresh(path, attr, epoch);
    return attr;
  }

  /** The directory that holds `path`, and the last component's name. */
  async resolveParent(path: string): Promise<{ dirPath: string; dir: Attr; name: string }> {
    const dirPath = posix.dirname(path);
    const name = posix.basename(path);
    const dir = await this.resolve(dirPath);
    if (dir.type !== 'dir') throw new FuseOpError('ENOTDIR', dirPath);
    return { dirPath, dir, name };
  }

  /** Attributes of an inode: cached under any path, else from the store. */
  async attrOfIno(ino: Ino): Promise<Attr> {
    return this.cache.getByIno(ino) ?? (await this.store.getattr(ino));
  }

  /** stat of an inode as this mount sees it (including writes not stored yet). */
  stat(attr: Attr): Fuse.Stat {
    return toStat(attr, this.store.blockSize, this.files.pendingEnd(attr.ino));
  }

  /** The open file behind a handle, or EBADF. */
  file(fd: number): OpenFile {
    const file = this.files.get(fd);
    if (!file) throw new FuseOpError('EBADF', `no open file ${fd}`);
    return file;
  }

  /** setattr after storing buffered writes of the inode (so a later store write cannot undo it). */
  async setattr(ino: Ino, changes: AttrChanges): Promise<Attr> {
    await this.files.drainIno(ino);
    try {
      const attr = await this.store.setattr(ino, changes);
      this.cache.update(attr);
      return attr;
    } catch (err) {
      this.cache.invalidateIno(ino);
      throw err;
    }
  }

  /**
   * Owner and mode of a new entry in `dir`: the caller's, except that a set-group-ID directory
   * gives its group, and to a new subdirectory its set-group-ID bit (as Linux filesystems do).
   */
  newEntry(dir: Attr, caller: Owner, mode: number, isDir: boolean): { owner: Owner; mode: number } {
    if ((dir.mode & S_ISGID) === 0) return { owner: caller, mode };
    return { owner: { uid: caller.uid, gid: dir.gid }, mode: isDir ? mode | S_ISGID : mode };
  }

  /** A write buffer for an inode opened for writing; stored data invalidates cached attributes. */
  newBuffer(ino: Ino): WriteBuffer {
    return new WriteBuffer(
      async (offset, data) => {
        try {
          await this.store.write(ino, offset, data);
        } finally {
          this.cache.invalidateIno(ino);
        }
      },
      { blockSize: this.store.blockSize },
    );
  }

  /** Stores every open file's buffered writes; failures are logged (used at unmount). */
  async flushAll(): Promise<void> {
    await Promise.all(
      this.files.all().map(async (file) => {
        try {
          await file.buffer?.flush();
        } catch (err) {
          this.env.log(`unmount: buffered writes to ${file.path} (inode ${file.ino}) were lost: ${String(err)}`);
        }
      }),
    );
  }
}
