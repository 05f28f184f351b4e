import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { EXIT_FAILURE, EXIT_USAGE, exitCodeOf, UsageError } from './errors.js';
import { prefixSchema } from './flags.js';
import { redisTargetSchema, redisUrlSchema, resolveRedisTarget, URL_ENV } from './redis-target.js';

/** The first message a schema gives for a value. */
function problem(schema: z.ZodType, value: unknown): string | undefined {
  return schema.safeParse(value).error?.issues[0]?.message;
}

describe('redisTargetSchema', () => {
  it('takes the address flags, each optional', () => {
    expect(redisTargetSchema.parse({})).toEqual({});
    expect(redisTargetSchema.parse({ host: 'h', port: '6380', url: 'rediss://h:1/2', socket: '/s' })).toEqual({
      host: 'h', port: 6380, url: 'rediss://h:1/2', socket: '/s',
    });
  });

  it.each([['0'], ['65536'], ['abc'], ['6379.5'], ['-1'], ['']])('rejects --port %j', (port) => {
    expect(problem(redisTargetSchema, { port })).toBe('--port must be an integer from 1 to 65535');
  });

  it('names a flag given twice or left empty', () => {
    expect(problem(redisTargetSchema, { host: ['a', 'b'] })).toBe('--host may be given only once');
    expect(problem(redisTargetSchema, { socket: '' })).toBe('--socket must not be empty');
    expect(problem(prefixSchema('--to'), undefined)).toBe('--to is required');
    expect(problem(prefixSchema('--to'), '{b}')).toBe("--to must be 1-64 letters, digits, '_', '-' or '.', optionally followed by @ and a label of the same (a snapshot: skx@mon)");
  });
});

describe('redisUrlSchema', () => {
  it('never echoes a URL, valid or not', () => {
    const secret = 'hunter2-secret';
    expect(redisUrlSchema('--url').parse(`rediss://alice:${secret}@db:6380/2`)).toBe(`rediss://alice:${secret}@db:6380/2`);
    for (const url of [`http://alice:${secret}@db`, `redis://alice:${secret}@db/x`, `redis://alice:${secret}@`, `${secret}`]) {
      const message = problem(redisUrlSchema('--url'), url);
      expect(message).toMatch(/^--url\b/);
      expect(message).not.toContain(secret);
    }
  });
});

describe('resolveRedisTarget', () => {
  it('builds a URL from --host/--port', () => {
    expect(resolveRedisTarget({ host: 'db.example', port: 6380 }, {}).url).toBe('redis://db.example:6380');
    expect(resolveRedisTarget({ port: 7000 }, {}).url).toBe('redis://127.0.0.1:7000');
    expect(resolveRedisTarget({ host: '::1' }, {}).url).toBe('redis://[::1]:6379');
    expect(resolveRedisTarget({ socket: '/r.sock' }, {})).toEqual({ url: undefined, socket: '/r.sock' });
  });

  it(`reads ${URL_ENV} when no address flag is given`, () => {
    const env = { [URL_ENV]: 'redis://:pw@envhost:1234' };
    expect(resolveRedisTarget({}, env).url).toBe('redis://:pw@envhost:1234');
    expect(resolveRedisTarget({ port: 1 }, env).url).toBe('redis://127.0.0.1:1');
    const bad = () => resolveRedisTarget({}, { [URL_ENV]: 'nope' });
    expect(bad).toThrow(UsageError);
    expect(bad).toThrow(new RegExp(`^${URL_ENV} `));
  });
});

describe('exitCodeOf', () => {
  it('gives 2 for a usage error and 1 for anything else', () => {
    expect(exitCodeOf(new UsageError('bad flag'))).toBe(EXIT_USAGE);
    expect(exitCodeOf(new Error('no server'))).toBe(EXIT_FAILURE);
    expect(exitCodeOf('thrown string')).toBe(EXIT_FAILURE);
  });
});
