/**
 * Types for the parts of fuse-native 2.2.6 (as patched for redisfs, see patches/) that this
 * package uses. fuse-native ships no types. Callbacks take a NEGATIVE errno as error (0 = ok);
 * read/write callbacks take the byte count (or a negative errno) as their only argument.
 *
 * The binding sets libfuse's flag_nullpath_ok: an fd operation on an open file that has no name
 * any more (removed while open, with the `hardRemove` option) gets `path === null`.
 *
 * Paths are byte strings: latin1, one char per byte (U+0000..U+00FF), never decoded as UTF-8
 * (patched; upstream decoded them, and every invalid sequence became U+FFFD, so distinct names
 * collapsed into one). That holds for every path and name the ops get (paths, rename/link
 * destinations, symlink targets, xattr names) and every one they give back (readdir's names,
 * readlink's target, listxattr's names, the paths of cacheAttr/staleAttr/uncacheAttr): the bytes
 * are `Buffer.from(path, 'latin1')`, and bytes become such a string with `toString('latin1')`.
 * `/` is still `/`, so path arithmetic (posix.dirname, prefixes) works on them unchanged. A
 * string given back with a char above U+00FF loses its high bits. The mountpoint and option
 * values are ordinary (UTF-8) strings.
 */
declare module 'fuse-native' {
  namespace Fuse {
    type Cb = (err: number) => void;
    type ValueCb<T> = (err: number, value?: T) => void;

    interface Stat {
      mode: number;
      uid: number;
      gid: number;
      size: number;
      nlink: number;
      rdev: number;
      ino: number;
      blocks: number;
      blksize: number;
      dev?: number;
      /** bigint nanoseconds since the epoch (patched), Date or ms number. */
      atime: bigint | Date | number;
      mtime: bigint | Date | number;
      ctime: bigint | Date | number;
    }

    interface Statfs {
      bsize: number;
      frsize: number;
      blocks: number;
      bfree: number;
      bavail: number;
      files: number;
      ffree: number;
      favail: number;
      fsid: number;
      flag: number;
      namemax: number;
    }

    interface Caller {
      uid: number;
      gid: number;
      pid: number;
    }

    /** R = read (F_RDLCK, LOCK_SH), W = write (F_WRLCK, LOCK_EX), U = unlock / no lock. */
    type LockType = 'R' | 'W' | 'U';

    /** fcntl(2) lock commands: F_GETLK, F_SETLK, F_SETLKW (waits). */
    type LockCmd = 'getlk' | 'setlk' | 'setlkw';

    /**
     * A `struct flock` (libfuse gives l_whence = SEEK_SET). `len` 0 = to the end of the file.
     * Numbers are doubles: offsets >= 2^53 lose precision.
     */
    interface LockRequest {
      type: LockType;
      start: number;
      len: number;
      /** The caller's pid for setlk/setlkw (0 for unlock and getlk); in a getlk answer, the holder's. */
      pid: number;
    }

    /** flock(2): type from LOCK_SH / LOCK_EX / LOCK_UN; `wait` = !LOCK_NB. */
    interface FlockOp {
      type: LockType;
      wait: boolean;
    }

    /**
     * Whether the kernel interrupted this request (FUSE_INTERRUPT: a signal reached the waiting
     * process); false once the request was answered. Poll it while waiting and answer -EINTR.
     */
    type Interrupted = () => boolean;

