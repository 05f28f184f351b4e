/**
 * --daemon: the parent re-runs redisfs as a detached child doing the same mount in the
 * foreground, waits until the mount is ready (the child says so over IPC, or the mountpoint shows
 * in /proc/self/mountinfo), prints the child's pid and returns. A child that fails reports its
 * error line and exit code, which the parent passes on.
 *
 * The child logs to --log-file, or by default to a file of its own (log.ts, defaultLogFile),
 * or with --syslog to the system log; its stderr goes to that file too, so that whatever the
 * process prints itself (a crash) is kept. The Redis URL, which may hold a password, reaches
 * the child over the IPC channel (the first message), never through its command line or
 * environment: both stay readable in /proc/<pid> for as long as the mount runs.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { EXIT_FAILURE, URL_ENV } from '@redisfs/cli-common';
import { daemonChildArgs, type MountConfig } from './args.js';
import { defaultLogFile, ensureLogDir } from './log.js';
import { isMountPoint } from './mountpoint.js';
import { waitFor, WaitTimeoutError } from './wait-for.js';

/** Set in the child's environment: report over IPC instead of only printing. */
export const DAEMON_CHILD_ENV = 'REDISFS_DAEMON_CHILD';

/** Messages from the child to the parent. */
export type DaemonMessage = { type: 'ready' } | { type: 'error'; message: string; exitCode: number };

/** The one message from the parent to the child: the environment to parse its command line with. */
export type ParentMessage = { type: 'env'; env: Record<string, string> };

/** How long a child waits for the parent's ParentMessage. */
const ENV_TIMEOUT_MS = 10_000;

/** `log`: where the mount logs, the file's path or "syslog". */
export type DaemonOutcome = { ok: true; pid: number; log: string } | { ok: false; message: string; exitCode: number };

/** Whether this process is a --daemon child (see startDaemon). */
export function isDaemonChild(): boolean {
  return process.env[DAEMON_CHILD_ENV] === '1';
}

/**
 * Spawns the child and waits up to `timeoutMs` for the mount. `script` is the CLI entry
 * (process.argv[1]).
 */
export async function startDaemon(config: MountConfig, script: string, timeoutMs = 60_000): Promise<DaemonOutcome> {
  const logFile = config.syslog ? undefined : (config.logFile ?? defaultLogFile(config.mountpoint));
  let out: number | 'ignore' = 'ignore';
  if (logFile !== undefined) {
    try {
      if (config.logFile === undefined) ensureLogDir(logFile);
      out = openSync(logFile, 'a', 0o600);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? String(err);
      return { ok: false, message: `cannot open the log file ${logFile} (${why}): give --log-file FILE or --syslog`, exitCode: EXIT_FAILURE };
    }
  }
  const { args, env } = daemonChildArgs({ ...config, logFile });
  const childEnv: NodeJS.ProcessEnv = { ...process.env, [DAEMON_CHILD_ENV]: '1' };
  delete childEnv[URL_ENV];
  const child = spawn(process.execPath, [...process.execArgv, script, ...args], {
    detached: true,
    // stdout says nothing the log does not; stderr catches what the process prints itself.
    stdio: ['ignore', 'ignore', out, 'ipc'],
    env: childEnv,
  });
  if (typeof out === 'number') closeSync(out);
  const log = logFile ?? 'syslog';
  let message: DaemonMessage | undefined;
  let exit: string | undefined;
  let spawnError: Error | undefined;
  child.on('message', (m: DaemonMessage) => {
    message ??= m;
  });
  child.once('exit', (code, signal) => {
    exit = signal ? `signal ${signal}` : `code ${code}`;
  });
  child.once('error', (err) => {
    spawnError = err;
  });
  if (child.connected) {
    // Held by the child's channel until it listens (readChildEnv). A failed send needs no
    // handling here: the child then exits, which the wait below reports.
    child.send({ type: 'env', env } satisfies ParentMessage, () => undefined);
  }
  const see = logFile !== undefined ? ` (see ${logFile})` : ' (see the system log: journalctl -t redisfs)';
  let outcome: DaemonOutcome;
  try {
    outcome = await waitFor<DaemonOutcome>(
      () => {
        if (message?.type === 'error') return { ok: false, message: message.message, exitCode: message.exitCode };
        if (message?.type === 'ready' || (exit === undefined && isMountPoint(config.mountpoint))) {
          return { ok: true, pid: child.pid ?? 0, log };
        }
        if (spawnError) return { ok: false, message: `cannot start the mount process: ${spawnError.message}`, exitCode: EXIT_FAILURE };
        if (exit !== undefined) {
          return { ok: false, message: `the mount process exited (${exit}) before the mount was ready${see}`, exitCode: EXIT_FAILURE };
        }
        return undefined;
      },
      { timeoutMs, intervalMs: 50, what: `the mount at ${config.mountpoint}` },
    );
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    child.kill('SIGTERM');
    outcome = { ok: false, message: `${err.message}${see}`, exitCode: EXIT_FAILURE };
  }
  if (child.connected) child.disconnect();
  child.unref();
  return outcome;
}

/**
 * The environment to parse the command line with: in a daemon child, process.env plus what the
 * parent sent (the Redis URL); elsewhere process.env itself.
 */
export async function readChildEnv(timeoutMs = ENV_TIMEOUT_MS): Promise<NodeJS.ProcessEnv> {
  if (!isDaemonChild() || !process.connected) return process.env;
  const message = await new Promise<ParentMessage | undefined>((resolveMessage) => {
    const done = (m: ParentMessage | undefined): void => {
      clearTimeout(timer);
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
      resolveMessage(m);
    };
    const onMessage = (m: ParentMessage): void => done(m);
    const onDisconnect = (): void => done(undefined);
    const timer = setTimeout(() => done(undefined), timeoutMs);
    process.on('message', onMessage);
    process.on('disconnect', onDisconnect);
  });
  if (message?.type !== 'env') throw new Error('the redisfs --daemon parent did not send the mount settings');
  return { ...process.env, ...message.env };
}

/** In a daemon child: tell the parent. Resolves once sent (or at once when not a daemon child). */
export async function reportToParent(message: DaemonMessage): Promise<void> {
  if (!isDaemonChild() || !process.send || !process.connected) return;
  await new Promise<void>((resolveSent) => {
    process.send?.(message, undefined, {}, () => resolveSent());
  });
  // The parent is gone after this; the channel must not keep a reference to it.
  if (message.type === 'ready' && process.connected) process.disconnect();
}
