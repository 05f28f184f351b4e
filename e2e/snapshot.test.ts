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
      await using copy = await mountRedisfs({ redis, prefix: to, extraArgs: ['--read-write'] });
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

  it('manages snapshots: list, mount read-only (or --read-write), restore into a live prefix, delete', async () => {
    const [live, monday] = [uniquePrefix('managed'), uniquePrefix('managed.monday')];
    {
      await using mnt = await mountRedisfs({ redis, prefix: live });
      await writeFile(mnt.path('notes.txt'), 'monday\n');
    }
    const taken = await snapshot('--from', live, '--to', monday);
    expect(taken, taken.stderr).toMatchObject({ code: 0 });
    expect(taken.stdout).toMatch(new RegExp(`snapshot of '${live}' as '${monday}' at \\d{4}-`));

    // Listed with its source, time, size and inode count.
    const listed = await snapshot('list', '--of', live);
    expect(listed, listed.stderr).toMatchObject({ code: 0 });
    const lines = listed.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+TIME\s+SIZE\s+INODES\s+SNAPSHOT OF$/);
    expect(lines.slice(1)).toHaveLength(1);
    expect(lines[1]!.split(/\s+/)).toEqual([monday, expect.stringMatching(/^\d{4}-\d\d-\d\dT/), '7', '2', live]);

    // Mounted directly: read-only unless asked otherwise.
    {
      await using snap = await mountRedisfs({ redis, prefix: monday });
      expect(await readFile(snap.path('notes.txt'), 'utf8')).toBe('monday\n');
      await expect(writeFile(snap.path('notes.txt'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
      expect(snap.stderr()).toMatch(/snapshot of .* read-only/);
    }

    // Tuesday's change, then restore Monday into the live prefix (unmounted).
    {
      await using mnt = await mountRedisfs({ redis, prefix: live });
      await writeFile(mnt.path('notes.txt'), 'tuesday, with a mistake\n');
    }
    const refused = await snapshot('restore', '--from', monday, '--to', live);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/--force/);
    const restored = await snapshot('restore', '--from', monday, '--to', live, '--force');
    expect(restored, restored.stderr).toMatchObject({ code: 0 });
    {
      await using mnt = await mountRedisfs({ redis, prefix: live });
      expect(await readFile(mnt.path('notes.txt'), 'utf8')).toBe('monday\n');
      await writeFile(mnt.path('after-restore'), 'writable'); // an ordinary filesystem again
    }

    // delete removes a snapshot; a live filesystem only with --force.
    const refusedLive = await snapshot('delete', '--prefix', live);
    expect(refusedLive.code).not.toBe(0);
    expect(refusedLive.stderr).toMatch(/not a snapshot/);
    const deleted = await snapshot('delete', '--prefix', monday);
    expect(deleted, deleted.stderr).toMatchObject({ code: 0 });
    expect((await snapshot('list', '--of', live)).stdout.trim().split('\n')).toHaveLength(1);
    expect((await snapshot('list')).stdout).toContain(live);
  });

  it.skipIf(process.getuid?.() !== 0)('needs no root: an ordinary user snapshots, lists, restores and deletes', async () => {
    const [live, snap] = [uniquePrefix('user'), uniquePrefix('user.snap')];
    {
      await using mnt = await mountRedisfs({ redis, prefix: live });
      await writeFile(mnt.path('a'), 'as root\n');
    }
    const cli = requireBuilt(SNAPSHOT_CLI);
    const asUser = (...args: string[]) =>
      run('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', process.execPath, cli, '--url', redis.url, ...args]);
    expect(await asUser('--from', live, '--to', snap)).toMatchObject({ code: 0 });
    expect((await asUser('list', '--of', live)).stdout).toContain(snap);
    expect(await asUser('restore', '--from', snap, '--to', live, '--force')).toMatchObject({ code: 0 });
    expect(await asUser('delete', '--prefix', snap)).toMatchObject({ code: 0 });
    await using mnt = await mountRedisfs({ redis, prefix: live });
    expect(await readFile(mnt.path('a'), 'utf8')).toBe('as root\n');
  });

  it('fails when the source prefix holds no filesystem', async () => {
    const result = await snapshot('--from', uniquePrefix('snap-none'), '--to', uniquePrefix('snap-none-to'));
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim()).not.toBe('');
    expect(result.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
  });
});
