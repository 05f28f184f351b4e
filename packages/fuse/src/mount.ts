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
import { OpCounts, describeError } from './internal/run-op.js';

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
  /** Where log lines go; default: stderr with a "redisfs: " prefix. */
  log?: (line: string) => void;
}

/** A mounted filesystem. */
export interface MountedFs {
  /** The real path of the mountpoint. */
  readonly mountpoint: string;
  /** Stores buffered writes, unmounts (lazily, like `fusermount -uz`) and resolves `closed`. */
  unmount(): Promise<void>;
  /** Resolves once the filesystem is unmounted, by unmount() or from outside (`fusermount -u`). */
  readonly closed: Promise<void>;
  /** FUSE calls served so far, by operation (a copy). */
  stats(): MountStats;
}

/** What {@link MountedFs.stats} reports. */
export interface MountStats {
  /**
   * Calls that reached this adapter's handlers, by operation ("getattr", "create", …); calls the
   * kernel or the binding answered without a handler are not in it.
   */
  fuseCalls: Record<string, number>;
}

/** Default for {@link MountFsOptions.cacheTimeoutMs}. */
export const DEFAULT_CACHE_TIMEOUT_MS = 1000;
/** Largest write the kernel sends at once (big_writes). */
const MAX_WRITE = 128 * 1024;
/** An operation that has not settled after this long is answered EIO (store ops time out sooner). */
const WATCHDOG_MS = 60_000;
/** How long to wait for the kernel to start the filesystem after mounting. */
const MOUNT_TIMEOUT_MS = 30_000;

function defaultLog(line: string): void {
  process.stderr.write(`redisfs: ${line}\n`);
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
    env: { debug: options.debug === true, log, watchdogMs: WATCHDOG_MS, counts: new OpCounts() },
    caller: () => fuse?.context ?? null,
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
    // 0 whatever the cache timeout: with a cached "no such name", open(O_CREAT) of a name another
    // host created meanwhile goes straight to create, which then fails with EEXIST (fuse-native's
    // create gets no flags, so it cannot fall back to opening when O_EXCL is not set).
    negativeTimeout: 0,
    defaultPermissions: true,
    allowOther: options.allowOther === true,
    ro: readOnly,
    fsname: 'redisfs',
    subtype: 'redisfs',
    autoUnmount: false,
  });
  await startFuse(fuse, mountpoint, options.allowOther === true);
  // getattr of what the attribute cache holds, and flush of clean handles, are then answered in
  // C (see FsState.publish and FsState.markClean).
  state.attachNative(fuse);
  return new FuseMount(fuse, mountpoint, state, log);
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
function releaseNativeHandle(fuse: Fuse, log: (line: string) => void): void {
  try {
    const require = createRequire(import.meta.url);
    const binding = require('fuse-native/build/Release/fuse.node') as {
      fuse_native_unmount(mountpoint: string, thread: Buffer): void;
    };
    const thread = (fuse as unknown as { _thread?: Buffer | null })._thread;
    if (thread) binding.fuse_native_unmount(fuse.mnt, thread);
  } catch (err) {
    log(`could not release the FUSE handle: ${describeError(err)}`);
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
    private readonly log: (line: string) => void,
  ) {
    this.closed = new Promise((resolve) => {
      this.markClosed = resolve;
    });
    this.stopWatching = watchMount(mountpoint, () => {
      this.log(`${mountpoint} was unmounted from outside`);
      this.closing ??= this.finish(true);
    });
  }

  stats(): MountStats {
    return { fuseCalls: this.state.env.counts?.snapshot() ?? {} };
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
        this.log(`unmount: fuse-native failed (${err instanceof Error ? err.message : String(err)}); mount is gone now`);
        releaseNativeHandle(this.fuse, this.log);
      }
    }
    // Watched until here: if this unmount fails, an unmount from outside still resolves `closed`.
    this.stopWatching();
    this.markClosed();
  }
}
