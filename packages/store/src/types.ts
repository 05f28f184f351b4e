/** Domain types of the store API. No Redis type crosses this boundary. */
import type { FileType } from '@redisfs/schema';

export type { FileType };

/** An inode number. The root directory is 1. */
export type Ino = number;

/** Attributes of an inode, as stat(2) reports them. */
export interface Attr {
  ino: Ino;
  type: FileType;
  /** st_mode: type bits | permission bits. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  rdev: number;
  /** Times in nanoseconds since the Unix epoch. */
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /**
   * 512-byte blocks charged to the file: for a regular file, the bytes of the blocks it stores
   * (uncompressed; holes are not counted), never more than its size rounded up; for the rest,
   * the size rounded up.
   */
  blocks: number;
  generation: number;
}

/**
 * A directory entry name (also a path, or a symlink target): a string means its UTF-8 bytes, a
 * Buffer the exact bytes. Names are bytes, as in POSIX: any byte but '/' and NUL, 1–255 of them.
 */
export type Name = string | Buffer;

/** One directory entry (never "." or ".."). */
export interface DirEntry {
  /** The name decoded as UTF-8 (a byte sequence that is not valid UTF-8 reads as U+FFFD): for display. */
  name: string;
  /** The name's exact bytes, as stored: what identifies the entry. */
  nameBytes: Buffer;
  ino: Ino;
  type: FileType;
}

/** Owner of a new inode (the calling process's uid and gid). */
export interface Owner {
  uid: number;
  gid: number;
}

/** What setattr may change; absent fields are left alone. ctime always becomes now. */
export interface AttrChanges {
  /** Permission bits (the type bits are kept). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** New size: truncate or extend (regular files only). */
  size?: number;
  atimeNs?: bigint;
  mtimeNs?: bigint;
}

/** One page of a directory listing; `cursor` is '0' when the listing is complete. */
export interface DirPage {
  entries: DirEntry[];
  cursor: string;
}

/** Filesystem usage, as statfs(2) needs it. */
export interface FsStats {
  blockSize: number;
  /** Bytes Redis holds (INFO memory used_memory): what is stored, not the files' sizes. */
  bytesUsed: number;
  /** Live inodes. */
  inodes: number;
  /** What Redis may hold: maxmemory, or the machine's memory when unlimited (0 if unknown). */
  maxBytes: number;
  nameMax: number;
}

/** What an open store has sent to Redis since it was opened (Store.stats). */
export interface StoreStats {
  /**
   * Round trips by command: each command sent counts 1, and so does a script call however many
   * commands it runs inside Redis (keyed "<COMMAND> <script>", e.g. "EVALSHA_RO lookup"); a
   * MULTI or pipeline batch counts 1. Others by name ("HGETALL"). The handshake is not counted.
   */
  commands: Record<string, number>;
}

/**
 * Work the background collector has still to do (Store.pendingWork): what unlinks, truncates and
 * snapshot deletes left behind. It holds memory in Redis until a read-write mount of the family
 * collects it.
 */
export interface PendingWork {
  /** Files whose block map has entries to release (`MP gc`: freed or shrunk files). */
  gcInodes: number;
  /** Blocks nothing references any more, whose keys are yet to be deleted (`{F}#free`). */
  freeBlocks: number;
  /** Deleted members of the family (snapshots, clones) whose keys are still being released (`{F}#dead`). */
  deadMembers: number;
  /**
   * Sessions (mounts) of this filesystem whose lease ran out, by this host's clock, or that are
   * being ended: their holds and locks are still to be released (by any mount with a session).
   */
  deadSessions: number;
}

/** One session: a read-write mount of the filesystem (Store.sessions). */
export interface SessionInfo {
  /** 16 lowercase hex digits. */
  id: string;
  /** Where it runs: host name and process id, its mountpoint ('' when not given), the store's version. */
  host: string;
  pid: number;
  mountpoint: string;
  version: string;
  /** When it registered and when its lease runs out, in ms since the epoch (Redis time); 0 when unknown. */
  startedMs: number;
  expiresMs: number;
  /** Whether its lease runs past Redis's time now (false: expired, or declared dead and being ended). */
  alive: boolean;
  /** Inodes it holds open, and inodes on which it holds locks. */
  openFiles: number;
  locks: number;
  /** Whether it is this store's own session. */
  this: boolean;
}

/** setxattr flags (Linux XATTR_CREATE / XATTR_REPLACE). */
export interface XattrFlags {
  create?: boolean;
  replace?: boolean;
}

/** Options of {@link openStore}. */
export interface StoreOptions {
  /**
   * Where Redis is (user, password, db allowed); default redis://127.0.0.1:6379.
   * `redis://host:port`: one server, or, when it is a Redis Cluster node, the whole cluster;
   * `redis://h1:p1,h2:p2`: cluster seed nodes; `redis+sentinel://h1:p1,h2:p2/MASTER`: the
   * master the sentinels name, followed through failovers; `rediss…` for TLS.
   */
  url?: string;
  /** Unix socket path; takes precedence over url's host/port. */
  socket?: string;
  /** Filesystem prefix; default 'skx'. */
  prefix?: string;
  /** Refuse every change with EROFS and never write to Redis. */
  readOnly?: boolean;
  /**
   * A snapshot (made by snapshotFilesystem) opens read-only unless this is true, so that it
   * keeps holding its point in time.
   */
  writeSnapshot?: boolean;
  /**
   * Create the filesystem if the prefix holds none (default true unless readOnly).
   * When false, opening an empty prefix fails with ENOENT.
   */
  create?: boolean;
  /**
   * Whether write scripts store block values themselves (default true: every key of a single
   * server is reachable from a script). False stores the values first and then swaps the map
   * entries, as Redis Cluster requires; tests use it to exercise that path on one server.
   */
  inlineBlocks?: boolean;
  /** Block size for a new filesystem; default 64 KiB. Existing filesystems keep theirs. */
  blockSize?: number;
  /**
   * Upper bound of one store operation, in ms (Redis down → ETIMEDOUT; Infinity: wait as long as
   * it takes, as an NFS hard mount does); default 10 000 on one
   * server, 60 000 on a cluster or through Sentinel (an operation waits out a failover).
   */
  opTimeoutMs?: number;
  /**
   * Replicas that must acknowledge each change (WAIT) before it returns: every write, and every
   * metadata change. Default 0: a change returns once the master has it (Redis replication is
   * asynchronous: a master lost before it replicated loses it).
   */
  syncReplicas?: number;
  /** How long a change waits for syncReplicas acknowledgements before failing with EIO; default 5 000. */
  syncTimeoutMs?: number;
  /** Time to wait for the first connection, in ms; default 5 000. */
  connectTimeoutMs?: number;
  /**
   * Register this store as a session (a mount): files it holds open (Store.open, createOpen)
   * stay alive when removed, on any host, until it releases them; its locks and holds end with
   * it, or when its lease (default 60 000 ms, renewed every quarter of it) runs out. Ignored by
   * a read-only store. Tools (fsck, snapshots) open stores without one.
   */
  session?: { mountpoint?: string; leaseMs?: number };
  /** Called for unexpected conditions worth a log line (corrupt records, failed cleanup). */
  onWarning?: (message: string, cause?: unknown) => void;
}
