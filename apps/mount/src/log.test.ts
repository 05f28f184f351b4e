import { createSocket, type Socket } from 'node:dgram';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SYSLOG_TEST_ENV,
  defaultLogFile,
  effectiveLevel,
  fileLine,
  logFileName,
  logFileProblem,
  logStateDir,
  openMountLog,
  stderrLine,
  syslogPriority,
  syslogProblem,
} from './log.js';
import { waitFor } from './wait-for.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'redisfs-log-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const AT = new Date('2026-11-30T23:59:01.123Z');

describe('log lines', () => {
  it('a file line is ISO time, level, message', () => {
    expect(fileLine(AT, 'warn', 'write /a/b: EIO: connection lost')).toBe('2026-11-30T23:59:01.123Z warn write /a/b: EIO: connection lost');
  });

  it('a stderr line says warning/error, as every redisfs line starts', () => {
    expect(stderrLine('warn', 'x')).toBe('redisfs: warning: x');
    expect(stderrLine('error', 'x')).toBe('redisfs: error: x');
    expect(stderrLine('info', 'stats {}')).toBe('redisfs: stats {}');
    expect(stderrLine('debug', 'getattr / -> ok')).toBe('redisfs: getattr / -> ok');
  });

  it('--debug means --log-level debug', () => {
    expect(effectiveLevel({ debug: true, logLevel: 'error' })).toBe('debug');
    expect(effectiveLevel({ debug: false, logLevel: 'warn' })).toBe('warn');
  });

  it('syslog priorities are facility daemon with a severity per level', () => {
    expect([syslogPriority('error'), syslogPriority('warn'), syslogPriority('info'), syslogPriority('debug')]).toEqual([27, 28, 30, 31]);
  });
});

describe('a file log', () => {
  it('appends the entries at or above its level, scrubbed, to a file created 0600', async () => {
    const path = join(root, 'levels.log');
    writeFileSync(path, 'earlier line\n', { mode: 0o644 });
    const fresh = join(root, 'fresh.log');
    for (const file of [path, fresh]) {
      const log = openMountLog({
        level: 'warn',
        destination: { kind: 'file', path: file },
        stderr: () => expect.fail('nothing goes to stderr'),
        scrub: (text) => text.replaceAll('hunter22', '***'),
        now: () => AT,
      });
      log.error('lost buffered writes to /f');
      log.warn('read /f 4096@0: EIO: redis://:hunter22@h:1 is gone');
      log.info('stats {}');
      log.debug('getattr / -> ok');
      expect(log.enabled('warn')).toBe(true);
      expect(log.enabled('info')).toBe(false);
      await log.close();
    }
    const expected = [
      '2026-11-30T23:59:01.123Z error lost buffered writes to /f',
      '2026-11-30T23:59:01.123Z warn read /f 4096@0: EIO: redis://:***@h:1 is gone',
    ];
    expect(readFileSync(path, 'utf8')).toBe(['earlier line', ...expected, ''].join('\n'));
    expect(readFileSync(fresh, 'utf8')).toBe([...expected, ''].join('\n'));
    expect(statSync(fresh).mode & 0o777).toBe(0o600);
  });

  it('the stderr log filters by level too', async () => {
    const lines: string[] = [];
    const log = openMountLog({ level: 'error', destination: { kind: 'stderr' }, stderr: (l) => lines.push(l) });
    log.warn('w');
    log.error('e');
    await log.close();
    expect(lines).toEqual(['redisfs: error: e']);
  });
});

