/// <reference path="../../packages/fuse/src/internal/fuse-native.d.ts" />
/**
 * memfs: a minimal in-memory POSIX filesystem on the patched fuse-native binding, the benchmark's
 * "in-memory floor": what FUSE plus the binding cost with no Redis behind them. Plain JS maps, no
 * async work: every handler answers its callback synchronously.
 *
 *   tsx bench/src/memfs.ts <mountpoint>
 *
 * prints `ready` once mounted; SIGUSR2 prints the per-op call counts as one JSON line;
 * SIGTERM/SIGINT unmount and exit 0.
 *
 * Layout: directories are Map<name, Node> (O(1) lookup); file data is fixed 64 KiB chunks in a
 * Map<index, Buffer> (sparse: a missing chunk reads as zeros). Invariant: bytes of a chunk past
 * the file's size are zero, so growing a file (write past the end, truncate up) shows zeros.
 * Permissions are checked by the kernel (default_permissions), as in redisfs. Paths and names are
 * the binding's byte strings (latin1, one char per byte): kept and answered as they came, so
 * any bytes round-trip; a length in bytes is the string's length.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { constants as osConstants, totalmem } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fuse from 'fuse-native';

const E = osConstants.errno;
const ENOENT = -E.ENOENT;
const EEXIST = -E.EEXIST;
const ENOTDIR = -E.ENOTDIR;
const EISDIR = -E.EISDIR;
const EINVAL = -E.EINVAL;
const ENOTEMPTY = -E.ENOTEMPTY;
const EPERM = -E.EPERM;
const EBADF = -E.EBADF;
const EBUSY = -E.EBUSY;
const ENAMETOOLONG = -E.ENAMETOOLONG;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_ISGID = 0o2000;
const O_ACCMODE = 3; // O_RDONLY 0 | O_WRONLY 1 | O_RDWR 2
const O_TRUNC = 0o1000;

/** Bytes per data chunk. */
const CHUNK = 64 * 1024;
const BLOCKS_PER_CHUNK = CHUNK / 512;
const BLOCK_SIZE = 4096;
const NAME_MAX = 255;
const UINT32_MAX = 0xffffffff;
/** chown(2)'s "leave unchanged" (-1 as unsigned 32 bits). */
const KEEP_ID = 0xffffffff;

/** Now as bigint nanoseconds since the epoch (epoch from Date.now, resolution from hrtime). */
const epochBase = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
function now(): bigint {
  return epochBase + process.hrtime.bigint();
}

class Node {
  nlink: number;
  size = 0;
  rdev = 0;
  atime: bigint;
  mtime: bigint;
  ctime: bigint;
  /** Open handles (create/open not yet released). */
  opens = 0;
  /** Directories: the entries, and the parent ('..'; the root is its own parent). */
  entries: Map<string, Node> | null = null;
  parent: Node | null = null;
  /** Regular files: the data chunks by index. */
  chunks: Map<number, Buffer> | null = null;
  /** Symlinks: the target. */
  target: string | null = null;

  constructor(
    readonly ino: number,
    public mode: number,
    public uid: number,
    public gid: number,
  ) {
    const t = now();
    this.atime = t;
    this.mtime = t;
    this.ctime = t;
    this.nlink = (mode & S_IFMT) === S_IFDIR ? 2 : 1;
  }
}

interface ParentRef {
  dir: Node;
  name: string;
}

/**
 * The FUSE handlers of a fresh, empty in-memory filesystem. Each call increments `counts` under
 * its op name. `caller` gives the uid/gid of the process making the current request (pass
 * `() => fuse.context`); without it, or when it answers null, new nodes belong to uid/gid 0.
 */
