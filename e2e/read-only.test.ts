/**
 * `redisfs --read-only`: everything can be read, and every attempt to change anything fails with
 * EROFS ("Read-only file system"), leaving the content as it was.
 */
import { constants } from 'node:fs';
import {
  appendFile,
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  open,
  readFile,
  readdir,
  readlink,
  rename,
  rm,
  rmdir,
  symlink,
  truncate,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { expect, it } from 'vitest';
import {
  describeTree,
  describeWithRedis,
  findMount,
  mountRedisfs,
  run,
  runOk,
  uniquePrefix,
  type StartedMount,
} from './helpers/index.js';

await describeWithRedis('read-only mounts', { fuse: true }, (redis) => {
  /** Writes a little tree read-write, then mounts the same prefix --read-only. */
  async function readOnlyMountWithContent(label: string): Promise<StartedMount> {
    const prefix = uniquePrefix(label);
    {
      await using rw = await mountRedisfs({ redis, prefix });
      await mkdir(rw.path('dir'));
      await writeFile(rw.path('dir/file'), 'written before\n');
      await writeFile(rw.path('other'), 'another file\n');
      await mkdir(rw.path('empty-dir'));
      await symlink('dir/file', rw.path('link'));
    }
    return mountRedisfs({ redis, prefix, readOnly: true });
  }

  it('reads work', async () => {
    await using ro = await readOnlyMountWithContent('ro-read');
    expect((await readdir(ro.dir)).sort()).toEqual(['dir', 'empty-dir', 'link', 'other']);
    expect(await readFile(ro.path('dir/file'), 'utf8')).toBe('written before\n');
    expect(await runOk('cat', [ro.path('link')])).toBe('written before\n');
    expect(await readlink(ro.path('link'))).toBe('dir/file');
    expect((await lstat(ro.path('dir'))).isDirectory()).toBe(true);
    expect((await runOk('sh', ['-c', 'find . | LC_ALL=C sort'], { cwd: ro.dir })).trim().split('\n')).toEqual([
      '.',
      './dir',
      './dir/file',
      './empty-dir',
      './link',
      './other',
    ]);
  });

  it('the kernel lists the mount as ro', async () => {
    await using ro = await readOnlyMountWithContent('ro-flag');
    expect((await findMount(ro.dir))?.options).toContain('ro');
  });

  it('every kind of write fails with EROFS and changes nothing', async () => {
    await using ro = await readOnlyMountWithContent('ro-write');
    const before = await describeTree(ro.dir);
    const p = (...parts: string[]) => ro.path(...parts);
    const attempts: Record<string, () => Promise<unknown>> = {
      'create a file': () => writeFile(p('new-file'), 'x'),
      'overwrite a file': () => writeFile(p('dir/file'), 'x'),
      'open for writing': () => open(p('dir/file'), constants.O_WRONLY).then((fh) => fh.close()),
      'append': () => appendFile(p('other'), 'x'),
      'truncate': () => truncate(p('other'), 0),
      'mkdir': () => mkdir(p('new-dir')),
      'unlink': () => unlink(p('other')),
      'rmdir': () => rmdir(p('empty-dir')),
      'rm -r (rm)': () => rm(p('dir'), { recursive: true }),
      'chmod': () => chmod(p('other'), 0o600),
      'chown': () => chown(p('other'), 1, 1),
      'touch (utimes)': () => utimes(p('other'), 1, 1),
      'rename (mv)': () => rename(p('other'), p('dir/moved')),
      'hard link': () => link(p('other'), p('other-link')),
      'symlink': () => symlink('other', p('new-link')),
    };
    const outcomes: Record<string, string> = {};
    for (const [what, attempt] of Object.entries(attempts)) {
      outcomes[what] = await attempt().then(
        () => 'succeeded',
        (err: NodeJS.ErrnoException) => err.code ?? String(err),
      );
    }
    expect(outcomes).toEqual(Object.fromEntries(Object.keys(attempts).map((what) => [what, 'EROFS'])));
    expect(await describeTree(ro.dir)).toEqual(before);
  });

  it('shell tools say "Read-only file system"', async () => {
    await using ro = await readOnlyMountWithContent('ro-tools');
    const commands = [
      ['touch', ro.path('new')],
      ['touch', ro.path('other')],
      ['sh', '-c', `echo x > ${ro.path('other')}`],
      ['mkdir', ro.path('d')],
      ['rm', ro.path('other')],
      ['chmod', '600', ro.path('other')],
      ['mv', ro.path('other'), ro.path('moved')],
    ];
    for (const [cmd, ...args] of commands) {
      const result = await run(cmd!, args, { env: { ...process.env, LC_ALL: 'C' } });
      expect({ command: [cmd, ...args].join(' '), code: result.code === 0 ? 0 : 'non-zero', stderr: result.stderr }).toMatchObject({
        code: 'non-zero',
        stderr: expect.stringContaining('Read-only file system'),
      });
    }
    expect(await readFile(ro.path('other'), 'utf8')).toBe('another file\n');
  });
});
