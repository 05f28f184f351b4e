/**
 * The test harness the store, CLI and e2e tests share: real Redis servers (one, a cluster,
 * sentinels, the layout-1 fixture), the machine's prerequisites, deadlines instead of sleeps,
 * temp dirs and trees, child processes. Every started thing is AsyncDisposable (`await using`).
 * Mounting redisfs is e2e's own (e2e/helpers).
 */
export { waitFor, waitForNoProblem, WaitTimeoutError, SYSTEM_CLOCK, type Clock, type WaitForOptions, type Settled } from './wait-for.js';
export {
  requireRedis,
  requireFuse,
  requireRedisTools,
  isCi,
  findExecutable,
  findFusermount,
  containerRuntimeAnswers,
  PrerequisiteError,
  missingPrerequisite,
} from './prerequisites.js';
export {
  describeWithRedis,
  prerequisitesMet,
  type DescribeWithRedisOptions,
  type StoppableServer,
} from './describe-with-redis.js';
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
export {
  startLayout1Redis,
  readLayout1Manifest,
  type Layout1Redis,
  type Layout1Manifest,
  type ManifestPath,
  type ManifestPrefix,
} from './layout1.js';
export { storedInode, inodeStored, storedInodeEntries } from './inodes.js';
export { startLayout2Redis, readLayout2Manifest, type Layout2Manifest, type Layout2Prefix, type Layout2Redis } from './layout2.js';
export { startFixtureRedis, type FixtureRedis } from './fixture-redis.js';
export { run, runOk, type RunOptions, type RunResult } from './run.js';
export { freePort } from './free-port.js';
export { tempDir, exists, uniquePrefix, setMtime, makeSourceTree, SOURCE_TREE_PATHS, type TempDir } from './fixtures.js';
export { describeTree, diffTrees, sha256File, type TreeDescription, type TreeEntry, type DescribeOptions } from './tree.js';
export { disposeWhenTestEnds } from './lifecycle.js';
export { own, exited, exitedWithin, stopChild, isRunning, isAlive, OutputTail, type ChildExit } from './child.js';