export function memOps(
  counts: Map<string, number>,
  caller: () => Fuse.Caller | null = () => null,
): Fuse.Ops {
  const count = (op: string): void => {
    counts.set(op, (counts.get(op) ?? 0) + 1);
  };

  let nextIno = 2;
  let nextFd = 1; // fuse-native treats a handle of 0 as "none"
  let inodes = 1;
  let usedChunks = 0;
  const fds = new Map<number, Node>();

  const root = new Node(1, S_IFDIR | 0o755, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
  root.entries = new Map();
  root.parent = root;

  /** The node at `path`, or a negative errno. */
  function resolve(path: string): Node | number {
    if (path === '/') return root;
    let cur = root;
    let start = 1;
    for (;;) {
      const j = path.indexOf('/', start);
      const name = j === -1 ? path.slice(start) : path.slice(start, j);
      if (cur.entries === null) return ENOTDIR;
      const next = cur.entries.get(name);
      if (next === undefined) return ENOENT;
      if (j === -1) return next;
      cur = next;
      start = j + 1;
    }
  }

  /** The directory holding `path` and the last name, or a negative errno. */
  function parentOf(path: string): ParentRef | number {
    const i = path.lastIndexOf('/');
    const name = path.slice(i + 1);
    if (name === '') return path === '/' ? EBUSY : ENOENT;
    if (Buffer.byteLength(name, 'latin1') > NAME_MAX) return ENAMETOOLONG;
    const dir = i <= 0 ? root : resolve(path.slice(0, i));
    if (typeof dir === 'number') return dir;
    if (dir.entries === null) return ENOTDIR;
    return { dir, name };
  }

  /** A new node in `dir`, owned by the caller (group of a setgid dir, which dirs inherit). */
  function newNode(dir: Node, mode: number): Node {
    const who = caller();
    let gid = who?.gid ?? 0;
    if (dir.mode & S_ISGID) {
      gid = dir.gid;
      if ((mode & S_IFMT) === S_IFDIR) mode |= S_ISGID;
    }
    const node = new Node(nextIno++, mode, who?.uid ?? 0, gid);
    inodes++;
    return node;
  }

  function link(dir: Node, name: string, node: Node): void {
    dir.entries!.set(name, node);
    if (node.entries !== null) {
      dir.nlink++;
      node.parent = dir;
    }
    dir.mtime = dir.ctime = now();
  }

  function freeData(node: Node): void {
    if (node.chunks !== null) {
      usedChunks -= node.chunks.size;
      node.chunks.clear();
    }
  }

  /** `node` lost a name in `dir` (already removed from dir.entries). */
  function dropLink(dir: Node, node: Node): void {
    const t = now();
    dir.mtime = dir.ctime = t;
    node.ctime = t;
    if (node.entries !== null) {
      node.nlink = 0;
      dir.nlink--;
      inodes--;
      return;
    }
    if (--node.nlink === 0) {
      inodes--;
      if (node.opens === 0) freeData(node);
    }
  }

  function stat(node: Node): Fuse.Stat {
    return {
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      size: node.entries !== null ? BLOCK_SIZE : node.size,
      nlink: node.nlink,
      rdev: node.rdev,
      ino: node.ino,
      blksize: BLOCK_SIZE,
      blocks: node.chunks !== null ? node.chunks.size * BLOCKS_PER_CHUNK : node.entries !== null ? 8 : 0,
      atime: node.atime,
      mtime: node.mtime,
      ctime: node.ctime,
    };
  }

  function setSize(node: Node, size: number): number {
    if (node.entries !== null) return EISDIR;
    if (node.chunks === null) return EINVAL;
    if (size < node.size) {
      const chunks = node.chunks;
      for (const idx of chunks.keys()) {
        if (idx * CHUNK >= size) {
          chunks.delete(idx);
          usedChunks--;
        }
      }
      // Keep the invariant: bytes past the size are zero.
      const tail = size % CHUNK;
      if (tail !== 0) chunks.get((size - tail) / CHUNK)?.fill(0, tail);
    }
    node.size = size;
    node.mtime = node.ctime = now();
    return 0;
  }

  function writeData(node: Node, buf: Buffer, len: number, pos: number): void {
    const chunks = node.chunks!;
    let off = 0;
    while (off < len) {
      const p = pos + off;
      const idx = Math.floor(p / CHUNK);
      const start = p - idx * CHUNK;
      const n = Math.min(CHUNK - start, len - off);
      let chunk = chunks.get(idx);
      if (chunk === undefined) {
        chunk = n === CHUNK ? Buffer.allocUnsafeSlow(CHUNK) : Buffer.alloc(CHUNK);
        chunks.set(idx, chunk);
        usedChunks++;
      }
      buf.copy(chunk, start, off, off + n);
      off += n;
    }
    if (pos + len > node.size) node.size = pos + len;
    node.mtime = node.ctime = now();
  }

  function readData(node: Node, buf: Buffer, len: number, pos: number): number {
    const chunks = node.chunks!;
    if (pos >= node.size) return 0;
    const total = Math.min(node.size - pos, len);
    let off = 0;
    while (off < total) {
      const p = pos + off;
      const idx = Math.floor(p / CHUNK);
      const start = p - idx * CHUNK;
      const n = Math.min(CHUNK - start, total - off);
      const chunk = chunks.get(idx);
      if (chunk === undefined) buf.fill(0, off, off + n);
      else chunk.copy(buf, off, start, start + n);
      off += n;
    }
    return total;
  }

  function openNode(node: Node): number {
    const fd = nextFd;
    nextFd = nextFd >= 0x7fffffff ? 1 : nextFd + 1;
    fds.set(fd, node);
    node.opens++;
    return fd;
  }

  /** Creates a node of `mode` at `path`; for create/mknod/mkdir. */
  function makeNode(path: string, mode: number): Node | number {
    const p = parentOf(path);
    if (typeof p === 'number') return p;
    if (p.dir.entries!.has(p.name)) return EEXIST;
    const node = newNode(p.dir, mode);
    const type = mode & S_IFMT;
    if (type === S_IFDIR) node.entries = new Map();
    else if (type === S_IFREG) node.chunks = new Map();
    link(p.dir, p.name, node);
    return node;
  }

  return {
    init(cb) {
      count('init');
      cb(0);
    },

    access(path, mode, cb) {
      count('access');
      // default_permissions: the kernel checks permissions; this only confirms existence.
      const node = resolve(path);
      cb(typeof node === 'number' ? node : 0);
    },

    statfs(path, cb) {
      count('statfs');
      // Capacity: the machine's RAM. Fields are 32-bit in fuse-native.
      const blocks = Math.min(UINT32_MAX, Math.floor(totalmem() / BLOCK_SIZE));
      const bfree = Math.max(0, blocks - usedChunks * (CHUNK / BLOCK_SIZE));
      cb(0, {
        bsize: BLOCK_SIZE,
        frsize: BLOCK_SIZE,
        blocks,
        bfree,
        bavail: bfree,
        files: UINT32_MAX,
        ffree: UINT32_MAX - inodes,
        favail: UINT32_MAX - inodes,
        fsid: 0x6d656d66, // "memf"
        flag: 0,
        namemax: NAME_MAX,
      });
    },

    getattr(path, cb) {
      count('getattr');
      const node = resolve(path);
      if (typeof node === 'number') cb(node);
      else cb(0, stat(node));
    },

    fgetattr(path, fd, cb) {
      count('fgetattr');
      const node = fds.get(fd) ?? (path === null ? ENOENT : resolve(path));
      if (typeof node === 'number') cb(node);
      else cb(0, stat(node));
    },

    readdir(path, cb) {
      count('readdir');
      if (path === null) return cb(ENOENT);
      const dir = resolve(path);
      if (typeof dir === 'number') return cb(dir);
      if (dir.entries === null) return cb(ENOTDIR);
      const names = ['.', '..'];
      const stats: Partial<Fuse.Stat>[] = [
        { ino: dir.ino, mode: dir.mode },
        { ino: dir.parent!.ino, mode: dir.parent!.mode },
      ];
      for (const [name, node] of dir.entries) {
        names.push(name);
        stats.push({ ino: node.ino, mode: node.mode });
      }
      cb(0, names, stats);
    },

    truncate(path, size, cb) {
      count('truncate');
      const node = resolve(path);
      cb(typeof node === 'number' ? node : setSize(node, size));
    },

    ftruncate(path, fd, size, cb) {
      count('ftruncate');
      const node = fds.get(fd);
      cb(node === undefined ? EBADF : setSize(node, size));
    },

    utimens(path, atime, mtime, cb) {
      count('utimens');
      const node = resolve(path);
      if (typeof node === 'number') return cb(node);
      // undefined = UTIME_OMIT; both omitted changes nothing, not even ctime.
      if (atime === undefined && mtime === undefined) return cb(0);
      if (atime !== undefined) node.atime = atime;
      if (mtime !== undefined) node.mtime = mtime;
      node.ctime = now();
      cb(0);
    },

    readlink(path, cb) {
      count('readlink');
      const node = resolve(path);
      if (typeof node === 'number') cb(node);
      else if (node.target === null) cb(EINVAL);
      else cb(0, node.target);
    },

    chown(path, uid, gid, cb) {
      count('chown');
      const node = resolve(path);
      if (typeof node === 'number') return cb(node);
      if (uid !== KEEP_ID && uid !== -1) node.uid = uid;
      if (gid !== KEEP_ID && gid !== -1) node.gid = gid;
      node.ctime = now();
      cb(0);
    },

    chmod(path, mode, cb) {
      count('chmod');
      const node = resolve(path);
      if (typeof node === 'number') return cb(node);
      node.mode = (node.mode & S_IFMT) | (mode & 0o7777);
      node.ctime = now();
      cb(0);
    },

    mknod(path, mode, dev, cb) {
      count('mknod');
      if ((mode & S_IFMT) === S_IFDIR || (mode & S_IFMT) === S_IFLNK) return cb(EINVAL);
      if ((mode & S_IFMT) === 0) mode |= S_IFREG;
      const node = makeNode(path, mode);
      if (typeof node === 'number') return cb(node);
      node.rdev = dev;
      cb(0);
    },

    mkdir(path, mode, cb) {
      count('mkdir');
      const node = makeNode(path, S_IFDIR | (mode & 0o7777));
      cb(typeof node === 'number' ? node : 0);
    },

    symlink(target, linkPath, cb) {
      count('symlink');
      const node = makeNode(linkPath, S_IFLNK | 0o777);
      if (typeof node === 'number') return cb(node);
      node.target = target;
      node.size = Buffer.byteLength(target, 'latin1');
      cb(0);
    },

    link(src, dest, cb) {
      count('link');
      const node = resolve(src);
      if (typeof node === 'number') return cb(node);
      if (node.entries !== null) return cb(EPERM);
      const p = parentOf(dest);
      if (typeof p === 'number') return cb(p);
      if (p.dir.entries!.has(p.name)) return cb(EEXIST);
      link(p.dir, p.name, node);
      node.nlink++;
      node.ctime = now();
      cb(0);
    },

    unlink(path, cb) {
      count('unlink');
      const p = parentOf(path);
      if (typeof p === 'number') return cb(p);
      const node = p.dir.entries!.get(p.name);
      if (node === undefined) return cb(ENOENT);
      if (node.entries !== null) return cb(EISDIR);
      p.dir.entries!.delete(p.name);
      dropLink(p.dir, node);
      cb(0);
    },

    rmdir(path, cb) {
      count('rmdir');
      const p = parentOf(path);
      if (typeof p === 'number') return cb(p);
      const node = p.dir.entries!.get(p.name);
      if (node === undefined) return cb(ENOENT);
      if (node.entries === null) return cb(ENOTDIR);
      if (node.entries.size !== 0) return cb(ENOTEMPTY);
      p.dir.entries!.delete(p.name);
      dropLink(p.dir, node);
      cb(0);
    },

    rename(src, dest, cb) {
      count('rename');
      const from = parentOf(src);
      if (typeof from === 'number') return cb(from);
      const to = parentOf(dest);
      if (typeof to === 'number') return cb(to);
      const node = from.dir.entries!.get(from.name);
      if (node === undefined) return cb(ENOENT);
      const existing = to.dir.entries!.get(to.name);
      if (existing === node) return cb(0); // same inode: rename(2) does nothing
      const isDir = node.entries !== null;
      if (isDir) {
        // No moving a directory into itself or its own subtree.
        for (let d = to.dir; ; d = d.parent!) {
          if (d === node) return cb(EINVAL);
          if (d === root) break;
        }
      }
      if (existing !== undefined) {
        if (existing.entries !== null) {
          if (!isDir) return cb(EISDIR);
          if (existing.entries.size !== 0) return cb(ENOTEMPTY);
        } else if (isDir) {
          return cb(ENOTDIR);
        }
      }
      from.dir.entries!.delete(from.name);
      if (isDir) from.dir.nlink--;
      if (existing !== undefined) {
        to.dir.entries!.delete(to.name);
        dropLink(to.dir, existing);
      }
      link(to.dir, to.name, node);
      const t = now();
      from.dir.mtime = from.dir.ctime = t;
      node.ctime = t;
      cb(0);
    },

    create(path, mode, _flags, cb) {
      count('create');
      const node = makeNode(path, S_IFREG | (mode & 0o7777));
      if (typeof node === 'number') return cb(node);
      cb(0, openNode(node));
    },

    open(path, flags, cb) {
      count('open');
      const node = resolve(path);
      if (typeof node === 'number') return cb(node);
      if ((flags & O_ACCMODE) !== 0) {
        if (node.entries !== null) return cb(EISDIR);
        // libfuse 2 sends O_TRUNC as a truncate before the open; honour it if it arrives anyway.
        if (flags & O_TRUNC && node.size > 0) setSize(node, 0);
      }
      cb(0, openNode(node));
    },

    read(path, fd, buf, len, pos, cb) {
      count('read');
      const node = fds.get(fd);
      if (node === undefined) return cb(EBADF);
      if (node.chunks === null) return cb(node.entries !== null ? EISDIR : EINVAL);
      cb(readData(node, buf, len, pos));
    },

    write(path, fd, buf, len, pos, cb) {
      count('write');
      const node = fds.get(fd);
      if (node === undefined) return cb(EBADF);
      if (node.chunks === null) return cb(node.entries !== null ? EISDIR : EINVAL);
      // Copied into the chunks before returning: buf is only valid during this call.
      writeData(node, buf, len, pos);
      cb(len);
    },

    flush(path, fd, cb) {
      count('flush');
      cb(0);
    },

    fsync(path, datasync, fd, cb) {
      count('fsync');
      cb(0);
    },

    release(path, fd, _flockOwner, cb) {
      count('release');
      const node = fds.get(fd);
      if (node !== undefined) {
        fds.delete(fd);
        if (--node.opens === 0 && node.nlink === 0) freeData(node);
      }
      cb(0);
    },
  };
}

/** Whether `mountpoint` is in /proc/self/mounts. */
function isMounted(mountpoint: string): boolean {
  try {
    const unescape = (field: string): string =>
      field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
    return readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .some((line) => unescape(line.split(' ')[1] ?? '') === mountpoint);
  } catch {
    return true;
  }
}

function main(args: string[]): void {
  const target = args[0];
  if (target === undefined || args.length !== 1) {
    process.stderr.write('usage: tsx bench/src/memfs.ts <mountpoint>\n');
    process.exit(2);
  }
  const mountpoint = resolvePath(target);
  const counts = new Map<string, number>();
  let fuse: Fuse | undefined;
  fuse = new Fuse(
    mountpoint,
    memOps(counts, () => fuse?.context ?? null),
    {
      timeout: false,
      useIno: true,
      bigWrites: true,
      maxWrite: 128 * 1024,
      attrTimeout: 1,
      entryTimeout: 1,
      negativeTimeout: 0,
      defaultPermissions: true,
      fsname: 'memfs',
    },
  );
  const mounted = fuse;

  process.on('SIGUSR2', () => {
    process.stdout.write(JSON.stringify(Object.fromEntries(counts)) + '\n');
  });
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    mounted.unmount((err) => {
      if (!err) process.exit(0);
      // fuse-native unmounts with `fusermount -uz`, which fails when the mount is already gone.
      const still = isMounted(mountpoint);
      const why = err.message.replace(/\s+/g, ' ').trim();
      process.stderr.write(`memfs: unmount of ${mountpoint}: ${why}${still ? '' : ' (already unmounted)'}\n`);
      process.exit(still ? 1 : 0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  mounted.mount((err) => {
    if (err) {
      process.stderr.write(`memfs: could not mount ${mountpoint}: ${err.message.replace(/\s+/g, ' ').trim()}\n`);
      process.exit(1);
    }
    process.stdout.write('ready\n');
  });
}

function isMain(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) main(process.argv.slice(2));
