/**
 * What every handler of one mount shares: the store, the attribute cache, the open-file table,
 * and the helpers that tie them together (path resolution through the cache, setattr that first
 * stores buffered writes, stat with the size of data not yet stored).
 *
 * Paths here are the binding's byte strings (latin1, one char per byte: byte-names.ts); they
 * go to the store as bytes (toBytes).
 */
import { constants as fsConstants } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Attr, AttrChanges, Ino, Owner, Store } from '@redisfs/store';
import type Fuse from 'fuse-native';
import { AttrCache } from './attr-cache.js';
import { displayPath, toBytes } from './byte-names.js';
import { FuseOpError } from './errno.js';
import { Lookahead } from './lookahead.js';
import { OpenFiles, type OpenFile } from './open-files.js';
import { runOp, type Detail, type OpEnv, type Reply, type RunOptions } from './run-op.js';
import { fsidOf, toStat } from './stat.js';
import { WriteBuffer } from './write-buffer.js';
import { XattrMissCache } from './xattr-miss-cache.js';

/** What the kernel's page cache of a file depends on: its mtime and size. */
function basisOf(attr: Attr): string {
  return `${attr.mtimeNs}:${attr.size}`;
}

/** Largest listing whose entries' attributes readdir fetches ahead (prefetchEntries). */
const PREFETCH_MAX_ENTRIES = 2048;

/** The xattr the kernel asks for before every write(2) (to drop file capabilities). */
const CAPABILITY = 'security.capability';

/** set-group-ID bit: a directory that has it gives new entries its group (and subdirs the bit). */
const S_ISGID = 0o2000;

/** The binding's C attribute cache (fuse-native, patched). */
export type NativeAttrCache = Pick<Fuse, 'cacheAttr' | 'staleAttr' | 'uncacheAttr' | 'clearAttrCache' | 'setHandleClean' | 'setPosixLocksHeld'>;

export interface FsStateOptions {
  store: Store;
  readOnly: boolean;
  cacheTimeoutMs: number;
  env: OpEnv;
  /** The caller of the current request (fuse.context); null outside a handler's first tick. */
  caller: () => Fuse.Caller | null;
  /** Where the filesystem is mounted (revalidatePages opens files through it). */
  mountpoint?: string;
}

