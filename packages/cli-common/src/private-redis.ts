/**
 * The private redis-server: a per-user service that every redisfs command told no Redis address
 * uses when nothing answers on 127.0.0.1:6379. It is started on demand (by a mount, fsck, upgrade
 * or redisfs-snapshot), shared by all of them, and kept by a small detached process (see
 * private-redis-keeper.ts) that stops it once no client has been connected for the idle time
 * (default 10 minutes; `REDISFS_SERVER_IDLE_SECONDS`, 0 for never), or on `redisfs server stop`.
 * Its data (AOF and RDB), unix socket and log are in `$XDG_DATA_HOME/redisfs/redis`.
 *
 * Process management only, no filesystem logic. The server is asked things over its unix socket
 * with a few lines of RESP (only the store package uses a Redis client).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdirSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UsageError } from './errors.js';
import { DEFAULT_REDIS, pingRedis } from './local-redis.js';
import {
  DEFAULT_IDLE_SECONDS,
  IDLE_ENV,
  NOT_USERS,
  PROBE_CLIENT_NAME,
  askKeeper,
  isAlive,
  keeperAddress,
  privateRedisDir,
  privateRedisPaths,
  type KeeperState,
  type PrivateRedisPaths,
} from './private-redis-layout.js';
import { RespClosedError, RespConnection, RespReplyError, countClients, parseInfo } from './private-redis-resp.js';

/** Linux sun_path holds 108 bytes including the final NUL. */
const SOCKET_PATH_MAX = 107;

export interface PrivateRedisOptions {
  /** Default: {@link privateRedisDir} of `env`. */
  dataDir?: string;
  /** redis-server binary; default: found on PATH. */
  binary?: string;
  /** Idle time of a server started by this call, in seconds (0: never); default `REDISFS_SERVER_IDLE_SECONDS` or 600. */
  idleSeconds?: number;
  /** How long to wait for the server to answer; default 60 s (it may replay a large AOF). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * The running private server, held for this process: while held (a lease), the server is not
 * stopped. Release it once connected, or when done.
 */
export interface PrivateRedis extends AsyncDisposable {
  /** Unix socket to connect to. */
  readonly socket: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** Whether this call started the server (false: it was running). */
  readonly started: boolean;
  readonly serverPid: number | undefined;
  /** The running keeper's idle time in seconds (0: never stops when idle). */
  readonly idleSeconds: number;
  release(): void;
}

/**
 * For a command told no Redis address: undefined when something answers on 127.0.0.1:6379 (use
 * that), otherwise the private server, started if need be ({@link ensurePrivateRedis}).
 */
export async function resolveDefaultRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis | undefined> {
  if ((await pingRedis(DEFAULT_REDIS)) !== 'none') return undefined;
  return ensurePrivateRedis(options);
}

/**
 * Starts the private server unless it runs (two calls at once start one), waits until it answers,
 * and holds it until released. UsageError when no redis-server is installed or the socket path is
 * too long.
 */
export async function ensurePrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const env = options.env ?? process.env;
  const paths = privateRedisPaths(options.dataDir ?? privateRedisDir(env));
  if (Buffer.byteLength(paths.socket) > SOCKET_PATH_MAX) {
    throw new UsageError(`the socket path ${paths.socket} is too long for a unix socket; set XDG_DATA_HOME to a shorter directory`);
  }
  const idleSeconds = options.idleSeconds ?? idleSecondsOf(env);
  mkdirSync(paths.dataDir, { recursive: true, mode: 0o700 });
  const address = (await keeperAddress(paths.dataDir, true)) ?? '';
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let keeper: SpawnedKeeper | undefined;
  try {
    for (;;) {
      const answer = await askKeeper(address, 'use');
      if (answer?.reply.keeper.state === 'running') {
        const { keeperPid, adopted } = answer.reply.keeper;
        // Ours, slow to come up, would start a second server once this one goes: it is not needed.
        if (keeper && keeper.pid !== keeperPid) keeper.cancel();
        return lease(paths, answer.lease, answer.reply.keeper, keeper?.pid === keeperPid && !adopted);
      }
      if (keeper?.failure) throw new Error(keeper.failure);
      // No keeper (or ours found another one, which then went away): start one.
      if (!answer && (!keeper || keeper.exited)) keeper = await spawnKeeper(paths, options.binary, idleSeconds, env);
      if (Date.now() >= deadline) {
        throw new Error(`the private redis-server did not answer within ${timeoutMs / 1000} s (see ${paths.logFile})`);
      }
      await pause(100);
    }
  } finally {
    keeper?.detach();
  }
}

function lease(paths: PrivateRedisPaths, socket: Socket, keeper: KeeperState, started: boolean): PrivateRedis {
  // The lease must not keep a command alive, and the keeper going away is no error of ours.
  socket.unref();
  socket.on('error', () => {});
  const release = (): void => {
    socket.destroy();
  };
  return {
    socket: paths.socket,
    dataDir: paths.dataDir,
    logFile: paths.logFile,
    started,
    serverPid: keeper.serverPid,
    idleSeconds: keeper.idleSeconds,
    release,
    [Symbol.asyncDispose]: async () => release(),
  };
}

