/**
 * A filesystem an older redisfs wrote (layout 1, the RDB fixture in packages/store/fixtures/
 * layout1) through the commands a user runs: the mount refuses it in one line naming the
 * command, `redisfs upgrade` converts it, and the mount then shows every file as it was.
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
  tempDir,
  type Layout1Manifest,
} from './helpers/index.js';

await describeWithRedis('a layout-1 filesystem', { fuse: true, start: startLayout1Redis }, (redis) => {
  let manifest: Layout1Manifest;
  beforeAll(async () => {
    manifest = await readLayout1Manifest();
  });

  it('is refused by a mount in one line naming the command, upgraded, then mounted with the same files', async () => {
    await using dir = await tempDir('upgrade');
    const refused = await run(process.execPath, [requireBuilt(MOUNT_CLI), '--url', redis.url, '--prefix', 'skx', '--mount', dir.path]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toContain('redisfs upgrade --prefix skx');

    const upgraded = await runOk(process.execPath, [requireBuilt(MOUNT_CLI), 'upgrade', '--url', redis.url, '--prefix', 'skx']);
    expect(upgraded).toMatch(/upgraded 'skx' to layout 2/);
    expect(await runOk(process.execPath, [requireBuilt(MOUNT_CLI), 'upgrade', '--url', redis.url, '--prefix', 'skx'])).toMatch(
      /already layout 2/,
    );

    {
      await using mnt = await mountRedisfs({ redis, prefix: 'skx' });
      const paths = manifest.prefixes.skx!.paths;
      let files = 0;
      for (const [path, want] of Object.entries(paths)) {
        if (path === '/') continue;
        const at = join(mnt.dir, path);
        const st = await lstat(at);
        expect({ path, mode: st.mode.toString(8), uid: st.uid, gid: st.gid, size: st.size, nlink: st.nlink }).toEqual({
          path, mode: want.mode, uid: want.uid, gid: want.gid, size: want.size, nlink: want.nlink,
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
      expect(files).toBeGreaterThan(300);
      // Everyday changes work on the upgraded filesystem.
      await runOk('sh', ['-c', `echo more >> '${join(mnt.dir, 'docs/hello.txt')}' && truncate -s 10 '${join(mnt.dir, 'data/shrunk.bin')}' && rm -r '${join(mnt.dir, 'many')}'`]);
    }
    await expectFsckClean(redis, 'skx');
  });
});
