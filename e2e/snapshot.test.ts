/**
 * `redisfs-snapshot --from A --to B`, run as its own process: B mounts as an exact copy of A,
 * independent of it; an existing B is only replaced with --force.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SNAPSHOT_CLI,
  describeTree,
  diffTrees,
  makeSourceTree,
  mountRedisfs,
  requireBuilt,
  requireFuse,
  requireRedis,
  run,
  runOk,
  startRedis,
  tempDir,
  uniquePrefix,
  type RunResult,
  type StartedRedis,
} from './helpers/index.js';

const ready = (await requireRedis()) && requireFuse();

describe.skipIf(!ready)('redisfs-snapshot', () => {
  let redis: StartedRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  const snapshot = (...args: string[]): Promise<RunResult> =>
    run(process.execPath, [requireBuilt(SNAPSHOT_CLI), '--url', redis.url, ...args], { timeoutMs: 60_000 });

  it('copies a filesystem to a new prefix, byte for byte, and refuses to overwrite without --force', async () => {
    const [from, to] = [uniquePrefix('snap-from'), uniquePrefix('snap-to')];
    await using src = await tempDir('src');
    await makeSourceTree(src.path);
    const want = await describeTree(src.path);
    {
      await using mnt = await mountRedisfs({ redis, prefix: from });
      await runOk('cp', ['-a', `${src.path}/.`, mnt.path('tree')]);
    }

    const first = await snapshot('--from', from, '--to', to);
    expect(first, first.stderr).toMatchObject({ code: 0 });

    {
      await using copy = await mountRedisfs({ redis, prefix: to });
      expect(await diffTrees(src.path, copy.path('tree'))).toMatchObject({ code: 0, stdout: '' });
      expect(await describeTree(copy.path('tree'))).toEqual(want);
      // The copy is independent: change it, and the original stays as it was.
      await writeFile(copy.path('tree/README.txt'), 'changed in the copy\n');
      await writeFile(copy.path('only-in-copy'), 'x');
    }
    {
      await using original = await mountRedisfs({ redis, prefix: from });
      expect(await describeTree(original.path('tree'))).toEqual(want);
      expect(await readdir(original.dir)).toEqual(['tree']);
    }

    const again = await snapshot('--from', from, '--to', to);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(new RegExp(`--force|${to.replace(/[.]/g, '\\.')}`));
    expect(again.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
    {
      await using copy = await mountRedisfs({ redis, prefix: to });
      expect(await readFile(copy.path('tree/README.txt'), 'utf8')).toBe('changed in the copy\n');
    }

    const forced = await snapshot('--from', from, '--to', to, '--force');
    expect(forced, forced.stderr).toMatchObject({ code: 0 });
    await using copy = await mountRedisfs({ redis, prefix: to });
    expect(await readdir(copy.dir)).toEqual(['tree']);
    expect(await diffTrees(src.path, copy.path('tree'))).toMatchObject({ code: 0, stdout: '' });
    expect(await describeTree(copy.path('tree'))).toEqual(want);
  });

  it('fails when the source prefix holds no filesystem', async () => {
    const result = await snapshot('--from', uniquePrefix('snap-none'), '--to', uniquePrefix('snap-none-to'));
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim()).not.toBe('');
    expect(result.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
  });
});
