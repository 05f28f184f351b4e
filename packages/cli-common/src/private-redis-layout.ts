/**
 * What the private redis-server's keeper and the commands that use it share: the files in the
 * data directory, the keeper's address and the one-line protocol spoken there.
 *
 * The keeper listens on a Linux abstract unix socket. Binding it is the lock that allows one
 * keeper (so one redis-server) per data directory: the kernel frees the name when the keeper dies,
 * so no stale lock file can outlive a crash, and two keepers can never both believe they hold it.
 * Its name is a hash of the data directory and of a random key stored there (readable only by the
 * user), so another user can neither guess it nor squat it.
 *
 * Protocol: a client sends one line, `use`, `status` or `stop`; the keeper answers one JSON line
 * ({@link KeeperReply}). A `use` answered while the server runs is a lease: the keeper counts the
 * open connection as a client until it closes, so the server is not stopped between the moment a
 * command finds it and the moment that command connects to it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { link, readFile, realpath, unlink, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Seconds with no client after which the keeper stops the server; 0: never. */
export const IDLE_ENV = 'REDISFS_SERVER_IDLE_SECONDS';
export const DEFAULT_IDLE_SECONDS = 600;

/** CLIENT SETNAME of the keeper's own connection and of status probes: not clients that keep the server up. */
export const KEEPER_CLIENT_NAME = 'redisfs-keeper';
export const PROBE_CLIENT_NAME = 'redisfs-probe';
export const NOT_USERS = [KEEPER_CLIENT_NAME, PROBE_CLIENT_NAME] as const;

/** `$XDG_DATA_HOME/redisfs/redis`, default `~/.local/share/redisfs/redis`. */
export function privateRedisDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME && env.XDG_DATA_HOME.startsWith('/') ? env.XDG_DATA_HOME : join(homedir(), '.local', 'share');
  return join(base, 'redisfs', 'redis');
}

/** The files of a private server's data directory. */
export interface PrivateRedisPaths {
  dataDir: string;
  /** The only way in: redis-server listens on no TCP port. */
  socket: string;
  /** redis-server's log, which the keeper writes to as well. */
  logFile: string;
  /** The keeper's pid while it runs. */
  keeperPidFile: string;
  /** redis-server's pid (written by redis-server). */
  serverPidFile: string;
  /** The random key hashed into the keeper's address. */
  keyFile: string;
}

export function privateRedisPaths(dataDir: string): PrivateRedisPaths {
  return {
    dataDir,
    socket: join(dataDir, 'redis.sock'),
    logFile: join(dataDir, 'redis.log'),
    keeperPidFile: join(dataDir, 'keeper.pid'),
    serverPidFile: join(dataDir, 'redis.pid'),
    keyFile: join(dataDir, 'keeper.key'),
  };
}

/**
 * The keeper's abstract socket address for `dataDir`. With `create`, makes the key when there is
 * none (two at once: one link() wins, both read its key); without, undefined when there is none.
 */
export async function keeperAddress(dataDir: string, create: boolean): Promise<string | undefined> {
  const { keyFile } = privateRedisPaths(dataDir);
  let key = await readKey(keyFile);
  if (key === undefined) {
    if (!create) return undefined;
    const temp = `${keyFile}.${process.pid}.${randomBytes(4).toString('hex')}`;
    await writeFile(temp, randomBytes(16).toString('hex'), { mode: 0o600 });
    try {
      await link(temp, keyFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await unlink(temp);
    }
    key = await readKey(keyFile);
    if (key === undefined) throw new Error(`cannot read ${keyFile}`);
  }
  const hash = createHash('sha256').update(`${await realpath(dataDir)}\0${key}`).digest('hex').slice(0, 32);
  return `\0redisfs-keeper-${process.getuid?.() ?? 0}-${hash}`;
}

async function readKey(keyFile: string): Promise<string | undefined> {
  try {
    const key = (await readFile(keyFile, 'utf8')).trim();
    return key === '' ? undefined : key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** What a keeper says about itself. */
export interface KeeperState {
  state: 'starting' | 'running' | 'stopping';
  keeperPid: number;
  /** Once known (running). */
  serverPid: number | undefined;
  /** Whether the keeper found the server already running (left by a keeper that died) instead of starting it. */
  adopted: boolean;
  /** Seconds with no client after which it stops the server; 0: never. */
  idleSeconds: number;
  /** Open `use` leases. */
  leases: number;
  /** Epoch ms of the last check of the clients, and since when none was there (null: some were). */
  checkedAt: number | undefined;
  idleSince: number | null;
}

/** The answer to a `stop` request. */
export type StopAnswer =
  | { stopping: true }
  | { stopping: false; reason: 'clients'; clients: number }
  | { stopping: false; reason: 'starting' }
  | { stopping: false; reason: 'failed'; message: string };

export interface KeeperReply {
  keeper: KeeperState;
  stop?: StopAnswer;
}

export type KeeperRequest = 'use' | 'status' | 'stop';

/**
 * Sends `request` to the keeper at `address` and reads its answer. Undefined when no keeper
 * listens there. For a `use` answered `running`, the returned socket is the lease (close it to
 * release); otherwise it is already closed.
 */
export async function askKeeper(
  address: string,
  request: KeeperRequest,
  timeoutMs = 10_000,
): Promise<{ reply: KeeperReply; lease: Socket } | undefined> {
  return new Promise((resolveAsk, rejectAsk) => {
    const socket = connect(address);
    let text = '';
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => {
      socket.destroy();
      settle(() => rejectAsk(new Error(`the private redis-server's keeper did not answer within ${timeoutMs} ms`)));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${request}\n`));
    socket.on('data', (chunk: string) => {
      text += chunk;
      const eol = text.indexOf('\n');
      if (eol < 0) return;
      let reply: KeeperReply;
      try {
        reply = JSON.parse(text.slice(0, eol)) as KeeperReply;
      } catch {
        socket.destroy();
        settle(() => rejectAsk(new Error('the private redis-server\'s keeper sent an unreadable answer')));
        return;
      }
      socket.removeAllListeners('data');
      if (!(request === 'use' && reply.keeper.state === 'running')) socket.destroy();
      settle(() => resolveAsk({ reply, lease: socket }));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // ECONNREFUSED: no keeper; ECONNRESET, EPIPE: one exiting. Once settled, a lease's error is
      // the keeper going away: nothing to do.
      if (['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE'].includes(err.code ?? '')) settle(() => resolveAsk(undefined));
      else settle(() => rejectAsk(err));
    });
    socket.once('close', () => settle(() => resolveAsk(undefined)));
  });
}

/** Whether process `pid` exists. */
export function isAlive(pid: number | undefined): boolean {
  if (pid === undefined || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** "10 minutes", "2 seconds", "1 hour". */
export function describeSeconds(seconds: number): string {
  const unit = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
  if (seconds % 3600 === 0) return unit(seconds / 3600, 'hour');
  if (seconds % 60 === 0) return unit(seconds / 60, 'minute');
  return unit(seconds, 'second');
}