/** `REDISFS_SERVER_IDLE_SECONDS`: a whole number of seconds, 0 for never. */
export function idleSecondsOf(env: NodeJS.ProcessEnv = process.env): number {
  const value = env[IDLE_ENV];
  if (value === undefined || value === '') return DEFAULT_IDLE_SECONDS;
  if (!/^\d{1,9}$/.test(value)) throw new UsageError(`${IDLE_ENV} must be a whole number of seconds (0: never stop when idle)`);
  return Number(value);
}

interface SpawnedKeeper {
  readonly pid: number | undefined;
  readonly exited: boolean;
  /** Why it could not start the server, once it said so or exited in error. */
  readonly failure: string | undefined;
  /** Lets this process exit without it. */
  detach(): void;
  /** Stops it (when another keeper answered instead). */
  cancel(): void;
}

async function spawnKeeper(paths: PrivateRedisPaths, binaryOption: string | undefined, idleSeconds: number, env: NodeJS.ProcessEnv): Promise<SpawnedKeeper> {
  const binary = binaryOption ?? findExecutable('redis-server', env);
  // No binary is fine only when a server left running is to be adopted.
  if (!binary && (await pingRedis({ path: paths.socket })) === 'none') {
    throw new UsageError(
      'no Redis server at 127.0.0.1:6379 and no redis-server installed to start one: ' +
        'install it (apt-get install redis-server / brew install redis) or pass --url, --host/--port or --socket',
    );
  }
  const logFd = openSync(paths.logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      [...keeperCommand(), '--data-dir', paths.dataDir, '--binary', binary ?? '', '--idle-seconds', String(idleSeconds)],
      // Own session: a terminal's Ctrl-C or hangup must not reach the server that other mounts use.
      { detached: true, cwd: paths.dataDir, stdio: ['ignore', logFd, logFd, 'ipc'], env: keeperEnv(env) },
    );
  } finally {
    closeSync(logFd);
  }
  const state = { exited: false, failure: undefined as string | undefined };
  child.on('message', (m: { type: string; message?: string }) => {
    if (m.type === 'error') state.failure = `cannot start the private redis-server: ${m.message ?? 'unknown error'} (see ${paths.logFile})`;
  });
  child.once('error', (err) => {
    state.exited = true;
    state.failure ??= `cannot start the private redis-server's keeper: ${err.message}`;
  });
  child.once('exit', (code, signal) => {
    state.exited = true;
    if (code !== 0) state.failure ??= `the private redis-server's keeper exited (${signal ?? `code ${code}`}); see ${paths.logFile}`;
  });
  return {
    pid: child.pid,
    get exited() {
      return state.exited;
    },
    get failure() {
      return state.failure;
    },
    detach() {
      if (child.connected) child.disconnect();
      child.unref();
    },
    cancel() {
      if (!state.exited) child.kill('SIGTERM');
    },
  };
}

/** node arguments that run the keeper: its built file, or from source (the unit tests) through tsx. */
function keeperCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    const tsx = createRequire(import.meta.url).resolve('tsx');
    return ['--import', pathToFileURL(tsx).href, join(dirname(here), 'private-redis-keeper.ts')];
  }
  return [join(dirname(here), 'private-redis-keeper.js')];
}

/** The keeper needs PATH and the like, never a Redis password. */
function keeperEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { REDISFS_URL: _url, REDISFS_DAEMON_CHILD: _child, ...rest } = env;
  return rest;
}

/** Where commands are looked for when PATH is unset: mount(8) runs a helper with no PATH at all. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The first executable `name` on PATH (the standard directories when PATH is unset), or undefined. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? DEFAULT_PATH).split(delimiter)) {
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

/** What `redisfs server status` shows. */
export type PrivateRedisStatus = ({ running: false; keeper: KeeperState | undefined } | RunningStatus) & {
  dataDir: string;
  socket: string;
  logFile: string;
};

export interface RunningStatus {
  running: true;
  serverPid: number;
  /** undefined: no keeper (a server left by one that died; the next command that uses it adopts it). */
  keeper: KeeperState | undefined;
  /** Still loading its data (it answers LOADING to everything else). */
  loading: boolean;
  uptimeSeconds: number;
  usedMemoryBytes: number;
  aofEnabled: boolean;
  /** `ok` or `err`. */
  aofLastWriteStatus: string;
  /** Epoch seconds; 0: never. */
  rdbLastSaveTime: number;
  rdbLastSaveStatus: string;
  changesSinceLastSave: number;
  /** Connected clients other than the keeper and status probes, plus leases. */
  clients: number;
}

