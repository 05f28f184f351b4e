/**
 * mountFs: mounts a store with FUSE (fuse-native over libfuse 2) and returns a handle to unmount
 * it. The kernel's entry cache lasts as long as the adapter's cache (cacheTimeoutMs); the kernel
 * caches no attributes (see attrTimeout below), the adapter answers them from its own cache, and
 * the patched binding answers in C what the adapter published (FsState.publish);
 * permissions are checked by the kernel (default_permissions), and inode numbers are the store's
 * (use_ino), so hard links and `find` work.
 */
import { createRequire } from 'node:module';
import { resolve as resolvePath } from 'node:path';
import type { Store } from '@redisfs/store';
import Fuse from 'fuse-native';
import { MountError } from './errors.js';
import { FsState } from './internal/fs-state.js';
import { checkMountpoint, isMountpoint, lazyUnmount, watchMount } from './internal/mountpoint.js';
import { makeOps } from './internal/ops.js';
import { OpCounts, describeError, type CacheCounts, type LogFn, type LogLevel, type OperationObserver } from './internal/run-op.js';

/** Options of {@link mountFs}. */
export interface MountFsOptions {
  /** The open store to serve. It stays open after unmount: close it yourself. */
  store: Store;
  /** An existing, empty directory. */
  mountpoint: string;
  /** Log one line per FUSE operation through `log` (libfuse's own trace: DEBUG=fuse-bindings). */
  debug?: boolean;
  /** Let other users access the mount (non-root needs user_allow_other in /etc/fuse.conf). */
  allowOther?: boolean;
  /** Mount read-only (also implied by a read-only store): every change answers EROFS. */
  readOnly?: boolean;
  /**
   * How long attributes and directory entries may be cached, in ms: attributes and entries by
   * this adapter, entries by the kernel. Changes made through other clients show after at most
   * this long; an open always reads the file's attributes afresh (close-to-open). Default 1000;
   * 0 = no cache (strict).
   */
  cacheTimeoutMs?: number;
  /**
   * Where log lines go, each with its level: `error` (EIO for an unforeseen reason, lost
   * writes), `warn` (the store failed: `read /a/b 4096@0: EIO: …`), `info` (the mount's life),
   * `debug` (one line per operation, with `debug`). Routine errors (ENOENT, EEXIST, EACCES…)
   * are not logged above debug. Default: stderr, `redisfs: warning: …`.
   */
  log?: LogFn;
  /**
   * Told of every operation this adapter answers (not those the binding answers in C): its name
   * ("lookup"), seconds from call to answer, and the errno name it failed with ("ENOENT";
   * undefined on success). Runs on the answering path: keep it cheap (a histogram's observe).
   */
  onOperation?: OperationObserver;
  /**
   * The mount's source as mount(8), df and /proc/mounts show it (the type shows as
   * fuse.redisfs); default "redisfs". Cut to 255 bytes.
   */
  fsname?: string;
  /**
   * Kernel mount flags, as mount(8) spells them, applied by libfuse on top of FUSE's defaults
   * (nosuid, nodev, exec, async; for root too). suid and dev take effect for root only.
   */
  mountFlags?: readonly MountFlag[];
}

/** The kernel mount flags libfuse 2 takes in its -o list (lib/mount.c, mount_flags). */
export type MountFlag = 'suid' | 'nosuid' | 'dev' | 'nodev' | 'exec' | 'noexec' | 'noatime' | 'sync' | 'async' | 'dirsync';

/** A mounted filesystem. */
export interface MountedFs {
  /** The real path of the mountpoint. */
  readonly mountpoint: string;
  /** Stores buffered writes, unmounts (lazily, like `fusermount -uz`) and resolves `closed`. */
  unmount(): Promise<void>;
  /** Resolves once the filesystem is unmounted, by unmount() or from outside (`fusermount -u`). */
  readonly closed: Promise<void>;
  /** What the mount has served so far (a copy; cheap: no I/O). */
  stats(): MountStats;
}

/** What {@link MountedFs.stats} reports, counted since the mount. */
export interface MountStats {
  /**
   * Calls that reached this adapter's handlers, by operation ("getattr", "create", …); calls the
   * kernel or the binding answered without a handler are not in it.
   */
  fuseCalls: Record<string, number>;
  /** Calls answered with an error, by operation, then errno name ({ lookup: { ENOENT: 2 } }). */
  fuseErrors: Record<string, Record<string, number>>;
  /** Bytes answered to read(2) calls that reached the adapter (the kernel's page cache answers others). */
  bytesRead: number;
  /** Bytes accepted from write(2) calls (buffered, then stored). */
  bytesWritten: number;
  /**
   * Hits and misses of the adapter's caches: `attr`, the attribute and entry cache (lookups of
   * a path's attributes in JS; the getattr calls the binding answers in C from what it
   * published are hits too, but not counted), and `readAhead`, reads answered from a window
   * already held or being fetched versus reads that needed a fetch.
   */
  cache: { attr: CacheCounts; readAhead: CacheCounts };
  /**
   * This mount's session in the store (undefined on a read-only mount): its id, the files open
   * through this mount (handles), and the (inode, lock owner) pairs that may hold fcntl locks.
   */
  session: { id: string | undefined; openHandles: number; posixLockOwners: number };
}

