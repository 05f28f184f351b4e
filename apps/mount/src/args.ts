/**
 * The command line of `redisfs`: yargs parses, a zod schema validates, and every problem becomes
 * one UsageError line (exit code 2). Values are never echoed back: a --url may hold a password.
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import yargs from 'yargs';
import { z } from 'zod';
import { REDIS_TARGET_OPTIONS, firstIssueMessage, prefixSchema, redisTargetShape, resolveRedisTarget, redisTargetFlagsOf, stringFlagError, URL_ENV, UsageError } from '@redisfs/cli-common';
import { DEFAULT_PREFIX } from '@redisfs/schema';
import { mountFlagsOf, mountFlagsProblem, sourceName, translateFuseArgs, type MountFlag } from './fuse-args.js';
import { logFileProblem } from './log.js';
import { mountpointProblem } from './mountpoint.js';

/** A validated mount command line. */
export interface MountConfig {
  /** Absolute path of an existing, empty directory that is not a mount point. */
  mountpoint: string;
  prefix: string;
  readOnly: boolean;
  /** --read-write: a snapshot is mounted read-only unless this is set. */
  readWrite: boolean;
  debug: boolean;
  daemon: boolean;
  allowOther: boolean;
  /** --log-file: where the log goes (absolute; undefined: stderr, or the --daemon default file, see log.ts). */
  logFile: string | undefined;
  /** Redis URL from --url, --host/--port or REDISFS_URL. */
  url: string | undefined;
  /** Unix socket from --socket. url and socket both undefined: find or start a server. */
  socket: string | undefined;
  /** --cache-timeout in ms: how long attributes and entries are cached (0: no cache). */
  cacheTimeoutMs: number;
  /** --sync-replicas: replicas that must acknowledge each change before it returns (0: none). */
  syncReplicas: number;
  /** --log-level: the least severe message that is logged (debug also logs every operation). */
  logLevel: LogLevel;
  /** --syslog: log to the system log (through logger(1)) instead of a file or stderr. */
  syslog: boolean;
  /** --metrics HOST:PORT: serve Prometheus metrics there (undefined: no metrics endpoint). */
  metrics: { host: string; port: number } | undefined;
  /** --mount-flags (or -o noexec, …): kernel mount flags beyond FUSE's defaults (nosuid,nodev). */
  mountFlags: MountFlag[];
  /** What mount(8), df and /proc/mounts show as the source: the prefix, or the URL (no password)/prefix. */
  source: string;
  /**
   * --timeout in ms: how long one operation waits for Redis before ETIMEDOUT; undefined: the
   * store's default (10 s, 60 s on a cluster or through Sentinel). Infinity with --hard.
   */
  timeoutMs: number | undefined;
  /**
   * --session-timeout in ms: the lease of this mount's session. If the mount stops renewing it
   * (crash, cut off from Redis) for this long, other mounts drop its locks and free the removed
   * files it held open.
   */
  sessionTimeoutMs: number;
}

/** Log levels, most severe first. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What the command line asks for: a mount, or nothing more (help or version was printed). */
export type MountCommand = { kind: 'mount'; config: MountConfig } | { kind: 'done' };

/** Default of --cache-timeout, in seconds (the adapter's DEFAULT_CACHE_TIMEOUT_MS). */
export const DEFAULT_CACHE_TIMEOUT_S = 1;
/** Largest --cache-timeout, in seconds: beyond an hour, another host's changes would look lost. */
export const MAX_CACHE_TIMEOUT_S = 3600;
const CACHE_TIMEOUT_MESSAGE = `--cache-timeout must be a number of seconds from 0 to ${MAX_CACHE_TIMEOUT_S}`;

/** Bounds of --timeout, in seconds. */
export const MIN_TIMEOUT_S = 0.1;
export const MAX_TIMEOUT_S = 86_400;
const TIMEOUT_MESSAGE = `--timeout must be a number of seconds from ${MIN_TIMEOUT_S} to ${MAX_TIMEOUT_S}`;

/** Default and bounds of --session-timeout, in seconds. */
export const DEFAULT_SESSION_TIMEOUT_S = 60;
export const MIN_SESSION_TIMEOUT_S = 1;
export const MAX_SESSION_TIMEOUT_S = 86_400;
const SESSION_TIMEOUT_MESSAGE = `--session-timeout must be a number of seconds from ${MIN_SESSION_TIMEOUT_S} to ${MAX_SESSION_TIMEOUT_S}`;

