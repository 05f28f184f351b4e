/**
 * The command line of FUSE filesystems (sshfs, s3fs), which mount(8), fstab and systemd use:
 *
 *   redisfs SOURCE MOUNTPOINT [-o opt[,opt…]]… [-f] [-d] [-h] [-V]
 *
 * translated into the long flags args.ts parses (`--mount MOUNTPOINT --prefix P --url U …
 * --daemon`), so that both forms are validated by the same code. SOURCE is a prefix (`skx`, on
 * the default Redis) or a Redis URL whose last path segment is the prefix:
 *
 *   redis://[user[:pass]@]host:port[/db]/PREFIX       one server (database db, default 0)
 *   redis://host:port,host:port/PREFIX                 cluster seed nodes
 *   redis+sentinel://host:port[,…]/MASTER/PREFIX       the master MASTER, through sentinels
 *   rediss://, rediss+sentinel://                      the same over TLS
 *
 * Every long flag is also an -o option (`cache_timeout=0`, `allow_other`; `-` or `_`). mount(8)
 * and /sbin/mount.fuse pass more: `rw`, `nosuid,nodev` or `dev,suid` (mount.fuse adds these for
 * root), `noexec` (implied by fstab's `user`), `nofail`, and whatever the fstab line says. The
 * options that are mount(8)'s business are accepted and ignored; kernel mount flags libfuse can
 * apply go to --mount-flags; the access-time ones redisfs cannot honour (it never updates atime
 * on reads) are refused, as is any unknown option. Messages name what the user typed.
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '@redisfs/cli-common';
import { PREFIX_PATTERN } from '@redisfs/schema';
import { parseRedisUrl } from '@redisfs/store';

/** `-o name=VALUE` options and the long flag each one is. */
const VALUE_OPTIONS: Readonly<Record<string, string>> = {
  cache_timeout: '--cache-timeout',
  timeout: '--timeout',
  session_timeout: '--session-timeout',
  sync_replicas: '--sync-replicas',
  log_file: '--log-file',
  log_level: '--log-level',
  metrics: '--metrics',
  url: '--url',
  host: '--host',
  port: '--port',
  socket: '--socket',
  sentinel: '--sentinel',
  master_name: '--master-name',
};

/** `-o name` options (no value) and the long flag each one is. */
const FLAG_OPTIONS: Readonly<Record<string, string>> = {
  ro: '--read-only',
  read_only: '--read-only',
  read_write: '--read-write',
  allow_other: '--allow-other',
  hard: '--hard',
  syslog: '--syslog',
  debug: '--debug',
};

/** Options that say where Redis is: SOURCE says it when it is a URL. */
const SERVER_OPTIONS = new Set(['url', 'host', 'port', 'socket', 'sentinel', 'master_name']);

/** Long flags that take a value (the next argument when not given as --flag=VALUE). */
const VALUE_FLAGS = new Set([...Object.values(VALUE_OPTIONS), '--mount', '--prefix', '--mount-flags']);

/** mount(8)'s options (fstab, systemd): they are its business, not the filesystem's. */
const MOUNT8_OPTIONS = new Set(['defaults', 'auto', 'noauto', 'user', 'nouser', 'users', 'owner', 'group', '_netdev', 'nofail']);

/**
 * Kernel mount flags libfuse applies (its lib/mount.c mount_flags), as mount(8) spells them.
 * FUSE mounts are nosuid, nodev, exec, async by default, also for root.
 */
export const MOUNT_FLAGS = ['suid', 'nosuid', 'dev', 'nodev', 'exec', 'noexec', 'noatime', 'sync', 'async', 'dirsync'] as const;
export type MountFlag = (typeof MOUNT_FLAGS)[number];

/** Flags that cancel each other: the last one given counts. */
const FLAG_PAIRS: ReadonlyArray<readonly [MountFlag, MountFlag]> = [
  ['suid', 'nosuid'],
  ['dev', 'nodev'],
  ['exec', 'noexec'],
  ['sync', 'async'],
];
const DEFAULT_FLAGS = new Set<MountFlag>(['nosuid', 'nodev', 'exec', 'async']);

/** Already true of every redisfs mount: accepted, nothing to do. */
const IN_EFFECT = new Set(['nodiratime', 'default_permissions']);

/** Access-time options: redisfs never updates atime when a file is read, so it cannot honour them. */
const ATIME_OPTIONS = new Set(['atime', 'strictatime', 'relatime', 'diratime', 'lazytime']);

const SOURCE_FORMS =
  'a prefix such as skx, or redis://[user@]host:port[/db]/PREFIX (rediss:// for TLS; host:port,host:port for a cluster; redis+sentinel://host:port[,…]/MASTER/PREFIX)';

