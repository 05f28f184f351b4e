/**
 * @redisfs/cli-common: the command-line plumbing the redisfs CLIs share: exit codes, the usage
 * error, secret scrubbing and the validation of where Redis is. No parser: the apps bring yargs.
 */
export { EXIT_OK, EXIT_FAILURE, EXIT_USAGE, UsageError, exitCodeOf, endQuietlyOnClosedOutput } from './errors.js';
export { scrubSecrets, secretsOfUrl, secretsOfCommandLine } from './secrets.js';
export { stringFlagError, prefixSchema } from './flags.js';
export { firstIssueMessage } from './usage.js';
export {
  URL_ENV,
  redisUrlSchema,
  redisTargetShape,
  redisTargetFlagsOf,
  redisTargetSchema,
  REDIS_TARGET_OPTIONS,
  resolveRedisTarget,
  type RedisTargetFlags,
  type RedisTarget,
} from './redis-target.js';
export { DEFAULT_REDIS, pingRedis, type ProbeAddress } from './local-redis.js';
export {
  resolveDefaultRedis,
  ensurePrivateRedis,
  privateRedisStatus,
  stopPrivateRedis,
  privateRedisDir,
  idleSecondsOf,
  findExecutable,
  IDLE_ENV,
  DEFAULT_IDLE_SECONDS,
  type PrivateRedis,
  type PrivateRedisOptions,
  type PrivateRedisStatus,
  type RunningStatus,
  type StopOutcome,
  type KeeperState,
} from './private-redis.js';
export { PROGRESS_ENV, createProgress, stderrProgress, type Progress, type ProgressOptions, type ProgressUpdate } from './progress.js';