/** More replicas than this per master is not a deployment anyone runs. */
const MAX_SYNC_REPLICAS = 16;
const SYNC_REPLICAS_MESSAGE = `--sync-replicas must be a whole number from 0 to ${MAX_SYNC_REPLICAS}`;

const METRICS_MESSAGE = '--metrics must be HOST:PORT (e.g. 127.0.0.1:9464), with a port from 1 to 65535';

const MOUNT_FLAG_LIST = 'suid, nosuid, dev, nodev, exec, noexec, noatime, sync, async, dirsync';

const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

/**
 * A number of seconds from a string flag (decimals allowed; `within` checks its bounds), in ms.
 * A string, as the parser gives it (yargs would turn 'abc' into NaN and '' into 0); no parser
 * default, or a bare `--cache-timeout` would silently mean the default.
 */
function secondsInMs(flag: string, message: string, within: (seconds: number) => boolean) {
  return z
    .string({ error: stringFlagError(flag) })
    .regex(/^\d+(\.\d+)?$|^\.\d+$/, message)
    .transform(Number)
    .refine(within, message)
    .transform((s) => Math.round(s * 1000));
}

const argsSchema = z.object({
  prefix: prefixSchema('--prefix'),
  ...redisTargetShape,
  readOnly: z.boolean(),
  readWrite: z.boolean(),
  debug: z.boolean(),
  daemon: z.boolean(),
  allowOther: z.boolean(),
  timeout: secondsInMs('--timeout', TIMEOUT_MESSAGE, (s) => s >= MIN_TIMEOUT_S && s <= MAX_TIMEOUT_S).optional(),
  hard: z.boolean(),
  sessionTimeout: secondsInMs('--session-timeout', SESSION_TIMEOUT_MESSAGE, (s) => s >= MIN_SESSION_TIMEOUT_S && s <= MAX_SESSION_TIMEOUT_S).default(
    DEFAULT_SESSION_TIMEOUT_S * 1000,
  ),
  cacheTimeout: secondsInMs('--cache-timeout', CACHE_TIMEOUT_MESSAGE, (s) => s <= MAX_CACHE_TIMEOUT_S).default(DEFAULT_CACHE_TIMEOUT_S * 1000),
  logFile: z
    .string({ error: stringFlagError('--log-file') })
    .min(1)
    .transform((f) => resolve(f))
    .superRefine((file, ctx) => {
      const problem = logFileProblem(file);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
  syncReplicas: z
    .string({ error: stringFlagError('--sync-replicas') })
    .regex(/^\d{1,3}$/, SYNC_REPLICAS_MESSAGE)
    .transform(Number)
    .refine((n) => n <= MAX_SYNC_REPLICAS, SYNC_REPLICAS_MESSAGE)
    .default(0),
  logLevel: z.enum(LOG_LEVELS, { error: `--log-level must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  syslog: z.boolean(),
  metrics: z
    .string({ error: stringFlagError('--metrics') })
    .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s/]+):\d{1,5}$/, METRICS_MESSAGE)
    .transform((value) => {
      const at = value.lastIndexOf(':');
      const host = value.slice(0, at).replace(/^\[(.*)\]$/, '$1');
      return { host, port: Number(value.slice(at + 1)) };
    })
    .refine((m) => m.port >= 1 && m.port <= 65535, METRICS_MESSAGE)
    .optional(),
  mountFlags: z
    .string({ error: stringFlagError('--mount-flags') })
    .transform((list, ctx) => {
      const flags = mountFlagsOf(list);
      if (flags) return flags;
      ctx.addIssue({ code: 'custom', message: `--mount-flags takes a comma-separated list of ${MOUNT_FLAG_LIST}` });
      return z.NEVER;
    })
    .default([]),
  // The directory itself is looked at last, once the command line is right (parseLongFlags).
  mount: z
    .string({ error: stringFlagError('--mount') })
    .min(1, '--mount must not be empty')
    .transform((dir) => resolve(dir)),
});

function buildParser(args: string[]) {
  return yargs(args)
    .scriptName('redisfs')
    .usage(
      '$0 SOURCE MOUNTPOINT [-o opt[,opt…]] [-f] [-d]\n$0 --mount DIR [options]\n\n' +
        'Mount the redisfs filesystem SOURCE on MOUNTPOINT, in the background once mounted (-f: stay in the ' +
        'foreground; -d: foreground, with --debug). SOURCE is a prefix (skx) or a Redis URL ending in it: ' +
        'redis://[user@]host:port[/db]/skx, redis://h1:p1,h2:p2/skx (cluster), redis+sentinel://h:p[,…]/MASTER/skx. ' +
        'Every option below is also an -o option (-o cache_timeout=0,ro,allow_other); -o password_file=FILE reads ' +
        "the URL's password from FILE; mount(8)'s options (defaults, _netdev, nofail, noauto, x-systemd.*…) are " +
        'ignored; nosuid, nodev, noexec, suid, dev (root), noatime, sync, dirsync are applied. ' +
        'The --mount form mounts --prefix on DIR in the foreground unless --daemon.',
    )
    .locale('en')
    .option('mount', { type: 'string', demandOption: true, describe: 'empty directory to mount on' })
    .option('prefix', { type: 'string', default: DEFAULT_PREFIX, describe: 'filesystem prefix in Redis' })
    .options(REDIS_TARGET_OPTIONS)
    .option('read-only', { type: 'boolean', default: false, describe: 'mount read-only (needed for a replica)' })
    .option('read-write', {
      type: 'boolean',
      default: false,
      describe: 'allow changes to a snapshot (snapshots mount read-only otherwise)',
    })
    .option('debug', { type: 'boolean', default: false, describe: 'log every operation (same as --log-level debug)' })
    .option('daemon', { type: 'boolean', default: false, describe: 'run in the background once mounted' })
    .option('log-file', {
      type: 'string',
      describe: 'append the log to this file [default: stderr; with --daemon: $XDG_STATE_HOME/redisfs/<mountpoint>.log]',
    })
    .option('log-level', { type: 'string', describe: `what to log: ${LOG_LEVELS.join(', ')} (debug: every operation) [default: info]` })
    .option('syslog', { type: 'boolean', default: false, describe: 'log to the system log (logger(1) through /dev/log) instead of a file or stderr' })
    .option('metrics', { type: 'string', describe: 'serve Prometheus metrics on HOST:PORT (http://HOST:PORT/metrics)' })
    .option('allow-other', { type: 'boolean', default: false, describe: 'let other users access the mount' })
    .option('sync-replicas', {
      type: 'string',
      describe: 'wait until N replicas have each change (WAIT) before it returns: an fsync then survives losing the master [default: 0]',
    })
    .option('mount-flags', { type: 'string', describe: `kernel mount flags, comma-separated: ${MOUNT_FLAG_LIST} [default: nosuid,nodev]` })
    .option('timeout', {
      type: 'string',
      describe: 'seconds one operation waits for Redis before it fails with ETIMEDOUT [default: 10; 60 on a cluster or through Sentinel]',
    })
    .option('hard', {
      type: 'boolean',
      default: false,
      describe: 'never time out: wait for Redis as long as it takes, as an NFS hard mount does (Ctrl-C or kill still ends a waiting program)',
    })
    .option('session-timeout', {
      type: 'string',
      describe: `seconds after which a mount that stopped answering (crashed, cut off) loses its locks and the removed files it held open are freed [default: ${DEFAULT_SESSION_TIMEOUT_S}]`,
    })
    .option('cache-timeout', {
      type: 'string',
      describe: `seconds that attributes and names are cached: other hosts' changes show within it; 0 = strict [default: ${DEFAULT_CACHE_TIMEOUT_S}]`,
    })
    .epilogue(
      'Without --url/--host/--port/--socket, redisfs uses Redis at 127.0.0.1:6379, or, when nothing ' +
        'answers there, the private redis-server (started if need be, shared by every redisfs command) ' +
        'storing its data under $XDG_DATA_HOME/redisfs/redis (default ~/.local/share/redisfs/redis): ' +
        'see redisfs server --help. ' +
        'To check a filesystem: redisfs fsck --prefix P [--repair] (see redisfs fsck --help). ' +
        "This host's mounts: redisfs status [--json]. The private Redis: redisfs server status|start|stop.",
    )
    .strict()
    .help()
    .version(VERSION)
    .exitProcess(false)
    .fail((message, err) => {
      throw new UsageError(`${message ?? err?.message ?? 'invalid arguments'} (see redisfs --help)`);
    });
}

/**
 * Parses and validates a `redisfs` command line (without node and script). Help and version are
 * printed by yargs and give `{ kind: 'done' }`. Every problem is a one-line UsageError.
 */
export async function parseMountArgs(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<MountCommand> {
  // `redisfs SOURCE MOUNTPOINT -o …` (mount(8), fstab) becomes long flags (fuse-args.ts).
  const fuse = translateFuseArgs(args);
  if (!fuse) return parseLongFlags(args, env);
  try {
    return await parseLongFlags(fuse.args, env);
  } catch (err) {
    throw fuse.restate(err);
  }
}

async function parseLongFlags(args: string[], env: NodeJS.ProcessEnv): Promise<MountCommand> {
  const argv = await buildParser(args).parseAsync();
  if (argv.help || argv.version) return { kind: 'done' };
  const parsed = argsSchema.safeParse({
    mount: argv.mount,
    prefix: argv.prefix,
    ...redisTargetFlagsOf(argv),
    readOnly: argv['read-only'],
    readWrite: argv['read-write'],
    debug: argv.debug,
    daemon: argv.daemon,
    allowOther: argv['allow-other'],
    cacheTimeout: argv['cache-timeout'],
    timeout: argv.timeout,
    hard: argv.hard,
    sessionTimeout: argv['session-timeout'],
    syncReplicas: argv['sync-replicas'],
    logFile: argv['log-file'],
    logLevel: argv['log-level'],
    syslog: argv.syslog,
    metrics: argv.metrics,
    mountFlags: argv['mount-flags'],
  });
  if (!parsed.success) throw new UsageError(firstIssueMessage(parsed.error));
  const a = parsed.data;
  if (a.readOnly && a.readWrite) throw new UsageError('--read-only and --read-write are mutually exclusive');
  if (a.logFile !== undefined && a.syslog) throw new UsageError('--log-file and --syslog are mutually exclusive');
  if (a.hard && a.timeout !== undefined) throw new UsageError('--hard and --timeout are mutually exclusive (a hard mount has no timeout)');
  const flagsProblem = mountFlagsProblem(a.mountFlags, process.getuid?.() ?? 0);
  if (flagsProblem) throw new UsageError(flagsProblem);
  const { url, socket } = resolveRedisTarget(a, env);
  // Last: the disk is looked at only when the command line is right. A busy directory (mounted,
  // or a dead FUSE mount) is not a usage error: the mount fails (exit 1).
  const problem = mountpointProblem(a.mount);
  if (problem) throw problem.usage ? new UsageError(problem.message) : new Error(problem.message);
  return {
    kind: 'mount',
    config: {
      mountpoint: a.mount,
      prefix: a.prefix,
      readOnly: a.readOnly,
      readWrite: a.readWrite,
      debug: a.debug,
      daemon: a.daemon,
      allowOther: a.allowOther,
      logFile: a.logFile,
      url,
      socket,
      cacheTimeoutMs: a.cacheTimeout,
      syncReplicas: a.syncReplicas,
      logLevel: a.logLevel,
      syslog: a.syslog,
      metrics: a.metrics,
      mountFlags: a.mountFlags,
      source: sourceName(url, a.prefix),
      timeoutMs: a.hard ? Infinity : a.timeout,
      sessionTimeoutMs: a.sessionTimeout,
    },
  };
}

/**
 * The command line and environment of the --daemon child: the same mount in the foreground.
 * The URL travels in `env`, which the parent hands over its IPC channel (daemon.ts), so that a
 * password stays out of `ps` and out of the child's /proc/<pid>/environ.
 */
export function daemonChildArgs(config: MountConfig): { args: string[]; env: Record<string, string> } {
  const args = ['--mount', config.mountpoint, '--prefix', config.prefix];
  if (config.socket) args.push('--socket', config.socket);
  if (config.readOnly) args.push('--read-only');
  if (config.readWrite) args.push('--read-write');
  if (config.debug) args.push('--debug');
  if (config.allowOther) args.push('--allow-other');
  args.push('--cache-timeout', String(config.cacheTimeoutMs / 1000));
  if (config.timeoutMs === Infinity) args.push('--hard');
  else if (config.timeoutMs !== undefined) args.push('--timeout', String(config.timeoutMs / 1000));
  if (config.sessionTimeoutMs !== DEFAULT_SESSION_TIMEOUT_S * 1000) args.push('--session-timeout', String(config.sessionTimeoutMs / 1000));
  if (config.syncReplicas > 0) args.push('--sync-replicas', String(config.syncReplicas));
  args.push('--log-level', config.logLevel);
  if (config.syslog) args.push('--syslog');
  if (config.logFile) args.push('--log-file', config.logFile);
  if (config.mountFlags.length > 0) args.push('--mount-flags', config.mountFlags.join(','));
  if (config.metrics) {
    const { host, port } = config.metrics;
    args.push('--metrics', `${host.includes(':') ? `[${host}]` : host}:${port}`);
  }
  return { args, env: config.url ? { [URL_ENV]: config.url } : {} };
}