/** A command line in the SOURCE MOUNTPOINT form, as long flags. */
export interface FuseCommandLine {
  /** The long-flag command line args.ts parses. */
  args: string[];
  /** Renames the long flags in a UsageError's message to what the user typed (`-o cache_timeout`, SOURCE). */
  restate(err: unknown): unknown;
}

/** What translateFuseArgs may be told, for tests. */
export interface TranslateOptions {
  /** Reads -o password_file (default: the file, as UTF-8). */
  readSecret?: (file: string) => string;
}

/**
 * Translates `redisfs SOURCE MOUNTPOINT [-o …] [-f] [-d]` into long flags. Returns undefined
 * for the `--mount DIR` form (and for a command line with no SOURCE, so that its message stays
 * that of the --mount form). Throws a one-line UsageError for what is wrong.
 */
export function translateFuseArgs(args: readonly string[], options: TranslateOptions = {}): FuseCommandLine | undefined {
  if (args.some((a) => a === '--mount' || a.startsWith('--mount='))) return undefined;
  const positional: string[] = [];
  const passthrough: string[] = [];
  const optionLists: string[] = [];
  let foreground = false;
  let debug = false;
  let help = false;
  let version = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (arg === '-o') {
      const list = args[++i];
      if (list === undefined) throw new UsageError('-o needs a list of options (-o opt[,opt…])');
      optionLists.push(list);
    } else if (arg.startsWith('-o') && !arg.startsWith('--')) optionLists.push(arg.slice(2));
    else if (arg === '-f') foreground = true;
    else if (arg === '-d') debug = true;
    else if (arg === '-h' || arg === '--help') help = true;
    else if (arg === '-V' || arg === '--version') version = true;
    else if (arg.startsWith('--')) {
      passthrough.push(arg);
      if (VALUE_FLAGS.has(arg) && i + 1 < args.length) passthrough.push(args[++i]!);
    } else if (arg.startsWith('-') && arg !== '-') throw new UsageError(`${arg} is not a redisfs option (see redisfs --help)`);
    else positional.push(arg);
  }
  if (help || version) return { args: [help ? '--help' : '--version'], restate: (err) => err };
  if (positional.length === 0) {
    if (optionLists.length === 0 && !foreground && !debug) return undefined;
    throw new UsageError('SOURCE and MOUNTPOINT are missing: redisfs SOURCE MOUNTPOINT [-o opt[,opt…]] (see redisfs --help)');
  }
  if (positional.length === 1) throw new UsageError('MOUNTPOINT is missing: redisfs SOURCE MOUNTPOINT [-o opt[,opt…]]');
  if (positional.length > 2) throw new UsageError(`unexpected argument ${positional[2]} after SOURCE MOUNTPOINT`);
  for (const flag of ['--prefix', '--mount-flags']) {
    if (passthrough.some((a) => a === flag || a.startsWith(`${flag}=`))) {
      throw new UsageError(`${flag} is not used with SOURCE MOUNTPOINT: ${flag === '--prefix' ? 'SOURCE names the prefix' : 'give the flags with -o'}`);
    }
  }
  const daemonFlag = passthrough.includes('--daemon');
  if (daemonFlag && (foreground || debug)) throw new UsageError(`${foreground ? '-f' : '-d'} and --daemon are mutually exclusive`);

  const source = parseSource(positional[0]!);
  const opts = parseOptions(optionLists, source.url !== undefined);
  const spelled = new Map<string, string>([
    ['--mount', 'MOUNTPOINT'],
    ['--prefix', 'SOURCE'],
    ['--mount-flags', '-o'],
    ...opts.spelled,
  ]);
  let url = source.url;
  if (url !== undefined) spelled.set('--url', 'SOURCE');
  if (opts.passwordFile !== undefined) {
    const carrier = url !== undefined ? 'SOURCE' : '-o url';
    const target = url ?? opts.values.get('--url');
    if (target === undefined) throw new UsageError('-o password_file needs a Redis URL: redis://user@host:port/PREFIX as SOURCE');
    const withPassword = addPassword(target, readPasswordFile(opts.passwordFile, options.readSecret), carrier);
    if (url !== undefined) url = withPassword;
    else opts.values.set('--url', withPassword);
  }

  const out = ['--mount', positional[1]!, '--prefix', source.prefix];
  if (url !== undefined) out.push('--url', url);
  for (const [flag, value] of opts.values) out.push(flag, value);
  for (const flag of opts.flags) out.push(flag);
  if (debug && !opts.flags.has('--debug')) {
    out.push('--debug');
    spelled.set('--debug', '-d');
  }
  if (opts.mountFlags.length > 0) out.push('--mount-flags', opts.mountFlags.join(','));
  out.push(...passthrough);
  if (!foreground && !debug && !daemonFlag) out.push('--daemon');
  return { args: out, restate: (err) => restate(err, spelled) };
}

