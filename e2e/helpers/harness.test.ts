/**
 * The harness checked on its own (no FUSE, no redisfs needed): a real Redis starts, answers and
 * is gone after dispose; waitFor keeps its deadline and says what it waited for.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  SOURCE_TREE_PATHS,
  WaitTimeoutError,
  describeTree,
  describeWithRedis,
  diffTrees,
  freePort,
  makeSourceTree,
  parseMountinfo,
  pingRedis,
  requireRedis,
  run,
  runOk,
  startRedis,
  tempDir,
  uniquePrefix,
  waitFor,
  type Clock,
} from './index.js';

/** A clock that only moves when the test says so, and a pause that moves it. */
function fakeTime(): { clock: Clock; pause: (ms: number) => Promise<void>; pauses: number[] } {
  let now = 1_000;
  const pauses: number[] = [];
  return {
    clock: { getTime: () => now },
    pause: async (ms) => {
      pauses.push(ms);
      now += ms;
    },
    pauses,
  };
}

describe('waitFor', () => {
  it('resolves with the first truthy result', async () => {
    let calls = 0;
    const t = fakeTime();
    const value = await waitFor(() => (++calls >= 3 ? `ready after ${calls}` : undefined), {
      timeoutMs: 1_000,
      intervalMs: 10,
      what: 'the third call',
      ...t,
    });
    expect(value).toBe('ready after 3');
    expect(t.pauses).toEqual([10, 10]);
  });

  it('times out at the deadline with a message that names what it waited for', async () => {
    const t = fakeTime();
    const error = await waitFor(() => false, { timeoutMs: 100, intervalMs: 30, what: 'the moon to turn blue', ...t }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WaitTimeoutError);
    expect((error as Error).message).toMatch(/timed out after 100 ms \(\d+ attempts\) waiting for the moon to turn blue/);
    // Never pauses past the deadline: 30 + 30 + 30 + 10.
    expect(t.pauses).toEqual([30, 30, 30, 10]);
  });

  it('keeps the probe’s last error as the cause', async () => {
    const t = fakeTime();
    const error = (await waitFor(
      () => {
        throw new Error('ECONNREFUSED');
      },
      { timeoutMs: 50, what: 'a server', ...t },
    ).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain('last error: ECONNREFUSED');
    expect((error.cause as Error).message).toBe('ECONNREFUSED');
  });

  it('stops at once when bail returns an error', async () => {
    const t = fakeTime();
    let calls = 0;
    const error = await waitFor(() => ++calls > 100, {
      timeoutMs: 10_000,
      what: 'never',
      bail: () => (calls >= 2 ? new Error('the process exited') : undefined),
      ...t,
    }).catch((e: unknown) => e);
    expect((error as Error).message).toBe('the process exited');
    expect(calls).toBe(2);
  });

  it('really waits on the system clock', async () => {
    const started = Date.now();
    await expect(waitFor(() => false, { timeoutMs: 200, intervalMs: 20, what: 'nothing' })).rejects.toThrow(
      'waiting for nothing',
    );
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(195);
    expect(elapsed).toBeLessThan(2_000);
  });
});

const redisReady = await requireRedis();

describe.skipIf(!redisReady)('startRedis', () => {
  it('starts a real server that answers PING and is gone after dispose', async () => {
    let address: { host: string; port: number };
    {
      await using redis = await startRedis();
      address = { host: redis.host, port: redis.port };
      expect(redis.url).toBe(`redis://${redis.host}:${redis.port}`);
      await expect(pingRedis(redis)).resolves.toBe(true);
      if (redis.socket) expect((await stat(redis.socket)).isSocket()).toBe(true);
    }
    await expect(pingRedis(address)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('starts servers side by side on different ports, and stop() is idempotent', async () => {
    await using a = await startRedis();
    await using b = await startRedis();
    expect(a.port).not.toBe(b.port);
    await a.stop();
    await a.stop();
    await expect(pingRedis(b)).resolves.toBe(true);
  });

  it('starts a replica of another server', async () => {
    await using primary = await startRedis();
    await using replica = await startRedis({ replicaOf: primary });
    await expect(pingRedis(replica)).resolves.toBe(true);
    // The replica reports its role; checked with redis-cli when present.
    if ((await run('sh', ['-c', 'command -v redis-cli'])).code === 0) {
      const info = await waitFor(
        async () => {
          const out = await runOk('redis-cli', ['-u', replica.url, 'INFO', 'replication']);
          return /master_link_status:up/.test(out) && out;
        },
        { timeoutMs: 20_000, what: 'the replica to link to its primary' },
      );
      expect(info).toContain('role:slave');
    }
  });

  it('fails with the server’s own words when redis-server rejects its arguments', async () => {
    await expect(startRedis({ args: ['--no-such-option', 'x'] })).rejects.toThrow(/exited|Bad directive|no-such-option/i);
  });
});

/** The server describeWithRedis gave the block below, as its tests saw it. */
const seen: { host: string; port: number }[] = [];
let tooEarly: unknown;

await describeWithRedis('describeWithRedis', {}, (redis) => {
  try {
    void redis.url; // while the block is collected, before its beforeAll
  } catch (err) {
    tooEarly = err;
  }

  it('refuses the server before beforeAll started it, saying so', () => {
    expect(String(tooEarly)).toMatch(/the server of 'describeWithRedis' is used before its beforeAll started it/);
  });

  it('gives every test of the block the same running server', async () => {
    await expect(pingRedis(redis)).resolves.toBe(true);
    expect(redis.url).toBe(`redis://${redis.host}:${redis.port}`);
    seen.push({ host: redis.host, port: redis.port });
  });

  it('the same one in the next test', async () => {
    await expect(pingRedis(redis)).resolves.toBe(true);
    seen.push({ host: redis.host, port: redis.port });
  });
});

describe.skipIf(!redisReady)('after the describeWithRedis block', () => {
  it('its server is stopped', async () => {
    expect(seen).toHaveLength(2);
    expect(seen[1]).toEqual(seen[0]);
    await expect(pingRedis(seen[0]!)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('local helpers', () => {
  it('freePort gives a port nothing listens on', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    await expect(pingRedis({ host: '127.0.0.1', port })).rejects.toThrow(/ECONNREFUSED/);
  });

  it('parses mountinfo, including escaped spaces', () => {
    const text =
      '36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n' +
      '37 35 0:50 / /tmp/m rw,nosuid,nodev,relatime shared:2 - fuse /dev/fuse rw,user_id=0,group_id=0\n';
    expect(parseMountinfo(text)).toEqual([
      { mountPoint: '/mnt/with space', fsType: 'ext3', source: '/dev/root', options: ['rw', 'noatime'] },
      { mountPoint: '/tmp/m', fsType: 'fuse', source: '/dev/fuse', options: ['rw', 'nosuid', 'nodev', 'relatime'] },
    ]);
  });

  it('the current mount table lists /', async () => {
    const mounts = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
    expect(mounts.some((m) => m.mountPoint === '/')).toBe(true);
  });

  it('uniquePrefix gives valid, distinct prefixes', () => {
    const a = uniquePrefix('everyday tools/mv');
    const b = uniquePrefix('everyday tools/mv');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^[A-Za-z0-9_.-]{1,64}$/);
  });

  it('the source tree copies with tar (pax) to an equal description, as the e2e tests expect', async () => {
    await using src = await tempDir('src');
    await using dst = await tempDir('dst');
    await using work = await tempDir('work');
    await makeSourceTree(src.path);
    const found = (await runOk('sh', ['-c', 'find . | LC_ALL=C sort'], { cwd: src.path })).trim().split('\n');
    expect(found).toEqual(SOURCE_TREE_PATHS);
    await runOk('tar', ['--format=posix', '-C', src.path, '-cf', work.join('x.tar'), '.']);
    await mkdir(dst.join('copy'));
    await runOk('tar', ['-C', dst.join('copy'), '-xf', work.join('x.tar')]);
    expect(await diffTrees(src.path, dst.join('copy'))).toMatchObject({ code: 0, stdout: '' });
    const want = await describeTree(src.path);
    expect(await describeTree(dst.join('copy'))).toEqual(want);
    expect(want.hardLinks).toEqual([['./a/hard-b.txt', './hard-a.txt']]);
    expect(want.entries.find((e) => e.path === './secret.txt')?.mode).toBe(0o640);
    expect(want.entries.find((e) => e.path === './README.txt')?.mtimeNs).toBe(1_000_000_000_123_456_789n);
  });
});
