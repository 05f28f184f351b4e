/**
 * SIGUSR2: a running mount writes one `redisfs: stats {…}` line to stderr (FUSE calls served,
 * Redis round trips made) and keeps serving.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  mountRedisfs,
  requireFuse,
  requireRedis,
  startRedis,
  uniquePrefix,
  waitFor,
  type StartedRedis,
} from './helpers/index.js';

const ready = (await requireRedis()) && requireFuse();

interface Stats {
  fuseCalls: Record<string, number>;
  redisCommands: Record<string, number>;
}

function statsLines(stderr: string): Stats[] {
  return [...stderr.matchAll(/^redisfs: stats (\{.*\})$/gm)].map((m) => JSON.parse(m[1]!) as Stats);
}

describe.skipIf(!ready)('SIGUSR2 stats line', () => {
  let redis: StartedRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('reports FUSE calls and Redis round trips, and the mount keeps serving', async () => {
    await using mnt = await mountRedisfs({ redis, prefix: uniquePrefix('stats') });
    await mkdir(mnt.path('d'));
    await writeFile(mnt.path('d', 'f'), 'hello');

    mnt.process.kill('SIGUSR2');
    await waitFor(() => statsLines(mnt.stderr()).length === 1, { timeoutMs: 10_000, what: 'a stats line on stderr' });
    const [first] = statsLines(mnt.stderr());
    expect(first!.fuseCalls).toMatchObject({ mkdir: 1, create: 1 });
    expect(first!.redisCommands['EVALSHA create']).toBeGreaterThanOrEqual(2);

    // Still mounted and serving; the next line counts what happened since.
    expect(await readdir(mnt.path('d'))).toEqual(['f']);
    mnt.process.kill('SIGUSR2');
    await waitFor(() => statsLines(mnt.stderr()).length === 2, { timeoutMs: 10_000, what: 'a second stats line' });
    const second = statsLines(mnt.stderr())[1]!;
    expect(second.fuseCalls.readdir ?? 0).toBeGreaterThan(first!.fuseCalls.readdir ?? 0);
    expect(mnt.process.exitCode).toBeNull();
  });
});
