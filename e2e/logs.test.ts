/**
 * The mount's log as a user meets it: `redisfs --daemon` logs to a file of its own under
 * $XDG_STATE_HOME/redisfs and says where; `kill -USR2` adds a stats line there; --log-level
 * drops what is less severe; --log-file works in the foreground too, and one that cannot be
 * opened is a usage error naming the flag; --syslog reaches a syslog server through logger(1);
 * a storage failure is logged with its operation and path; a daemon holds no password in its
 * environment or command line.
 */
import { createSocket, type Socket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { keysFor } from '@redisfs/schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isAlive,
  MOUNT_CLI,
  describeWithRedis,
  disposeWhenTestEnds,
  forceUnmount,
  isMounted,
  mountRedisfs,
  redisCommand,
  requireBuilt,
  run,
  startRedis,
  tempDir,
  uniquePrefix,
  waitFor,
  type RunResult,
} from './helpers/index.js';

/** A file log line: ISO time, level, message. */
const LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (error|warn|info|debug) (.*)$/;

function entries(text: string): { level: string; message: string }[] {
  return text
    .split('\n')
    .map((l) => LINE.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ level: m[2]!, message: m[3]! }));
}

/** Runs `redisfs ...args` to completion. */
function redisfs(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return run(process.execPath, [requireBuilt(MOUNT_CLI), ...args], { timeoutMs: 60_000, env });
}


/**
 * A `redisfs --daemon` mount; stopped (SIGTERM, then SIGKILL) and unmounted when the test ends,
 * whatever happened. `pid` is what its one line printed.
 */
interface Daemon extends AsyncDisposable {
  result: RunResult;
  pid: number;
  /** SIGTERM, and resolves once the process is gone. */
  stop(): Promise<void>;
}

