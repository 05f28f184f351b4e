/**
 * The mount process's log. One destination per mount:
 *  - stderr (the foreground default): `redisfs: warning: …` lines, as every CLI line looks;
 *  - a file (--log-file, and the --daemon default, see defaultLogFile): one line per entry,
 *    `2026-11-30T23:59:01.123Z warn write /a/b: EIO: …`, appended, created 0600;
 *  - the system log (--syslog): lines piped into logger(1) (`logger -t redisfs --id=<pid>`),
 *    facility daemon, a priority per level, so journald or a syslog daemon gets them.
 * --log-level drops the entries less severe than it (debug also logs every FUSE operation).
 * Every line goes through the caller's scrub before it is written: no password reaches a log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants as fsConstants, existsSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { UsageError, findExecutable } from '@redisfs/cli-common';
import type { LogLevel } from './args.js';

/** Where a mount's log goes. */
export type LogDestination = { kind: 'stderr' } | { kind: 'file'; path: string } | { kind: 'syslog' };

/** A leveled log; entries below the threshold cost one comparison. */
export interface MountLog {
  readonly destination: LogDestination;
  readonly level: LogLevel;
  /** Whether entries of `level` are written. */
  enabled(level: LogLevel): boolean;
  write(level: LogLevel, message: string): void;
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  debug(message: string): void;
  /** Writes what is pending (syslog: waits for logger to exit, at most 2 s) and closes. */
  close(): Promise<void>;
}

export interface MountLogOptions {
  level: LogLevel;
  destination: LogDestination;
  /** Writes one line to stderr (the stderr destination, and trouble with the log itself). */
  stderr: (line: string) => void;
  /** Removes secrets from a line before it is written anywhere. */
  scrub?: (text: string) => string;
  /** The clock of file lines. */
  now?: () => Date;
  /** Where SYSLOG_TEST_ENV is read. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Set to HOST:PORT, --syslog sends to a syslog server over UDP there (logger --server HOST
 * --port PORT --udp) instead of /dev/log. Only tests use it: a test cannot own /dev/log.
 */
export const SYSLOG_TEST_ENV = 'REDISFS_TEST_SYSLOG_UDP';

/** logger(1) is told facility daemon (3): priority = 3 * 8 + severity. */
const SYSLOG_FACILITY = 3;
const SYSLOG_SEVERITY: Record<LogLevel, number> = { error: 3, warn: 4, info: 6, debug: 7 };
/** How long close() waits for logger(1) to send what it was given. */
const SYSLOG_CLOSE_MS = 2000;
/** The system log's socket that logger(1) writes to. */
const DEV_LOG = '/dev/log';

/** Most severe first, as LOG_LEVELS (not imported: args.ts imports this module). */
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** The syslog priority prefix of an entry (`<28>` for warn), as `logger --prio-prefix` reads it. */
export function syslogPriority(level: LogLevel): number {
  return SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY[level];
}

/** One entry as a log file holds it: ISO time, level, message. */
export function fileLine(time: Date, level: LogLevel, message: string): string {
  return `${time.toISOString()} ${level} ${message}`;
}

/** One entry as stderr shows it: `redisfs: warning: …`, `redisfs: error: …`, `redisfs: …`. */
export function stderrLine(level: LogLevel, message: string): string {
  const label = level === 'warn' ? 'warning: ' : level === 'error' ? 'error: ' : '';
  return `redisfs: ${label}${message}`;
}

/** Where the command line sends the log (--daemon sets logFile to the default before this). */
export function logDestinationOf(config: { logFile: string | undefined; syslog: boolean }): LogDestination {
  if (config.syslog) return { kind: 'syslog' };
  if (config.logFile !== undefined) return { kind: 'file', path: config.logFile };
  return { kind: 'stderr' };
}

/** What the printed line says about the log: the file, or "syslog". */
export function describeDestination(destination: LogDestination): string {
  return destination.kind === 'file' ? destination.path : destination.kind;
}

/** --debug means --log-level debug, whatever --log-level says. */
export function effectiveLevel(config: { debug: boolean; logLevel: LogLevel }): LogLevel {
  return config.debug ? 'debug' : config.logLevel;
}

/**
 * Opens the log. Throws a UsageError (exit 2) before anything is mounted when --syslog cannot
 * work here (no /dev/log, no logger(1)); a file that cannot be opened fails here too.
 */
export function openMountLog(options: MountLogOptions): MountLog {
  const scrub = options.scrub ?? ((text: string) => text);
  const now = options.now ?? (() => new Date());
  const sink = openSink(options, scrub, now);
  return new LeveledLog(options.destination, options.level, sink);
}

type Sink = { write(level: LogLevel, message: string): void; close(): Promise<void> };

function openSink(options: MountLogOptions, scrub: (text: string) => string, now: () => Date): Sink {
  const { destination } = options;
  switch (destination.kind) {
    case 'stderr':
      // The caller's stderr already scrubs (it is the CLI's own output).
      return { write: (level, message) => options.stderr(stderrLine(level, message)), close: async () => undefined };
    case 'file':
      return new FileSink(destination.path, scrub, now);
    case 'syslog':
      return new SyslogSink(options.env ?? process.env, scrub, options.stderr);
  }
}

class LeveledLog implements MountLog {
  private readonly rank: number;

