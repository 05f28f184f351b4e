import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_USAGE, exitCodeOf, URL_ENV, UsageError } from '@redisfs/cli-common';
import { daemonChildArgs, parseMountArgs, type MountConfig } from './args.js';
import { listMountPoints } from './mountpoint.js';

let root: string;
let empty: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'redisfs-args-'));
  empty = join(root, 'empty');
  mkdirSync(empty);
  mkdirSync(join(root, 'full'));
  writeFileSync(join(root, 'full', 'x'), '');
  writeFileSync(join(root, 'file'), '');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function config(args: string[], env: NodeJS.ProcessEnv = {}): Promise<MountConfig> {
  const cmd = await parseMountArgs(args, env);
  if (cmd.kind !== 'mount') throw new Error('expected a mount command');
  return cmd.config;
}

/** The UsageError a command line gives: one line, exit code 2. */
async function usageError(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const err = await parseMountArgs(args, env).then(
    () => expect.fail('expected a usage error'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  expect(exitCodeOf(err)).toBe(EXIT_USAGE);
  const message = (err as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('parseMountArgs', () => {
  it('fills defaults', async () => {
    expect(await config(['--mount', empty])).toEqual({
      mountpoint: empty, prefix: 'skx', readOnly: false, readWrite: false, debug: false, daemon: false, allowOther: false,
      logFile: undefined, url: undefined, socket: undefined, cacheTimeoutMs: 1000, syncReplicas: 0,
      logLevel: 'info', syslog: false, metrics: undefined, mountFlags: [], source: 'skx', timeoutMs: undefined,
      sessionTimeoutMs: 60_000,
    });
  });

  it('takes --session-timeout SECONDS (the lease of the mount\'s session)', async () => {
    expect((await config(['--mount', empty, '--session-timeout', '2.5'])).sessionTimeoutMs).toBe(2500);
    await expect(config(['--mount', empty, '--session-timeout', '0'])).rejects.toThrow('--session-timeout must be a number of seconds from 1 to 86400');
    await expect(config(['--mount', empty, '--session-timeout', 'x'])).rejects.toThrow('--session-timeout must be');
  });

  it('takes --timeout SECONDS, or --hard (no timeout), not both', async () => {
    expect((await config(['--mount', empty])).timeoutMs).toBeUndefined();
    expect((await config(['--mount', empty, '--timeout', '2.5'])).timeoutMs).toBe(2500);
    expect((await config(['--mount', empty, '--hard'])).timeoutMs).toBe(Infinity);
    for (const bad of ['0', '0.05', 'abc', '-1', '86401', '1e3']) {
      expect(await usageError(['--mount', empty, '--timeout', bad])).toBe('--timeout must be a number of seconds from 0.1 to 86400');
    }
    expect(await usageError(['--mount', empty, '--hard', '--timeout', '5'])).toMatch(/^--hard and --timeout are mutually exclusive/);
    for (const extra of [['--timeout', '0.5'], ['--hard']]) {
      const c = await config(['--mount', empty, '--daemon', ...extra]);
      const child = daemonChildArgs(c);
      expect(await config(child.args, child.env)).toEqual({ ...c, daemon: false });
    }
  });

  it('takes --log-level, --syslog and --metrics HOST:PORT', async () => {
    const c = await config(['--mount', empty, '--log-level', 'warn', '--syslog', '--metrics', '127.0.0.1:9464']);
    expect(c).toMatchObject({ logLevel: 'warn', syslog: true, metrics: { host: '127.0.0.1', port: 9464 } });
    expect((await config(['--mount', empty, '--metrics', '[::1]:9464'])).metrics).toEqual({ host: '::1', port: 9464 });
    expect((await config(['--mount', empty, '--metrics', 'localhost:1'])).metrics).toEqual({ host: 'localhost', port: 1 });
    expect(await usageError(['--mount', empty, '--log-level', 'loud'])).toBe('--log-level must be one of error, warn, info, debug');
    for (const bad of ['9464', ':9464', 'h:0', 'h:65536', 'h:p', '::1:9464', 'h:1/x']) {
      expect(await usageError(['--mount', empty, '--metrics', bad])).toMatch(/^--metrics must be HOST:PORT/);
    }
  });

  it('builds a URL from --host/--port', async () => {
    expect((await config(['--mount', empty, '--host', 'db.example', '--port', '6380'])).url).toBe('redis://db.example:6380');
    expect((await config(['--mount', empty, '--port', '7000'])).url).toBe('redis://127.0.0.1:7000');
    expect((await config(['--mount', empty, '--host', '::1'])).url).toBe('redis://[::1]:6379');
  });

  it('takes a cluster\'s seed nodes in --url, and sentinels with the master\'s name', async () => {
    expect((await config(['--mount', empty, '--url', 'redis://a:7000,b:7001'])).url).toBe('redis://a:7000,b:7001');
    const viaSentinel = await config(['--mount', empty, '--sentinel', 's1:26379,s2:26380', '--master-name', 'main']);
    expect(viaSentinel.url).toBe('redis+sentinel://s1:26379,s2:26380/main');
    expect(await usageError(['--mount', empty, '--sentinel', 's1:26379'])).toMatch(/--sentinel and --master-name go together/);
    expect(await usageError(['--mount', empty, '--sentinel', 's1:99999', '--master-name', 'm'])).toMatch(/--sentinel is not a valid Redis address: a port/);
    expect(await usageError(['--mount', empty, '--sentinel', 's1:1', '--master-name', 'm', '--url', 'redis://h'])).toMatch(/mutually exclusive/);
  });

  it('takes --sync-replicas as a whole number', async () => {
    expect((await config(['--mount', empty, '--sync-replicas', '1'])).syncReplicas).toBe(1);
    for (const bad of ['-1', 'x', '1.5', '17', '']) {
      expect(await usageError(['--mount', empty, '--sync-replicas', bad]), bad).toMatch(/--sync-replicas must be a whole number from 0 to 16/);
    }
  });

  it('takes the flags of the original', async () => {
    const c = await config(['--mount', empty, '--prefix', 'home', '--read-only', '--debug', '--allow-other', '--socket', '/run/r.sock']);
    expect(c).toMatchObject({ prefix: 'home', readOnly: true, debug: true, allowOther: true, socket: '/run/r.sock' });
  });

  it('takes --read-write (for snapshots), not together with --read-only', async () => {
    expect((await config(['--mount', empty, '--read-write'])).readWrite).toBe(true);
    expect(await usageError(['--mount', empty, '--read-write', '--read-only'])).toMatch(/mutually exclusive/);
  });

  it.each([['0'], ['65536'], ['abc'], ['6379.5'], ['-1'], ['']])('rejects --port %j', async (port) => {
    expect(await usageError(['--mount', empty, `--port=${port}`])).toMatch(/--port must be an integer from 1 to 65535/);
  });

  it('rejects an unknown flag and a stray argument', async () => {
    expect(await usageError(['--mount', empty, '--bogus'])).toMatch(/Unknown argument: bogus/);
    expect(await usageError(['--mount', empty, 'extra'])).toMatch(/Unknown argument: extra/);
  });

  it('requires --mount, once', async () => {
    expect(await usageError([])).toMatch(/Missing required argument: mount/);
    expect(await usageError(['--mount', empty, '--mount', empty])).toMatch(/--mount may be given only once/);
  });

  it('rejects unusable mountpoints', async () => {
    expect(await usageError(['--mount', join(root, 'missing')])).toMatch(/does not exist/);
    expect(await usageError(['--mount', join(root, 'file')])).toMatch(/is not a directory/);
    expect(await usageError(['--mount', join(root, 'full')])).toMatch(/is not empty/);
  });

  it('fails (exit 1, not a usage error) on a mountpoint that is busy', async () => {
    const err = await parseMountArgs(['--mount', '/proc']).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(UsageError);
    expect(exitCodeOf(err)).toBe(1);
    expect((err as Error).message).toBe('mountpoint /proc is already a mount point (unmount it first)');
  });

  it('rejects a bad prefix', async () => {
    expect(await usageError(['--mount', empty, '--prefix', 'a:b'])).toMatch(/--prefix must be/);
  });

  it('rejects --url with --host or --port', async () => {
    expect(await usageError(['--mount', empty, '--url', 'redis://h:1', '--host', 'h'])).toMatch(/mutually exclusive/);
    expect(await usageError(['--mount', empty, '--socket', '/s', '--port', '1'])).toMatch(/mutually exclusive/);
  });

  it('never echoes a --url, valid or not', async () => {
    const secret = 'hunter2-secret';
    expect((await config(['--mount', empty, '--url', `rediss://alice:${secret}@db:6380/2`])).url).toBe(
      `rediss://alice:${secret}@db:6380/2`,
    );
    for (const url of [`http://alice:${secret}@db`, `redis://alice:${secret}@db/x`, `redis://alice:${secret}@`, `${secret}`]) {
      const message = await usageError(['--mount', empty, '--url', url]);
      expect(message).toMatch(/^--url\b/);
      expect(message).not.toContain(secret);
    }
    const conflict = await usageError(['--mount', empty, `--url=redis://a:${secret}@h`, '--port', '1']);
    expect(conflict).not.toContain(secret);
  });

  it(`reads ${URL_ENV} when no address flag is given`, async () => {
    const env = { [URL_ENV]: 'redis://:pw@envhost:1234' };
    expect((await config(['--mount', empty], env)).url).toBe('redis://:pw@envhost:1234');
    expect((await config(['--mount', empty, '--port', '1'], env)).url).toBe('redis://127.0.0.1:1');
    expect(await usageError(['--mount', empty], { [URL_ENV]: 'nope' })).toMatch(new RegExp(`^${URL_ENV} `));
  });

  it.each([
    ['0', 0],
    ['0.25', 250],
    ['.5', 500],
    ['2', 2000],
    ['1.0005', 1001],
    ['3600', 3_600_000],
  ])('takes --cache-timeout %j seconds as %d ms', async (seconds, ms) => {
    expect((await config(['--mount', empty, '--cache-timeout', seconds])).cacheTimeoutMs).toBe(ms);
    expect((await config(['--mount', empty, `--cache-timeout=${seconds}`])).cacheTimeoutMs).toBe(ms);
  });

  it.each([['-1'], ['abc'], [''], ['1e3'], ['3600.5'], ['86400'], ['1,5'], ['Infinity'], ['NaN'], [' 1']])(
    'rejects --cache-timeout %j',
    async (seconds) => {
      expect(await usageError(['--mount', empty, `--cache-timeout=${seconds}`])).toBe(
        '--cache-timeout must be a number of seconds from 0 to 3600',
      );
    },
  );

  it('rejects --cache-timeout without a value, or given twice', async () => {
    expect(await usageError(['--mount', empty, '--cache-timeout'])).toMatch(/^--cache-timeout must be a number of seconds/);
    expect(await usageError(['--mount', empty, '--cache-timeout', '1', '--cache-timeout', '2'])).toMatch(
      /--cache-timeout may be given only once/,
    );
  });

  it('accepts --log-file in the foreground and with --daemon', async () => {
    expect((await config(['--mount', empty, '--log-file', join(root, 'log')])).logFile).toBe(join(root, 'log'));
    expect((await config(['--mount', empty, '--daemon', '--log-file', join(root, 'log')])).logFile).toBe(join(root, 'log'));
  });

  it('refuses a --log-file that cannot be opened, naming the flag, and one given with --syslog', async () => {
    const missing = join(root, 'nonexistent', 'dir', 'x.log');
    expect(await usageError(['--mount', empty, '--log-file', missing])).toBe(`--log-file ${missing}: no such directory`);
    expect(await usageError(['--mount', empty, '--log-file', empty])).toBe(`--log-file ${empty}: is a directory`);
    expect(await usageError(['--mount', empty, '--log-file', join(root, 'file', 'x.log')])).toBe(
      `--log-file ${join(root, 'file', 'x.log')}: ${join(root, 'file')} is not a directory`,
    );
    expect(await usageError(['--mount', empty, '--log-file', join(root, 'log'), '--syslog'])).toBe(
      '--log-file and --syslog are mutually exclusive',
    );
  });

  it('gives the daemon child its --log-file', async () => {
    const c = await config(['--mount', empty, '--daemon', '--log-file', join(root, 'log')]);
    const child = daemonChildArgs(c);
    expect(child.args).toContain('--log-file');
    expect(await config(child.args, child.env)).toEqual({ ...c, daemon: false });
  });

  it('gives the daemon child the same mount, the URL in its environment', async () => {
    const c = await config(['--mount', empty, '--daemon', '--url', 'redis://:pw@h:1', '--read-only']);
    const child = daemonChildArgs(c);
    expect(child.args).toEqual(['--mount', empty, '--prefix', 'skx', '--read-only', '--cache-timeout', '1', '--log-level', 'info']);
    expect(child.args.join(' ')).not.toContain('pw');
    expect(await config(child.args, child.env)).toEqual({ ...c, daemon: false });
    const observed = await config(['--mount', empty, '--daemon', '--log-level', 'debug', '--syslog', '--metrics', '[::1]:9464']);
    const observedChild = daemonChildArgs(observed);
    expect(await config(observedChild.args, observedChild.env)).toEqual({ ...observed, daemon: false });
    for (const seconds of ['0', '0.25', '30']) {
      const strict = await config(['--mount', empty, '--daemon', '--cache-timeout', seconds]);
      const again = daemonChildArgs(strict);
      expect(await config(again.args, again.env)).toEqual({ ...strict, daemon: false });
    }
  });
});

describe('parseMountArgs: redisfs SOURCE MOUNTPOINT -o …', () => {
  it('mounts SOURCE on MOUNTPOINT in the background, naming the source', async () => {
    expect(await config(['redis://alice:pw@db:6380/2/home', empty, '-o', 'cache_timeout=0,ro,_netdev,noexec'])).toMatchObject({
      mountpoint: empty, prefix: 'home', url: 'redis://alice:pw@db:6380/2', readOnly: true, daemon: true, cacheTimeoutMs: 0,
      mountFlags: ['noexec'], source: 'redis://alice@db:6380/2/home',
    });
    expect(await config(['skx', empty, '-f'])).toMatchObject({ prefix: 'skx', url: undefined, daemon: false, source: 'skx' });
    expect(await config(['-d', 'skx', empty])).toMatchObject({ daemon: false, debug: true });
  });

  it('names in its messages what the user typed', async () => {
    expect(await usageError(['skx', empty, '-o', 'cache_timeout=abc'])).toBe('-o cache_timeout must be a number of seconds from 0 to 3600');
    expect(await usageError(['skx', empty, '-o', 'cache-timeout=-1'])).toBe('-o cache-timeout must be a number of seconds from 0 to 3600');
    expect(await usageError(['skx', empty, '-o', 'ro,read_write'])).toBe('-o ro and -o read_write are mutually exclusive');
    expect(await usageError(['skx', empty, '-o', `log_file=${join(root, 'log')},syslog`])).toBe('-o log_file and -o syslog are mutually exclusive');
    expect(await usageError(['skx', empty, '-o', 'url=ftp://h'])).toMatch(/^-o url must start with redis:\/\//);
    expect(await usageError(['skx', join(root, 'missing')])).toMatch(/^mountpoint .*missing does not exist/);
    expect(await usageError(['skx', ''])).toBe('MOUNTPOINT must not be empty');
  });

  it('never echoes a password from SOURCE', async () => {
    for (const args of [['redis://u:hunter2@db:1/x/skx', empty], ['redis://u:hunter2@db/skx', join(root, 'missing')], ['skx', empty, '-o', 'url=redis://u:hunter2@db:0']]) {
      expect(await usageError(args)).not.toContain('hunter2');
    }
  });

  it('takes --mount-flags in the --mount form, and gives them to the daemon child', async () => {
    const c = await config(['--mount', empty, '--daemon', '--mount-flags', 'noexec,suid,nosuid,noatime']);
    expect(c.mountFlags).toEqual(['noexec', 'noatime']);
    const child = daemonChildArgs(c);
    expect(await config(child.args, child.env)).toEqual({ ...c, daemon: false });
    expect(await usageError(['--mount', empty, '--mount-flags', 'noexec,relatime'])).toBe(
      '--mount-flags takes a comma-separated list of suid, nosuid, dev, nodev, exec, noexec, noatime, sync, async, dirsync',
    );
  });

  it('gives the daemon child of the SOURCE form the same mount', async () => {
    const c = await config(['redis://:pw@h:1/home', empty, '-o', 'noexec,allow_other']);
    const child = daemonChildArgs(c);
    expect(child.args.join(' ')).not.toContain('pw');
    expect(await config(child.args, child.env)).toEqual({ ...c, daemon: false });
  });
});

describe('listMountPoints', () => {
  it('decodes octal escapes', () => {
    const line = '36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw';
    expect(listMountPoints(line).has('/mnt/my disk')).toBe(true);
  });
});