export class FsState {
  readonly store: Store;
  readonly readOnly: boolean;
  readonly env: OpEnv;
  readonly cache: AttrCache;
  readonly xattrMisses: XattrMissCache;
  readonly files = new OpenFiles();
  /** The last listings, which predict the lookups that follow them (lookupAhead). */
  private readonly lookahead = new Lookahead();
  readonly fsid: number;
  private readonly callerOf: () => Fuse.Caller | null;
  private readonly mountpoint: string | undefined;
  /**
   * Per inode, the attributes (mtime and size) the kernel's page cache of it is known to match:
   * those of its last open (an open drops the kernel's pages of the file). See revalidatePages.
   */
  private readonly pageBasis = new Map<Ino, string>();
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
    this.mountpoint = options.mountpoint;
    options.store.watchParents?.((attr) => {
      if (this.freshParents.size >= 1024) this.freshParents.clear(); // unclaimed ones (failed handlers)
      this.freshParents.set(attr.ino, attr);
    });
  }

  /** Runs one operation through the common wrapper (see run-op.ts). */
  run<T>(name: string, detail: Detail, reply: Reply<T>, fn: () => Promise<T> | T, options?: RunOptions): void {
    runOp(this.env, name, detail, fn, reply, options);
  }

  /**
   * uid/gid of the calling process. Only valid before the operation's first await (runOp calls
   * the operation synchronously, so reading it first thing inside is fine).
   */
  caller(): Owner {
    const c = this.callerOf();
    return { uid: c?.uid ?? 0, gid: c?.gid ?? 0 };
  }

  /**
   * libfuse's hidden names (`.fuse_hidden…`) of files removed through this mount while open
   * here, and their inodes. libfuse renames such a file instead of removing it, so that calls
   * by path (fstat: the kernel's getattr carries no handle) still find it; the rename handler
   * removes the name from the store instead (the store keeps the inode while it is held open),
   * and calls by the hidden name are answered for the inode. libfuse removes the hidden name at
   * the last close: that ends the alias. Nothing is stored under the name.
   */
  readonly hidden = new Map<string, Ino>();

  /** Refuses a change on a read-only mount before anything reaches the store. */
  assertWritable(what: string): void {
    if (this.readOnly) throw new FuseOpError('EROFS', `${what}: read-only mount`);
  }

  /** Attributes of `path` (symlinks not followed): cached, else one store round trip. */
  async resolve(path: string | null): Promise<Attr> {
    // libfuse gives no path for a file it cannot name (flag_nullpath_ok): a call by path cannot reach it.
    if (path === null) throw new FuseOpError('ENOENT', 'the file was removed');
    const alias = this.hidden.get(path);
    if (alias !== undefined) return this.store.getattr(alias);
    const cached = this.cache.get(path);
    this.countCache(cached !== undefined);
    if (cached) return cached;
    const epoch = this.cache.epoch;
    const ahead = await this.lookupAhead(path, epoch);
    if (ahead) return ahead;
    const attr = await this.store.resolve(toBytes(path));
    this.cache.set(path, attr, epoch);
    return attr;
  }

  /**
   * A miss in a directory this mount listed: when the misses follow an order (Lookahead: the
   * listing's, inode numbers' or names'), the name is looked up together with the next ones in
   * it, in one script, and those are cached and published, so the binding answers their lookups
   * without a call into JS or Redis. Undefined when no listing predicts anything, or the name is
   * not there (resolve then tells why).
   */
  private async lookupAhead(path: string, epoch: number): Promise<Attr | undefined> {
    if (this.cache.ttlMs <= 0) return undefined;
    const dirPath = posix.dirname(path);
    const dir = dirPath === path ? undefined : this.cache.get(dirPath);
    const plan = dir && this.lookahead.plan(dirPath, dir.ino, posix.basename(path));
    if (!plan) return undefined;
    const attrs = await this.store.lookupMany(plan.dirIno, plan.names.map(toBytes));
    const base = dirPath === '/' ? '/' : `${dirPath}/`;
    for (let i = 1; i < plan.names.length; i++) {
      const attr = attrs[i];
      if (attr) this.remember(base + plan.names[i]!, attr, epoch);
    }
    const attr = attrs[0];
    if (attr) this.cache.set(path, attr, epoch);
    return attr;
  }

  /**
   * Opens `path`: its attributes fresh from the store, never from the cache, which they then
   * refresh (for every name of the inode). Like NFS's close-to-open consistency, a file another
   * host wrote and closed opens here with that host's size, even if this mount cached the
   * file's attributes a moment before. The same script holds a regular file open for this
   * mount's session (Store.open), so that it outlives a removal on any host until release.
   */
  async openPath(path: string): Promise<Attr> {
    this.cache.invalidatePath(path);
    const epoch = this.cache.epoch;
    // (A hidden name: another open of a removed file, through /proc/PID/fd. It is not held again:
    // the data stays while the handle that hid it is open.)
    const alias = this.hidden.get(path);
    const attr = alias !== undefined ? await this.store.getattr(alias) : await this.store.open(toBytes(path));
    if (alias !== undefined) return attr;
    this.cache.refresh(path, attr, epoch);
    if (attr.type === 'file') {
      if (this.pageBasis.size >= 10_000) this.pageBasis.clear();
      this.pageBasis.set(attr.ino, basisOf(attr));
    }
    return attr;
  }

  /**
   * After a lock was granted, what this host caches about the file and its neighbours is checked
   * against Redis, so that the lock holder sees what the last holder did on any host (like NFS,
   * which revalidates at lock time). This is what makes programs such as SQLite safe from two
   * hosts:
   * - the names of the file's directory are forgotten (the cache of the binding too): a journal
   *   another host created or removed next to a database shows at once, not within the cache
   *   timeout (the kernel asks for attributes at every access: attr_timeout is 0). The kernel
   *   may still hold those it was shown as dentries: one found gone answers ESTALE once
   *   (staleOnce), so that open(O_CREAT) of a journal another host removed creates it;
   * - if the file changed since the kernel's page cache of it was filled (another host wrote it),
   *   those pages are dropped. libfuse 2 cannot tell the kernel to drop an inode's pages, but the
   *   kernel drops them at every open of the file (no keep_cache), so the mount opens and closes
   *   the file itself, by `path`. A file whose last name is gone cannot be reopened: its pages
   *   are kept (only its holders can still write it).
   */
  async revalidatePages(ino: Ino, path: string | null): Promise<void> {
    if (path !== null) {
      const dir = posix.dirname(path);
      const now = performance.now();
      if (this.positive.size >= 10_000) this.positive.clear();
      for (const f of this.cache.filesIn(dir)) this.positive.set(f.path, now + f.remainingMs);
      this.cache.invalidateTree(dir);
    }
    const basis = this.pageBasis.get(ino);
    if (basis === undefined || basis === basisOf(await this.store.getattr(ino))) return;
    this.cache.invalidateIno(ino); // also moves the epoch: read-ahead windows are fetched again
    if (path === null || this.mountpoint === undefined) return;
    try {
      // Reaches this mount's own open handler (another FUSE thread), which records the new basis.
      // A Buffer path: the name's exact bytes (a string would be encoded as UTF-8).
      const bytes = Buffer.concat([Buffer.from(this.mountpoint), toBytes(path)]);
      const handle = await openFile(bytes, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
      await handle.close();
    } catch (err) {
      this.env.log(`could not drop the kernel's cached pages of ${displayPath(path)}: ${String(err)}`, 'warn');
    }
  }

  /** The kernel lock owners that may hold POSIX locks through this mount, by inode. */
  private readonly posixOwners = new Map<Ino, Set<string>>();

  /** Whether `owner` may hold POSIX locks on `ino` (a close by it must release them in Redis). */
  holdsPosix(ino: Ino, owner: string): boolean {
    return this.posixOwners.get(ino)?.has(owner) === true;
  }

  /**
   * Notes that `owner` may now hold POSIX locks on `ino` (held) or holds none any more. While
   * this mount holds none at all, the binding answers the unlock libfuse sends at every close in C.
   */
  notePosix(ino: Ino, owner: string, held: boolean): void {
    const before = this.posixOwners.size;
    let owners = this.posixOwners.get(ino);
    if (held) {
      if (!owners) this.posixOwners.set(ino, (owners = new Set()));
      owners.add(owner);
    } else if (owners) {
      owners.delete(owner);
      if (owners.size === 0) this.posixOwners.delete(ino);
    }
    if ((before === 0) !== (this.posixOwners.size === 0)) this.native?.setPosixLocksHeld(this.posixOwners.size > 0);
  }

  /** How many (inode, owner) pairs may hold POSIX locks through this mount (status). */
  get posixLockOwners(): number {
    let n = 0;
    for (const owners of this.posixOwners.values()) n += owners.size;
    return n;
  }

  /** The directory that holds `path`, and the last component's name as the store takes it (its bytes). */
  async resolveParent(path: string): Promise<{ dirPath: string; dir: Attr; name: Buffer }> {
    const dirPath = posix.dirname(path);
    const name = toBytes(posix.basename(path));
    const dir = await this.resolve(dirPath);
    if (dir.type !== 'dir') throw new FuseOpError('ENOTDIR', dirPath);
    return { dirPath, dir, name };
  }

  /**
   * After a listing: the attributes of its entries, fetched in one pipelined round trip, cached
   * and published, so that the lookup and getattr the kernel sends next for each name (`ls -l`,
   * `find -size`, `du`) are answered without a call into JS or Redis. Skipped for big
   * directories (the cache holds a bounded number of paths) and when nothing is cached.
   * Names are byte strings, as the binding lists them.
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

  /**
   * After a listing of `dirPath` (inode `dirIno`): remembered, so that lookups of its entries
   * can be made ahead of the program's (lookupAhead).
   */
  noteListing(dirPath: string, dirIno: Ino, entries: readonly { name: string; ino: Ino }[]): void {
    if (this.cache.ttlMs > 0) this.lookahead.note(dirPath, dirIno, entries);
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
  publish(path: string | null, attr: Attr, stat: Fuse.Stat = this.stat(attr)): void {
    if (!this.native || path === null || this.cache.get(path) !== attr) return;
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
  statOf(path: string | null, attr: Attr): Fuse.Stat {
    const stat = this.stat(attr);
    this.publish(path, attr, stat);
    return stat;
  }

  /** Publishes `path` again if it is cached (something publish depends on changed). */
  republish(path: string | null): void {
    if (path === null) return;
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

  /**
   * Names a lock holder may find stale in the kernel's dentry cache, until when (ms, monotonic):
   * the files this mount had shown in the directory of a file when a lock on it was granted
   * (revalidatePages). See staleOnce.
   */
  private readonly positive = new Map<string, number>();

  /**
   * Forgets that the kernel may cache `path` (and with `tree`, every path below it): a change
   * made through this mount updates the kernel's own dentries.
   */
  forgetPositive(path: string, tree = false): void {
    this.positive.delete(path);
    if (!tree) return;
    const prefix = path === '/' ? '/' : `${path}/`;
    for (const p of this.positive.keys()) if (p.startsWith(prefix)) this.positive.delete(p);
  }

  /**
   * Whether the kernel may still hold a positive dentry for `path`, which the store says is gone:
   * a file name this mount had shown in a directory where a lock was just granted. True once per
   * name (the caller answers ESTALE, so that the kernel looks the name up again and retries the
   * call). Only there: the kernel's retry of a call looks every one of its names up again, and an
   * ESTALE for a second name of the same call would reach the caller (a link(2) racing removals
   * on another host), so names are not marked in general, and directories never.
   */
  staleOnce(path: string): boolean {
    const until = this.positive.get(path);
    this.positive.delete(path);
    return until !== undefined && until > performance.now();
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

  /** Registers an open file and returns its handle; nothing to flush yet: close(2) costs no call into JS. */
  addFile(file: Omit<OpenFile, 'fd'>): number {
    const { fd } = this.files.add(file);
    this.markClean(fd, true);
    return fd;
  }

  /**
   * Ends the store's hold of `ino` taken by an open that then failed, in the background: a
   * failure is logged (the hold then ends with this mount's session).
   */
  releaseHold(ino: Ino): void {
    this.store.release(ino).catch((err: unknown) => this.env.log(`release of inode ${ino} failed: ${String(err)}`, 'warn'));
  }

  /**
   * After the last close of a handle (release): drops the flock lock of `flockOwner` (the
   * kernel asks for it at the last close of a file description that holds one) and the store's
   * hold of the inode. A file removed while open is freed at its last hold, on any host.
   */
  async closeFile(file: OpenFile, flockOwner: string | null): Promise<void> {
    try {
      if (flockOwner !== null && this.store.locks) await this.store.locks.funlock(file.ino, flockOwner);
    } finally {
      if (file.held) await this.store.release(file.ino);
    }
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
          this.env.log(`unmount: buffered writes to ${displayPath(file.path)} (inode ${file.ino}) were lost: ${String(err)}`, 'error');
        }
      }),
    );
  }
}
