/**
 * Running `redisfs fsck` (the built CLI) against a test's Redis, e.g. after a concurrency test:
 *
 *   await expectFsckClean(redis, prefix);
 *
 * Exit codes follow e2fsck: 0 clean, 1 problems found and all repaired, 4 problems left,
 * 8 operational error.
 */
import { type RunResult, type StartedRedis, run } from '@redisfs/testing';
import { MOUNT_CLI, requireBuilt } from './paths.js';

/** Runs `redisfs fsck --prefix <prefix>` (plus `extraArgs`, e.g. `--repair`) against `redis`, whatever its exit code. */
export function runFsck(redis: Pick<StartedRedis, 'url'>, prefix: string, extraArgs: readonly string[] = []): Promise<RunResult> {
  return run(process.execPath, [requireBuilt(MOUNT_CLI), 'fsck', '--url', redis.url, '--prefix', prefix, ...extraArgs], {
    timeoutMs: 120_000,
  });
}

/**
 * Checks filesystem `prefix` read-only and fails (throws) with the checker's output unless it
 * exits 0, i.e. every entry names a live inode and every live inode's nlink matches its entries.
 * Run it once the filesystem is quiet (mounts unmounted or idle): a check of a filesystem being
 * written may report transient problems.
 */
export async function expectFsckClean(redis: Pick<StartedRedis, 'url'>, prefix: string): Promise<void> {
  const result = await runFsck(redis, prefix);
  if (result.code === 0) return;
  const how = result.code === null ? `was killed by ${result.signal}` : `exited ${result.code}`;
  throw new Error(`redisfs fsck --prefix ${prefix} ${how}, expected 0 (clean):\n${result.stdout}${result.stderr}`);
}
