/**
 * syncReplicas: a change returns only once that many replicas have it (WAIT), and fails with EIO,
 * instead of returning as if durable, when they do not confirm it in time.
 */
import { describe, expect, it } from 'vitest';
import { startRedis } from '@redisfs/testing';
import { openStore } from './index.js';
import { TEST_OWNER as owner, countsOf } from './internal/test-fixture.js';

describe('syncReplicas', () => {
  it('waits for a replica to have each change, which it then holds', async () => {
    await using master = await startRedis();
    await using replica = await startRedis({ replicaOf: master });
    const s = await openStore({ url: master.url, prefix: 'sync', syncReplicas: 1 });
    try {
      // The replica is linked once it confirms a change at all.
      const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
      const counts = await countsOf(s, () => s.write(f.ino, 0, Buffer.from('durable')));
      expect(counts.WAIT).toBe(1);
      const onReplica = await openStore({ url: replica.url, prefix: 'sync', readOnly: true });
      try {
        // No waiting here: WAIT returned, so the replica already has the write.
        expect((await onReplica.read(f.ino, 0, 7)).toString()).toBe('durable');
      } finally {
        await onReplica.close();
      }
    } finally {
      await s.close();
    }
  });

  it('fails a change with EIO when no replica confirms it in time, and sends no WAIT when off', async () => {
    await using lonely = await startRedis();
    const s = await openStore({ url: lonely.url, prefix: 'sync', syncReplicas: 1, syncTimeoutMs: 200 });
    try {
      await expect(s.mkdir(s.rootIno, 'd', 0o755, owner)).rejects.toMatchObject({
        code: 'EIO',
        message: expect.stringMatching(/only 0 of 1 replica\(s\) acknowledged it within 200 ms/),
      });
      // The change is on the master all the same: EIO says it may not survive the master.
      expect((await s.lookup(s.rootIno, 'd')).type).toBe('dir');
    } finally {
      await s.close();
    }
    const plain = await openStore({ url: lonely.url, prefix: 'sync' });
    try {
      const counts = await countsOf(plain, () => plain.mkdir(plain.rootIno, 'e', 0o755, owner));
      expect(counts.WAIT).toBeUndefined();
    } finally {
      await plain.close();
    }
  });

  it('refuses a count that is not a whole number', async () => {
    await expect(openStore({ url: 'redis://127.0.0.1:1', syncReplicas: -1 })).rejects.toMatchObject({ code: 'EINVAL' });
  });
});
