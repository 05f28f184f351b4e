/**
 * `redisfs fsck` as a user runs it, the built CLI against a real Redis: a filesystem written
 * through a real mount with real tools is clean (exit 0); a corrupted one exits 4 naming the
 * problem; --repair exits 1, and the check after it exits 0. Operational failures exit 8 with
 * one line and no password; usage errors exit 16 (e2fsck's codes).
 */
import { rename, rm, symlink, link, writeFile, readFile } from 'node:fs/promises';
import { RESP_TYPES, createClient } from '@redis/client';
import { decodeInodeRecord, encodeInodeRecord, keysFor } from '@redisfs/schema';
import { openStore } from '@redisfs/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MOUNT_CLI,
  describeWithRedis,
  expectFsckClean,
  freePort,
  makeSourceTree,
  mountRedisfs,
  requireBuilt,
  requireFuse,
  run,
  runFsck,
  runOk,
  uniquePrefix,
} from './helpers/index.js';

await describeWithRedis('redisfs fsck', {}, (redis) => {
  let raw: ReturnType<typeof createClient>;
  beforeAll(async () => {
    raw = createClient({ url: redis.url });
    await raw.connect();
  });
  afterAll(async () => {
    await raw?.close();
  });

  /** A small filesystem written through the store: /docs/a.txt (2 links), /b. Returns its inodes. */
  async function makeFs(prefix: string): Promise<{ docs: number; a: number; b: number }> {
    const store = await openStore({ url: redis.url, prefix });
    try {
      await store.mkdirp('/docs/sub');
      await store.writeFile('/docs/a.txt', 'a'.repeat(100_000));
      await store.hardLink('/docs/a.txt', '/docs/sub/a-link');
      await store.writeFile('/b', 'bee');
      const [docs, a, b] = await Promise.all(['/docs', '/docs/a.txt', '/b'].map((p) => store.stat(p)));
      return { docs: docs!.ino, a: a!.ino, b: b!.ino };
    } finally {
      await store.close();
    }
  }

  it('exits 0 when clean, 4 naming the problems, 1 after --repair, then 0', async () => {
    const prefix = uniquePrefix('fsck');
    const ino = await makeFs(prefix);
    await expectFsckClean(redis, prefix);
    const clean = await runFsck(redis, prefix);
    expect(clean.stdout).toMatch(new RegExp(`^${prefix} on redis://.*: \\d+ inodes .*: clean$`, 'm'));

    const k = keysFor(prefix);
    await raw.hSet(k.dir(ino.docs), 'ghost', 'f4000');
    // a.txt's packed record (a field of its bucket), its nlink changed behind the store's back.
    const record = await raw.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).hGet(k.inodes(ino.a), String(ino.a));
    await raw.hSet(k.inodes(ino.a), String(ino.a), encodeInodeRecord({ ...decodeInodeRecord(record as unknown as Buffer), nlink: 7 }));
    await raw.hDel(k.dir(1), 'b');
    const found = await runFsck(redis, prefix);
    expect(found.code, found.stderr).toBe(4);
    expect(found.stdout).toMatch(/^entry-dangling: entry 'ghost' of directory \d+ names inode 4000/m);
    expect(found.stdout).toMatch(/^nlink-wrong: inode \d+ \(file\) has nlink 7, expected 2/m);
    expect(found.stdout).toMatch(/^orphan-inode: inode \d+ \(file, 3 bytes, 1 block\(s\)\)/m);
    expect(found.stdout).toMatch(/3 problems found; run with --repair/);
    await expect(expectFsckClean(redis, prefix)).rejects.toThrow(/exited 4[\s\S]*entry-dangling/);
    // Read-only: nothing changed.
    expect(await raw.hGet(k.dir(ino.docs), 'ghost')).toBe('f4000');

    const repaired = await runFsck(redis, prefix, ['--repair']);
    expect(repaired.code, repaired.stdout + repaired.stderr).toBe(1);
    expect(repaired.stdout).toMatch(/^fixed: removed entry 'ghost'/m);
    expect(repaired.stdout).toMatch(/^fixed: deleted orphan inode \d+ and released its 1 block\(s\)/m);
    expect(repaired.stdout).toMatch(/3 problems found, \d+ repairs made, 0 left$/m);
    await expectFsckClean(redis, prefix);

    const store = await openStore({ url: redis.url, prefix, readOnly: true });
    try {
      expect((await store.readFile('/docs/sub/a-link')).toString()).toBe('a'.repeat(100_000));
      expect((await store.stat('/docs/a.txt')).nlink).toBe(2);
      // (statfs reports what Redis holds, not the files' sizes: those are in {P}:st.)
      expect(await store.statfs()).toMatchObject({ inodes: 4 });
      expect(await raw.hGetAll(k.stats)).toEqual({ inodes: '4', bytes: '100000' });
    } finally {
      await store.close();
    }
  });

  it('prints the report as JSON with --json', async () => {
    const prefix = uniquePrefix('fsckjson');
    const ino = await makeFs(prefix);
    // A block stored at index 5 of /b's block map, far past its 3 bytes (layout 2: block ids come
    // from the family's counter, and the map says where each block belongs).
    const k = keysFor(prefix);
    const id = String(await raw.incrBy(k.blockCounter, 1));
    await raw.set(k.block(id), 'x');
    await raw.zAdd(k.map(ino.b), { score: 5, value: id });
    const result = await runFsck(redis, prefix, ['--json']);
    expect(result.code).toBe(4);
    const report = JSON.parse(result.stdout) as { prefix: string; problems: { kind: string; ino: number }[]; counts: { inodes: number } };
    expect(report.prefix).toBe(prefix);
    expect(report.problems).toEqual([expect.objectContaining({ kind: 'block-past-eof', ino: ino.b, repairable: true })]);
    expect(report.counts.inodes).toBe(5);
  });

  it('leaves what it cannot repair and exits 4', async () => {
    const prefix = uniquePrefix('fsckleft');
    await makeFs(prefix);
    await raw.set(`${keysFor(prefix).metaPrefix}mystery`, '1');
    const result = await runFsck(redis, prefix, ['--repair']);
    expect(result.code).toBe(4);
    expect(result.stdout).toMatch(/^unexpected-key: key \{.*\}:mystery is not a key of the redisfs layout \(not repairable\)$/m);
    expect(result.stdout).toMatch(/^left: unexpected-key/m);
  });

  it('exits 8 with one line when there is nothing to check, and 16 on a usage error', async () => {
    const cli = requireBuilt(MOUNT_CLI);
    const none = await runFsck(redis, uniquePrefix('nofs'));
    expect(none.code).toBe(8);
    expect(none.stderr.trim()).toMatch(/^redisfs fsck: ENOENT: no filesystem at prefix 'nofs-.*' on redis:\/\/127.0.0.1:\d+$/);

    // A layout-1 filesystem is not checked: it needs `redisfs upgrade` first.
    const v1 = uniquePrefix('fsckv1');
    await makeFs(v1);
    await raw.hSet(keysFor(v1).superblock, 'version', '1');
    const old = await runFsck(redis, v1, ['--repair']);
    expect(old.code).toBe(8);
    expect(old.stderr.trim().split('\n')).toHaveLength(1);
    expect(old.stderr).toContain(`holds layout version 1: convert it with \`redisfs upgrade --prefix ${v1}\``);

    const port = await freePort();
    const down = await run(process.execPath, [cli, 'fsck', '--prefix', 'x', '--url', `redis://me:hunter22@127.0.0.1:${port}`], {
      timeoutMs: 30_000,
    });
    expect(down.code).toBe(8);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).toMatch(/cannot reach Redis/);
    expect(down.stdout + down.stderr).not.toContain('hunter22');

    const usage = await run(process.execPath, [cli, 'fsck', '--prefix', 'a:b'], { timeoutMs: 30_000 });
    expect(usage.code).toBe(16);
    expect(usage.stderr).toMatch(/--prefix must be/);
    const help = await run(process.execPath, [cli, '--help'], { timeoutMs: 30_000 });
    expect(help.stdout).toMatch(/redisfs fsck --prefix/);
  });

  describe.skipIf(!requireFuse())('after real tools on a real mount', () => {
    it('is clean once the mount is gone', async () => {
      const prefix = uniquePrefix('fsckmnt');
      {
        await using mnt = await mountRedisfs({ redis, prefix });
        await makeSourceTree(mnt.path('tree'));
        await runOk('cp', ['-a', mnt.path('tree'), mnt.path('copy')]);
        await rename(mnt.path('copy/a'), mnt.path('moved'));
        await link(mnt.path('tree/hard-a.txt'), mnt.path('third-link'));
        await symlink('tree', mnt.path('ln'));
        await writeFile(mnt.path('big'), Buffer.alloc(300_000, 1));
        await writeFile(mnt.path('big'), 'shrunk');
        await rm(mnt.path('tree/a'), { recursive: true });
        expect(await readFile(mnt.path('big'), 'utf8')).toBe('shrunk');
      }
      await expectFsckClean(redis, prefix);
    });
  });
});
