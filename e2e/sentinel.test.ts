/**
 * redisfs through Redis Sentinel (a master, two replicas and three sentinels, started by the
 * test): the mount finds the master by name, and follows a failover without a remount.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  MOUNT_CLI,
  expectFsckClean,
  mountRedisfs,
  prerequisitesMet,
  runOk,
  sha256,
  startRedisSentinel,
  startWriter,
  uniquePrefix,
  waitFor,
} from './helpers/index.js';

const ready = await prerequisitesMet({ fuse: true, redisTools: true });

describe.skipIf(!ready)('redisfs through Redis Sentinel', () => {
  it('follows a failover under a writer (--sync-replicas 1): no remount, every fsynced file intact', async () => {
    // Two replicas: the promoted one still has a replica to confirm writes (--sync-replicas 1).
    await using sentinel = await startRedisSentinel({ masterName: 'fsmaster', replicas: 2 });
    const url = `redis+sentinel://${sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}/fsmaster`;
    const prefix = uniquePrefix('sentinel');
    await using mnt = await mountRedisfs({ redis: { url }, prefix, extraArgs: ['--sync-replicas', '1'] });
    await writeFile(mnt.path('before'), 'written before the failover');
    await using writer = startWriter(mnt.dir, 's');
    await waitFor(() => writer.count() >= 10, { timeoutMs: 30_000, what: 'files written before the failover' });
    const killedAt = writer.durations.length;
    const old = await sentinel.master();
    const promoted = await sentinel.killMaster();
    expect(promoted.port).not.toBe(old.port);
    const after = writer.count();
    await waitFor(() => writer.count() >= after + 20, { timeoutMs: 60_000, what: 'files written after the failover' }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\nwriter errors: ${writer.errors.join('; ')}\nmount stderr: ${mnt.stderr()}`);
    });
    await writer.stop();
    const stall = Math.max(...writer.durations.slice(Math.max(0, killedAt - 1)));
    console.log(
      `sentinel failover: ${writer.synced.size} files fsynced, ${writer.errors.length} failed (${writer.errors.join('; ') || 'none'}); ` +
        `longest stall of a caller: ${Math.round(stall)} ms`,
    );
    for (const e of writer.errors) expect(e).toMatch(/EIO|input\/output error/i);
    expect(writer.errors.length).toBeLessThanOrEqual(2);
    expect(await readFile(mnt.path('before'), 'utf8')).toBe('written before the failover');
    for (const [name, sum] of writer.synced) expect(sha256(await readFile(mnt.path(name))), name).toBe(sum);
    await mnt.unmount();
    await expectFsckClean({ url }, prefix);
    // The admin commands find the master the same way.
    const listed = await runOk('node', [MOUNT_CLI, 'fsck', '--sentinel', sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(','), '--master-name', 'fsmaster', '--prefix', prefix]);
    expect(listed).toMatch(/clean/);
  }, 120_000);
});
