import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_USAGE, exitCodeOf, UsageError } from '@redisfs/cli-common';
import {
  mountFlagsOf,
  mountFlagsProblem,
  secretsOfFuseArgs,
  sourceName,
  splitOptions,
  translateFuseArgs,
  type TranslateOptions,
} from './fuse-args.js';

function translate(args: string[], options?: TranslateOptions): string[] | undefined {
  return translateFuseArgs(args, options)?.args;
}

/** The one-line UsageError a command line gives. */
function usageError(args: string[], options?: TranslateOptions): string {
  let caught: unknown;
  try {
    translateFuseArgs(args, options);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(UsageError);
  expect(exitCodeOf(caught)).toBe(EXIT_USAGE);
  const message = (caught as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('translateFuseArgs: SOURCE', () => {
  it('takes a prefix on the default Redis, and goes to the background', () => {
    expect(translate(['skx', '/mnt'])).toEqual(['--mount', '/mnt', '--prefix', 'skx', '--daemon']);
    expect(translate(['skx@mon', '/mnt'])).toEqual(['--mount', '/mnt', '--prefix', 'skx@mon', '--daemon']);
  });

  it.each([
    ['redis://127.0.0.1:6379/skx', 'redis://127.0.0.1:6379', 'skx'],
    ['redis://alice:pw@db:6380/home', 'redis://alice:pw@db:6380', 'home'],
    ['redis://db:6380/2/home', 'redis://db:6380/2', 'home'],
    ['rediss://db/home', 'rediss://db', 'home'],
    ['redis://a:7000,b:7001/home', 'redis://a:7000,b:7001', 'home'],
    ['redis+sentinel://s1:26379,s2:26380/main/home', 'redis+sentinel://s1:26379,s2:26380/main', 'home'],
    ['REDIS://db/home@mon', 'REDIS://db', 'home@mon'],
  ])('takes the URL %s: the last path segment is the prefix', (source, url, prefix) => {
    expect(translate([source, '/mnt'])).toEqual(['--mount', '/mnt', '--prefix', prefix, '--url', url, '--daemon']);
  });

  it.each([
    ['a:b', /^SOURCE must be a prefix such as skx, or redis:\/\//],
    ['host:6379/skx', /^SOURCE must be a prefix/],
    ['http://db/skx', /^SOURCE must be a prefix/],
    ['redis://db:6379', /^SOURCE names no filesystem: end the URL with \/PREFIX/],
    ['redis://db:6379/', /^SOURCE names no filesystem/],
    ['redis://db/skx/', /^SOURCE names no filesystem/],
    ['redis://db/a:b', /^SOURCE must end with \/PREFIX/],
    ['redis://db/x/skx', /^SOURCE is not a valid Redis address: the path must be a database number/],
    ['redis://db:99999/skx', /^SOURCE is not a valid Redis address: a port is not from 1 to 65535/],
    ['redis+sentinel://s1/skx', /^SOURCE is not a valid Redis address: a redis\+sentinel:\/\/ address needs the master name/],
  ])('refuses SOURCE %j, naming SOURCE', (source, message) => {
    expect(usageError([source, '/mnt'])).toMatch(message);
  });

  it('never echoes a password in SOURCE', () => {
    for (const source of ['redis://u:hunter2@db:99999/skx', 'redis://u:hunter2@db:1/x/skx', 'http://u:hunter2@db/skx', 'redis://u:hunter2@db/']) {
      expect(usageError([source, '/mnt'])).not.toContain('hunter2');
    }
  });
});

describe('translateFuseArgs: the command line', () => {
  it('leaves the --mount form alone, and a command line without SOURCE', () => {
    expect(translate(['--mount', '/mnt', '-o', 'ro'])).toBeUndefined();
    expect(translate(['--mount=/mnt', 'x'])).toBeUndefined();
    expect(translate([])).toBeUndefined();
    expect(translate(['--prefix', 'p', '--read-only'])).toBeUndefined();
  });

  it('stays in the foreground with -f, and with -d (adding --debug)', () => {
    expect(translate(['skx', '/mnt', '-f'])).toEqual(['--mount', '/mnt', '--prefix', 'skx']);
    expect(translate(['-d', 'skx', '/mnt'])).toEqual(['--mount', '/mnt', '--prefix', 'skx', '--debug']);
    expect(usageError(['skx', '/mnt', '-f', '--daemon'])).toBe('-f and --daemon are mutually exclusive');
  });

  it('gives -h and -V to the parser as --help and --version', () => {
    expect(translate(['-h'])).toEqual(['--help']);
    expect(translate(['skx', '/mnt', '-o', 'ro', '-V'])).toEqual(['--version']);
  });

  it('takes options anywhere, long flags too, and SOURCE MOUNTPOINT after --', () => {
    expect(translate(['-o', 'ro', 'skx', '--cache-timeout', '0', '/mnt', '--allow-other'])).toEqual([
      '--mount', '/mnt', '--prefix', 'skx', '--read-only', '--cache-timeout', '0', '--allow-other', '--daemon',
    ]);
    expect(translate(['-oro', '--', '-odd', '/mnt'])).toEqual(['--mount', '/mnt', '--prefix', '-odd', '--read-only', '--daemon']);
  });

  it('says what is missing or extra', () => {
    expect(usageError(['-o', 'ro'])).toMatch(/^SOURCE and MOUNTPOINT are missing: redisfs SOURCE MOUNTPOINT/);
    expect(usageError(['-f'])).toMatch(/^SOURCE and MOUNTPOINT are missing/);
    expect(usageError(['skx'])).toMatch(/^MOUNTPOINT is missing/);
    expect(usageError(['skx', '/mnt', 'extra'])).toBe('unexpected argument extra after SOURCE MOUNTPOINT');
    expect(usageError(['skx', '/mnt', '-o'])).toMatch(/^-o needs a list of options/);
    expect(usageError(['skx', '/mnt', '-s'])).toBe('-s is not a redisfs option (see redisfs --help)');
    expect(usageError(['skx', '/mnt', '--prefix', 'x'])).toBe('--prefix is not used with SOURCE MOUNTPOINT: SOURCE names the prefix');
  });
});

describe('translateFuseArgs: -o', () => {
  const tail = (args: string[]) => translate(['skx', '/mnt', ...args])!.slice(4, -1);

  it('takes every long flag as an option, spelled with _ or -', () => {
    expect(
      tail(['-o', 'cache_timeout=0,sync-replicas=1,log_level=debug,metrics=127.0.0.1:9464', '-o', 'allow_other,syslog,debug,read_write']),
    ).toEqual([
      '--cache-timeout', '0', '--sync-replicas', '1', '--log-level', 'debug', '--metrics', '127.0.0.1:9464',
      '--allow-other', '--syslog', '--debug', '--read-write',
    ]);
    expect(tail(['-o', 'log_file=/var/log/r.log,read-only'])).toEqual(['--log-file', '/var/log/r.log', '--read-only']);
    expect(tail(['-o', 'socket=/run/redis.sock'])).toEqual(['--socket', '/run/redis.sock']);
    expect(tail(['-o', 'url=redis://db:1,host=h,port=2'])).toEqual(['--url', 'redis://db:1', '--host', 'h', '--port', '2']);
    expect(tail(['-o', 'sentinel=s1:1\\,s2:2,master_name=main'])).toEqual(['--sentinel', 's1:1,s2:2', '--master-name', 'main']);
    expect(tail(['-o', 'timeout=2'])).toEqual(['--timeout', '2']);
    expect(tail(['-o', 'hard'])).toEqual(['--hard']);
  });

  it('takes the last of a repeated value, and of ro and rw', () => {
    expect(tail(['-o', 'cache_timeout=1,cache_timeout=0'])).toEqual(['--cache-timeout', '0']);
    expect(tail(['-o', 'ro,rw'])).toEqual([]);
    expect(tail(['-o', 'rw', '-o', 'ro'])).toEqual(['--read-only']);
  });

  it("ignores mount(8)'s options", () => {
    const fstab = 'defaults,auto,noauto,user,nouser,users,owner,group,_netdev,nofail,x-systemd.automount,x-systemd.mount-timeout=30,comment=systemd.x,rw';
    expect(tail(['-o', fstab])).toEqual([]);
  });

  it('applies the kernel flags libfuse knows, as --mount-flags', () => {
    // What /sbin/mount.fuse passes for an fstab line with `user`, and as root without nosuid/nodev.
    expect(tail(['-o', 'rw,noexec,nosuid,nodev,cache_timeout=0,nofail'])).toEqual(['--cache-timeout', '0', '--mount-flags', 'noexec,nosuid,nodev']);
    expect(tail(['-o', 'cache_timeout=0,dev,suid'])).toEqual(['--cache-timeout', '0', '--mount-flags', 'dev,suid']);
    expect(tail(['-o', 'noatime,nodiratime,sync,dirsync,exec,async,default_permissions'])).toEqual([
      '--mount-flags', 'noatime,sync,dirsync,exec,async',
    ]);
  });

  it.each(['atime', 'strictatime', 'relatime', 'diratime', 'lazytime'])('refuses -o %s: redisfs does not update access times', (option) => {
    expect(usageError(['skx', '/mnt', '-o', option])).toBe(
      `-o ${option} cannot be honoured: redisfs never updates access times when files are read (as with noatime)`,
    );
  });

  it('refuses unknown options, values where none go and missing values, naming the option', () => {
    expect(usageError(['skx', '/mnt', '-o', 'ro,bogus=1'])).toMatch(/^-o bogus is not a redisfs option \(see redisfs --help/);
    expect(usageError(['skx', '/mnt', '-o', 'allow_root'])).toMatch(/^-o allow_root is not a redisfs option/);
    expect(usageError(['skx', '/mnt', '-o', 'sentinel=a:1,b:2'])).toMatch(/^-o b:2 is not a redisfs option .*escape a comma inside a value as \\,/);
    expect(usageError(['skx', '/mnt', '-o', 'allow-other=yes'])).toBe('-o allow-other takes no value');
    expect(usageError(['skx', '/mnt', '-o', 'noexec=1'])).toBe('-o noexec takes no value');
    expect(usageError(['skx', '/mnt', '-o', 'cache_timeout'])).toBe('-o cache_timeout needs a value (cache_timeout=…)');
    expect(usageError(['skx', '/mnt', '-o', 'log-file='])).toBe('-o log-file needs a value (log-file=…)');
  });

  it('refuses a second address when SOURCE is a URL', () => {
    expect(usageError(['redis://db/skx', '/mnt', '-o', 'port=1'])).toBe('-o port is not used when SOURCE is a Redis URL: the URL says where Redis is');
    expect(usageError(['redis://db/skx', '/mnt', '-o', 'socket=/s'])).toMatch(/^-o socket is not used when SOURCE is a Redis URL/);
  });
});

describe('-o password_file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'redisfs-fuse-args-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const secret = (text: string): TranslateOptions => ({ readSecret: () => text });

  it("puts the file's password into the URL, percent-encoded", () => {
    const args = translate(['redis://fsuser@db:6379/skx', '/mnt', '-o', 'password_file=/etc/redisfs/skx'], secret('p@ss:w/rd\n'));
    expect(args).toContain('redis://fsuser:p%40ss%3Aw%2Frd@db:6379');
    expect(translate(['redis://db/2/skx', '/mnt', '-o', 'password_file=/f'], secret('pw'))).toContain('redis://:pw@db/2');
    expect(translate(['skx', '/mnt', '-o', 'url=redis://u@db:1,password_file=/f'], secret('pw'))).toContain('redis://u:pw@db:1');
  });

  it('needs a URL without a password, and one line in the file', () => {
    expect(usageError(['skx', '/mnt', '-o', 'password_file=/f'], secret('pw'))).toMatch(/^-o password_file needs a Redis URL/);
    expect(usageError(['redis://u:old@db/skx', '/mnt', '-o', 'password_file=/f'], secret('pw'))).toBe(
      '-o password_file: SOURCE holds a password already',
    );
    expect(usageError(['redis://db/skx', '/mnt', '-o', 'password_file=/f'], secret('\n'))).toBe('-o password_file /f must hold the password on one line');
    expect(usageError(['redis://db/skx', '/mnt', '-o', 'password_file=/f'], secret('a\nb\n'))).toMatch(/must hold the password on one line/);
  });

  it('reads a file other users cannot read, and refuses one they can', () => {
    const file = join(dir, 'pass');
    writeFileSync(file, 's3cret\n', { mode: 0o600 });
    expect(translate(['redis://u@db/skx', '/mnt', '-o', `password_file=${file}`])).toContain('redis://u:s3cret@db');
    chmodSync(file, 0o644);
    expect(usageError(['redis://u@db/skx', '/mnt', '-o', `password_file=${file}`])).toBe(
      `-o password_file ${file} is readable by every user: chmod o-r ${file}`,
    );
    expect(usageError(['redis://u@db/skx', '/mnt', '-o', `password_file=${join(dir, 'none')}`])).toBe(
      `-o password_file ${join(dir, 'none')}: no such file`,
    );
  });
});

describe('helpers', () => {
  it('splits option lists with libfuse escaping', () => {
    expect(splitOptions('a,b\\,c,,d\\\\e,')).toEqual(['a', 'b,c', 'd\\e']);
  });

  it('resolves mount flags: the last of a pair counts, defaults are left out', () => {
    expect(mountFlagsOf('noexec,nosuid,nodev')).toEqual(['noexec']);
    expect(mountFlagsOf('suid,nosuid,dev')).toEqual(['dev']);
    expect(mountFlagsOf('noexec,exec,sync,dirsync,noatime')).toEqual(['noatime', 'sync', 'dirsync']);
    expect(mountFlagsOf('')).toEqual([]);
    expect(mountFlagsOf('noexec,relatime')).toBeUndefined();
  });

  it('refuses suid and dev to other users than root', () => {
    expect(mountFlagsProblem(['suid', 'noexec'], 1000)).toBe('--mount-flags suid needs root: FUSE mounts of other users are always nosuid,nodev');
    expect(mountFlagsProblem(['dev'], 1000)).toMatch(/^--mount-flags dev needs root/);
    expect(mountFlagsProblem(['suid', 'dev'], 0)).toBeUndefined();
    expect(mountFlagsProblem(['noexec'], 1000)).toBeUndefined();
  });

  it('names the source as a SOURCE that mounts it again, without the password', () => {
    expect(sourceName(undefined, 'skx')).toBe('skx');
    expect(sourceName('redis://alice:pw@db:6380/2', 'home')).toBe('redis://alice@db:6380/2/home');
    expect(sourceName('rediss://:pw@db', 'home')).toBe('rediss://db:6379/home');
    expect(sourceName('redis://a:7000,[::1]:7001', 'home')).toBe('redis://a:7000,[::1]:7001/home');
    expect(sourceName('redis+sentinel://u:pw@s1,s2:26380/main', 'home')).toBe('redis+sentinel://u@s1:26379,s2:26380/main/home');
  });

  it('finds the passwords of every URL on a command line', () => {
    const args = ['redis://u:one@a:1,b:2/skx', '/mnt', '-o', 'cache_timeout=0,url=rediss://:tw%40o@h', '--url=redis://x@h', undefined];
    expect(secretsOfFuseArgs(args).sort()).toEqual(['one', 'tw%40o', 'tw@o'].sort());
  });
});
