import { describe, expect, it } from 'vitest';
import { URL_ENV, UsageError } from '@redisfs/cli-common';
import { parseUpgradeArgs, type UpgradeConfig } from './upgrade-args.js';
import type { UpgradeResult } from '@redisfs/store';
import { summaryLine } from './upgrade.js';

async function config(args: string[], env: NodeJS.ProcessEnv = {}): Promise<UpgradeConfig> {
  const cmd = await parseUpgradeArgs(args, env);
  if (cmd.kind !== 'upgrade') throw new Error('expected an upgrade command');
  return cmd.config;
}

/** The UsageError a command line gives: one line. */
async function usageError(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const err = await parseUpgradeArgs(args, env).then(
    () => expect.fail('expected a usage error'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  const message = (err as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('parseUpgradeArgs', () => {
  it('takes a prefix, and the default server when told none', async () => {
    expect(await config(['--prefix', 'skx'])).toEqual({ prefix: 'skx', url: undefined, socket: undefined });
    expect((await config(['--prefix', 'skx.Mon'])).prefix).toBe('skx.Mon');
    expect((await config(['--prefix', 'skx@mon'])).prefix).toBe('skx@mon');
  });

  it('takes every way to name the server', async () => {
    expect((await config(['--prefix', 'p', '--socket', '/run/r.sock'])).socket).toBe('/run/r.sock');
    expect((await config(['--prefix', 'p', '--host', 'db', '--port', '6380'])).url).toBe('redis://db:6380');
    expect((await config(['--prefix', 'p', '--url', 'redis://u:pw@h:1/2'])).url).toBe('redis://u:pw@h:1/2');
    expect((await config(['--prefix', 'p'], { [URL_ENV]: 'rediss://h:7' })).url).toBe('rediss://h:7');
  });

  it('requires one valid --prefix', async () => {
    expect(await usageError([])).toMatch(/prefix/);
    expect(await usageError(['--prefix', 'a:b'])).toMatch(/--prefix must be/);
    expect(await usageError(['--prefix', 'a', '--prefix', 'b'])).toMatch(/--prefix may be given only once/);
  });

  it('rejects unknown flags, stray words, conflicting and bad addresses, never echoing a URL', async () => {
    expect(await usageError(['--prefix', 'p', '--repair'])).toMatch(/repair/);
    expect(await usageError(['--prefix', 'p', 'extra'])).toMatch(/extra/);
    expect(await usageError(['--prefix', 'p', '--url', 'redis://h', '--port', '1'])).toMatch(/mutually exclusive|conflict/i);
    expect(await usageError(['--prefix', 'p', '--port', '70000'])).toMatch(/--port must be/);
    const bad = await usageError(['--prefix', 'p', '--url', 'http://user:s3cret@h']);
    expect(bad).toMatch(/--url must start with redis:\/\//);
    expect(bad).not.toContain('s3cret');
    expect(await usageError(['--prefix', 'p'], { [URL_ENV]: 'nope' })).toMatch(URL_ENV);
  });

  it('prints help without a command', async () => {
    expect(await parseUpgradeArgs(['--help'])).toEqual({ kind: 'done' });
  });
});

describe('upgrade output', () => {
  const result: UpgradeResult = {
    prefix: 'skx', alreadyCurrent: false, passes: ['inodes'], scanned: 700, blocksMapped: 0, blocksDropped: 0, keysIgnored: 0,
    gcEntriesDropped: 0, inodesConverted: 325, inodesKept: 0, keptInodes: [],
  };
  const fromLayout1: UpgradeResult = { ...result, passes: ['blocks', 'inodes'], blocksMapped: 640, blocksDropped: 4, gcEntriesDropped: 2 };

  it('sums up in one line', () => {
    expect(summaryLine({ ...result, began: 'new' })).toBe("upgraded 'skx' to layout 3: 325 inodes converted");
    expect(summaryLine({ ...fromLayout1, began: 'new' })).toBe("upgraded 'skx' to layout 3: 325 inodes converted, 640 blocks mapped, 4 dropped");
    expect(summaryLine({ ...fromLayout1, inodesConverted: 1, blocksMapped: 1, began: 'resumed' })).toBe(
      "upgraded 'skx' to layout 3: 1 inode converted, 1 block mapped, 4 dropped (by this run, which resumed one cut short)",
    );
    expect(summaryLine({ ...result, alreadyCurrent: true })).toBe("'skx' is already layout 3");
  });

  it('names the inodes it left as they were, and fsck', () => {
    expect(summaryLine({ ...result, began: 'restarted', inodesKept: 1, keptInodes: [12] })).toBe(
      "upgraded 'skx' to layout 3: 325 inodes converted (by this run, which started over one cut short); " +
        '1 corrupt inode left as layout 2 (12): run redisfs fsck --prefix skx',
    );
    expect(summaryLine({ ...result, inodesKept: 7, keptInodes: [2, 3, 4, 5, 6, 7, 8] })).toMatch(
      /; 7 corrupt inodes left as layout 2 \(2, 3, 4, 5, 6, …\): run redisfs fsck --prefix skx$/,
    );
  });
});
