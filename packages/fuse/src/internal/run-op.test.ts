import { constants } from 'node:os';
import { FsError } from '@redisfs/store';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OpCounts, runOp, valueReply, voidReply, type OpEnv } from './run-op.js';

const { EIO, ENOENT, ETIMEDOUT } = constants.errno;

function env(overrides: Partial<OpEnv> = {}): OpEnv & { lines: string[] } {
  const lines: string[] = [];
  return { debug: false, deadlineMs: 0, log: (l) => lines.push(l), lines, ...overrides };
}

/** Runs an op and resolves with every reply it made, after the dust settles. */
async function replies<T>(e: OpEnv, fn: () => Promise<T> | T): Promise<unknown[][]> {
  const calls: unknown[][] = [];
  runOp(e, 'op', '/p', fn, (...args) => calls.push(args));
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return calls;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('runOp', () => {
  it('answers a value once', async () => {
    expect(await replies(env(), async () => 42)).toEqual([[0, 42]]);
  });

  it('answers a synchronous value once', async () => {
    expect(await replies(env(), () => 'x')).toEqual([[0, 'x']]);
  });

  it('maps an FsError to its errno without logging', async () => {
    const e = env();
    expect(await replies(e, async () => Promise.reject(new FsError('ENOENT')))).toEqual([[-ENOENT]]);
    expect(e.lines).toEqual([]);
  });

  it('answers EIO once and logs an unexpected rejection', async () => {
    const e = env();
    expect(await replies(e, async () => Promise.reject(new Error('redis exploded')))).toEqual([[-EIO]]);
    expect(e.lines).toHaveLength(1);
    expect(e.lines[0]).toMatch(/op \/p: unexpected error, answering EIO: .*redis exploded/);
  });

  it('answers EIO once when the handler throws synchronously', async () => {
    const e = env();
    const calls = await replies(e, () => {
      throw new TypeError('bug');
    });
    expect(calls).toEqual([[-EIO]]);
    expect(e.lines[0]).toMatch(/TypeError: bug/);
  });

  it('calls the handler synchronously (per-request context is valid there)', () => {
    let ran = false;
    runOp(env(), 'op', '', () => {
      ran = true;
    }, () => undefined);
    expect(ran).toBe(true);
  });

  it('logs one line per operation in debug mode', async () => {
    const e = env({ debug: true });
    await replies(e, async () => Promise.reject(new FsError('ENOENT')));
    expect(e.lines).toEqual([expect.stringMatching(/^op \/p -> ENOENT \(\d+\.\d ms\)$/)]);
  });

  it('answers EIO when the reply throws on success, and only once more', async () => {
    const e = env();
    const calls: number[] = [];
    runOp(e, 'op', '', async () => 1, (errno) => {
      calls.push(errno);
      if (errno === 0) throw new Error('cannot encode');
    });
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([0, -EIO]);
    expect(e.lines[0]).toMatch(/answering FUSE failed/);
  });

  it('answers ETIMEDOUT at the call\'s deadline and drops the late result', async () => {
    vi.useFakeTimers();
    const e = env({ deadlineMs: 1000, debug: true });
    const calls: unknown[][] = [];
    let finish!: (v: number) => void;
    runOp(e, 'op', '/slow', () => new Promise<number>((r) => (finish = r)), (...a) => calls.push(a));
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual([[-ETIMEDOUT]]);
    finish(7);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toEqual([[-ETIMEDOUT]]);
    expect(e.lines.some((l) => /no answer from Redis within the deadline \(1000 ms\)/.test(l))).toBe(true);
    expect(e.lines.some((l) => /late ok .* dropped/.test(l))).toBe(true);
  });

  it('clears the deadline once answered', async () => {
    vi.useFakeTimers();
    const calls: unknown[][] = [];
    runOp(env({ deadlineMs: 1000 }), 'op', '', async () => 1, (...a) => calls.push(a));
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls).toEqual([[0, 1]]);
  });
});

