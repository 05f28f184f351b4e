import { describe, expect, it } from 'vitest';
import { URL_ENV, UsageError } from '@redisfs/cli-common';
import type { FsckReport } from '@redisfs/store';
import { parseFsckArgs, type FsckConfig } from './fsck-args.js';
import { FSCK_EXIT_CLEAN, FSCK_EXIT_PROBLEMS_LEFT, FSCK_EXIT_REPAIRED, fsckExitCode, formatReport } from './fsck.js';

async function config(args: string[], env: NodeJS.ProcessEnv = {}): Promise<FsckConfig> {
  const cmd = await parseFsckArgs(args, env);
  if (cmd.kind !== 'fsck') throw new Error('expected an fsck command');
  return cmd.config;
}

/** The UsageError a command line gives: one line. */
async function usageError(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const err = await parseFsckArgs(args, env).then(
    () => expect.fail('expected a usage error'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  const message = (err as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('parseFsckArgs', () => {
  it('checks read-only by default', async () => {
    expect(await config(['--prefix', 'home'])).toEqual({ prefix: 'home', repair: false, json: false, url: undefined, socket: undefined });
  });

  it('takes --repair, --json and every way to name the server', async () => {
    expect(await config(['--prefix', 'p', '--repair', '--json', '--socket', '/run/r.sock'])).toMatchObject({
      repair: true,
      json: true,
      socket: '/run/r.sock',
    });
    expect((await config(['--prefix', 'p', '--host', 'db', '--port', '6380'])).url).toBe('redis://db:6380');
    expect((await config(['--prefix', 'p', '--url', 'redis://u:pw@h:1/2'])).url).toBe('redis://u:pw@h:1/2');
    expect((await config(['--prefix', 'p'], { [URL_ENV]: 'rediss://h:7' })).url).toBe('rediss://h:7');
  });

  it('requires a valid --prefix', async () => {
    expect(await usageError([])).toMatch(/prefix/);
    expect(await usageError(['--prefix', 'a:b'])).toMatch(/--prefix must be/);
    expect(await usageError(['--prefix', 'a', '--prefix', 'b'])).toMatch(/--prefix may be given only once/);
  });

  it('rejects unknown flags, stray words, conflicting and bad addresses, never echoing a URL', async () => {
    expect(await usageError(['--prefix', 'p', '--mount', '/x'])).toMatch(/mount/);
    expect(await usageError(['--prefix', 'p', 'extra'])).toMatch(/extra/);
    expect(await usageError(['--prefix', 'p', '--url', 'redis://h', '--port', '1'])).toMatch(/mutually exclusive|conflict/i);
    expect(await usageError(['--prefix', 'p', '--port', '70000'])).toMatch(/--port must be/);
    const bad = await usageError(['--prefix', 'p', '--url', 'http://user:s3cret@h']);
    expect(bad).toMatch(/--url must start with redis:\/\//);
    expect(bad).not.toContain('s3cret');
    expect(await usageError(['--prefix', 'p'], { [URL_ENV]: 'nope' })).toMatch(URL_ENV);
  });

  it('prints help without a command', async () => {
    expect(await parseFsckArgs(['--help'])).toEqual({ kind: 'done' });
  });
});

describe('fsck report', () => {
  const base: FsckReport = {
    prefix: 'p',
    fatal: false,
    problems: [],
    repaired: [],
    remaining: [],
    counts: { inodes: 3, directories: 1, entries: 2, blocks: 4, familyBlocks: 4 },
    pending: { gcInodes: 0, freeBlocks: 0, deadMembers: 0 },
    sessions: [],
    keptOpen: [],
    passes: 1,
  };
  const problem = { kind: 'nlink-wrong' as const, message: 'inode 2 (file) has nlink 3, expected 1: 1 entry names it', ino: 2, repairable: true };

  it('maps a report to e2fsck exit codes', () => {
    expect(fsckExitCode(base)).toBe(FSCK_EXIT_CLEAN);
    expect(fsckExitCode({ ...base, problems: [problem], remaining: [problem] })).toBe(FSCK_EXIT_PROBLEMS_LEFT);
    const fixed = { kind: problem.kind, message: 'set nlink of inode 2 to 1 (was 3)' };
    expect(fsckExitCode({ ...base, problems: [problem], repaired: [fixed], remaining: [], passes: 2 })).toBe(FSCK_EXIT_REPAIRED);
    expect(fsckExitCode({ ...base, problems: [problem, problem], repaired: [fixed], remaining: [problem], passes: 2 })).toBe(FSCK_EXIT_PROBLEMS_LEFT);
  });

  it('prints one line per problem and a summary', () => {
    expect(formatReport(base, { where: 'redis://h:1', repair: false })).toEqual([
      'p on redis://h:1: 3 inodes (1 directory), 2 entries, 4 blocks: clean',
    ]);
    const lines = formatReport({ ...base, problems: [problem], remaining: [problem] }, { where: 'unix:/s', repair: false });
    expect(lines).toEqual([
      `nlink-wrong: ${problem.message}`,
      'p on unix:/s: 3 inodes (1 directory), 2 entries, 4 blocks: 1 problem found; run with --repair on a quiet filesystem to fix',
    ]);
  });

  it('prints the sessions, alive or expired, and the files kept open after removal', () => {
    const started = 1_700_000_000_000;
    const live = {
      id: '5dcddfe9812b441a', host: 'web1', pid: 4242, mountpoint: '/mnt/p', version: '0.1.0',
      startedMs: started, ageMs: 3_723_000, expiresMs: started + 3_723_000 + 40_000, alive: true, openFiles: 2, locks: 1,
    };
    const dead = { ...live, id: 'dead00000000beef', host: 'web2', expiresMs: started + 3_713_000, alive: false, openFiles: 1, locks: 0 };
    const lines = formatReport(
      { ...base, sessions: [live, dead, { ...dead, id: 'dead00000000feed', expiresMs: 0 }], keptOpen: [{ ino: 42, size: 10, sessions: [live.id] }] },
      { where: 'redis://h:1', repair: false },
    );
    expect(lines).toEqual([
      'session 5dcddfe9812b441a: web1 pid 4242 at /mnt/p, redisfs 0.1.0, up 1h 2m, alive (lease 40 s left), 2 open files, locks on 1 inode',
      'session dead00000000beef: web2 pid 4242 at /mnt/p, redisfs 0.1.0, up 1h 2m, expired 10 s ago, 1 open file, locks on 0 inodes',
      'session dead00000000feed: web2 pid 4242 at /mnt/p, redisfs 0.1.0, up 1h 2m, dead, not fully ended, 1 open file, locks on 0 inodes',
      'kept open after removal: inode 42 (10 bytes), held by session 5dcddfe9812b441a',
      'p on redis://h:1: 3 inodes (1 directory), 2 entries, 4 blocks: clean',
    ]);
  });

  it('prints the collector\'s pending work, and the blocks a family shares', () => {
    const lines = formatReport(
      { ...base, counts: { ...base.counts, familyBlocks: 9 }, pending: { gcInodes: 1, freeBlocks: 20, deadMembers: 0 } },
      { where: 'redis://h:1', repair: false },
    );
    expect(lines).toEqual([
      'pending: 1 file with blocks to release, 20 unreferenced blocks to delete (collection in progress: a read-write mount of the family does it)',
      'p on redis://h:1: 3 inodes (1 directory), 2 entries, 4 blocks (9 stored in its family): clean',
    ]);
  });
});
