/**
 * copyFilesystem / listFilesystems / deleteFilesystem against a real redis-server started for
 * this file. Filesystems are written by hand in the schema's layout, so the test depends on
 * nothing but the schema.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LAYOUT_VERSION, encodeSuperblock, keysFor } from '@redisfs/schema';
import { freePort } from '../../../e2e/helpers/free-port.js';
import { startRedis, type StartedRedis } from '../../../e2e/helpers/redis-server.js';
import { deleteFilesystem, listFilesystems } from './admin.js';
import { copyFilesystem } from './snapshot.js';
import { isFsError } from './errors.js';
import { bufferView, connectClient, type RedisClient } from './internal/connect.js';

let redis: StartedRedis;
let url = '';
let client: RedisClient;

beforeAll(async () => {
  redis = await startRedis();
  url = redis.url;
  client = await connectClient({ url });
});

afterAll(async () => {
  await client?.close();
  await redis?.stop();
});

beforeEach(async () => {
  await client.flushAll();
});

/** A tiny filesystem: superblock, counters, root dir with one file of two blocks. */
async function writeFs(prefix: string): Promise<void> {
  const k = keysFor(prefix);
  await client.hSet(k.superblock, encodeSuperblock({
    version: LAYOUT_VERSION, bsize: 65536, codec: 'zlib', created: 1_700_000_000_000_000_000n, maxsize: 2 ** 50,
  }));
  await client.set(k.inoCounter, '2');
  await client.hSet(k.stats, { inodes: '2', bytes: '70000' });
  await client.hSet(k.inode(1), { m: String(0o40755), u: '0', g: '0', s: '0', n: '2', a: '1', t: '1', c: '1', p: '1' });
  await client.hSet(k.dir(1), { 'hello.txt': 'f2' });
  await client.hSet(k.inode(2), { m: String(0o100644), u: '0', g: '0', s: '70000', n: '1', a: '1', t: '1', c: '1' });
  await client.set(k.block(2, 0), Buffer.from([0, 1, 2, 3]));
  await client.set(k.block(2, 1), Buffer.from([0, 255, 254]));
}

async function keysOf(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const pattern of keysFor(prefix).scanPatterns) {
    for await (const keys of client.scanIterator({ MATCH: pattern })) out.push(...keys);
  }
  return out.sort();
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => expect.fail('expected a rejection'), (err: unknown) => err);
}

describe('copyFilesystem', () => {
  it('copies every key, renaming metadata and block heads, values byte for byte', async () => {
    await writeFs('a');
    await writeFs('ab'); // a prefix that starts like 'a' must not be swept along
    const result = await copyFilesystem({ url, from: 'a', to: 'b' });
    expect(result).toMatchObject({ copiedKeys: 8, deletedKeys: 0 });
    const src = await keysOf('a');
    const dst = await keysOf('b');
    expect(dst).toEqual(src.map((k) => k.replace('{a}:', '{b}:').replace(/^a:b:/, 'b:b:')).sort());
    expect(await bufferView(client).get(keysFor('b').block(2, 1))).toEqual(Buffer.from([0, 255, 254]));
    expect(await client.hGetAll(keysFor('b').dir(1))).toEqual({ 'hello.txt': 'f2' });
    expect(await keysOf('a')).toEqual(src); // source untouched
  });

  it('refuses when the source has no superblock', async () => {
    await client.set(keysFor('a').block(2, 0), 'x'); // stray block, no filesystem
    const err = await rejection(copyFilesystem({ url, from: 'a', to: 'b' }));
    expect(isFsError(err, 'ENOENT')).toBe(true);
    expect(String(err)).toContain("no filesystem at prefix 'a'");
    expect(await keysOf('b')).toEqual([]);
  });

  it('refuses a destination holding any key, unless force', async () => {
    await writeFs('a');
    await client.set(keysFor('b').block(9, 9), 'old');
    const err = await rejection(copyFilesystem({ url, from: 'a', to: 'b' }));
    expect(isFsError(err, 'EEXIST')).toBe(true);
    expect(String(err)).toContain('--force');
    const result = await copyFilesystem({ url, from: 'a', to: 'b', force: true });
    expect(result).toMatchObject({ copiedKeys: 8, deletedKeys: 1 });
    expect(await client.exists(keysFor('b').block(9, 9))).toBe(0);
  });

  it('rejects invalid and identical prefixes', async () => {
    expect(isFsError(await rejection(copyFilesystem({ url, from: 'a', to: 'x:y' })), 'EINVAL')).toBe(true);
    expect(isFsError(await rejection(copyFilesystem({ url, from: '{a}', to: 'b' })), 'EINVAL')).toBe(true);
    expect(isFsError(await rejection(copyFilesystem({ url, from: 'a', to: 'a' })), 'EINVAL')).toBe(true);
  });

  it('copies more keys than one batch', async () => {
    await writeFs('a');
    const k = keysFor('a');
    const multi = client.multi();
    for (let i = 0; i < 1200; i++) multi.set(k.block(3, i), 'z');
    await multi.exec();
    const result = await copyFilesystem({ url, from: 'a', to: 'big' });
    expect(result.copiedKeys).toBe(1208);
    expect((await keysOf('big')).length).toBe(1208);
  });

  it('reports an unreachable server as EIO without the password', async () => {
    const port = await freePort();
    const err = await rejection(copyFilesystem({ url: `redis://u:s3cret@127.0.0.1:${port}`, from: 'a', to: 'b', connectTimeoutMs: 500 }));
    expect(isFsError(err, 'EIO')).toBe(true);
    expect(String(err)).not.toContain('s3cret');
  });
});

describe('listFilesystems', () => {
  it('lists filesystems with their counters, ignoring look-alike keys', async () => {
    await writeFs('b');
    await writeFs('a');
    await client.set('other:sb', 'x');
    await client.set('{not a prefix}:sb', 'x');
    await client.hSet(keysFor('broken').superblock, { version: 'x' });
    const list = await listFilesystems({ url });
    expect(list).toEqual([
      { prefix: 'a', version: 1, createdNs: 1_700_000_000_000_000_000n, inodes: 2, bytes: 70000 },
      { prefix: 'b', version: 1, createdNs: 1_700_000_000_000_000_000n, inodes: 2, bytes: 70000 },
      { prefix: 'broken', version: undefined, createdNs: undefined, inodes: 0, bytes: 0 },
    ]);
  });

  it('returns an empty list on an empty server', async () => {
    expect(await listFilesystems({ url })).toEqual([]);
  });
});

describe('deleteFilesystem', () => {
  it('deletes every key of the prefix and nothing else', async () => {
    await writeFs('a');
    await writeFs('ab');
    expect(await deleteFilesystem({ url, prefix: 'a' })).toEqual({ deletedKeys: 8 });
    expect(await keysOf('a')).toEqual([]);
    expect((await keysOf('ab')).length).toBe(8);
  });

  it('fails with ENOENT on an empty prefix', async () => {
    const err = await rejection(deleteFilesystem({ url, prefix: 'nothing' }));
    expect(isFsError(err, 'ENOENT')).toBe(true);
  });
});
