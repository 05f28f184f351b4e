/** The level runOp gives each log line: the adapter says how bad, the app decides what to keep. */
import { constants } from 'node:os';
import { FsError, type FsErrorCode } from '@redisfs/store';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runOp, type LogLevel, type OpEnv } from './run-op.js';

const { EIO, ETIMEDOUT } = constants.errno;

function env(overrides: Partial<OpEnv> = {}): OpEnv & { logged: [LogLevel, string][] } {
  const logged: [LogLevel, string][] = [];
  return { debug: false, deadlineMs: 0, log: (line, level) => logged.push([level, line]), logged, ...overrides };
}

async function settle(e: OpEnv, fn: () => Promise<unknown> | unknown): Promise<number[]> {
  const answers: number[] = [];
  runOp(e, 'write', '/a/b', fn, (errno) => answers.push(errno));
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return answers;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('runOp log levels', () => {
  it('an unforeseen failure is an error line', async () => {
    const e = env();
    expect(await settle(e, () => Promise.reject(new Error('bug')))).toEqual([-EIO]);
    expect(e.logged).toEqual([['error', expect.stringMatching(/^write \/a\/b: unexpected error, answering EIO: Error: bug/)]]);
  });

  it.each([
    ['EIO', EIO],
    ['ETIMEDOUT', ETIMEDOUT],
  ] as const)('a store failure (%s) is a warning with the operation and path', async (code, errno) => {
    const e = env();
    expect(await settle(e, () => Promise.reject(new FsError(code, 'write inode 7: connection lost')))).toEqual([-errno]);
    expect(e.logged).toEqual([['warn', `write /a/b: ${code}: write inode 7: connection lost`]]);
  });

  it.each(['ENOENT', 'EEXIST', 'ENOTEMPTY', 'EACCES', 'ENODATA', 'ENOSPC', 'EROFS'] as FsErrorCode[])(
    'a routine %s is not logged (only debug lines show it)',
    async (code) => {
      const quiet = env();
      await settle(quiet, () => Promise.reject(new FsError(code)));
      expect(quiet.logged).toEqual([]);
      const debug = env({ debug: true });
      await settle(debug, () => Promise.reject(new FsError(code)));
      expect(debug.logged).toEqual([['debug', expect.stringMatching(new RegExp(`^write /a/b -> ${code} \\(`))]]);
    },
  );

  it('the deadline answering ETIMEDOUT is a warn line', async () => {
    vi.useFakeTimers();
    const e = env({ deadlineMs: 1000 });
    const answers: number[] = [];
    runOp(e, 'read', '/f', () => new Promise(() => undefined), (errno) => answers.push(errno));
    vi.advanceTimersByTime(1000);
    expect(answers).toEqual([-ETIMEDOUT]);
    expect(e.logged).toEqual([['warn', 'read /f: no answer from Redis within the deadline (1000 ms), answering ETIMEDOUT']]);
  });
});
