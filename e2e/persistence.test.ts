/**
 * Everything lives in Redis: after an unmount, a new `redisfs` process mounting the same prefix
 * sees the same tree, byte for byte, with its modes, times, symlinks and hard links.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import {
  describeTree,
  describeWithRedis,
  diffTrees,
  makeSourceTree,
  mountRedisfs,
  runOk,
  tempDir,
  uniquePrefix,
} from './helpers/index.js';

await describeWithRedis('persistence across mounts', { fuse: true }, (redis) => {
  it('a tree written in one mount is intact in the next', async () => {
    const prefix = uniquePrefix('persist');
    await using src = await tempDir('src');
    await makeSourceTree(src.path);
    const want = await describeTree(src.path);

    {
      await using first = await mountRedisfs({ redis, prefix });
      await runOk('cp', ['-a', `${src.path}/.`, first.path('tree')]);
      expect(await describeTree(first.path('tree'))).toEqual(want);
    }

    await using second = await mountRedisfs({ redis, prefix });
    expect(await diffTrees(src.path, second.path('tree'))).toMatchObject({ code: 0, stdout: '' });
    const got = await describeTree(second.path('tree'));
    // Contents, modes, owners, nanosecond mtimes, symlink targets, hard links: all of it.
    expect(got).toEqual(want);
    expect(got.hardLinks).toEqual([['./a/hard-b.txt', './hard-a.txt']]);
    const [a, b] = await Promise.all([stat(second.path('tree/hard-a.txt')), stat(second.path('tree/a/hard-b.txt'))]);
    expect(b.ino).toBe(a.ino);
    expect(a.nlink).toBe(2);
  });

  it('data written just before the unmount is not lost', async () => {
    const prefix = uniquePrefix('flush');
    const data = randomBytes(5 * 1024 * 1024 + 123);
    {
      await using mnt = await mountRedisfs({ redis, prefix });
      await mkdir(mnt.path('d'));
      await writeFile(mnt.path('d/big'), data);
      await runOk('sh', ['-c', 'printf tail >> d/big && echo last > d/small'], { cwd: mnt.dir });
      // Unmounted at once, with no sync and no pause.
    }
    await using again = await mountRedisfs({ redis, prefix });
    expect(await readFile(again.path('d/big'))).toEqual(Buffer.concat([data, Buffer.from('tail')]));
    expect(await readFile(again.path('d/small'), 'utf8')).toBe('last\n');
  });

  it('changes made in a second mount are seen by a third', async () => {
    const prefix = uniquePrefix('changes');
    {
      await using mnt = await mountRedisfs({ redis, prefix });
      await writeFile(mnt.path('a'), 'first');
      await writeFile(mnt.path('gone'), 'to be removed');
    }
    {
      await using mnt = await mountRedisfs({ redis, prefix });
      await runOk('mv', [mnt.path('a'), mnt.path('b')]);
      await runOk('rm', [mnt.path('gone')]);
      await runOk('chmod', ['0604', mnt.path('b')]);
    }
    await using mnt = await mountRedisfs({ redis, prefix });
    expect(await runOk('ls', ['-A', mnt.dir])).toBe('b\n');
    expect(await readFile(mnt.path('b'), 'utf8')).toBe('first');
    expect((await stat(mnt.path('b'))).mode & 0o7777).toBe(0o604);
  });
});