describe('reply adapters', () => {
  it('voidReply passes only the errno', () => {
    const cb = vi.fn();
    voidReply(cb)(0, 'ignored');
    voidReply(cb)(-ENOENT);
    expect(cb.mock.calls).toEqual([[0], [-ENOENT]]);
  });

  it('valueReply passes the value on success only', () => {
    const cb = vi.fn();
    valueReply(cb)(0, 'v');
    valueReply(cb)(-ENOENT, 'x');
    expect(cb.mock.calls).toEqual([[0, 'v'], [-ENOENT]]);
  });
});

describe('runOp details', () => {
  it('still answers when building the log detail throws', async () => {
    const e = env({ debug: true });
    const calls: unknown[][] = [];
    runOp(e, 'op', () => {
      throw new Error('bad detail');
    }, async () => 1, (...a) => calls.push(a));
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([[0, 1]]);
    expect(e.lines[0]).toMatch(/^op -> ok/);
  });

  it('builds a lazy detail only when logging', async () => {
    let built = 0;
    runOp(env(), 'op', () => `${++built}`, async () => 1, () => undefined);
    await new Promise((r) => setImmediate(r));
    expect(built).toBe(0);
  });
});

describe('runOp counts', () => {
  it('counts every call by name, whatever its outcome', async () => {
    const counts = new OpCounts();
    const e = env({ counts });
    await replies(e, async () => 1);
    await replies(e, async () => {
      throw new FsError('ENOENT', 'x');
    });
    runOp(e, 'getattr', '/', () => 1, () => undefined);
    expect(counts.snapshot()).toEqual({ op: 2, getattr: 1 });
  });

  it('counts errors by operation and errno, and the bytes of reads and writes', async () => {
    const counts = new OpCounts();
    const e = env({ counts });
    const run = (name: string, fn: () => Promise<unknown>) =>
      new Promise<void>((resolve) => runOp(e, name, '', fn, () => resolve()));
    await run('lookup', async () => Promise.reject(new FsError('ENOENT', 'x')));
    await run('lookup', async () => Promise.reject(new FsError('ENOENT', 'y')));
    await run('mkdir', async () => Promise.reject(new FsError('EEXIST', 'z')));
    await run('read', async () => Buffer.alloc(300));
    await run('write', async () => 1000);
    await run('write', async () => Promise.reject(new FsError('ENOSPC', 'full')));
    expect(counts.errorSnapshot()).toEqual({ lookup: { ENOENT: 2 }, mkdir: { EEXIST: 1 }, write: { ENOSPC: 1 } });
    expect([counts.bytesRead, counts.bytesWritten]).toEqual([300, 1000]);
  });

  it('tells the observer each answer: name, seconds, errno name (the deadline\'s ETIMEDOUT too)', async () => {
    vi.useFakeTimers();
    const seen: [string, number, string | undefined][] = [];
    const e = env({ deadlineMs: 1000, onOperation: (op, seconds, errno) => seen.push([op, seconds, errno]) });
    const answered: unknown[][] = [];
    runOp(e, 'read', '', () => 'now', (...a) => answered.push(a));
    runOp(e, 'lookup', '', async () => Promise.reject(new FsError('ENOENT')), (...a) => answered.push(a));
    runOp(e, 'fsync', '', () => new Promise(() => undefined), (...a) => answered.push(a));
    await vi.advanceTimersByTimeAsync(1000);
    expect(seen.map(([op, , errno]) => [op, errno])).toEqual([['read', undefined], ['lookup', 'ENOENT'], ['fsync', 'ETIMEDOUT']]);
    for (const [, seconds] of seen) expect(seconds).toBeGreaterThanOrEqual(0);
    expect(answered).toHaveLength(3);
  });

  it('answers even when the observer throws', async () => {
    const e = env({
      onOperation: () => {
        throw new Error('metrics broke');
      },
    });
    expect(await replies(e, async () => 7)).toEqual([[0, 7]]);
  });
});
