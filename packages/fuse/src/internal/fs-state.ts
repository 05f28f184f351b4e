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

/** Largest listing whose entries' attributes readdir fetches ahead (prefetchEntries). */
const PREFETCH_MAX_ENTRIES = 2048;

/** The xattr the kernel asks for before every write(2) (to drop file capabilities). */
const CAPABILITY = 'security.capability';

/** set-group-ID bit: a directory that has it gives new entries its group (and subdirs the bit). */
const S_ISGID = 0o2000;

/** The binding's C attribute cache (fuse-native, patched). */
export type NativeAttrCache = Pick<Fuse, 'cacheAttr' | 'staleAttr' | 'uncacheAttr' | 'clearAttrCache' | 'setHandleClean'>;

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
  private native: NativeAttrCache | undefined;
  /** Directories' attributes as the last change in them reported them (see settleParent). */
  private readonly freshParents = new Map<Ino, Attr>();

  constructor(options: FsStateOptions) {
    this.store = options.store;
    this.readOnly = options.readOnly;
    this.env = options.env;
    this.cache = new AttrCache(options.cacheTimeoutMs);
    this.xattrMisses = new XattrMissCache(options.cacheTimeoutMs);
    this.fsid = fsidOf(options.store.prefix);
    this.callerOf = options.caller;
    options.store.watchParents?.((attr) => {
      if (this.freshParents.size >= 1024) this.freshParents.clear(); // unclaimed ones (failed handlers)
      this.freshParents.set(attr.ino, attr);
    });
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
    this.countCache(cached !== undefined);
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

  /**
   * After a listing: the attributes of its entries, fetched in one pipelined round trip, cached
   * and published, so that the lookup and getattr the kernel sends next for each name (`ls -l`,
   * `find -size`, `du`) are answered without a call into JS or Redis. Skipped for big
   * directories (the cache holds a bounded number of paths) and when nothing is cached.
   */
  async prefetchEntries(dirPath: string, entries: readonly { name: string; ino: Ino }[]): Promise<void> {
    if (this.cache.ttlMs <= 0 || entries.length === 0 || entries.length > PREFETCH_MAX_ENTRIES) return;
    const epoch = this.cache.epoch;
    const attrs = await this.store.getattrs(entries.map((e) => e.ino));
    const base = dirPath === '/' ? '/' : `${dirPath}/`;
    entries.forEach((e, i) => {
      const attr = attrs[i];
      if (!attr) return;
      this.remember(base + e.name, attr, epoch);
    });
  }

  /** Attributes of an inode: cached under any path, else from the store. */
  async attrOfIno(ino: Ino): Promise<Attr> {
    const cached = this.cache.getByIno(ino);
    this.countCache(cached !== undefined);
    return cached ?? (await this.store.getattr(ino));
  }

  /** Counts a lookup in the attribute cache (MountStats.cache.attr). */
  private countCache(hit: boolean): void {
    const counts = this.env.counts?.attrCache;
    if (counts) {
      if (hit) counts.hits++;
      else counts.misses++;
    }
  }

  /**
   * Lets the binding answer getattr of `path` with `stat` itself (in C, no call into JS) for as
   * long as the cache trusts `attr` under `path`. Only what the cache holds is published, and
   * the cache tells the binding when it drops it (AttrMirror), so the binding never serves
   * attributes the cache would not.
   */
  publish(path: string, attr: Attr, stat: Fuse.Stat = this.stat(attr)): void {
    if (!this.native || this.cache.get(path) !== attr) return;
    const ttl = this.cache.remainingMs(path);
    // security.capability, asked before every write(2), is answered in C too while it is known
    // missing, and only that long.
    const noCapFor = this.xattrMisses.missingForMs(attr.ino, CAPABILITY);
    const noCapability = noCapFor > 0;
    this.native.cacheAttr(path, stat, noCapability ? Math.min(ttl, noCapFor) : ttl, noCapability);
  }

  /** Caches `attr` under `path` (unless the cache changed since `epoch`) and publishes it. */
  remember(path: string, attr: Attr, epoch?: number): void {
    this.cache.set(path, attr, epoch);
    this.publish(path, attr);
  }

  /** The stat getattr answers for `path`, published so the binding answers the next ones. */
  statOf(path: string, attr: Attr): Fuse.Stat {
    const stat = this.stat(attr);
    this.publish(path, attr, stat);
    return stat;
  }

  /** Publishes `path` again if it is cached (something publish depends on changed). */
  republish(path: string): void {
    const attr = this.cache.get(path);
    if (attr) this.publish(path, attr);
  }

  /**
   * Marks what was published for inode `ino` outdated (its stat changed without its attributes
   * changing: buffered writes moved its size). The binding keeps answering the
   * security.capability check, which a write does not change.
   */
  outdate(ino: Ino): void {
    if (!this.native) return;
    for (const path of this.cache.pathsOf(ino)) this.native.staleAttr(path);
  }

  /**
   * Tells the binding whether handle `fd` has anything to flush: while it has not, close(2)'s
   * flush is answered in C. Call with false before a write is answered and at release (handle
   * numbers are reused); with true only when the handle's buffer holds nothing and owes no error.
   */
  markClean(fd: number, clean: boolean): void {
    this.native?.setHandleClean(fd, clean);
  }

  /** Marks handle `fd` clean if its buffer has nothing pending and no failure to report. */
  markCleanIfIdle(file: OpenFile): void {
    const b = file.buffer;
    if (!b || (b.pendingEnd < 0 && !b.hasFailure)) this.markClean(file.fd, true);
  }

  /**
   * After a change in directory `ino` (reached as `dirPath`) settled, one way or the other: its
   * cached attributes are outdated. When the change's script reported the directory's new
   * attributes (Store.watchParents), they replace them; otherwise the path is forgotten. Either
   * way a lookup that started before the change cannot cache what it read (the epoch moved).
   */
  settleParent(dirPath: string, ino: Ino): void {
    const fresh = this.freshParents.get(ino);
    this.freshParents.delete(ino);
    this.cache.invalidatePath(dirPath);
    if (fresh) this.remember(dirPath, fresh);
  }

  /** Connects the binding's attribute cache (see publish). */
  attachNative(native: NativeAttrCache): void {
    this.native = native;
    this.cache.mirror = {
      forget: (path) => native.uncacheAttr(path),
      stale: (path) => native.staleAttr(path),
      clear: () => native.clearAttrCache(),
    };
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

  /**
   * setattr after storing buffered writes of the inode (so a later store write cannot undo it).
   * `path`, the name it was reached by, caches (and publishes) the new attributes under it.
   */
  async setattr(ino: Ino, changes: AttrChanges, path?: string): Promise<Attr> {
    await this.files.drainIno(ino);
    try {
      const attr = await this.store.setattr(ino, changes);
      this.cache.update(attr);
      if (path !== undefined) this.remember(path, attr);
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
          // Size and times changed; which names lead to the inode did not (see AttrCache.inoOf).
          this.cache.staleIno(ino);
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
          this.env.log(`unmount: buffered writes to ${file.path} (inode ${file.ino}) were lost: ${String(err)}`, 'error');
        }
      }),
    );
  }
}
