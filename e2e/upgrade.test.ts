/**
 * Filesystems older redisfs versions wrote (layout 1 and layout 2: the RDB fixtures in
 * packages/store/fixtures/) through the commands a user runs: the mount refuses them in one line
 * naming the command, `redisfs upgrade` converts them to layout 3, and the mount then shows every
 * file as it was.
 */
import { createHash } from 'node:crypto';
import { lstat, open, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import {
  MOUNT_CLI,
  describeWithRedis,
  expectFsckClean,
  mountRedisfs,
  readLayout1Manifest,
  requireBuilt,
  run,
  runOk,
  sha256File,
  startLayout1Redis,
  startLayout2Redis,
  readLayout2Manifest,
  tempDir,
  type Layout1Manifest,
  type Layout2Manifest,
  type ManifestPath,
} from './helpers/index.js';

/** `redisfs <args>` against a server. */
const cli = (url: string, args: string[]) => run(process.execPath, [requireBuilt(MOUNT_CLI), ...args, '--url', url]);
const cliOk = (url: string, args: string[]) => runOk(process.execPath, [requireBuilt(MOUNT_CLI), ...args, '--url', url]);

/** A mount of a not yet upgraded prefix fails, in one line that says what to run. */
async function expectMountRefused(url: string, prefix: string): Promise<void> {
  await using dir = await tempDir('upgrade');
  const refused = await cli(url, ['--prefix', prefix, '--mount', dir.path]);
  expect(refused.code).toBe(1);
  expect(refused.stderr.trim().split('\n')).toHaveLength(1);
  expect(refused.stderr).toContain(`redisfs upgrade --prefix ${prefix}`);
}

/** Every path of a manifest under a mount: type, mode, owner, size, links, mtime (to the ms), target, data. Returns the files hashed. */
async function expectTree(mountDir: string, paths: Record<string, ManifestPath>): Promise<number> {
  let files = 0;
  for (const [path, want] of Object.entries(paths)) {
    if (path === '/') continue;
    const at = join(mountDir, path);
    const st = await lstat(at);
    expect({ path, mode: st.mode.toString(8), uid: st.uid, gid: st.gid, size: st.size, nlink: st.nlink, mtime: Math.floor(st.mtimeMs) }).toEqual({
      path, mode: want.mode, uid: want.uid, gid: want.gid, size: want.size, nlink: want.nlink, mtime: Number(BigInt(want.mtimeNs) / 1_000_000n),
    });
    if (want.target !== undefined) expect(await readlink(at)).toBe(want.target);
    if (want.type === 'file' && typeof want.sha256 === 'string') {
      expect(await sha256File(at), path).toBe(want.sha256);
      files++;
    }
    if (want.sparse) {
      // 1 TiB, one block stored: du counts that block, not the size; its ranges read back.
      expect((await stat(at)).blocks).toBeLessThanOrEqual(128);
      await using fh = await open(at, 'r');
      for (const range of [...want.sparse.extents, ...want.sparse.probes]) {
        const buf = Buffer.alloc(range.length);
        await fh.read(buf, 0, range.length, range.offset);
        expect(createHash('sha256').update(buf).digest('hex'), `${path} @${range.offset}`).toBe(range.sha256);
      }
    }
  }
  return files;
}

await describeWithRedis('a layout-1 filesystem', { fuse: true, start: startLayout1Redis }, (redis) => {
  let manifest: Layout1Manifest;
  beforeAll(async () => {
    manifest = await readLayout1Manifest();
  });

  it('is refused by a mount in one line naming the command, upgraded, then mounted with the same files', async () => {
    await expectMountRefused(redis.url, 'skx');
    expect(await cliOk(redis.url, ['upgrade', '--prefix', 'skx'])).toMatch(/upgraded 'skx' to layout 3: \d+ inodes converted, \d+ blocks mapped/);
    expect(await cliOk(redis.url, ['upgrade', '--prefix', 'skx'])).toMatch(/already layout 3/);
    {
      await using mnt = await mountRedisfs({ redis, prefix: 'skx' });
      expect(await expectTree(mnt.dir, manifest.prefixes.skx!.paths)).toBeGreaterThan(300);
      // Everyday changes work on the upgraded filesystem.
      await runOk('sh', ['-c', `echo more >> '${join(mnt.dir, 'docs/hello.txt')}' && truncate -s 10 '${join(mnt.dir, 'data/shrunk.bin')}' && rm -r '${join(mnt.dir, 'many')}'`]);
    }
    await expectFsckClean(redis, 'skx');
  });
});

await describeWithRedis('a layout-2 filesystem and its snapshot', { fuse: true, start: startLayout2Redis }, (redis) => {
  let manifest: Layout2Manifest;
  beforeAll(async () => {
    manifest = await readLayout2Manifest();
  });

  it('are refused by a mount in one line naming the command, upgraded each, then mounted with the same files', async () => {
    for (const prefix of ['skx', 'skx@mon']) await expectMountRefused(redis.url, prefix);
    expect(await cliOk(redis.url, ['upgrade', '--prefix', 'skx'])).toMatch(/^upgraded 'skx' to layout 3: 325 inodes converted\n?$/);
    // The member is still layout 2 until it is upgraded too.
    await expectMountRefused(redis.url, 'skx@mon');
    expect(await cliOk(redis.url, ['upgrade', '--prefix', 'skx@mon'])).toMatch(/^upgraded 'skx@mon' to layout 3: 325 inodes converted\n?$/);
    expect(await cliOk(redis.url, ['upgrade', '--prefix', 'skx@mon'])).toMatch(/already layout 3/);
    for (const prefix of ['skx', 'skx@mon']) {
      await using mnt = await mountRedisfs({ redis, prefix, readOnly: prefix === 'skx@mon' });
      expect(await expectTree(mnt.dir, manifest.prefixes[prefix]!.paths)).toBeGreaterThan(300);
    }
    {
      await using mnt = await mountRedisfs({ redis, prefix: 'skx' });
      await runOk('sh', ['-c', `echo more >> '${join(mnt.dir, 'docs/hello.txt')}' && truncate -s 100000 '${join(mnt.dir, 'data/tail-dirty.bin')}' && ln -s "$(printf 'y%.0s' $(seq 300))" '${join(mnt.dir, 'long2')}'`]);
      expect((await readlink(join(mnt.dir, 'long2'))).length).toBe(300);
    }
    for (const prefix of ['skx', 'skx@mon']) await expectFsckClean(redis, prefix);
  });
});
