/**
 * @redisfs/store: a POSIX filesystem's inodes, directory entries and compressed data blocks
 * in Redis. Each operation is atomic in Redis; errors are FsError with a POSIX code.
 */
export { openStore } from './open.js';
export type { Store, InodeApi, PathApi, SessionApi } from './api.js';
export { FsError, isFsError, isFsErrorCode, FS_ERROR_CODES, type FsErrorCode } from './errors.js';
export type {
  Attr,
  AttrChanges,
  DirEntry,
  DirPage,
  FileType,
  FsStats,
  Ino,
  Name,
  Owner,
  PendingWork,
  SessionInfo,
  StoreOptions,
  StoreStats,
  XattrFlags,
} from './types.js';
export type { Locks, LockType, ByteRange, LockHolder, LockWatch } from './internal/locks.js';
export { redactUrl, describeTarget } from './internal/connect.js';
export { parseRedisUrl, type ParsedRedisUrl, type RedisHost } from './internal/redis-url.js';
export {
  listFilesystems,
  deleteFilesystem,
  type AdminTarget,
  type DeleteFilesystemOptions,
  type DeleteProgress,
  type FilesystemInfo,
} from './admin.js';
export {
  checkFilesystem,
  FSCK_PROBLEM_KINDS,
  type FsckOptions,
  type FsckReport,
  type FsckProblem,
  type FsckProblemKind,
  type FsckRepair,
  type FsckCounts,
  type FsckPending,
  type FsckProgress,
  type FsckSession,
  type FsckKeptOpen,
} from './fsck.js';
export {
  snapshotFilesystem,
  restoreFilesystem,
  copyFilesystem,
  type CopyFilesystemOptions,
  type CopyProgress,
  type CopyResult,
} from './snapshot.js';
export {
  upgradeFilesystem,
  type UpgradeOptions,
  type UpgradeProgress,
  type UpgradeResult,
} from './upgrade.js';
export { familyOf, MAX_FILE_SIZE } from '@redisfs/schema';
