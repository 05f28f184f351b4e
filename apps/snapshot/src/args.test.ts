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
  it('takes a snapshot by default', async () => {
    expect(await parseSnapshotArgs(['--from', 'a', '--to', 'a@b'], {})).toEqual({
      kind: 'snapshot', target: noTarget, from: 'a', to: 'a@b', force: false,
    });
    expect(await parseSnapshotArgs(['--from', 'a', '--to', 'a@b', '--force', '--port', '7000'], {})).toEqual({
      kind: 'snapshot', target: { url: 'redis://127.0.0.1:7000', socket: undefined }, from: 'a', to: 'a@b', force: true,
    });
  });

  it('has list, delete and restore subcommands', async () => {
    expect(await parseSnapshotArgs(['list', '--socket', '/r.sock'], {})).toEqual({
      kind: 'list', target: { url: undefined, socket: '/r.sock' }, of: undefined,
    });
    expect(await parseSnapshotArgs(['list', '--of', 'a'], {})).toMatchObject({ kind: 'list', of: 'a' });
    expect(await parseSnapshotArgs(['delete', '--prefix', 'b'], { [URL_ENV]: 'redis://h:1' })).toEqual({
      kind: 'delete', target: { url: 'redis://h:1', socket: undefined }, prefix: 'b', force: false,
    });
    expect(await parseSnapshotArgs(['delete', '--prefix', 'b', '--force'], {})).toMatchObject({ force: true });
    expect(await parseSnapshotArgs(['restore', '--from', 'a@b', '--to', 'a'], {})).toEqual({
      kind: 'restore', target: noTarget, from: 'a@b', to: 'a', force: false,
    });
    expect(await parseSnapshotArgs(['restore', '--from', 'a@b', '--to', 'a@clone'], {})).toMatchObject({ to: 'a@clone' });
  });

  it('rejects bad command lines with one line', async () => {
    expect(await usageError(['--from', 'a'])).toMatch(/Missing required argument: to/);
    // An unknown subcommand is named as such, not taken for a snapshot missing --from and --to.
    expect(await usageError(['bogus'])).toBe(
      "unknown command 'bogus': the commands are list, delete, restore, and --from A --to A@label takes a snapshot (see redisfs-snapshot --help)",
    );
    expect(await usageError(['lsit', '--of', 'a'])).toMatch(/^unknown command 'lsit'/);
    expect(await usageError(['--url', 'redis://h:1', 'bogus'])).toMatch(/^unknown command 'bogus'/);
    expect(await usageError(['--from', 'a', 'bogus', '--to', 'a@b'])).toMatch(/^unknown command 'bogus'/);
    expect(await usageError(['--from', 'a', '--to', 'a@b', '--bogus'])).toMatch(/Unknown argument: bogus/);
    expect(await usageError(['--from', 'a', '--to', 'b'])).toMatch(/--to must be in the family of --from .*: name it a@<label>/);
    expect(await usageError(['restore', '--from', 'a@b', '--to', 'c'])).toMatch(/family/);
    expect(await usageError(['list', '--from', 'a'])).toMatch(/Unknown argument/);
    expect(await usageError(['restore', '--from', 'a'])).toMatch(/Missing required argument: to/);
    expect(await usageError(['list', '--of', 'a:b'])).toMatch(/--of must be/);
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
  it('aligns a table: a snapshot shows its point in time and its source, a live filesystem neither', () => {
    expect(formatList([
      { prefix: 'skx', version: 1, createdNs: 1_700_000_000_123_000_000n, inodes: 12, bytes: 4096, snapshotInProgress: true },
      {
        prefix: 'skx@monday', version: 1, createdNs: 1_700_000_000_123_000_000n, inodes: 10, bytes: 100,
        snapshot: { of: 'skx', atNs: 1_700_100_000_000_000_000n },
      },
      { prefix: 'broken', version: undefined, createdNs: undefined, inodes: 0, bytes: 0 },
    ])).toEqual([
      'NAME        SNAPSHOT TIME             SIZE  INODES  SNAPSHOT OF',
      'skx         -                         4096  12      - (now being snapshotted)',
      'skx@monday  2023-11-16T02:00:00.000Z  100   10      skx',
      'broken      (corrupt superblock)      0     0       -',
    ]);
  });
});