/** Where and how the private server runs. Starts nothing, creates nothing. */
export async function privateRedisStatus(options: Pick<PrivateRedisOptions, 'dataDir' | 'env'> = {}): Promise<PrivateRedisStatus> {
  const paths = privateRedisPaths(options.dataDir ?? privateRedisDir(options.env));
  const where = { dataDir: paths.dataDir, socket: paths.socket, logFile: paths.logFile };
  const keeper = await currentKeeper(paths);
  let conn: RespConnection;
  try {
    conn = await probe(paths.socket);
  } catch {
    return { running: false, keeper, ...where };
  }
  try {
    const info = parseInfo(await conn.text(['INFO', 'server', 'persistence', 'memory'], 10_000));
    const loading = info.get('loading') === '1';
    const clients = loading ? 0 : countClients(await conn.text(['CLIENT', 'LIST'], 10_000), NOT_USERS);
    const num = (field: string) => Number(info.get(field) ?? 0);
    return {
      running: true,
      ...where,
      serverPid: num('process_id'),
      keeper,
      loading,
      uptimeSeconds: num('uptime_in_seconds'),
      usedMemoryBytes: num('used_memory'),
      aofEnabled: info.get('aof_enabled') === '1',
      aofLastWriteStatus: info.get('aof_last_write_status') ?? 'unknown',
      rdbLastSaveTime: num('rdb_last_save_time'),
      rdbLastSaveStatus: info.get('rdb_last_bgsave_status') ?? 'unknown',
      changesSinceLastSave: num('rdb_changes_since_last_save'),
      clients: clients + (keeper?.leases ?? 0),
    };
  } finally {
    conn.close();
  }
}

/** What {@link stopPrivateRedis} did. */
export type StopOutcome = { outcome: 'stopped' } | { outcome: 'not-running' } | { outcome: 'refused'; clients: number };

/**
 * Stops the private server unless clients (mounts, commands) use it, and waits until it is gone.
 * Throws when it refuses to stop (a failed save) or does not go within `timeoutMs` (default 120 s).
 */
export async function stopPrivateRedis(options: Pick<PrivateRedisOptions, 'dataDir' | 'env' | 'timeoutMs'> = {}): Promise<StopOutcome> {
  const paths = privateRedisPaths(options.dataDir ?? privateRedisDir(options.env));
  const timeoutMs = options.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  const address = await keeperAddress(paths.dataDir, false).catch(() => undefined);
  let serverPid: number | undefined;
  for (;;) {
    const answer = address === undefined ? undefined : await askKeeper(address, 'stop');
    if (answer) {
      const stop = answer.reply.stop;
      serverPid = answer.reply.keeper.serverPid;
      if (stop?.stopping) break;
      if (stop?.reason === 'clients') return { outcome: 'refused', clients: stop.clients };
      if (stop?.reason === 'failed') throw new Error(`the private redis-server did not stop: ${stop.message}`);
      // starting: ask again once it runs
    } else {
      // No keeper: nothing, or a server left by one that died, which this process stops itself.
      const orphan = await stopOrphan(paths.socket);
      if (orphan.outcome !== 'stopped') return orphan;
      serverPid = orphan.serverPid;
      break;
    }
    if (Date.now() >= deadline) throw new Error(`the private redis-server is still starting after ${timeoutMs / 1000} s`);
    await pause(100);
  }
  while (isAlive(serverPid) || (address !== undefined && (await askKeeper(address, 'status')) !== undefined)) {
    if (Date.now() >= deadline) throw new Error(`the private redis-server is still running after ${timeoutMs / 1000} s (see ${paths.logFile})`);
    await pause(100);
  }
  return { outcome: 'stopped' };
}

async function stopOrphan(
  socket: string,
): Promise<{ outcome: 'not-running' } | { outcome: 'refused'; clients: number } | { outcome: 'stopped'; serverPid: number }> {
  let conn: RespConnection;
  try {
    conn = await probe(socket);
  } catch {
    return { outcome: 'not-running' };
  }
  try {
    const serverPid = Number(parseInfo(await conn.text(['INFO', 'server'], 10_000)).get('process_id'));
    const clients = countClients(await conn.text(['CLIENT', 'LIST'], 10_000), NOT_USERS);
    if (clients > 0) return { outcome: 'refused', clients };
    try {
      await conn.command(['SHUTDOWN']);
    } catch (err) {
      if (!(err instanceof RespClosedError)) throw new Error(`the private redis-server did not stop: ${(err as Error).message}`);
    }
    return { outcome: 'stopped', serverPid };
  } finally {
    conn.close();
  }
}

/** The keeper's state, or undefined when none runs. */
async function currentKeeper(paths: PrivateRedisPaths): Promise<KeeperState | undefined> {
  const address = await keeperAddress(paths.dataDir, false).catch(() => undefined);
  if (address === undefined) return undefined;
  return (await askKeeper(address, 'status'))?.reply.keeper;
}

/** A connection named so that the keeper does not count it as a client. */
async function probe(socket: string): Promise<RespConnection> {
  const conn = await RespConnection.open(socket);
  try {
    await conn.command(['CLIENT', 'SETNAME', PROBE_CLIENT_NAME], 10_000);
  } catch (err) {
    // A server still loading its data answers LOADING: it runs, unnamed probes are fine then.
    if (!(err instanceof RespReplyError)) {
      conn.close();
      throw err;
    }
  }
  return conn;
}

const pause = (ms: number) => new Promise((resolvePause) => setTimeout(resolvePause, ms));

export { privateRedisDir, IDLE_ENV, DEFAULT_IDLE_SECONDS, type KeeperState } from './private-redis-layout.js';