  constructor(
    readonly destination: LogDestination,
    readonly level: LogLevel,
    private readonly sink: Sink,
  ) {
    this.rank = RANK[level];
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] <= this.rank;
  }

  write(level: LogLevel, message: string): void {
    if (RANK[level] <= this.rank) this.sink.write(level, message);
  }

  error(message: string): void {
    this.write('error', message);
  }

  warn(message: string): void {
    this.write('warn', message);
  }

  info(message: string): void {
    this.write('info', message);
  }

  debug(message: string): void {
    this.write('debug', message);
  }

  close(): Promise<void> {
    return this.sink.close();
  }
}

/** Appends synchronously: a line is in the file when write returns, also if the process dies next. */
class FileSink implements Sink {
  private fd: number | undefined;

  constructor(
    readonly path: string,
    private readonly scrub: (text: string) => string,
    private readonly now: () => Date,
  ) {
    this.fd = openSync(path, 'a', 0o600);
  }

  write(level: LogLevel, message: string): void {
    if (this.fd === undefined) return;
    try {
      writeSync(this.fd, `${fileLine(this.now(), level, this.scrub(message))}\n`);
    } catch {
      // A full disk: the log is the one place that cannot say so.
    }
  }

  async close(): Promise<void> {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Where logger(1) sends: the local system log, or (tests) a UDP syslog server. */
type SyslogTarget = { kind: 'local' } | { kind: 'udp'; host: string; port: string };

function syslogTargetOf(env: NodeJS.ProcessEnv): SyslogTarget {
  const udp = env[SYSLOG_TEST_ENV];
  if (udp) {
    const at = udp.lastIndexOf(':');
    return { kind: 'udp', host: udp.slice(0, at), port: udp.slice(at + 1) };
  }
  return { kind: 'local' };
}

/** Why --syslog cannot work on this machine, as the one line to print; undefined when it can. */
export function syslogProblem(env: NodeJS.ProcessEnv = process.env, devLog = DEV_LOG): string | undefined {
  if (!findExecutable('logger', env)) return '--syslog needs logger(1) (util-linux), which is not installed; use --log-file instead';
  if (syslogTargetOf(env).kind === 'local' && !existsSync(devLog)) {
    return `--syslog: ${devLog} does not exist (no journald or syslog daemon listens here); use --log-file instead`;
  }
  return undefined;
}

/**
 * One logger(1) process for the mount's lifetime, reading `<priority>message` lines on stdin
 * (--prio-prefix). It runs in its own process group, so that a Ctrl-C meant for the mount does
 * not kill it before the unmount is logged; it ends when its stdin closes (also when we die).
 */
class SyslogSink implements Sink {
  private readonly logger: ChildProcess;
  private exited = false;
  private told = false;

  constructor(
    env: NodeJS.ProcessEnv,
    private readonly scrub: (text: string) => string,
    private readonly stderr: (line: string) => void,
  ) {
    const problem = syslogProblem(env);
    if (problem) throw new UsageError(problem);
    const target = syslogTargetOf(env);
    const args = ['-t', 'redisfs', `--id=${process.pid}`, '--prio-prefix'];
    if (target.kind === 'udp') args.push('--server', target.host, '--port', target.port, '--udp');
    else args.push('--socket-errors=on');
    // By its path: under mount(8) there is no PATH to search.
    this.logger = spawn(findExecutable('logger') ?? 'logger', args, { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    this.logger.once('exit', (code, signal) => {
      this.exited = true;
      this.trouble(`the system log's logger(1) exited (${signal ?? `code ${code}`}); later log lines are lost`);
    });
    this.logger.once('error', (err) => {
      this.exited = true;
      this.trouble(`cannot run logger(1) for --syslog: ${err.message}`);
    });
    this.logger.stdin?.on('error', () => undefined); // EPIPE once logger is gone: told through 'exit'
    // Neither the process nor its pipe keeps the mount process alive.
    this.logger.unref();
    (this.logger.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  }

  write(level: LogLevel, message: string): void {
    if (this.exited) return;
    const priority = `<${syslogPriority(level)}>`;
    // logger reads one message per line: a multi-line message (a stack) becomes several.
    const lines = this.scrub(message).split('\n').filter((l) => l.trim() !== '');
    this.logger.stdin?.write(lines.map((l) => `${priority}${l}\n`).join(''));
  }

  async close(): Promise<void> {
    if (this.exited) return;
    this.told = true; // an exit from here on is ours
    const gone = new Promise<void>((resolveGone) => this.logger.once('exit', () => resolveGone()));
    this.logger.stdin?.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([gone, new Promise<void>((r) => (timer = setTimeout(r, SYSLOG_CLOSE_MS)))]);
    clearTimeout(timer);
    if (!this.exited) this.logger.kill();
  }

  private trouble(line: string): void {
    if (this.told) return;
    this.told = true;
    this.stderr(`redisfs: ${line}`);
  }
}

/**
 * The directory of default log files: $XDG_STATE_HOME/redisfs, or ~/.local/state/redisfs
 * (XDG_STATE_HOME counts only when absolute, as the XDG spec says).
 */
export function logStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const state = env.XDG_STATE_HOME;
  return join(state && isAbsolute(state) ? state : join(env.HOME || homedir(), '.local', 'state'), 'redisfs');
}

/** Longest file name made from a mountpoint before it is shortened (NAME_MAX is 255). */
const MAX_NAME = 200;

/**
 * The log file name of a mountpoint: its components joined with `-` (`/mnt/redisfs` →
 * `mnt-redisfs.log`); letters, digits, `.` and `_` kept, every other byte (a `-` too, so that
 * `/a-b` and `/a/b` differ) written `%XX` (`/srv/my-data` → `srv-my%2Ddata.log`), and a leading
 * `.` too, so the file is never hidden. A very long name keeps its start and gets a hash.
 */
export function logFileName(mountpoint: string): string {
  const parts = mountpoint.split('/').filter((p) => p !== '');
  let name = parts.map(escapeComponent).join('-') || '-';
  if (name.startsWith('.')) name = `%2E${name.slice(1)}`;
  if (name.length > MAX_NAME) {
    const hash = createHash('sha256').update(mountpoint).digest('hex').slice(0, 16);
    name = `${name.slice(0, MAX_NAME - 17)}~${hash}`;
  }
  return `${name}.log`;
}

function escapeComponent(part: string): string {
  let out = '';
  for (const ch of part) {
    if (/^[A-Za-z0-9._]$/.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The --daemon default log file of a mountpoint (see logStateDir and logFileName). */
export function defaultLogFile(mountpoint: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(logStateDir(env), logFileName(mountpoint));
}

/** Creates the directory of a default log file (0700, with its parents) if it is missing. */
export function ensureLogDir(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
}

/**
 * Why --log-file `file` (absolute) cannot be appended to, as the one usage line to print
 * (`--log-file /x/y.log: no such directory`); undefined when it can. Creates nothing.
 */
export function logFileProblem(file: string): string | undefined {
  const dir = dirname(file);
  const problem = (what: string) => `--log-file ${file}: ${what}`;
  try {
    if (!statSync(dir).isDirectory()) return problem(`${dir} is not a directory`);
  } catch (err) {
    return problem(errnoOf(err) === 'ENOENT' ? 'no such directory' : `cannot use ${dir} (${errnoOf(err)})`);
  }
  let exists = true;
  try {
    if (statSync(file).isDirectory()) return problem('is a directory');
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') return problem(`cannot use it (${errnoOf(err)})`);
    exists = false;
  }
  try {
    accessSync(exists ? file : dir, fsConstants.W_OK);
  } catch {
    return problem(exists ? 'not writable' : `cannot create it in ${dir} (permission denied)`);
  }
  return undefined;
}

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}
