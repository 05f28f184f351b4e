/**
 * A replica (`replicaof`) is mounted read-only. Without --read-only, redisfs refuses it with a
 * clear error (its writes would fail anyway) and the replica's data is never written.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@redis/client';
import { keysFor } from '@redisfs/schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MOUNT_CLI,
  isMounted,
  mountRedisfs,
  requireBuilt,
  requireFuse,
  requireRedis,
  run,
  startRedis,
  uniquePrefix,
  waitFor,
  type StartedRedis,
} from './helpers/index.js';

const ready = (await requireRedis()) && requireFuse();

describe.skipIf(!ready)('mounting a replica', () => {
  let master: StartedRedis;
  let replica: StartedRedis;
  beforeAll(async () => {
    master = await startRedis();
    replica = await startRedis({ replicaOf: master });
  });
  afterAll(async () => {
    await replica?.stop();
    await master?.stop();
  });

  it('is refused without --read-only and works with it', async () => {
    const prefix = uniquePrefix('replica');
    {
      await using rw = await mountRedisfs({ redis: master, prefix });
      await writeFile(rw.path('from-master'), 'replicated\n');
    }
    const client = createClient({ url: replica.url });
    await client.connect();
    try {
      await waitFor(async () => (await client.exists(keysFor(prefix).superblock)) === 1, {
        timeoutMs: 10_000,
        what: 'the replica to receive the filesystem',
      });
      const keysBefore = await client.dbSize();

      const dir = await mkdtemp(join(tmpdir(), 'redisfs-e2e-replica-'));
      try {
        const refused = await run(process.execPath, [requireBuilt(MOUNT_CLI), '--url', replica.url, '--prefix', prefix, '--mount', dir]);
        expect(refused.code).not.toBe(0);
        expect(refused.stderr).toMatch(/replica/);
        expect(refused.stderr).toMatch(/--read-only/);
        expect(await isMounted(dir)).toBe(false);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }

      await using ro = await mountRedisfs({ redis: replica, prefix, readOnly: true });
      expect(await readFile(ro.path('from-master'), 'utf8')).toBe('replicated\n');
      await expect(writeFile(ro.path('new'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
      expect(await client.dbSize()).toBe(keysBefore);
    } finally {
      await client.close();
    }
  });
});
