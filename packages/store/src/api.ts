/** The public interface of an open store. */
import type { Attr, AttrChanges, DirEntry, DirPage, FsStats, Ino, Name, Owner, PendingWork, SessionInfo, StoreStats, XattrFlags } from './types.js';
import type { Locks } from './internal/locks.js';

/**
 * Inode-level operations. Each changing operation is one atomic step in Redis (a Lua script):
 * another client sees it whole or not at all. Failures are FsError with a POSIX code.
 */
export interface InodeApi {
  readonly prefix: string;
  readonly readOnly: boolean;
  readonly blockSize: number;
  readonly rootIno: Ino;
  /** How long one operation waits for Redis before ETIMEDOUT (Infinity: as long as it takes). */
  readonly opTimeoutMs: number;

  /**
   * The entry `name` in directory `parent`, with its attributes (one round trip). Every name
   * below is a {@link Name}: a string stands for its UTF-8 bytes, a Buffer for its exact bytes
   * (any byte but '/' and NUL; 1–255 of them; not '.' or '..').
   */
  lookup(parent: Ino, name: Name): Promise<Attr>;
  /**
   * The entries `names` of directory `parent` with their attributes, in one round trip and at
   * one moment: undefined for a name that is not there (or whose inode cannot be read), and for
   * every name when `parent` is gone or not a directory ({@link lookup} tells which).
   */
  lookupMany(parent: Ino, names: readonly Name[]): Promise<(Attr | undefined)[]>;
  /**
   * Walks an absolute path ('/a/b') without following symlinks; attributes of its last part.
   * One round trip. A Buffer path is split on the byte '/'.
   */
  resolve(path: Name): Promise<Attr>;
  getattr(ino: Ino): Promise<Attr>;
  /**
   * Calls `listener` with the new attributes of each directory a namespace change (create, link,
   * unlink, rmdir, rename) made through this store changed, before that change resolves.
   */
  watchParents(listener: (attr: Attr) => void): void;
  /** Attributes of several inodes in one round trip (pipelined); undefined for one that is gone. */
  getattrs(inos: readonly Ino[]): Promise<(Attr | undefined)[]>;
  /** chmod / chown / utimens / truncate, atomically; returns the new attributes. */
  setattr(ino: Ino, changes: AttrChanges): Promise<Attr>;
  /** Creates a regular file, device, fifo or socket; `mode` carries the type bits (0 type = regular). */
  mknod(parent: Ino, name: Name, mode: number, owner: Owner, rdev?: number): Promise<Attr>;
  mkdir(parent: Ino, name: Name, mode: number, owner: Owner): Promise<Attr>;
  /** A symlink to `target` (1–4096 bytes, no NUL), kept byte for byte. */
  symlink(parent: Ino, name: Name, target: Name, owner: Owner): Promise<Attr>;
  /** A symlink's target decoded as UTF-8 (bytes that are not valid UTF-8 read as U+FFFD). */
  readlink(ino: Ino): Promise<string>;
  /** A symlink's target, its exact bytes. */
  readlinkBytes(ino: Ino): Promise<Buffer>;
  /** New hard link `newName` in `newParent` to `ino` (not a directory: EPERM). */
  link(ino: Ino, newParent: Ino, newName: Name): Promise<Attr>;
  unlink(parent: Ino, name: Name): Promise<void>;
  rmdir(parent: Ino, name: Name): Promise<void>;
  /** rename(2): replaces a compatible target; a directory into its own subtree is EINVAL. */
  rename(srcParent: Ino, srcName: Name, dstParent: Ino, dstName: Name): Promise<void>;
  /**
   * One page of a directory (start with cursor '0'). Pages may repeat a name; readdir dedupes.
   * Each entry carries its exact bytes (`nameBytes`) and their UTF-8 decoding (`name`).
   */
  readdirPage(ino: Ino, cursor: string, count?: number): Promise<DirPage>;
  /** Every entry of a directory (all pages, deduplicated by their bytes). */
  readdir(ino: Ino): Promise<DirEntry[]>;
  /** Reads up to `length` bytes at `offset`; shorter at end of file; holes read as zeros. */
  read(ino: Ino, offset: number, length: number): Promise<Buffer>;
  /** Writes `data` at `offset` (extending the file as needed); returns the new size. */
  write(ino: Ino, offset: number, data: Buffer): Promise<number>;
  statfs(): Promise<FsStats>;
  getxattr(ino: Ino, name: string): Promise<Buffer>;
  setxattr(ino: Ino, name: string, value: Buffer, flags?: XattrFlags): Promise<void>;
  listxattr(ino: Ino): Promise<string[]>;
  removexattr(ino: Ino, name: string): Promise<void>;
}