/** Default for {@link MountFsOptions.cacheTimeoutMs}. */
export const DEFAULT_CACHE_TIMEOUT_MS = 1000;
/** Largest write the kernel sends at once (big_writes). */
const MAX_WRITE = 128 * 1024;
/** How long to wait for the kernel to start the filesystem after mounting. */
const MOUNT_TIMEOUT_MS = 30_000;

/** The deadline of one FUSE call in ms, 0 for none: the store's operation timeout. */
function callDeadlineMs(store: { opTimeoutMs: number }): number {
  return Number.isFinite(store.opTimeoutMs) && store.opTimeoutMs > 0 ? store.opTimeoutMs : 0;
}

function defaultLog(line: string, level: LogLevel): void {
  const label = level === 'warn' ? 'warning: ' : level === 'error' ? 'error: ' : '';
  process.stderr.write(`redisfs: ${label}${line}\n`);
}

/**
 * Mounts `options.store` on `options.mountpoint`. Fails with a MountError when the mountpoint is
 * missing, not a directory, not empty, already mounted, or when FUSE refuses. Installs no signal
 * handlers: call unmount() from yours.
 */
export async function mountFs(options: MountFsOptions): Promise<MountedFs> {
  const cacheTimeoutMs = options.cacheTimeoutMs ?? DEFAULT_CACHE_TIMEOUT_MS;
  if (!Number.isFinite(cacheTimeoutMs) || cacheTimeoutMs < 0) {
    throw new RangeError(`cacheTimeoutMs must be a number >= 0, got ${cacheTimeoutMs}`);
  }
  const log = options.log ?? defaultLog;
  const readOnly = options.readOnly === true || options.store.readOnly;
  const mountpoint = await checkMountpoint(resolvePath(options.mountpoint));

  let fuse: Fuse | undefined;
  const state = new FsState({
    store: options.store,
    readOnly,
    cacheTimeoutMs,
    // One deadline per call: the store's operation timeout (none on a hard mount: Infinity).
    env: { debug: options.debug === true, log, deadlineMs: callDeadlineMs(options.store), counts: new OpCounts(), onOperation: options.onOperation },
    caller: () => fuse?.context ?? null,
    mountpoint,
  });
  const seconds = cacheTimeoutMs / 1000;
  fuse = new Fuse(mountpoint, makeOps(state), {
    timeout: false,
    useIno: true,
    bigWrites: true,
    maxWrite: MAX_WRITE,
    // 0: libfuse 2 gives each name of a hard link its own kernel inode, so a kernel attr cache
    // would show a stale size or nlink through the other names. The in-process cache answers instead.
    attrTimeout: 0,
    entryTimeout: seconds,
    // 0 whatever the cache timeout: a cached "no such name" would hide a name another host
    // created (create without O_EXCL then opens it, but stat and open without O_CREAT would fail).
    negativeTimeout: 0,
    defaultPermissions: true,
    allowOther: options.allowOther === true,
    ro: readOnly,
    fsname: fuseOptionValue(options.fsname ?? 'redisfs'),
    subtype: 'redisfs',
    autoUnmount: false,
  });
  // No hard_remove: libfuse renames a file removed while open here to .fuse_hidden…, so that
  // fstat(2) of it still has a path; the adapter turns that rename into the removal (the store
  // keeps the inode while it is held open) and answers for the hidden name itself (FsState.hidden).
  // Nothing is stored under that name, so a crash leaves nothing behind.
  appendFuseOptions(fuse, options.mountFlags ?? []);
  await startFuse(fuse, mountpoint, options.allowOther === true);
  // getattr of what the attribute cache holds, and flush of clean handles, are then answered in
  // C (see FsState.publish and FsState.markClean).
  state.attachNative(fuse);
  return new FuseMount(fuse, mountpoint, state, log);
}

/** Longest fsname: fuse-native hands libfuse the whole -o list in a 1024-byte buffer. */
const MAX_FSNAME_BYTES = 255;

