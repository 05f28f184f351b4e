/**
 * The tools people use every day, run for real on a mounted redisfs and checked the way a user
 * would: with the tools' own output, node:fs/promises, and the local disk as the reference.
 * One redis-server for the file; each test has its own prefix and mount.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, lstat, mkdir, readFile, readdir, readlink, rmdir, stat, writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import {
  SOURCE_TREE_PATHS,
  describeTree,
  describeWithRedis,
  diffTrees,
  makeSourceTree,
  mountRedisfs,
  run,
  runOk,
  sha256File,
  startRedis,
  startRedisCluster,
  tempDir,
  uniquePrefix,
  type DescribeWithRedisOptions,
  type StartedRedis,
} from './helpers/index.js';

const UTC = { env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' } };

type Backend = Pick<StartedRedis, 'url' | 'stop'>;

/** Where the filesystem lives: the same tools must behave the same on each. */
const BACKENDS: { name: string; options: DescribeWithRedisOptions<Backend> }[] = [
  { name: 'one Redis server', options: { fuse: true, start: (): Promise<Backend> => startRedis() } },
  {
    name: 'a Redis Cluster (3 masters, 3 replicas)',
    options: { fuse: true, redisTools: true, start: (): Promise<Backend> => startRedisCluster({ masters: 3, replicasPerMaster: 1 }) },
  },
];

