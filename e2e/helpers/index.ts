/**
 * The e2e harness: real Redis servers, real FUSE mounts of the built CLI, real tools, and
 * deadlines instead of sleeps. Every started thing is AsyncDisposable (`await using`).
 */
export { waitFor, WaitTimeoutError, SYSTEM_CLOCK, type Clock, type WaitForOptions, type Settled } from './wait-for.js';
export {
  requireRedis,
  requireFuse,
  requireRedisTools,
  isCi,
  findExecutable,
  findFusermount,
  containerRuntimeAnswers,
  PrerequisiteError,
} from './prerequisites.js';
export {
  startRedis,
  startLocalRedis,
  pingRedis,
  redisCommand,
  RedisReplyError,
  type StartedRedis,
  type StartRedisOptions,
  type StartLocalRedisOptions,
  type LocalRedis,
  type RedisAddress,
  type RedisReply,
} from './redis-server.js';
export {
  startRedisCluster,
  keySlot,
  keyForSlot,
  crc16,
  CLUSTER_SLOT_COUNT,
  type StartedRedisCluster,
  type StartRedisClusterOptions,
  type RedisClusterNode,
  type ClusterRole,
  type SlotRange,
} from './redis-cluster.js';
export { startRedisSentinel, type StartedRedisSentinel, type StartRedisSentinelOptions } from './redis-sentinel.js';
export { mountRedisfs, forceUnmount, mountArgs, type StartedMount, type MountOptions, type UnmountResult } from './mount.js';
export { readMounts, findMount, isMounted, parseMountinfo, type MountEntry } from './mountinfo.js';
export { run, runOk, type RunOptions, type RunResult } from './run.js';
export { freePort } from './free-port.js';
export { REPO_ROOT, MOUNT_CLI, SNAPSHOT_CLI, requireBuilt } from './paths.js';
export { tempDir, exists, uniquePrefix, setMtime, makeSourceTree, SOURCE_TREE_PATHS, type TempDir } from './fixtures.js';
export { describeTree, diffTrees, sha256File, type TreeDescription, type TreeEntry, type DescribeOptions } from './tree.js';
export { disposeWhenTestEnds } from './lifecycle.js';
export { expectFsckClean, runFsck } from './fsck.js';
export { exited, exitedWithin, stopChild, isRunning, OutputTail, type ChildExit } from './child.js';
export { startWriter, sha256, type Writer } from './writer.js';
export { startFsyncWriter, type FsyncWriter, type FsyncWriterOptions } from './fsync-writer.js';
