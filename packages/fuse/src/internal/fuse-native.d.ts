/**
 * Types for the parts of fuse-native 2.2.6 (as patched for redisfs, see patches/) that this
 * package uses. fuse-native ships no types. Callbacks take a NEGATIVE errno as error (0 = ok);
 * read/write callbacks take the byte count (or a negative errno) as their only argument.
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

    interface Ops {
      init?(cb: Cb): void;
      access?(path: string, mode: number, cb: Cb): void;
      statfs?(path: string, cb: ValueCb<Statfs>): void;
      getattr?(path: string, cb: ValueCb<Stat>): void;
      fgetattr?(path: string, fd: number, cb: ValueCb<Stat>): void;
      flush?(path: string, fd: number, cb: Cb): void;
      fsync?(path: string, datasync: number, fd: number, cb: Cb): void;
      readdir?(path: string, cb: (err: number, names?: string[], stats?: Partial<Stat>[]) => void): void;
      truncate?(path: string, size: number, cb: Cb): void;
      ftruncate?(path: string, fd: number, size: number, cb: Cb): void;
      utimens?(path: string, atime: bigint | undefined, mtime: bigint | undefined, cb: Cb): void;
      readlink?(path: string, cb: ValueCb<string>): void;
      chown?(path: string, uid: number, gid: number, cb: Cb): void;
      chmod?(path: string, mode: number, cb: Cb): void;
      mknod?(path: string, mode: number, dev: number, cb: Cb): void;
      setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Cb): void;
      getxattr?(path: string, name: string, position: number, cb: ValueCb<Buffer>): void;
      listxattr?(path: string, cb: ValueCb<string[]>): void;
      removexattr?(path: string, name: string, cb: Cb): void;
      open?(path: string, flags: number, cb: ValueCb<number>): void;
      opendir?(path: string, flags: number, cb: ValueCb<number>): void;
      read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytes: number) => void): void;
      write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytes: number) => void): void;
      release?(path: string, fd: number, cb: Cb): void;
      releasedir?(path: string, fd: number, cb: Cb): void;
      create?(path: string, mode: number, cb: ValueCb<number>): void;
      unlink?(path: string, cb: Cb): void;
      /** rename(2): src is the existing name, dest the new one. */
      rename?(src: string, dest: string, cb: Cb): void;
      /** link(2): src is the existing file, dest the new name. */
      link?(src: string, dest: string, cb: Cb): void;
      /** symlink(2): target is the link's content, linkPath the new name. */
      symlink?(target: string, linkPath: string, cb: Cb): void;
      mkdir?(path: string, mode: number, cb: Cb): void;
      rmdir?(path: string, cb: Cb): void;
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
    }
  }

  class Fuse {
    constructor(mountpoint: string, ops: Fuse.Ops, options?: Fuse.Options);
    readonly mnt: string;
    /** The caller of the current request; only valid synchronously at the start of a handler. */
    readonly context: Fuse.Caller | null;
    mount(cb: (err: Error | null) => void): void;
    /**
     * Patched: getattr/fgetattr of `path` are answered in C with `stat` for `ttlMs`, without
     * calling ops; with `noCapability`, getxattr(path, 'security.capability') too (ENODATA).
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
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mountpoint: string, cb: (err: Error | null) => void): void;
  }

  export = Fuse;
}