async function startDaemon(mountpoint: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Daemon> {
  let pid: number | undefined;
  const stop = async (): Promise<void> => {
    if (pid !== undefined && isAlive(pid)) {
      process.kill(pid, 'SIGTERM');
      await waitFor(() => !isAlive(pid!), { timeoutMs: 15_000, what: `daemon ${pid} to exit` }).catch(() => process.kill(pid!, 'SIGKILL'));
    }
    await forceUnmount(mountpoint);
  };
  const cleanup: AsyncDisposable = { [Symbol.asyncDispose]: stop };
  disposeWhenTestEnds(cleanup);
  const result = await redisfs([...args, '--mount', mountpoint, '--daemon'], env);
  const printed = /\(pid (\d+)\)/.exec(result.stdout)?.[1];
  pid = printed ? Number(printed) : undefined;
  expect({ code: result.code, pid }, result.stdout + result.stderr).toEqual({ code: 0, pid: expect.any(Number) });
  return { result, pid: pid!, stop, [Symbol.asyncDispose]: stop };
}

/** The --daemon default log file of a mountpoint: components joined with `-`, a `-` inside one written %2D. */
function expectedLogName(mountpoint: string): string {
  return `${mountpoint.split('/').filter(Boolean).map((p) => p.replaceAll('-', '%2D')).join('-')}.log`;
}

await describeWithRedis('mount logs', { fuse: true }, (redis) => {
  it('--daemon logs to its own file in $XDG_STATE_HOME/redisfs and says so; USR2 adds the stats line there', async () => {
    await using dir = await tempDir('logs');
    const mountpoint = dir.join('mnt');
    await mkdir(mountpoint);
    const state = dir.join('state');
    const prefix = uniquePrefix('daemonlog');
    const logFile = `${state}/redisfs/${expectedLogName(mountpoint)}`;
    await using daemon = await startDaemon(mountpoint, ['--url', redis.url, '--prefix', prefix], { ...process.env, XDG_STATE_HOME: state });

    expect(daemon.result.stdout.trim()).toBe(`mounted ${prefix} at ${mountpoint} (pid ${daemon.pid}), log: ${logFile}`);
    expect((await stat(`${state}/redisfs`)).mode & 0o777).toBe(0o700);
    expect((await stat(logFile)).mode & 0o777).toBe(0o600);
    expect(entries(await readFile(logFile, 'utf8'))).toEqual([{ level: 'info', message: `mounted ${prefix} at ${mountpoint} (pid ${daemon.pid})` }]);

    await writeFile(`${mountpoint}/hello`, 'hi');
    process.kill(daemon.pid, 'SIGUSR2');
    const stats = await waitFor(
      async () => entries(await readFile(logFile, 'utf8')).find((e) => e.level === 'info' && e.message.startsWith('stats {')),
      { timeoutMs: 10_000, what: `a stats line in ${logFile}` },
    );
    expect(JSON.parse(stats.message.slice('stats '.length))).toMatchObject({ fuseCalls: { create: 1 } });

    await daemon.stop();
    expect(await isMounted(mountpoint)).toBe(false);
    const text = await readFile(logFile, 'utf8');
    expect(entries(text).at(-1)).toEqual({ level: 'info', message: `unmounted ${prefix} from ${mountpoint}` });
    // Every line is a log entry: nothing else was printed into the file.
    expect(text.trim().split('\n').filter((l) => !LINE.test(l))).toEqual([]);
  });

  it('--log-level error keeps info lines out; --log-file works in the foreground', async () => {
    await using dir = await tempDir('logs');
    const quietLog = dir.join('quiet.log');
    const chattyLog = dir.join('chatty.log');
    const quiet = await mountRedisfs({ redis, prefix: uniquePrefix('quiet'), extraArgs: ['--log-file', quietLog, '--log-level', 'error'] });
    const chatty = await mountRedisfs({ redis, prefix: uniquePrefix('chatty'), extraArgs: ['--log-file', chattyLog] });
    await writeFile(quiet.path('f'), 'x');
    quiet.process.kill('SIGUSR2');
    chatty.process.kill('SIGUSR2');
    await waitFor(async () => (await readFile(chattyLog, 'utf8')).includes(' info stats {'), { timeoutMs: 10_000, what: 'the stats line' });
    // SIGUSR2 before SIGTERM: the quiet mount handled it before it exited.
    expect((await quiet.unmount()).exit).toEqual({ code: 0, signal: null });
    expect((await chatty.unmount()).exit).toEqual({ code: 0, signal: null });
    expect(await readFile(quietLog, 'utf8')).toBe('');
    expect(entries(await readFile(chattyLog, 'utf8')).map((e) => e.message.split(' ')[0])).toEqual(['mounted', 'stats', 'unmounted']);
    // The log went to the file: stderr has none of it.
    expect(quiet.stderr() + chatty.stderr()).toBe('');
  });

  it('a --log-file that cannot be opened is exit code 2 and one line naming the flag, before mounting', async () => {
    await using dir = await tempDir('logs');
    const mountpoint = dir.join('mnt');
    await mkdir(mountpoint);
    const bad = dir.join('nonexistent/dir/x.log');
    for (const daemon of [false, true]) {
      const args = ['--url', redis.url, '--prefix', uniquePrefix('badlog'), '--mount', mountpoint, '--log-file', bad];
      const result = await redisfs(daemon ? [...args, '--daemon'] : args);
      expect({ code: result.code, stderr: result.stderr, stdout: result.stdout }).toEqual({
        code: 2,
        stderr: `redisfs: --log-file ${bad}: no such directory\n`,
        stdout: '',
      });
      expect(await isMounted(mountpoint)).toBe(false);
    }
  });

  it('a corrupt block: the read fails with EIO, and the log names the operation and the path', async () => {
    await using dir = await tempDir('logs');
    const logFile = dir.join('mount.log');
    const prefix = uniquePrefix('corrupt');
    await using mnt = await mountRedisfs({ redis, prefix, extraArgs: ['--log-file', logFile, '--log-level', 'warn', '--cache-timeout', '0'] });
    await mkdir(mnt.path('d'));
    await writeFile(mnt.path('d', 'f'), 'the data');
    const { ino } = await stat(mnt.path('d', 'f'));
    const keys = keysFor(prefix);
    const ids = await redisCommand(redis, ['ZRANGE', keys.map(ino), '0', '-1']);
    expect(ids).toHaveLength(1);
    // An unknown codec byte: the block can no longer be decoded.
    await redisCommand(redis, ['SET', keys.block(String((ids as string[])[0])), 'Zgarbage']);

    await expect(readFile(mnt.path('d', 'f'))).rejects.toMatchObject({ code: 'EIO' });
    const logged = await waitFor(
      async () => {
        const all = entries(await readFile(logFile, 'utf8'));
        return all.some((e) => e.message.startsWith('read /d/f ')) ? all : undefined;
      },
      { timeoutMs: 10_000, what: `the failed read in ${logFile}` },
    );
    expect(logged).toContainEqual({ level: 'warn', message: expect.stringMatching(new RegExp(`^read /d/f \\d+@0: EIO: corrupt block 0 of inode ${ino}`)) });
    // The store's own warning, with its cause.
    expect(logged).toContainEqual({ level: 'warn', message: expect.stringMatching(new RegExp(`^corrupt block 0 of inode ${ino}: unknown block codec byte`)) });
    // --log-level warn: no info line (the mount line), and nothing above debug for routine answers.
    expect(logged.filter((e) => e.level !== 'warn')).toEqual([]);
    await expect(readFile(mnt.path('d', 'nothing'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(entries(await readFile(logFile, 'utf8')).filter((e) => e.message.includes('nothing'))).toEqual([]);
  });

  describe('--syslog', () => {
    let server: Socket;
    let received: string[];
    beforeAll(async () => {
      received = [];
      server = createSocket('udp4');
      server.on('message', (m) => received.push(m.toString()));
      await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    });
    afterAll(() => {
      server?.close();
    });

    it('sends the log through logger(1), tagged redisfs with the daemon pid, a priority per level', async () => {
      await using dir = await tempDir('logs');
      const mountpoint = dir.join('mnt');
      await mkdir(mountpoint);
      const prefix = uniquePrefix('syslog');
      // Only tests set this: logger then sends to our UDP server instead of /dev/log.
      const env = { ...process.env, REDISFS_TEST_SYSLOG_UDP: `127.0.0.1:${server.address().port}`, XDG_STATE_HOME: dir.join('state') };
      await using daemon = await startDaemon(mountpoint, ['--url', redis.url, '--prefix', prefix, '--syslog'], env);
      expect(daemon.result.stdout.trim()).toBe(`mounted ${prefix} at ${mountpoint} (pid ${daemon.pid}), log: syslog`);
      const from = (text: string) => received.find((m) => m.includes(` redisfs ${daemon.pid} `) && m.endsWith(text));
      // <30>: facility daemon, severity info.
      expect(await waitFor(() => from(`mounted ${prefix} at ${mountpoint} (pid ${daemon.pid})`), { timeoutMs: 10_000, what: 'the mount line' })).toMatch(/^<30>/);
      process.kill(daemon.pid, 'SIGUSR2');
      await waitFor(() => received.find((m) => m.startsWith('<30>') && m.includes(` redisfs ${daemon.pid} `) && /stats \{.*\}$/.test(m)), {
        timeoutMs: 10_000,
        what: 'the stats line',
      });
      await daemon.stop();
      await waitFor(() => from(`unmounted ${prefix} from ${mountpoint}`), { timeoutMs: 10_000, what: 'the unmount line' });
      // No default log file was made: the log went to syslog.
      expect(existsSync(dir.join('state'))).toBe(false);
    });

    it.skipIf(existsSync('/dev/log'))('without /dev/log: exit code 2 and one line saying so, before mounting', async () => {
      await using dir = await tempDir('logs');
      const mountpoint = dir.join('mnt');
      await mkdir(mountpoint);
      const env = { ...process.env };
      delete env.REDISFS_TEST_SYSLOG_UDP;
      for (const daemon of [false, true]) {
        const args = ['--url', redis.url, '--prefix', uniquePrefix('nosyslog'), '--mount', mountpoint, '--syslog'];
        const result = await redisfs(daemon ? [...args, '--daemon'] : args, env);
        expect({ code: result.code, stderr: result.stderr }).toEqual({
          code: 2,
          stderr: 'redisfs: --syslog: /dev/log does not exist (no journald or syslog daemon listens here); use --log-file instead\n',
        });
        expect(await isMounted(mountpoint)).toBe(false);
      }
    });
  });

  it('a daemon holds no password in its environment or command line (the URL comes over IPC)', async () => {
    await using secured = await startRedis();
    const password = `pw-${uniquePrefix('secret')}`;
    await redisCommand(secured, ['CONFIG', 'SET', 'requirepass', password]);
    const url = `redis://:${password}@127.0.0.1:${secured.port}`;
    await using dir = await tempDir('logs');
    const logFile = dir.join('daemon.log');
    for (const how of ['--url', 'REDISFS_URL'] as const) {
      const mountpoint = dir.join(`mnt${how}`);
      await mkdir(mountpoint);
      const env = how === 'REDISFS_URL' ? { ...process.env, REDISFS_URL: url } : process.env;
      const args = ['--prefix', uniquePrefix('secret'), '--log-file', logFile, ...(how === '--url' ? ['--url', url] : [])];
      await using daemon = await startDaemon(mountpoint, args, env);
      // It really talks to the password-protected server.
      await writeFile(`${mountpoint}/f`, how);
      expect(await readFile(`${mountpoint}/f`, 'utf8')).toBe(how);
      const environ = await readFile(`/proc/${daemon.pid}/environ`, 'utf8');
      const cmdline = await readFile(`/proc/${daemon.pid}/cmdline`, 'utf8');
      expect(environ, how).not.toContain(password);
      expect(environ.split('\0').filter((v) => v.startsWith('REDISFS_URL='))).toEqual([]);
      expect(cmdline, how).not.toContain(password);
      expect(daemon.result.stdout + daemon.result.stderr).not.toContain(password);
      await daemon.stop();
    }
    expect(await readFile(logFile, 'utf8')).not.toContain(password);
  });
});
