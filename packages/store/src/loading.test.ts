/**
 * A Redis restarted under a store: while it loads its dataset it refuses every command with
 * LOADING, and a store waits that out instead of failing each call with EIO (issue 12, item 5;
 * internal/busy-wait.ts). The restart is real: the same port, the saved RDB, and
 * `--key-load-delay` (a Redis test knob) so that loading lasts long enough to be seen.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { findExecutable, redisCommand, RedisReplyError, startLocalRedis, stopChild, tempDir, waitFor, type LocalRedis } from '@redisfs/testing';
import { openStore } from './index.js';
import { TEST_OWNER as owner } from './internal/test-fixture.js';

/** Keys loaded at `KEY_LOAD_DELAY_US` each: 2–4 s of LOADING. */
const PADDING_KEYS = 20_000;
const KEY_LOAD_DELAY_US = 100;

/**
 * Holds `redis` with another client's endless script, once Redis answers BUSY to everyone else
 * (started with a low --busy-reply-threshold); `release()` (and disposal) kills the script.
 */
async function holdWithScript(redis: LocalRedis): Promise<{ release(): Promise<void> } & AsyncDisposable> {
  const looping = redisCommand(redis, ['EVAL', 'while true do end', '0'], 30_000).catch((err: unknown) => err);
  const release = async () => {
    await redisCommand(redis, ['SCRIPT', 'KILL']).catch(() => undefined);
    await looping;
  };
  try {
    await waitFor(
      async () => redisCommand(redis, ['PING'], 1000).then(() => false, (err: unknown) => err instanceof RedisReplyError && /^BUSY/.test(err.message)),
      { timeoutMs: 10_000, what: 'Redis to answer BUSY' },
    );
  } catch (err) {
    await release();
    throw err;
  }
  return { release, [Symbol.asyncDispose]: release };
}

/** What a RESP reply of INFO says for `field`. */
function infoField(info: unknown, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)\\r?$`, 'm').exec(String(info))?.[1]?.trim();
}

describe.skipIf(!findExecutable('redis-server'))('a Redis that restarts and loads its data', () => {
  it('makes the store wait while it loads: every call then succeeds, none fails with EIO', async () => {
    await using saved = await tempDir('loading');
    const first = await startLocalRedis();
    let second: ChildProcess | undefined;
    const store = await openStore({ url: first.url, prefix: 'loading' });
    try {
      const f = await store.mknod(store.rootIno, 'kept', 0o644, owner);
      await store.write(f.ino, 0, Buffer.from('written before the restart\n'));
      // Padding, so that loading takes a while.
      for (let i = 0; i < PADDING_KEYS; i += 1000) {
        const args: string[] = ['MSET'];
        for (let j = i; j < i + 1000; j++) args.push(`pad:${j}`, 'x');
        await redisCommand(first, args);
      }
      await redisCommand(first, ['SAVE']);
      await copyFile(`${first.dir}/dump.rdb`, saved.join('dump.rdb'));
      const { port } = first;
      await first.kill9();

      second = spawn(findExecutable('redis-server')!, [
        '--port', String(port), '--bind', '127.0.0.1', '--dir', saved.path, '--dbfilename', 'dump.rdb',
        '--save', '', '--appendonly', 'no', '--key-load-delay', String(KEY_LOAD_DELAY_US),
        // Answer clients while loading as often as Redis allows (default: every 2 MB read).
        '--loading-process-events-interval-bytes', '1024',
      ], { stdio: 'ignore' });
      // Proof that the calls below meet a loading server: it says so (INFO answers while loading).
      await waitFor(
        async () => {
          try {
            return infoField(await redisCommand({ host: '127.0.0.1', port }, ['INFO', 'persistence'], 500), 'loading') === '1';
          } catch (err) {
            if (err instanceof RedisReplyError) throw err;
            return false; // not listening yet
          }
        },
        { timeoutMs: 10_000, intervalMs: 5, what: 'the restarted Redis to be loading' },
      );
      const [attr, data, names] = await Promise.all([
        store.getattr(f.ino),
        store.read(f.ino, 0, 100),
        store.readdir(store.rootIno),
      ]);
      expect(attr.size).toBe(27);
      expect(data.toString()).toBe('written before the restart\n');
      expect(names.map((e) => e.name)).toEqual(['kept']);
      // And a change, made as soon as the server takes it.
      await store.write(f.ino, 27, Buffer.from('and after\n'));
      expect((await store.read(f.ino, 0, 100)).toString()).toBe('written before the restart\nand after\n');
      expect(infoField(await redisCommand({ host: '127.0.0.1', port }, ['INFO', 'persistence']), 'loading')).toBe('0');
    } finally {
      await store.close();
      await first.stop();
      if (second) await stopChild(second, 'SIGKILL');
    }
  }, 60_000);

  it("makes the store wait while another client's script holds Redis (BUSY), then answer", async () => {
    // Redis answers BUSY to others once a script has run this long.
    const redis = await startLocalRedis({ args: ['--busy-reply-threshold', '20'] });
    const store = await openStore({ url: redis.url, prefix: 'busy' });
    try {
      await using held = await holdWithScript(redis);
      const sent = () => Object.values(store.stats().commands).reduce((a, b) => a + b, 0);
      const before = sent();
      let killed = false;
      const answered = store.getattr(store.rootIno).then((attr) => ({ attr, killedFirst: killed }));
      // Refused and sent again (each sending counts as a round trip): it is waiting.
      await waitFor(() => sent() >= before + 2, { timeoutMs: 5_000, intervalMs: 5, what: 'the getattr to be sent again' });
      killed = true;
      await held.release();
      expect(await answered).toMatchObject({ attr: { type: 'dir' }, killedFirst: true });
    } finally {
      await store.close();
      await redis.stop();
    }
  }, 60_000);

  it('answers ETIMEDOUT, not EIO, when Redis is still busy at the deadline', async () => {
    const redis = await startLocalRedis({ args: ['--busy-reply-threshold', '20'] });
    const store = await openStore({ url: redis.url, prefix: 'busy-deadline', opTimeoutMs: 500 });
    try {
      await using _held = await holdWithScript(redis);
      await expect(store.getattr(store.rootIno)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    } finally {
      await store.close();
      await redis.stop();
    }
  }, 60_000);
});