/** Path-level conveniences for Node programs (absolute paths, symlinks not followed). */
export interface PathApi {
  stat(path: string): Promise<Attr>;
  readFile(path: string): Promise<Buffer>;
  /** Creates or truncates the file, then writes `data`. */
  writeFile(path: string, data: Buffer | string, options?: { mode?: number; owner?: Owner }): Promise<void>;
  mkdirp(path: string, options?: { mode?: number; owner?: Owner }): Promise<void>;
  list(path: string): Promise<DirEntry[]>;
  move(from: string, to: string): Promise<void>;
  hardLink(existing: string, newPath: string): Promise<void>;
  symlinkAt(target: string, path: string, owner?: Owner): Promise<void>;
  remove(path: string): Promise<void>;
  removeDir(path: string): Promise<void>;
}

/**
 * Open files that outlive their removal (StoreOptions.session). A store with a session holds
 * each regular file it opens until it releases it: removing its last name keeps the inode
 * (nlink 0, in no directory, still read and written by inode number) until the last holder, on
 * any host, releases it. A session that ends (close) or whose lease expires (a crash) releases
 * its holds.
 */
export interface SessionApi {
  /** This store's session id (it changes if the session, declared dead, registers anew); undefined without a session. */
  readonly sessionId: string | undefined;
  /**
   * Like resolve (fresh attributes, one script, one round trip); with a session, the same script
   * holds a regular file open: release it once per open.
   */
  open(path: Name): Promise<Attr>;
  /**
   * Creates regular file `name` in `parent` (`mode`: permission bits; type bits 0 or S_IFREG) and
   * holds it, in one script. An existing name: EEXIST when `exclusive`; else a regular file is
   * opened (held, `created` false), a directory is EISDIR, anything else EEXIST.
   */
  createOpen(parent: Ino, name: Name, mode: number, owner: Owner, options: { exclusive: boolean }): Promise<{ attr: Attr; created: boolean }>;
  /**
   * Drops one hold of `ino` taken by open or createOpen; the last hold of a removed file, over
   * every session, frees it. A no-op without a session, or for an inode this store does not hold.
   */
  release(ino: Ino): Promise<void>;
  /** The sessions (mounts) of this filesystem, alive or expired (one round trip). */
  sessions(): Promise<SessionInfo[]>;
  /**
   * flock(2) and fcntl(2) locks shared by every mount, held by this session (they end with it);
   * undefined without a session (a read-only store, a tool).
   */
  readonly locks: Locks | undefined;
}

/** An open filesystem. Close it to release the Redis connection. */
export interface Store extends InodeApi, PathApi, SessionApi {
  /**
   * Resolves once the background collector has nothing left that it knows of: blocks of removed
   * or shrunk files and of deleted snapshots are deleted (a read-only store has no collector).
   * Operations never wait for it; tests and tools that measure memory do.
   */
  collected(): Promise<void>;
  /** Ends this store's session, if any (its holds and locks are released), then closes the connection. */
  close(): Promise<void>;
  /** Redis round trips this store has made since it was opened, by command (see StoreStats). */
  stats(): StoreStats;
  /**
   * What the background collector has still to do, for this filesystem and its family: three
   * set sizes read together (one round trip, whatever they hold).
   */
  pendingWork(): Promise<PendingWork>;
}