for (const backend of BACKENDS) await describeWithRedis(`everyday tools on a mounted redisfs, on ${backend.name}`, backend.options, (redis) => {
  const mount = (label: string) => mountRedisfs({ redis, prefix: uniquePrefix(label) });

  it('mkdir -p, echo > file, echo >> file, cat', async () => {
    await using mnt = await mount('echo');
    await runOk('mkdir', ['-p', mnt.path('a/b/c')]);
    expect((await stat(mnt.path('a/b/c'))).isDirectory()).toBe(true);
    await runOk('sh', ['-c', 'echo hello > a/b/c/greeting.txt && echo world >> a/b/c/greeting.txt'], { cwd: mnt.dir });
    expect(await runOk('cat', [mnt.path('a/b/c/greeting.txt')])).toBe('hello\nworld\n');
    expect(await readdir(mnt.dir)).toEqual(['a']);
    expect((await stat(mnt.path('a/b/c/greeting.txt'))).size).toBe(12);
  });

  it('tar copies a tree in and diff -r finds no difference, metadata included', async () => {
    await using mnt = await mount('tar');
    await using src = await tempDir('src');
    await using work = await tempDir('work');
    await makeSourceTree(src.path);
    // pax keeps nanosecond mtimes; as root, tar also restores owners and modes.
    await runOk('tar', ['--format=posix', '-C', src.path, '-cf', work.join('x.tar'), '.']);
    await mkdir(mnt.path('dst'));
    await runOk('tar', ['-C', mnt.path('dst'), '-xf', work.join('x.tar')]);

    expect(await diffTrees(src.path, mnt.path('dst'))).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const copied = await describeTree(mnt.path('dst'));
    expect(copied).toEqual(await describeTree(src.path));
    expect(copied.hardLinks).toEqual([['./a/hard-b.txt', './hard-a.txt']]);

    // And back out again: what comes out of the mount is what went in.
    await runOk('tar', ['--format=posix', '-C', mnt.path('dst'), '-cf', work.join('back.tar'), '.']);
    await mkdir(work.join('back'));
    await runOk('tar', ['-C', work.join('back'), '-xf', work.join('back.tar')]);
    expect(await diffTrees(src.path, work.join('back'))).toMatchObject({ code: 0 });
  });

  it('cp -a copies a tree in with modes, links and times', async () => {
    await using mnt = await mount('cp');
    await using src = await tempDir('src');
    await makeSourceTree(src.path);
    await runOk('cp', ['-a', `${src.path}/.`, mnt.path('copy')]);
    expect(await diffTrees(src.path, mnt.path('copy'))).toMatchObject({ code: 0 });
    expect(await describeTree(mnt.path('copy'))).toEqual(await describeTree(src.path));
  });

  it('mv renames across directories, replacing an existing file, and keeps the inode', async () => {
    await using mnt = await mount('mv');
    await mkdir(mnt.path('from'));
    await mkdir(mnt.path('to'));
    await writeFile(mnt.path('from/x'), 'the new content');
    await writeFile(mnt.path('to/y'), 'the old content, replaced');
    const ino = (await stat(mnt.path('from/x'))).ino;

    await runOk('mv', [mnt.path('from/x'), mnt.path('to/y')]);
    expect(await readFile(mnt.path('to/y'), 'utf8')).toBe('the new content');
    expect((await stat(mnt.path('to/y'))).ino).toBe(ino);
    expect(await readdir(mnt.path('from'))).toEqual([]);
    await expect(stat(mnt.path('from/x'))).rejects.toMatchObject({ code: 'ENOENT' });

    // A whole directory moves with its contents.
    await runOk('mv', [mnt.path('to'), mnt.path('from/moved')]);
    expect(await readdir(mnt.dir)).toEqual(['from']);
    expect(await readFile(mnt.path('from/moved/y'), 'utf8')).toBe('the new content');
  });

  it('ln makes a hard link: one inode, link count 2, shared content', async () => {
    await using mnt = await mount('ln');
    await writeFile(mnt.path('first'), 'shared\n');
    await runOk('ln', [mnt.path('first'), mnt.path('second')]);
    const [a, b] = await Promise.all([stat(mnt.path('first')), stat(mnt.path('second'))]);
    expect(b.ino).toBe(a.ino);
    expect(a.nlink).toBe(2);
    expect(b.nlink).toBe(2);

    await appendFile(mnt.path('second'), 'written through the second name\n');
    expect(await readFile(mnt.path('first'), 'utf8')).toBe('shared\nwritten through the second name\n');

    await runOk('rm', [mnt.path('first')]);
    expect((await stat(mnt.path('second'))).nlink).toBe(1);
    expect(await readFile(mnt.path('second'), 'utf8')).toBe('shared\nwritten through the second name\n');
  });

  it('ln -s makes a symlink that readlink reads and that leads to its target', async () => {
    await using mnt = await mount('symlink');
    await mkdir(mnt.path('dir'));
    await writeFile(mnt.path('dir/target.txt'), 'at the end of the link\n');
    await runOk('ln', ['-s', 'dir/target.txt', mnt.path('link')]);
    await runOk('ln', ['-s', '/nowhere/at/all', mnt.path('dangling')]);

    expect((await runOk('readlink', [mnt.path('link')])).trim()).toBe('dir/target.txt');
    expect(await readlink(mnt.path('dangling'))).toBe('/nowhere/at/all');
    expect((await lstat(mnt.path('link'))).isSymbolicLink()).toBe(true);
    expect(await runOk('cat', [mnt.path('link')])).toBe('at the end of the link\n');
    await expect(stat(mnt.path('dangling'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('chmod sets the mode stat reports', async () => {
    await using mnt = await mount('chmod');
    await writeFile(mnt.path('f'), 'x');
    await mkdir(mnt.path('d'));
    await runOk('chmod', ['0600', mnt.path('f')]);
    await runOk('chmod', ['0750', mnt.path('d')]);
    expect((await stat(mnt.path('f'))).mode & 0o7777).toBe(0o600);
    expect((await stat(mnt.path('d'))).mode & 0o7777).toBe(0o750);
    expect((await runOk('stat', ['-c', '%a %F', mnt.path('f')])).trim()).toBe('600 regular file');
    await runOk('chmod', ['u+x,g+r', mnt.path('f')]);
    expect((await stat(mnt.path('f'))).mode & 0o7777).toBe(0o740);
  });

  it('touch -d sets mtime to the nanosecond', async () => {
    await using mnt = await mount('touch');
    await runOk('touch', [mnt.path('new-file')]);
    expect((await stat(mnt.path('new-file'))).size).toBe(0);
    await runOk('touch', ['-d', '2001-02-03 04:05:06.123456789', mnt.path('new-file')], UTC);
    expect((await runOk('stat', ['-c', '%y', mnt.path('new-file')], UTC)).trim()).toBe('2001-02-03 04:05:06.123456789 +0000');
    expect((await stat(mnt.path('new-file'), { bigint: true })).mtimeNs).toBe(981_173_106_123_456_789n);

    await runOk('touch', ['-a', '-d', '1999-12-31 23:59:59.5', mnt.path('new-file')], UTC);
    expect((await runOk('stat', ['-c', '%x|%y', mnt.path('new-file')], UTC)).trim()).toBe(
      '1999-12-31 23:59:59.500000000 +0000|2001-02-03 04:05:06.123456789 +0000',
    );
  });

  it('truncate grows with zeros and shrinks, and old bytes never come back', async () => {
    await using mnt = await mount('truncate');
    const data = randomBytes(3000);
    await writeFile(mnt.path('f'), data);

    await runOk('truncate', ['-s', '10M', mnt.path('f')]);
    expect((await stat(mnt.path('f'))).size).toBe(10 * 1024 * 1024);
    const grown = await readFile(mnt.path('f'));
    expect(grown.subarray(0, 3000).equals(data)).toBe(true);
    expect(grown.subarray(3000).every((b) => b === 0)).toBe(true);

    await runOk('truncate', ['-s', '1000', mnt.path('f')]);
    expect(await readFile(mnt.path('f'))).toEqual(data.subarray(0, 1000));

    await runOk('truncate', ['-s', '5000', mnt.path('f')]);
    const regrown = await readFile(mnt.path('f'));
    expect(regrown.subarray(0, 1000).equals(data.subarray(0, 1000))).toBe(true);
    expect(regrown.subarray(1000).equals(Buffer.alloc(4000))).toBe(true);
  });

  it('dd writes, patches in place (conv=notrunc) and extends past the end like a local file', async () => {
    await using mnt = await mount('dd');
    await using local = await tempDir('dd');
    await runOk('dd', [`if=/dev/urandom`, `of=${local.join('random')}`, 'bs=4k', 'count=256', 'status=none']);
    await runOk('dd', [`if=/dev/urandom`, `of=${local.join('patch')}`, 'bs=1000', 'count=3', 'status=none']);

    for (const target of [local.join('file'), mnt.path('file')]) {
      await runOk('dd', [`if=${local.join('random')}`, `of=${target}`, 'bs=4k', 'count=256', 'status=none']);
      // 522000..525000 straddles a 64 KiB boundary; 2,000,000 lies past the end (a hole before it).
      await runOk('dd', [`if=${local.join('patch')}`, `of=${target}`, 'bs=1000', 'seek=522', 'conv=notrunc', 'status=none']);
      await runOk('dd', [`if=${local.join('patch')}`, `of=${target}`, 'bs=1000', 'seek=2000', 'conv=notrunc', 'status=none']);
    }
    expect((await stat(mnt.path('file'))).size).toBe(2_003_000);
    expect(await sha256File(mnt.path('file'))).toBe(await sha256File(local.join('file')));
    const sums = await runOk('sha256sum', [local.join('file'), mnt.path('file')]);
    const [want, got] = sums.trim().split('\n').map((line) => line.split(' ')[0]);
    expect(got).toBe(want);
  });

  it('rm -rf removes a whole tree', async () => {
    await using mnt = await mount('rm');
    await mkdir(mnt.path('tree'));
    await makeSourceTree(mnt.path('tree'));
    await writeFile(mnt.path('keep'), 'stays');
    await runOk('rm', ['-rf', mnt.path('tree')]);
    await expect(lstat(mnt.path('tree'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(mnt.dir)).toEqual(['keep']);
  });

  it('find | sort lists exactly what was created', async () => {
    await using mnt = await mount('find');
    await mkdir(mnt.path('tree'));
    await makeSourceTree(mnt.path('tree'));
    const listed = await runOk('sh', ['-c', 'find . | sort'], { cwd: mnt.path('tree'), ...UTC });
    expect(listed.trim().split('\n')).toEqual(SOURCE_TREE_PATHS);
  });

  it('rmdir of a non-empty directory fails with ENOTEMPTY', async () => {
    await using mnt = await mount('rmdir');
    await mkdir(mnt.path('full'));
    await writeFile(mnt.path('full/file'), '');
    const result = await run('rmdir', [mnt.path('full')], UTC);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('Directory not empty');
    await expect(rmdir(mnt.path('full'))).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    expect(await readdir(mnt.path('full'))).toEqual(['file']);
  });

  it('a name longer than 255 bytes fails with ENAMETOOLONG', async () => {
    await using mnt = await mount('namemax');
    await writeFile(mnt.path('n'.repeat(255)), 'fits');
    await expect(writeFile(mnt.path('n'.repeat(256)), 'too long')).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    await expect(mkdir(mnt.path('d'.repeat(256)))).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    // Bytes, not characters: 128 × 'é' is 256 bytes.
    await expect(writeFile(mnt.path('é'.repeat(128)), 'x')).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    const result = await run('touch', [mnt.path('t'.repeat(256))], UTC);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('File name too long');
    expect(await readdir(mnt.dir)).toEqual(['n'.repeat(255)]);
  });
});
