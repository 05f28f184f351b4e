/**
 * The e2e harness: real Redis servers, real FUSE mounts of the built CLI, real tools, and
 * deadlines instead of sleeps. Every started thing is AsyncDisposable (`await using`).
 * What is not about mounts lives in @redisfs/testing (shared with the store's tests) and is
 * re-exported here, so that an e2e file imports everything from this one place.
 */
export * from '@redisfs/testing';
export { mountRedisfs, forceUnmount, mountArgs, statsLines, statsOf, type StartedMount, type MountOptions, type MountStats, type UnmountResult } from './mount.js';
export { readMounts, findMount, isMounted, parseMountinfo, type MountEntry } from './mountinfo.js';
export { REPO_ROOT, MOUNT_CLI, SNAPSHOT_CLI, requireBuilt } from './paths.js';
export { expectFsckClean, runFsck } from './fsck.js';
export { startWriter, sha256, type Writer } from './writer.js';
export { startFsyncWriter, type FsyncWriter, type FsyncWriterOptions } from './fsync-writer.js';
export { startLocker, requireLockTools, prefixKeys, sessionOf, type Locker, type LockerReply, type LockInfo, type LockKind } from './locker.js';
export { runTogether, type TogetherJob } from './together.js';
