/**
 * Two filesystems (prefixes) on one Redis, mounted at once by two processes: neither sees,
 * changes or removes anything of the other.
 */
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountRedisfs, requireFuse, requireRedis, runOk, startRedis, uniquePrefix, type StartedRedis } from './helpers/index.js';

const ready = (await requireRedis()) && requireFuse();

describe.skipIf(!ready)('prefixes are separate filesystems', () => {
  let redis: StartedRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('files in one prefix are not seen in another', async () => {
    const [prefixA, prefixB] = [uniquePrefix('iso-a'), uniquePrefix('iso-b')];
    await using a = await mountRedisfs({ redis, prefix: prefixA });
    await using b = await mountRedisfs({ redis, prefix: prefixB });

    await mkdir(a.path('only-in-a'));
    await writeFile(a.path('only-in-a/file'), 'A');
    await writeFile(a.path('same-name'), 'content of A');
    expect(await readdir(b.dir)).toEqual([]);
    await expect(stat(b.path('only-in-a'))).rejects.toMatchObject({ code: 'ENOENT' });

    await writeFile(b.path('same-name'), 'content of B');
    expect(await readFile(a.path('same-name'), 'utf8')).toBe('content of A');
    expect(await readFile(b.path('same-name'), 'utf8')).toBe('content of B');

    await runOk('rm', [b.path('same-name')]);
    expect(await readFile(a.path('same-name'), 'utf8')).toBe('content of A');
    expect((await readdir(a.dir)).sort()).toEqual(['only-in-a', 'same-name']);
  });

  it('a prefix keeps its files while another is used and unmounted', async () => {
    const [prefixA, prefixB] = [uniquePrefix('iso-keep-a'), uniquePrefix('iso-keep-b')];
    {
      await using a = await mountRedisfs({ redis, prefix: prefixA });
      await writeFile(a.path('mine'), 'A keeps this');
    }
    {
      await using b = await mountRedisfs({ redis, prefix: prefixB });
      expect(await readdir(b.dir)).toEqual([]);
      await writeFile(b.path('mine'), 'B has its own');
      await runOk('rm', ['-f', b.path('mine')]);
    }
    await using a = await mountRedisfs({ redis, prefix: prefixA });
    expect(await readFile(a.path('mine'), 'utf8')).toBe('A keeps this');
  });
});
