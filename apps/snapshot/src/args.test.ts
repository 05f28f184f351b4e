import { describe, expect, it } from 'vitest';
import { EXIT_USAGE, exitCodeOf, URL_ENV, UsageError } from '@redisfs/cli-common';
import { parseSnapshotArgs } from './args.js';
import { formatList } from './format.js';

async function usageError(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const err = await parseSnapshotArgs(args, env).then(
    () => expect.fail('expected a usage error'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  expect(exitCodeOf(err)).toBe(EXIT_USAGE);
  expect((err as Error).message).not.toContain('\n');
  return (err as Error).message;
}

const noTarget = { url: undefined, socket: undefined };

describe('parseSnapshotArgs', () => {
  it('copies by default', async () => {
    expect(await parseSnapshotArgs(['--from', 'a', '--to', 'b'], {})).toEqual({
      kind: 'copy', target: noTarget, from: 'a', to: 'b', force: false,
    });
    expect(await parseSnapshotArgs(['--from', 'a', '--to', 'b', '--force', '--port', '7000'], {})).toEqual({
      kind: 'copy', target: { url: 'redis://127.0.0.1:7000', socket: undefined }, from: 'a', to: 'b', force: true,
    });
  });

  it('has list and delete subcommands', async () => {
    expect(await parseSnapshotArgs(['list', '--socket', '/r.sock'], {})).toEqual({
      kind: 'list', target: { url: undefined, socket: '/r.sock' },
    });
    expect(await parseSnapshotArgs(['delete', '--prefix', 'b'], { [URL_ENV]: 'redis://h:1' })).toEqual({
      kind: 'delete', target: { url: 'redis://h:1', socket: undefined }, prefix: 'b',
    });
  });

  it('rejects bad command lines with one line', async () => {
    expect(await usageError(['--from', 'a'])).toMatch(/Missing required argument: to/);
    expect(await usageError(['--from', 'a', '--to', 'b', '--bogus'])).toMatch(/Unknown argument: bogus/);
    expect(await usageError(['list', '--from', 'a'])).toMatch(/Unknown argument/);
    expect(await usageError(['delete'])).toMatch(/Missing required argument: prefix/);
    expect(await usageError(['--from', 'a', '--to', 'a'])).toMatch(/must differ/);
    expect(await usageError(['--from', 'a', '--to', '{b}'])).toMatch(/--to must be/);
    expect(await usageError(['list', '--port', '99999'])).toMatch(/--port must be an integer from 1 to 65535/);
    expect(await usageError(['list', '--url', 'redis://h', '--host', 'h'])).toMatch(/mutually exclusive/);
  });

  it('never echoes a --url', async () => {
    const message = await usageError(['list', '--url', 'http://u:topsecret@h']);
    expect(message).toMatch(/^--url\b/);
    expect(message).not.toContain('topsecret');
  });
});

describe('formatList', () => {
  it('aligns a table', () => {
    expect(formatList([
      { prefix: 'skx', version: 1, createdNs: 1_700_000_000_123_000_000n, inodes: 12, bytes: 4096 },
      { prefix: 'broken', version: undefined, createdNs: undefined, inodes: 0, bytes: 0 },
    ])).toEqual([
      'PREFIX  CREATED                   INODES  BYTES',
      'skx     2023-11-14T22:13:20.123Z  12      4096',
      'broken  (corrupt superblock)      0       0',
    ]);
  });
});
