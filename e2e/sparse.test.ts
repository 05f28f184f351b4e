/**
 * Layout 2's promises through a real mount: deleting and shrinking cost what is stored (a 1 PiB
 * sparse file goes at once, its blocks, if any, are collected in the background), holes are
 * holes (`du`, `ls -s`, st_blocks), and `df` reports what Redis holds against what it may hold.
 */
import { chmod, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { createClient } from '@redis/client';
import { keysFor } from '@redisfs/schema';
import { expect, it } from 'vitest';
import {
  describeWithRedis,
  expectFsckClean,
  mountRedisfs,
  run,
  runOk,
  startRedis,
  uniquePrefix,
  waitFor,
} from './helpers/index.js';

const asRoot = process.getuid?.() === 0;

/** Runs a shell command as uid/gid 1000 (an ordinary user). */
const asUser = (script: string) => run('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'sh', '-c', script]);

/** Keys of the family's data blocks, and the collector's pending work. */
async function storedState(url: string, prefix: string): Promise<{ blocks: number; gc: number; free: number }> {
  const client = await createClient({ url }).connect();
  try {
    const keys = keysFor(prefix);
    let blocks = 0;
    for await (const batch of client.scanIterator({ MATCH: keys.blockPattern, COUNT: 1000 })) blocks += batch.length;
    return { blocks, gc: await client.sCard(keys.gc), free: await client.sCard(keys.freeBlocks) };
  } finally {
    await client.close();
  }
}

/** Total commands Redis has run (INFO commandstats), to see it go idle. */
async function commandsRun(url: string): Promise<number> {
  const client = await createClient({ url }).connect();
  try {
    const info = await client.info('commandstats');
    return [...info.matchAll(/calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  } finally {
    await client.close();
  }
}

await describeWithRedis('sparse files and space accounting', { fuse: true }, (redis) => {
  it.skipIf(!asRoot)("an ordinary user's truncate -s 1P f; rm f returns at once, the next mount is immediate, Redis goes idle", async () => {
    const prefix = uniquePrefix('petabyte');
    {
      await using mnt = await mountRedisfs({ redis, prefix, extraArgs: ['--allow-other'] });
      await chmod(mnt.dir, 0o777);
      const f = mnt.path('big');
      const made = await asUser(
        `truncate -s 1P '${f}' && printf data | dd of='${f}' bs=1 seek=562949953421312 conv=notrunc status=none && ` +
          `ls -s '${f}' && rm '${f}' && truncate -s 900T '${f}' && rm '${f}'`,
      );
      expect(made.stderr).toBe('');
      expect(made.code).toBe(0);
      // ls -s: one 64 KiB block is stored of a 1 PiB file (the bytes written in its middle).
      expect(made.stdout.trim()).toMatch(/^64 /);
      await mnt.unmount();
    }
    // The next mount is not held up by what was deleted (it used to delete every block index).
    await using again = await mountRedisfs({ redis, prefix });
    await writeFile(again.path('after'), 'ok');
    // Redis goes idle: no work is left, and commands stop growing but for our own probes.
    await waitFor(async () => {
      const s = await storedState(redis.url, prefix);
      return s.gc === 0 && s.free === 0 && s.blocks === 1 ? s : undefined;
    }, { timeoutMs: 20_000, what: 'the collector to finish' });
    const a = await commandsRun(redis.url);
    const b = await commandsRun(redis.url);
    expect(b - a).toBeLessThan(20); // our two INFO calls and a few others, not millions of UNLINKs
    await again.unmount();
    await expectFsckClean(redis, prefix);
  });

  it('holes are holes: du, ls -s and st_blocks count stored blocks, --apparent-size the size', async () => {
    await using mnt = await mountRedisfs({ redis, prefix: uniquePrefix('holes') });
    const f = mnt.path('sparse');
    await runOk('truncate', ['-s', '100M', f]);
    expect((await runOk('du', ['-k', f])).split('\t')[0]).toBe('0');
    expect((await runOk('du', ['-k', '--apparent-size', f])).split('\t')[0]).toBe('102400');
    expect((await stat(f)).blocks).toBe(0);
    // One block written in the middle: 64 KiB stored.
    await runOk('dd', ['if=/dev/urandom', `of=${f}`, 'bs=4096', 'count=1', 'seek=12800', 'conv=notrunc'], {});
    expect((await stat(f)).blocks).toBe(128);
    expect((await runOk('du', ['-k', f])).split('\t')[0]).toBe('64');
    // A dense file counts as on a local disk: its size rounded up to 512 bytes.
    await writeFile(mnt.path('dense'), randomBytes(100_000));
    expect((await stat(mnt.path('dense'))).blocks).toBe(Math.ceil(100_000 / 512));
  });

  it('deleting and shrinking free the stored blocks, in the background', async () => {
    const prefix = uniquePrefix('free');
    await using mnt = await mountRedisfs({ redis, prefix });
    await runOk('dd', ['if=/dev/urandom', `of=${mnt.path('a')}`, 'bs=1M', 'count=32']);
    await runOk('cp', [mnt.path('a'), mnt.path('b')]);
    expect((await storedState(redis.url, prefix)).blocks).toBe(1024);
    await runOk('truncate', ['-s', '1M', mnt.path('b')]);
    await runOk('rm', [mnt.path('a')]);
    await waitFor(async () => ((await storedState(redis.url, prefix)).blocks === 16 ? true : undefined), {
      timeoutMs: 20_000,
      what: 'blocks of the removed and the shrunk file to be deleted',
    });
    expect((await stat(mnt.path('b'))).size).toBe(1024 * 1024);
  });

  it("df: used is what Redis holds, capacity its maxmemory; sparse files do not fill it, a full Redis shows full", async () => {
    await using small = await startRedis({ args: ['--maxmemory', '40mb', '--maxmemory-policy', 'noeviction'] });
    await using mnt = await mountRedisfs({ redis: small, prefix: uniquePrefix('df') });
    for (const [name, size] of [['a', '900T'], ['b', '200T'], ['c', '1000T']] as const) {
      await runOk('truncate', ['-s', size, mnt.path(name)]);
    }
    const df = async () => {
      const out = (await runOk('df', ['-B1', '--output=size,used,pcent', mnt.dir])).trim().split('\n')[1]!.trim().split(/\s+/);
      return { size: Number(out[0]), used: Number(out[1]), pcent: Number(out[2]!.replace('%', '')) };
    };
    const sparse = await df();
    expect(sparse.size).toBeGreaterThan(35 * 2 ** 20);
    expect(sparse.size).toBeLessThanOrEqual(40 * 2 ** 20);
    expect(sparse.pcent).toBeLessThan(50);
    // Fill it: writes fail with ENOSPC once Redis refuses more, and df then says full.
    const filled = await run('dd', ['if=/dev/urandom', `of=${mnt.path('fill')}`, 'bs=1M', 'count=60', 'conv=fsync']);
    expect(filled.code).not.toBe(0);
    expect(filled.stderr).toMatch(/No space left on device/);
    expect((await df()).pcent).toBeGreaterThanOrEqual(97);
  });
});
