/**
 * --daemon: the parent re-runs redisfs as a detached child doing the same mount in the
 * foreground, waits until the mount is ready (the child says so over IPC, or the mountpoint shows
 * in /proc/self/mountinfo), prints the child's pid and returns. A child that fails reports its
 * error line and exit code, which the parent passes on.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { EXIT_FAILURE } from '@redisfs/cli-common';
import { daemonChildArgs, type MountConfig } from './args.js';
import { isMountPoint } from './mountpoint.js';
import { waitFor, WaitTimeoutError } from './wait-for.js';

/** Set in the child's environment: report over IPC instead of only printing. */
export const DAEMON_CHILD_ENV = 'REDISFS_DAEMON_CHILD';

/** Messages from the child to the parent. */
export type DaemonMessage = { type: 'ready' } | { type: 'error'; message: string; exitCode: number };

export type DaemonOutcome = { ok: true; pid: number } | { ok: false; message: string; exitCode: number };

/**
 * Spawns the child and waits up to `timeoutMs` for the mount. `script` is the CLI entry
 * (process.argv[1]).
 */
export async function startDaemon(config: MountConfig, script: string, timeoutMs = 60_000): Promise<DaemonOutcome> {
  const { args, env } = daemonChildArgs(config);
  const out = config.logFile ? openSync(config.logFile, 'a', 0o600) : 'ignore';
  const child = spawn(process.execPath, [...process.execArgv, script, ...args], {
    detached: true,
    stdio: ['ignore', out, out, 'ipc'],
    env: { ...process.env, ...env, [DAEMON_CHILD_ENV]: '1' },
  });
  if (typeof out === 'number') closeSync(out);
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
  const see = config.logFile ? ` (see ${config.logFile})` : ' (run without --daemon to see why)';
  let outcome: DaemonOutcome;
  try {
    outcome = await waitFor<DaemonOutcome>(
      () => {
        if (message?.type === 'error') return { ok: false, message: message.message, exitCode: message.exitCode };
        if (message?.type === 'ready' || (exit === undefined && isMountPoint(config.mountpoint))) {
          return { ok: true, pid: child.pid ?? 0 };
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

/** In a daemon child: tell the parent. Resolves once sent (or at once when not a daemon child). */
export async function reportToParent(message: DaemonMessage): Promise<void> {
  if (process.env[DAEMON_CHILD_ENV] !== '1' || !process.send || !process.connected) return;
  await new Promise<void>((resolveSent) => {
    process.send?.(message, undefined, {}, () => resolveSent());
  });
  // The parent is gone after this; the channel must not keep a reference to it.
  if (message.type === 'ready' && process.connected) process.disconnect();
}
