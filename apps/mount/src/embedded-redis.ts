/**
 * The private Redis server redisfs starts when no server is given and none answers on
 * 127.0.0.1:6379. Generic process management, no filesystem logic: a persistent redis-server
 * (append-only file) in the user's data directory, reachable only through a unix socket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { UsageError, embeddedDataDir, pingRedis } from '@redisfs/cli-common';
import { waitFor } from './wait-for.js';

/** Linux sun_path holds 108 bytes including the final NUL. */
const SOCKET_PATH_MAX = 107;

/** The first executable `name` on PATH, or undefined. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A private redis-server, running. */
export interface StartedEmbeddedRedis {
  /** Unix socket to connect to. */
  readonly socket: string;
  readonly dataDir: string;
  /** Whether this process started it (false: one left running earlier was reused). */
  readonly owned: boolean;
  /** Stops the server if this process started it: SIGTERM (Redis saves and exits), then waits. */
  stop(): Promise<void>;
}

export interface EmbeddedRedisOptions {
  dataDir?: string;
  /** redis-server binary; default: found on PATH. */
  binary?: string;
  /** How long to wait for the server to answer; default 30 s (it may replay a large AOF). */
  startTimeoutMs?: number;
  /** How long to wait for it to exit on stop before SIGKILL; default 60 s. */
  stopTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts (or reuses) the private redis-server and waits until it answers PING.
 * UsageError when no redis-server binary is installed.
 */
export async function startEmbeddedRedis(options: EmbeddedRedisOptions = {}): Promise<StartedEmbeddedRedis> {
  const env = options.env ?? process.env;
  const dataDir = options.dataDir ?? embeddedDataDir(env);
  const socket = join(dataDir, 'redis.sock');
  if (Buffer.byteLength(socket) > SOCKET_PATH_MAX) {
    throw new UsageError(`the socket path ${socket} is too long for a unix socket; set XDG_DATA_HOME to a shorter directory`);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // A server left running (by a redisfs that was killed, or another mount) keeps the data dir's
  // files open; starting a second one on the same AOF would corrupt it. Reuse it instead.
  if ((await pingRedis({ path: socket })) !== 'none') {
    return { socket, dataDir, owned: false, stop: async () => {} };
  }
  const binary = options.binary ?? findExecutable('redis-server', env);
  if (!binary) {
    throw new UsageError(
      'no Redis server at 127.0.0.1:6379 and no redis-server installed to start one: ' +
        'install it (apt-get install redis-server / brew install redis) or pass --url, --host/--port or --socket',
    );
  }
  const logFile = join(dataDir, 'redis.log');
  const child = spawn(
    binary,
    [
      '--port', '0',
      '--unixsocket', socket,
      '--unixsocketperm', '700',
      '--dir', dataDir,
      '--appendonly', 'yes',
      '--daemonize', 'no',
      '--logfile', logFile,
    ],
    // Own process group: a terminal's Ctrl-C must reach redisfs only, which unmounts first and
    // stops the server after.
    { detached: true, stdio: 'ignore' },
  );
  const exited = exitOf(child);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  try {
    await waitFor(
      async () => {
        if (spawnError) throw new Error(`cannot start ${binary}: ${spawnError.message}`);
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`${binary} exited (${child.exitCode ?? child.signalCode}) while starting; see ${logFile}`);
        }
        return (await pingRedis({ path: socket })) === 'pong';
      },
      { timeoutMs: options.startTimeoutMs ?? 30_000, intervalMs: 100, what: `the private redis-server (log: ${logFile})` },
    );
  } catch (err) {
    await terminate(child, exited, 5_000);
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    socket,
    dataDir,
    owned: true,
    stop: () => (stopping ??= terminate(child, exited, options.stopTimeoutMs ?? 60_000)),
  };
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolveExit) => {
    if (child.exitCode !== null || child.signalCode !== null) resolveExit();
    else child.once('exit', () => resolveExit());
  });
}

/** SIGTERM (Redis flushes the AOF and writes its RDB), wait; SIGKILL after `timeoutMs`. */
async function terminate(child: ChildProcess, exited: Promise<void>, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => {
    timer = setTimeout(() => r('late'), timeoutMs);
  });
  const outcome = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (outcome === 'late') {
    child.kill('SIGKILL');
    await exited;
  }
}
