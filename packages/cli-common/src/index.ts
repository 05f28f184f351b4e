/**
 * @redisfs/cli-common: the command-line plumbing the redisfs CLIs share: exit codes, the usage
 * error, secret scrubbing and the validation of where Redis is. No parser: the apps bring yargs.
 */
export { EXIT_OK, EXIT_FAILURE, EXIT_USAGE, UsageError, exitCodeOf } from './errors.js';
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
export {
  DEFAULT_REDIS,
  embeddedDataDir,
  embeddedSocket,
  pingRedis,
  findPrivateRedis,
  type ProbeAddress,
} from './local-redis.js';
