/**
 * @redisfs/fuse: mounts a @redisfs/store filesystem with FUSE. A thin adapter: paths become
 * inodes (with a short attribute cache), writes are buffered per open file, store errors become
 * errno in one place. See README.md.
 */
export { mountFs, DEFAULT_CACHE_TIMEOUT_MS, type MountFsOptions, type MountedFs, type MountStats } from './mount.js';
export type { CacheCounts, LogFn, LogLevel, OperationObserver } from './internal/run-op.js';
export { MountError, type MountErrorCode } from './errors.js';
export { forceUnmount } from './unmount.js';
