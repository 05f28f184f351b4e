/**
 * redisfs on a Redis Cluster (3 masters, 3 replicas, started by the test): the metadata of a
 * filesystem stays in one hash slot while its data blocks spread over every master; the admin
 * commands work there; a master that dies under a writer is replaced without a remount, and a
 * resharding under readers and writers is never seen by them.
 */
import { randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import {
  MOUNT_CLI,
  SNAPSHOT_CLI,
  describeWithRedis,
  expectFsckClean,
  makeSourceTree,
  diffTrees,
  mountRedisfs,
  redisCommand,
  run,
  runOk,
  startRedisCluster,
  startWriter,
  sha256,
  tempDir,
  uniquePrefix,
  waitFor,
  type RedisClusterNode,
  type StartedRedisCluster,
} from './helpers/index.js';

const sha = sha256;

/** Every node as a seed (redis://h:p,h:p,…): what survives any one node's death. */
const seedsUrl = (cluster: StartedRedisCluster) => `redis://${cluster.seeds.map((s) => `${s.host}:${s.port}`).join(',')}`;

async function masters(cluster: StartedRedisCluster): Promise<RedisClusterNode[]> {
  const roles = await Promise.all(cluster.nodes.map(async (n) => (n.isRunning() ? n.role() : 'gone')));
  return cluster.nodes.filter((_, i) => roles[i] === 'master');
}

/** Keys of a prefix's family on one node, by kind: metadata (`{F}…`) and data blocks (`F:b:…`). */
async function keysOn(node: RedisClusterNode, family: string): Promise<{ meta: number; blocks: number; blockBytes: number }> {
  const out = { meta: 0, blocks: 0, blockBytes: 0 };
  let cursor = '0';
  do {
    const [next, keys] = (await redisCommand(node, ['SCAN', cursor, 'COUNT', 1000])) as [string, string[]];
    cursor = next;
    for (const key of keys) {
      if (key.startsWith(`{${family}}`)) out.meta++;
      else if (key.startsWith(`${family}:b:`)) {
        out.blocks++;
        out.blockBytes += Number(await redisCommand(node, ['STRLEN', key]));
      }
    }
  } while (cursor !== '0');
  return out;
}

const cluster3x1 = { fuse: true, redisTools: true, start: () => startRedisCluster({ masters: 3, replicasPerMaster: 1 }) };

await describeWithRedis('redisfs on a Redis Cluster', cluster3x1, (cluster) => {
  it('mounts through any one node: metadata in one slot, data blocks spread evenly over every master', async () => {
    const prefix = uniquePrefix('spread');
    await using mnt = await mountRedisfs({ redis: { url: cluster.url }, prefix });
    // 24 MiB of incompressible data in 16 files: 384 blocks of 64 KiB.
    const files = Array.from({ length: 16 }, (_, i) => ({ name: `f${i}`, data: randomBytes(1536 * 1024) }));
    for (const f of files) await writeFile(mnt.path(f.name), f.data);
    for (const f of files) expect(sha(await readFile(mnt.path(f.name)))).toBe(sha(f.data));

    const perMaster = await Promise.all((await masters(cluster)).map((m) => keysOn(m, prefix)));
    expect(perMaster.filter((m) => m.meta > 0)).toHaveLength(1);
    const total = perMaster.reduce((n, m) => n + m.blockBytes, 0);
    expect(total).toBeGreaterThanOrEqual(24 * 1024 * 1024);
    for (const m of perMaster) expect(m.blockBytes / total).toBeGreaterThan(0.2); // 1/3 each, give or take
    console.log(`block bytes per master: ${perMaster.map((m) => `${((100 * m.blockBytes) / total).toFixed(1)}%`).join(' ')}`);
  });

  it('copies, moves, links and removes trees like a local disk', async () => {
    const prefix = uniquePrefix('tools');
    await using mnt = await mountRedisfs({ redis: { url: seedsUrl(cluster) }, prefix });
    await using src = await tempDir('src');
    await using work = await tempDir('work');
    await makeSourceTree(src.path);
    await runOk('tar', ['--format=posix', '-C', src.path, '-cf', work.join('x.tar'), '.']);
    await runOk('mkdir', [mnt.path('tar')]);
    await runOk('tar', ['-C', mnt.path('tar'), '-xf', work.join('x.tar')]);
    expect(await diffTrees(src.path, mnt.path('tar'))).toMatchObject({ code: 0, stdout: '' });
    await runOk('cp', ['-a', mnt.path('tar'), mnt.path('copy')]);
    expect(await diffTrees(src.path, mnt.path('copy'))).toMatchObject({ code: 0, stdout: '' });
    await runOk('mv', [mnt.path('copy'), mnt.path('moved')]);
    await runOk('ln', [mnt.path('moved/hard-a.txt'), mnt.path('link')]);
    expect((await runOk('stat', ['-c', '%h', mnt.path('link')])).trim()).toBe('3'); // hard-a, a/hard-b, link
    const found = (await runOk('find', ['.'], { cwd: mnt.path('moved') })).trim().split('\n').sort();
    const expected = (await runOk('find', ['.'], { cwd: src.path })).trim().split('\n').sort();
    expect(found).toEqual(expected);
    await runOk('rm', ['-rf', mnt.path('tar'), mnt.path('moved'), mnt.path('link')]);
    expect(await readdir(mnt.dir)).toEqual([]);
    await mnt.unmount();
    await expectFsckClean({ url: cluster.url }, prefix);
  });

  it('snapshot, restore, fsck and upgrade run on the cluster', async () => {
    const prefix = uniquePrefix('admin');
    {
      await using mnt = await mountRedisfs({ redis: { url: cluster.url }, prefix });
      await writeFile(mnt.path('a'), 'before');
      await runOk('node', [SNAPSHOT_CLI, '--url', cluster.url, '--from', prefix, '--to', `${prefix}@one`]);
      await writeFile(mnt.path('a'), 'after');
      await writeFile(mnt.path('b'), randomBytes(300_000));
    }
    await expectFsckClean({ url: cluster.url }, prefix);
    await expectFsckClean({ url: cluster.url }, `${prefix}@one`);
    const listed = await runOk('node', [SNAPSHOT_CLI, '--url', cluster.url, 'list', '--of', prefix]);
    expect(listed).toContain(`${prefix}@one`);
    await runOk('node', [SNAPSHOT_CLI, '--url', cluster.url, 'restore', '--from', `${prefix}@one`, '--to', prefix, '--force']);
    {
      await using mnt = await mountRedisfs({ redis: { url: cluster.url }, prefix });
      expect(await readFile(mnt.path('a'), 'utf8')).toBe('before');
      expect(await readdir(mnt.dir)).toEqual(['a']);
    }
    const upgrade = await run('node', [MOUNT_CLI, 'upgrade', '--url', cluster.url, '--prefix', prefix]);
    expect(upgrade).toMatchObject({ code: 0 });
    expect(upgrade.stdout).toMatch(/already layout 3/);
    await runOk('node', [SNAPSHOT_CLI, '--url', cluster.url, 'delete', '--prefix', `${prefix}@one`]);
    await expectFsckClean({ url: cluster.url }, prefix);
  });

  it('moves slots of data blocks (resharding) under readers and writers, who see no error', async () => {
    const prefix = uniquePrefix('reshard');
    await using mnt = await mountRedisfs({ redis: { url: cluster.url }, prefix });
    const files = Array.from({ length: 12 }, (_, i) => ({ name: `r${i}`, data: randomBytes(512 * 1024) }));
    for (const f of files) await writeFile(mnt.path(f.name), f.data);
    await using writer = startWriter(mnt.dir, 'w');
    let reads = 0;
    const readErrors: string[] = [];
    let reading = true;
    const reader = (async () => {
      while (reading) {
        const f = files[reads++ % files.length]!;
        try {
          if (sha(await readFile(mnt.path(f.name))) !== sha(f.data)) readErrors.push(`${f.name}: wrong content`);
        } catch (err) {
          readErrors.push(`${f.name}: ${(err as Error).message}`);
        }
      }
    })();
    let before = 0;
    try {
      // Move 2000 slots from a master that does not hold the metadata to another (block keys only).
      const metaMaster = await cluster.masterOf(`{${prefix}}:sb`);
      const [from, to] = (await masters(cluster)).filter((m) => m !== metaMaster);
      before = (await keysOn(from!, prefix)).blocks;
      const moved = await cluster.reshard({ from: from!, to: to!, slots: 2000 });
      expect(moved).toHaveLength(2000);
      await waitFor(() => writer.count() >= 10 && reads >= 20, { timeoutMs: 30_000, what: 'the writer and reader to carry on' });
    } finally {
      reading = false;
      await reader;
    }
    await writer.stop();
    expect(before).toBeGreaterThan(0);
    expect(readErrors).toEqual([]);
    expect(writer.errors).toEqual([]);
    for (const [name, sum] of writer.synced) expect(sha(await readFile(mnt.path(name))), name).toBe(sum);
    await mnt.unmount();
    await expectFsckClean({ url: cluster.url }, prefix);
  });

  // Two replicas per master: once one is promoted, its shard still has a replica to confirm writes
  // (with one, --sync-replicas 1 fails every change of that shard with EIO until the dead node is back).
  it('follows a failover of the metadata master under a writer (--sync-replicas 1): no remount, every fsynced file intact', async () => {
    await using cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 2 });
    const prefix = uniquePrefix('failover');
    // All seeds: the node killed may be the first one.
    const url = seedsUrl(cluster);
    await using mnt = await mountRedisfs({ redis: { url }, prefix, extraArgs: ['--sync-replicas', '1'] });
    await using writer = startWriter(mnt.dir, 'f');
    await waitFor(() => writer.count() >= 10, { timeoutMs: 30_000, what: 'files written before the failover' });
    const killedAt = writer.durations.length;
    await cluster.failover(`{${prefix}}:sb`);
    const after = writer.count();
    await waitFor(() => writer.count() >= after + 20, { timeoutMs: 60_000, what: 'files written after the failover' }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\nwriter errors: ${writer.errors.join('; ')}\nmount stderr: ${mnt.stderr()}`);
    });
    await writer.stop();
    const stall = Math.max(...writer.durations.slice(killedAt - 1));
    console.log(
      `failover: ${writer.synced.size} files fsynced, ${writer.errors.length} failed (${writer.errors.join('; ') || 'none'}); ` +
        `longest stall of a caller: ${Math.round(stall)} ms`,
    );
    // Errors may only be the honest EIO of a change whose master died before its replica had it.
    for (const e of writer.errors) expect(e).toMatch(/EIO|input\/output error/i);
    expect(writer.errors.length).toBeLessThanOrEqual(2);
    for (const [name, sum] of writer.synced) expect(sha(await readFile(mnt.path(name))), name).toBe(sum);
    await mnt.unmount();
    await expectFsckClean({ url }, prefix);
  }, 120_000);
});