/** A value in libfuse's -o list: `,` and `\` escaped with `\` (lib/fuse_opt.c), cut to MAX_FSNAME_BYTES. */
function fuseOptionValue(value: string): string {
  let out = '';
  for (const c of value) {
    const escaped = c === ',' || c === '\\' ? `\\${c}` : c;
    if (Buffer.byteLength(out + escaped) > MAX_FSNAME_BYTES) break;
    out += escaped;
  }
  return out;
}

/**
 * fuse-native has no option for the kernel's mount flags: add them to the -o list it builds
 * (libfuse applies them when it mounts, and fusermount drops suid and dev for other users).
 */
function appendFuseOptions(fuse: Fuse, extra: readonly string[]): void {
  if (extra.length === 0) return;
  const native = fuse as unknown as { _fuseOptions(): string };
  const built = native._fuseOptions.bind(fuse);
  native._fuseOptions = () => {
    const list = built();
    return list === '' ? `-o${extra.join(',')}` : `${list},${extra.join(',')}`;
  };
}

/** fuse.mount as a promise, with FUSE's terse failures turned into MountErrors. */
function startFuse(fuse: Fuse, mountpoint: string, allowOther: boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new MountError('ETIMEDOUT', mountpoint, `FUSE did not start on ${mountpoint} within ${MOUNT_TIMEOUT_MS} ms`));
      fuse.unmount(() => undefined);
    }, MOUNT_TIMEOUT_MS);
    fuse.mount((err) => {
      clearTimeout(timer);
      if (!err) return resolve();
      const hint = allowOther ? '; allowOther needs user_allow_other in /etc/fuse.conf when not root' : '';
      reject(
        new MountError(
          'EIO',
          mountpoint,
          `could not mount ${mountpoint}: ${err.message} (is /dev/fuse usable and fusermount installed?${hint})`,
          { cause: err },
        ),
      );
    });
  });
}

/**
 * fuse-native only releases its native handle (which keeps the event loop alive) after its own
 * fusermount succeeds. When the mount went away from outside, release it directly.
 */
function releaseNativeHandle(fuse: Fuse, log: LogFn): void {
  try {
    const require = createRequire(import.meta.url);
    const binding = require('fuse-native/build/Release/fuse.node') as {
      fuse_native_unmount(mountpoint: string, thread: Buffer): void;
    };
    const thread = (fuse as unknown as { _thread?: Buffer | null })._thread;
    if (thread) binding.fuse_native_unmount(fuse.mnt, thread);
  } catch (err) {
    log(`could not release the FUSE handle: ${describeError(err)}`, 'warn');
  }
}

class FuseMount implements MountedFs {
  readonly closed: Promise<void>;
  private markClosed!: () => void;
  private closing: Promise<void> | undefined;
  private readonly stopWatching: () => void;

  constructor(
    private readonly fuse: Fuse,
    readonly mountpoint: string,
    private readonly state: FsState,
    private readonly log: LogFn,
  ) {
    this.closed = new Promise((resolve) => {
      this.markClosed = resolve;
    });
    this.stopWatching = watchMount(mountpoint, () => {
      this.log(`${mountpoint} was unmounted from outside`, 'info');
      this.closing ??= this.finish(true);
    });
  }

  stats(): MountStats {
    const counts = this.state.env.counts ?? new OpCounts();
    return {
      fuseCalls: counts.snapshot(),
      fuseErrors: counts.errorSnapshot(),
      bytesRead: counts.bytesRead,
      bytesWritten: counts.bytesWritten,
      cache: { attr: { ...counts.attrCache }, readAhead: { ...counts.readAhead } },
      session: { id: this.state.store.sessionId, openHandles: this.state.files.size, posixLockOwners: this.state.posixLockOwners },
    };
  }

  unmount(): Promise<void> {
    this.closing ??= this.finish(false).catch((err: unknown) => {
      this.closing = undefined; // allow another try
      throw err;
    });
    return this.closing;
  }

  private async finish(external: boolean): Promise<void> {
    await this.state.flushAll();
    if (external) {
      releaseNativeHandle(this.fuse, this.log);
    } else {
      try {
        await new Promise<void>((resolve, reject) => this.fuse.unmount((err) => (err ? reject(err) : resolve())));
      } catch (err) {
        // fuse-native already tried `fusermount -uz`; it fails when the mount is gone meanwhile.
        if (await isMountpoint(this.mountpoint).catch(() => true)) {
          await lazyUnmount(this.mountpoint);
        }
        this.log(`unmount: fuse-native failed (${err instanceof Error ? err.message : String(err)}); mount is gone now`, 'warn');
        releaseNativeHandle(this.fuse, this.log);
      }
    }
    // Watched until here: if this unmount fails, an unmount from outside still resolves `closed`.
    this.stopWatching();
    this.markClosed();
  }
}
