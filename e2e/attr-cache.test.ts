/**
 * The binding answers getattr (and getxattr security.capability) in C from attributes the
 * adapter published, without calling into JS. These tests warm that cache with stat(2) and then
 * change the file through this mount, by another name or another handle: every stat right after
 * must show the change, as on a local disk. libfuse 2 gives each name of a hard link its own
 * kernel inode, so hard links are where a stale copy would show.
 */
import { chmod, link, mkdir, open, rename, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { describeWithRedis, mountRedisfs, uniquePrefix } from './helpers/index.js';

await describeWithRedis('attributes answered by the binding stay true', { fuse: true }, (redis) => {
  const mount = (label: string) => mountRedisfs({ redis, prefix: uniquePrefix(label) });

  /** stat twice: the second one is answered from the binding's cache if anything is. */
  const warm = async (...paths: string[]) => {
    for (const p of paths) {
      await stat(p);
      await stat(p);
    }
  };

  it('a change through one name of a hard link shows at once through the other', async () => {
    await using mnt = await mount('hardlink');
    const a = mnt.path('a');
    const b = mnt.path('b');
    await writeFile(a, 'hello');
    await link(a, b);
    await warm(a, b);
    expect((await stat(b)).nlink).toBe(2);

    await chmod(a, 0o600);
    expect((await stat(b)).mode & 0o7777).toBe(0o600);

    // Written through b and still open (buffered, not stored): a's size already shows it.
    await warm(a, b);
    const fh = await open(b, 'r+');
    await fh.write(Buffer.alloc(100_000, 7), 0, 100_000, 5);
    expect((await stat(a)).size).toBe(100_005);
    await fh.close();
    expect((await stat(a)).size).toBe(100_005);

    await warm(a, b);
    await truncate(b, 3);
    expect((await stat(a)).size).toBe(3);

    await warm(a, b);
    await unlink(b);
    expect((await stat(a)).nlink).toBe(1);
  });

  it('rename over a cached name shows the new file, and the old name is gone', async () => {
    await using mnt = await mount('rename');
    await writeFile(mnt.path('x'), 'the x file');
    await writeFile(mnt.path('y'), 'y');
    await warm(mnt.path('x'), mnt.path('y'));
    const xIno = (await stat(mnt.path('x'))).ino;
    await rename(mnt.path('x'), mnt.path('y'));
    const y = await stat(mnt.path('y'));
    expect(y.ino).toBe(xIno);
    expect(y.size).toBe('the x file'.length);
    await expect(stat(mnt.path('x'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('writes through an open handle grow the size stat shows for every open', async () => {
    await using mnt = await mount('grow');
    const p = mnt.path('growing');
    const fh = await open(p, 'w');
    for (let i = 1; i <= 20; i++) {
      await fh.write(Buffer.alloc(4096, i));
      expect((await stat(p)).size).toBe(i * 4096);
      expect((await fh.stat()).size).toBe(i * 4096);
    }
    await fh.close();
    expect((await stat(p)).size).toBe(20 * 4096);
  });

  it('a directory cached before a rename of its parent is found under the new path only', async () => {
    await using mnt = await mount('tree');
    await writeFile(mnt.path('f'), '');
    await mkdir(mnt.path('p/q'), { recursive: true });
    await writeFile(mnt.path('p/q/file'), 'inside');
    await warm(mnt.path('p'), mnt.path('p/q'), mnt.path('p/q/file'));
    await rename(mnt.path('p'), mnt.path('r'));
    await expect(stat(mnt.path('p/q/file'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await stat(mnt.path('r/q/file'))).size).toBe('inside'.length);
  });

  it("a directory's times and link count follow each change made in it at once", async () => {
    await using mnt = await mount('parent');
    const d = mnt.path('d');
    await mkdir(d);
    await warm(d);
    const before = await stat(d, { bigint: true });
    await writeFile(mnt.path('d/file'), 'x');
    const afterCreate = await stat(d, { bigint: true });
    expect(afterCreate.mtimeNs).toBeGreaterThan(before.mtimeNs);
    await warm(d);
    await mkdir(mnt.path('d/sub'));
    const afterMkdir = await stat(d, { bigint: true });
    expect(afterMkdir.nlink).toBe(before.nlink + 1n);
    expect(afterMkdir.mtimeNs).toBeGreaterThan(afterCreate.mtimeNs);
    await warm(d, mnt.path('d/sub'));
    await rename(mnt.path('d/sub'), mnt.path('moved'));
    const afterRename = await stat(d, { bigint: true });
    expect(afterRename.nlink).toBe(before.nlink);
    expect((await stat(mnt.dir, { bigint: true })).nlink).toBeGreaterThanOrEqual(4n);
    await unlink(mnt.path('d/file'));
    expect((await stat(d, { bigint: true })).mtimeNs).toBeGreaterThan(afterRename.mtimeNs);
  });
});