/** SOURCE: a prefix, or a Redis URL ending in /PREFIX. */
function parseSource(source: string): { prefix: string; url: string | undefined } {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/]*)(\/.*)?$/i.exec(source);
  if (!m) {
    if (!PREFIX_PATTERN.test(source)) throw new UsageError(`SOURCE must be ${SOURCE_FORMS}`);
    return { prefix: source, url: undefined };
  }
  const [, scheme, authority, path] = m;
  if (!/^rediss?(\+sentinel)?$/i.test(scheme!)) throw new UsageError(`SOURCE must be ${SOURCE_FORMS}`);
  const segments = (path ?? '').split('/').slice(1);
  const prefix = segments.pop();
  if (prefix === undefined || prefix === '') {
    throw new UsageError('SOURCE names no filesystem: end the URL with /PREFIX (e.g. redis://host:6379/skx)');
  }
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new UsageError(`SOURCE must end with /PREFIX, a prefix of 1-64 letters, digits, '_', '-' or '.' (optionally @label)`);
  }
  const url = `${scheme}://${authority}${segments.map((s) => `/${s}`).join('')}`;
  try {
    parseRedisUrl(url);
  } catch (err) {
    throw new UsageError(`SOURCE is not a valid Redis address: ${(err as Error).message} (SOURCE is ${SOURCE_FORMS})`);
  }
  return { prefix, url };
}

interface ParsedOptions {
  /** Value flags (`--cache-timeout` → '0'), the last given counting. */
  values: Map<string, string>;
  /** Boolean flags given (`--read-only`). */
  flags: Set<string>;
  /** Kernel mount flags as given, in order (resolved by mountFlagsOf). */
  mountFlags: MountFlag[];
  passwordFile: string | undefined;
  /** Long flag → the -o option the user typed for it. */
  spelled: Map<string, string>;
}

function parseOptions(lists: readonly string[], sourceIsUrl: boolean): ParsedOptions {
  const parsed: ParsedOptions = { values: new Map(), flags: new Set(), mountFlags: [], passwordFile: undefined, spelled: new Map() };
  for (const option of lists.flatMap(splitOptions)) {
    const eq = option.indexOf('=');
    const typed = eq < 0 ? option : option.slice(0, eq);
    const value = eq < 0 ? undefined : option.slice(eq + 1);
    if (MOUNT8_OPTIONS.has(typed) || typed.startsWith('x-') || typed === 'comment') continue;
    const name = typed.replaceAll('-', '_');
    const noValue = (): void => {
      if (value !== undefined) throw new UsageError(`-o ${typed} takes no value`);
    };
    if (name === 'rw') {
      noValue();
      parsed.flags.delete('--read-only');
    } else if (name in FLAG_OPTIONS) {
      noValue();
      const flag = FLAG_OPTIONS[name]!;
      parsed.flags.add(flag);
      parsed.spelled.set(flag, `-o ${typed}`);
    } else if (name in VALUE_OPTIONS || name === 'password_file') {
      if (value === undefined || value === '') throw new UsageError(`-o ${typed} needs a value (${typed}=…)`);
      if (sourceIsUrl && SERVER_OPTIONS.has(name)) {
        throw new UsageError(`-o ${typed} is not used when SOURCE is a Redis URL: the URL says where Redis is`);
      }
      if (name === 'password_file') {
        parsed.passwordFile = value;
        continue;
      }
      const flag = VALUE_OPTIONS[name]!;
      parsed.values.set(flag, value);
      parsed.spelled.set(flag, `-o ${typed}`);
    } else if ((MOUNT_FLAGS as readonly string[]).includes(typed)) {
      noValue();
      parsed.mountFlags.push(typed as MountFlag);
    } else if (IN_EFFECT.has(name)) {
      noValue();
    } else if (ATIME_OPTIONS.has(typed)) {
      throw new UsageError(`-o ${typed} cannot be honoured: redisfs never updates access times when files are read (as with noatime)`);
    } else {
      throw new UsageError(`-o ${typed} is not a redisfs option (see redisfs --help; escape a comma inside a value as \\,)`);
    }
  }
  return parsed;
}

/** Splits `a,b\,c` into ['a', 'b,c'] (libfuse's escaping: `\,` and `\\`); empty items are dropped. */
export function splitOptions(list: string): string[] {
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < list.length; i++) {
    const c = list[i]!;
    if (c === '\\' && i + 1 < list.length) current += list[++i];
    else if (c === ',') {
      out.push(current);
      current = '';
    } else current += c;
  }
  out.push(current);
  return out.filter((o) => o !== '');
}