    interface Ops {
      init?(cb: Cb): void;
      access?(path: string, mode: number, cb: Cb): void;
      statfs?(path: string, cb: ValueCb<Statfs>): void;
      getattr?(path: string, cb: ValueCb<Stat>): void;
      fgetattr?(path: string | null, fd: number, cb: ValueCb<Stat>): void;
      flush?(path: string | null, fd: number, cb: Cb): void;
      fsync?(path: string | null, datasync: number, fd: number, cb: Cb): void;
      /**
       * libfuse passes a null path for a directory removed while open; Linux refuses getdents on
       * a removed directory itself (ENOENT), so answering -ENOENT for null is enough.
       */
      readdir?(path: string | null, cb: (err: number, names?: string[], stats?: Partial<Stat>[]) => void): void;
      /** The target as a byte string (latin1), like every path. */
      truncate?(path: string, size: number, cb: Cb): void;
      ftruncate?(path: string | null, fd: number, size: number, cb: Cb): void;
      utimens?(path: string, atime: bigint | undefined, mtime: bigint | undefined, cb: Cb): void;
      readlink?(path: string, cb: ValueCb<string>): void;
      chown?(path: string, uid: number, gid: number, cb: Cb): void;
      chmod?(path: string, mode: number, cb: Cb): void;
      mknod?(path: string, mode: number, dev: number, cb: Cb): void;
      setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Cb): void;
      getxattr?(path: string, name: string, position: number, cb: ValueCb<Buffer>): void;
      /** Names as byte strings (latin1), like every name. */
      listxattr?(path: string, cb: ValueCb<string[]>): void;
      removexattr?(path: string, name: string, cb: Cb): void;
      open?(path: string, flags: number, cb: ValueCb<number>): void;
      opendir?(path: string, flags: number, cb: ValueCb<number>): void;
      read?(path: string | null, fd: number, buf: Buffer, len: number, pos: number, cb: (bytes: number) => void): void;
      write?(path: string | null, fd: number, buf: Buffer, len: number, pos: number, cb: (bytes: number) => void): void;
      /**
       * Patched: `flockOwner` is the lock owner (16 lowercase hex digits) when this is the last
       * close of a struct file that holds flock locks (FUSE_RELEASE_FLOCK_UNLOCK): drop them.
       * Otherwise null.
       */
      release?(path: string | null, fd: number, flockOwner: string | null, cb: Cb): void;
      releasedir?(path: string | null, fd: number, cb: Cb): void;
      /** Patched: `flags` are the open(2) flags (O_CREAT, O_EXCL, O_TRUNC, access mode...). */
      create?(path: string, mode: number, flags: number, cb: ValueCb<number>): void;
      unlink?(path: string, cb: Cb): void;
      /** rename(2): src is the existing name, dest the new one. */
      rename?(src: string, dest: string, cb: Cb): void;
      /** link(2): src is the existing file, dest the new name. */
      link?(src: string, dest: string, cb: Cb): void;
      /** symlink(2): target is the link's content, linkPath the new name. */
      symlink?(target: string, linkPath: string, cb: Cb): void;
      mkdir?(path: string, mode: number, cb: Cb): void;
      rmdir?(path: string, cb: Cb): void;
      /**
       * Patched: fcntl(2) byte-range locks. `owner` is fi->lock_owner as 16 lowercase hex digits.
       * 'setlkw' may wait as long as it likes (no timeout applies): poll `interrupted` and answer
       * -EINTR when it turns true. For 'getlk', answer the conflicting lock, or type 'U' (or no
       * lock) when there is none. While fuse.setPosixLocksHeld(false), setlk of type 'U' is
       * answered 0 without this call (libfuse sends it on every close).
       */
      lock?(
        path: string | null,
        fd: number,
        cmd: LockCmd,
        lock: LockRequest,
        owner: string,
        interrupted: Interrupted,
        cb: (err: number, lock?: LockRequest) => void,
      ): void;
      /** Patched: flock(2) locks; `owner` identifies the struct file (same as release's flockOwner). */
      flock?(path: string | null, fd: number, op: FlockOp, owner: string, interrupted: Interrupted, cb: Cb): void;
    }

    interface Options {
      timeout?: number | false;
      useIno?: boolean;
      bigWrites?: boolean;
      maxWrite?: number;
      attrTimeout?: number;
      entryTimeout?: number;
      negativeTimeout?: number;
      defaultPermissions?: boolean;
      allowOther?: boolean;
      ro?: boolean;
      debug?: boolean;
      fsname?: string;
      subtype?: string;
      autoUnmount?: boolean;
      force?: boolean;
      mkdir?: boolean;
      /**
       * Patched: `-o hard_remove`: unlink/rename over an open file removes it at once (no
       * .fuse_hidden* file); fd operations on it then get `path === null`.
       */
      hardRemove?: boolean;
    }
  }

  class Fuse {
    constructor(mountpoint: string, ops: Fuse.Ops, options?: Fuse.Options);
    readonly mnt: string;
    /** The caller of the current request; only valid synchronously at the start of a handler. */
    readonly context: Fuse.Caller | null;
    mount(cb: (err: Error | null) => void): void;
    /**
     * Patched: getattr/fgetattr of `path` (a byte string, as the ops get it) are answered in C
     * with `stat` for `ttlMs`, without calling ops; with `noCapability`,
     * getxattr(path, 'security.capability') too (ENODATA).
     */
    cacheAttr(path: string, stat: Fuse.Stat, ttlMs: number, noCapability?: boolean): void;
    /** Patched: getattr of `path` goes to ops again; the noCapability answer stays (effective before it returns). */
    staleAttr(path: string): void;
    /** Patched: forgets what cacheAttr published for `path` (effective before it returns). */
    uncacheAttr(path: string): void;
    /** Patched: forgets every published path. */
    clearAttrCache(): void;
    /** Patched: while `clean`, flush of handle `fd` (each close(2)) answers 0 in C, without ops.flush. */
    setHandleClean(fd: number, clean: boolean): void;
    /**
     * Patched: whether this mount holds any POSIX (fcntl) lock; initially false. While false,
     * ops.lock('setlk', type 'U') (sent by libfuse on every close(2)) is answered 0 in C.
     */
    setPosixLocksHeld(held: boolean): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mountpoint: string, cb: (err: Error | null) => void): void;
  }

  export = Fuse;
}
