/**
 * SIGUSR2: a running mount writes one `redisfs: stats {…}` line to stderr (FUSE calls served,
 * Redis round trips made, both counted since it was mounted) and keeps serving.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import {
  describeWithRedis,
  mountRedisfs,
  statsOf,
  uniquePrefix,
} from './helpers/index.js';

await describeWithRedis('SIGUSR2 stats line', { fuse: true }, (redis) => {
  it('reports FUSE calls and Redis round trips, and the mount keeps serving', async () => {
    await using mnt = await mountRedisfs({ redis, prefix: uniquePrefix('stats') });
    await mkdir(mnt.path('d'));
    await writeFile(mnt.path('d', 'f'), 'hello');

    const first = await statsOf(mnt);
    expect(first.fuseCalls).toMatchObject({ mkdir: 1, create: 1 });
    // mkdir's script, and create's, which also holds the new file open for this mount's session.
    expect(first.redisCommands['EVALSHA create']).toBeGreaterThanOrEqual(1);
    expect(first.redisCommands['EVALSHA createOpen']).toBeGreaterThanOrEqual(1);

    // Still mounted and serving. Known work between the two signals: the second line's counts
    // are the totals since the mount (README: "both since it was mounted"), not what happened
    // since the first line: each is at least the first's plus this work.
    expect(await readdir(mnt.path('d'))).toEqual(['f']);
    const NEW_FILES = 3;
    for (let i = 0; i < NEW_FILES; i++) await writeFile(mnt.path('d', `g${i}`), 'more');
    await mkdir(mnt.path('e'));
    const second = await statsOf(mnt);
    const f = first;
    expect(second.fuseCalls.create).toBeGreaterThanOrEqual(f.fuseCalls.create! + NEW_FILES);
    expect(second.fuseCalls.mkdir).toBeGreaterThanOrEqual(f.fuseCalls.mkdir! + 1);
    expect(second.fuseCalls.readdir).toBeGreaterThanOrEqual((f.fuseCalls.readdir ?? 0) + 1);
    expect(second.redisCommands['EVALSHA createOpen']).toBeGreaterThanOrEqual(f.redisCommands['EVALSHA createOpen']! + NEW_FILES);
    // Nothing counted in the first line is missing or smaller in the second.
    const fell = (before: Record<string, number>, after: Record<string, number>) =>
      Object.entries(before).filter(([name, n]) => (after[name] ?? 0) < n).map(([name, n]) => `${name}: ${n} -> ${after[name] ?? 0}`);
    expect(fell(f.fuseCalls, second.fuseCalls)).toEqual([]);
    expect(fell(f.redisCommands, second.redisCommands)).toEqual([]);
    expect(mnt.process.exitCode).toBeNull();
  });
});