/**
 * Resolves a list of kernel mount flags (`--mount-flags`, comma-separated): of two that cancel
 * each other the last counts, and FUSE's defaults are left out. Undefined when a name is not a
 * mount flag.
 */
export function mountFlagsOf(list: string): MountFlag[] | undefined {
  const given = list.split(',').filter((f) => f !== '');
  if (!given.every((f) => (MOUNT_FLAGS as readonly string[]).includes(f))) return undefined;
  const chosen = new Set<MountFlag>();
  for (const flag of given as MountFlag[]) {
    for (const pair of FLAG_PAIRS) if (pair.includes(flag)) for (const f of pair) chosen.delete(f);
    chosen.add(flag);
  }
  return MOUNT_FLAGS.filter((f) => chosen.has(f) && !DEFAULT_FLAGS.has(f));
}

/** Why these mount flags cannot be applied for user `uid`, or undefined. */
export function mountFlagsProblem(flags: readonly MountFlag[], uid: number): string | undefined {
  const privileged = flags.find((f) => f === 'suid' || f === 'dev');
  if (privileged && uid !== 0) {
    return `--mount-flags ${privileged} needs root: FUSE mounts of other users are always nosuid,nodev`;
  }
  return undefined;
}

/** `-o password_file=FILE`: its first line, from a file other users cannot read. */
function readPasswordFile(file: string, read: ((file: string) => string) | undefined): string {
  const path = resolve(file);
  let text: string;
  try {
    if (read) text = read(path);
    else {
      if ((statSync(path).mode & 0o004) !== 0) {
        throw new UsageError(`-o password_file ${path} is readable by every user: chmod o-r ${path}`);
      }
      text = readFileSync(path, 'utf8');
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new UsageError(`-o password_file ${path}: ${why}`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password === '' || password.includes('\n')) throw new UsageError(`-o password_file ${path} must hold the password on one line`);
  return password;
}

/** The URL with `password` after its user name; `carrier` names the URL in messages. */
function addPassword(url: string, password: string, carrier: string): string {
  const m = /^([^:]+:\/\/)(?:([^@/]*)@)?(.*)$/s.exec(url)!;
  const [, scheme, userinfo, rest] = m;
  if (userinfo?.includes(':')) throw new UsageError(`-o password_file: ${carrier} holds a password already`);
  return `${scheme}${userinfo ?? ''}:${encodeURIComponent(password)}@${rest}`;
}

function restate(err: unknown, spelled: ReadonlyMap<string, string>): unknown {
  if (!(err instanceof UsageError)) return err;
  let message = err.message;
  for (const [flag, typed] of spelled) {
    message = message.replace(new RegExp(`(?<![\\w-])${flag}(?![\\w-])`, 'g'), typed);
  }
  return message === err.message ? err : new UsageError(message, { cause: err });
}

/**
 * What mount(8), df and /proc/mounts show as the mount's source: the SOURCE that mounts it
 * again, without a password (the prefix alone on the default Redis or a socket).
 */
export function sourceName(url: string | undefined, prefix: string): string {
  if (url === undefined) return prefix;
  const p = parseRedisUrl(url);
  const scheme = `${p.tls ? 'rediss' : 'redis'}${p.sentinel ? '+sentinel' : ''}`;
  const user = p.username === undefined ? '' : `${encodeURIComponent(p.username)}@`;
  const hosts = p.hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`).join(',');
  const path = p.sentinel ? `/${encodeURIComponent(p.masterName!)}` : p.database !== undefined ? `/${p.database}` : '';
  return `${scheme}://${user}${hosts}${path}/${prefix}`;
}

/**
 * The passwords of the Redis URLs anywhere on a command line (SOURCE, `-o url=…`, inside an
 * option list), raw and decoded, for scrubSecrets: known before parsing.
 */
export function secretsOfFuseArgs(args: readonly (string | undefined)[]): string[] {
  const out = new Set<string>();
  for (const arg of args) {
    for (const m of (arg ?? '').matchAll(/[a-z][a-z0-9+.-]*:\/\/([^@/\s]*)@/gi)) {
      const colon = m[1]!.indexOf(':');
      if (colon < 0) continue;
      const raw = m[1]!.slice(colon + 1);
      if (raw === '') continue;
      out.add(raw);
      try {
        out.add(decodeURIComponent(raw));
      } catch {
        // not percent-encoding: the raw form is all there is
      }
    }
  }
  return [...out];
}