describe('default log file of a mountpoint', () => {
  it.each([
    ['/mnt/redisfs', 'mnt-redisfs.log'],
    ['/root/redisfs', 'root-redisfs.log'],
    ['/srv/my-data', 'srv-my%2Ddata.log'],
    ['/mnt/my disk', 'mnt-my%20disk.log'],
    ['/home/u/.cache/fs', 'home-u-.cache-fs.log'],
    ['/.hidden', '%2Ehidden.log'],
    ['/mnt/dé', 'mnt-d%C3%A9.log'],
    ['/', '-.log'],
  ])('%s → %s', (mountpoint, name) => {
    expect(logFileName(mountpoint)).toBe(name);
  });

  it('gives different mountpoints different files, short enough for any filesystem', () => {
    expect(logFileName('/a-b')).not.toBe(logFileName('/a/b'));
    expect(logFileName('/a%2Db')).not.toBe(logFileName('/a-b'));
    const long = `/${'x'.repeat(150)}/${'y'.repeat(150)}`;
    const longer = `${long}z`;
    expect(logFileName(long).length).toBeLessThanOrEqual(255);
    expect(logFileName(long)).not.toBe(logFileName(longer));
    expect(logFileName(long)).not.toContain('/');
  });

  it('lives in $XDG_STATE_HOME/redisfs, else ~/.local/state/redisfs', () => {
    expect(defaultLogFile('/mnt/redisfs', { XDG_STATE_HOME: '/var/st', HOME: '/home/u' })).toBe('/var/st/redisfs/mnt-redisfs.log');
    // A relative XDG_STATE_HOME is ignored, as the XDG spec says.
    expect(logStateDir({ XDG_STATE_HOME: 'rel', HOME: '/home/u' })).toBe('/home/u/.local/state/redisfs');
    expect(logStateDir({ HOME: '/home/u' })).toBe('/home/u/.local/state/redisfs');
  });
});

describe('logFileProblem', () => {
  it('names the flag and the problem, and creates nothing', () => {
    const missing = join(root, 'nonexistent', 'dir', 'x.log');
    expect(logFileProblem(missing)).toBe(`--log-file ${missing}: no such directory`);
    mkdirSync(join(root, 'adir'), { recursive: true });
    expect(logFileProblem(join(root, 'adir'))).toBe(`--log-file ${join(root, 'adir')}: is a directory`);
    writeFileSync(join(root, 'plain'), '');
    expect(logFileProblem(join(root, 'plain', 'x.log'))).toBe(`--log-file ${join(root, 'plain', 'x.log')}: ${join(root, 'plain')} is not a directory`);
    expect(logFileProblem(join(root, 'new.log'))).toBeUndefined();
    expect(() => statSync(join(root, 'new.log'))).toThrow();
  });
});

describe('--syslog', () => {
  it('without /dev/log is one clear line (the mount then fails with exit code 2)', () => {
    expect(syslogProblem({ PATH: process.env.PATH }, join(root, 'no-dev-log'))).toBe(
      `--syslog: ${join(root, 'no-dev-log')} does not exist (no journald or syslog daemon listens here); use --log-file instead`,
    );
    expect(syslogProblem({ PATH: join(root, 'empty-path') })).toMatch(/^--syslog needs logger\(1\)/);
  });

  it('sends each entry through logger(1) with its priority, tag and pid', async () => {
    const server: Socket = createSocket('udp4');
    const received: string[] = [];
    server.on('message', (m) => received.push(m.toString()));
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    try {
      const env = { PATH: process.env.PATH, [SYSLOG_TEST_ENV]: `127.0.0.1:${server.address().port}` };
      expect(syslogProblem(env, join(root, 'no-dev-log'))).toBeUndefined();
      const log = openMountLog({
        level: 'info',
        destination: { kind: 'syslog' },
        stderr: (line) => expect.fail(`unexpected stderr line: ${line}`),
        scrub: (text) => text.replaceAll('hunter22', '***'),
        env,
      });
      log.warn('read /f: EIO: corrupt block, pw hunter22');
      log.info('mounted skx at /mnt');
      log.debug('not sent');
      await log.close(); // waits for logger to send and exit
      await waitFor(() => received.length >= 2 || undefined, { timeoutMs: 5000, intervalMs: 10, what: 'two syslog messages' });
      expect(received).toHaveLength(2);
      expect(received[0]).toMatch(new RegExp(`^<28>.* redisfs ${process.pid} .*read /f: EIO: corrupt block, pw \\*\\*\\*$`));
      expect(received[1]).toMatch(new RegExp(`^<30>.* redisfs ${process.pid} .*mounted skx at /mnt$`));
    } finally {
      server.close();
    }
  });
});
