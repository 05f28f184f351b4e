/**
 * A real Redis for one test file: a testcontainers RedisContainer when a container runtime
 * answers, else a `redis-server` from PATH on a free port with its own temp dir. Never a mock.
 *
 *   await using redis = await startRedis();
 *   // redis.url, redis.host, redis.port, redis.socket (local only)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { OutputTail, isRunning, own, stopChild } from './child.js';
import { freePort } from './free-port.js';
import { disposeWhenTestEnds } from './lifecycle.js';
import { containerRuntimeAnswers, findExecutable } from './prerequisites.js';
import { waitFor } from './wait-for.js';

/** Where a Redis can be reached. */
export interface RedisAddress {
  host: string;
  port: number;
}

export interface StartRedisOptions {
  /**
   * Start as a replica of this server. Passing a StartedRedis uses its `replicationAddress`
   * (a container cannot reach another container through the host's mapped port).
   */
  replicaOf?: RedisAddress | StartedRedis;
  /** Extra redis-server arguments, e.g. ['--maxmemory', '10mb']. */
  args?: string[];
  /** How long to wait for PING to answer; 20 s unless told. */
  startupTimeoutMs?: number;
}

/** A running Redis. Stop it with `stop()` or let `await using` do it. */
export interface StartedRedis extends AsyncDisposable {
  readonly kind: 'local' | 'container';
  readonly host: string;
  readonly port: number;
  /** redis://host:port */
  readonly url: string;
  /** A unix socket path (local servers only). */
  readonly socket?: string;
  /** The address another server started by this harness uses to replicate from this one. */
  readonly replicationAddress: RedisAddress;
  /** The server's recent log output, for failure messages. */
  logs(): string;
  /** Stops the server and waits until it is gone. Idempotent. */
  stop(): Promise<void>;
}

const LOCAL_HOST = '127.0.0.1';

/** A RESP2 reply as `redisCommand` returns it: error replies reject instead. */
export type RedisReply = string | number | null | RedisReply[];

/** Thrown for a Redis error reply (`-ERR ...`, `-MOVED ...`); `message` is the reply's text. */
export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError';
}

/** Parses one RESP2 value at `at`; undefined while the buffer holds only part of it. */
function parseReply(buf: Buffer, at: number): { value: RedisReply | RedisReplyError; end: number } | undefined {
  const lineEnd = buf.indexOf('\r\n', at);
  if (lineEnd < 0) return undefined;
  const line = buf.toString('utf8', at + 1, lineEnd);
  const next = lineEnd + 2;
  switch (String.fromCharCode(buf[at] ?? 0)) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new RedisReplyError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (buf.length < next + length + 2) return undefined;
      return { value: buf.toString('utf8', next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RedisReply[] = [];
      let end = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, end);
        if (!item) return undefined;
        // An error inside an array (EXEC) stays a value: tests look at it, the reply as a whole succeeded.
        items.push(item.value instanceof RedisReplyError ? item.value.message : item.value);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`not a RESP reply: ${JSON.stringify(buf.toString('utf8', at, Math.min(buf.length, at + 80)))}`);
  }
}

/**
 * Sends one command over a fresh connection and resolves with its reply; an error reply rejects
 * with RedisReplyError, a refused connection or no answer within `timeoutMs` rejects too. No client
 * state survives the call, so it is safe against servers a test kills (node-redis would reconnect).
 */
export function redisCommand(address: RedisAddress, args: readonly (string | number)[], timeoutMs = 5000): Promise<RedisReply> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address.host, port: address.port, timeout: timeoutMs });
    let received = Buffer.alloc(0);
    const settle = (fn: () => void) => (socket.destroy(), fn());
    socket.once('connect', () => {
      const parts = args.map(String);
      socket.write(`*${parts.length}\r\n${parts.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      let parsed: ReturnType<typeof parseReply>;
      try {
        parsed = parseReply(received, 0);
      } catch (err) {
        settle(() => reject(err));
        return;
      }
      if (!parsed) return;
      const { value } = parsed;
      settle(() => (value instanceof RedisReplyError ? reject(value) : resolve(value)));
    });
    const what = `${args[0]} to ${address.host}:${address.port}`;
    socket.once('timeout', () => settle(() => reject(new Error(`no answer to ${what} within ${timeoutMs} ms`))));
    socket.once('close', () => reject(new Error(`connection closed before ${what} was answered`)));
    socket.once('error', reject);
  });
}

/** Sends PING over a fresh connection; resolves true on +PONG. Errors and timeouts reject. */
export async function pingRedis(address: RedisAddress, timeoutMs = 1000): Promise<boolean> {
  const reply = await redisCommand(address, ['PING'], timeoutMs);
  if (reply !== 'PONG') throw new Error(`PING answered ${JSON.stringify(reply)}`);
  return true;
}

function replicationTarget(replicaOf: StartRedisOptions['replicaOf']): RedisAddress | undefined {
  if (!replicaOf) return undefined;
  return 'replicationAddress' in replicaOf ? replicaOf.replicationAddress : replicaOf;
}

/** A redis-server process of this harness, which a test may also kill outright. */
export interface LocalRedis extends StartedRedis {
  readonly kind: 'local';
  readonly socket: string;
  readonly pid: number;
  /** The server's own temp dir (its working dir), removed by `stop()`. */
  readonly dir: string;
  /** Whether the process has not exited. */
  isRunning(): boolean;
  /** SIGKILLs the server (a crash: no shutdown, no goodbye to peers) and waits until it is gone. */
  kill9(): Promise<void>;
}

export interface StartLocalRedisOptions extends StartRedisOptions {
  /**
   * The text of a config file, written to `<dir>/redis.conf` and passed first (the command line
   * still wins). Sentinel mode needs one: it rewrites it. Gets the server's own dir and port.
   */
  config?: (server: { dir: string; port: number }) => string;
  /** Run as a Sentinel (`--sentinel`); needs `config`. */
  sentinel?: boolean;
  /** Picks the port to try; `freePort` unless told (a cluster node also needs port + 10000 free). */
  pickPort?: () => Promise<number>;
}

class StartedLocalRedis implements LocalRedis {
  readonly kind = 'local';
  readonly host = LOCAL_HOST;
  readonly url: string;
  readonly replicationAddress: RedisAddress;
  readonly pid: number;
  private stopping: Promise<void> | undefined;

  constructor(
    readonly port: number,
    readonly socket: string,
    private readonly child: ChildProcess,
    private readonly output: OutputTail,
    readonly dir: string,
  ) {
    this.url = `redis://${LOCAL_HOST}:${port}`;
    this.replicationAddress = { host: LOCAL_HOST, port };
    this.pid = child.pid ?? -1;
  }

  logs(): string {
    return this.output.toString();
  }

  isRunning(): boolean {
    return isRunning(this.child);
  }

  async kill9(): Promise<void> {
    await stopChild(this.child, 'SIGKILL', 10_000);
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await stopChild(this.child, 'SIGTERM', 10_000);
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

async function isOwnServer(address: RedisAddress, child: ChildProcess): Promise<boolean> {
  const info = await redisCommand(address, ['INFO', 'server'], 1000);
  return typeof info === 'string' && info.includes(`process_id:${child.pid}\r\n`);
}

/**
 * Starts a `redis-server` from PATH on a free port with its own temp dir and waits for PING.
 * Unlike `startRedis` it does not tie the server to the running test: the caller stops it (the
 * cluster and sentinel helpers do, for all their servers at once).
 */
export async function startLocalRedis(options: StartLocalRedisOptions = {}): Promise<LocalRedis> {
  const binary = findExecutable('redis-server');
  if (!binary) throw new Error('redis-server is not on PATH: install it with `sudo apt-get install redis-server`');
  const timeoutMs = options.startupTimeoutMs ?? 20_000;
  const target = replicationTarget(options.replicaOf);
  // The free port can be taken by someone else before redis-server binds it: try a few.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await (options.pickPort ?? freePort)();
    const dir = await mkdtemp(join(tmpdir(), 'redisfs-e2e-redis-'));
    const socket = join(dir, 'redis.sock');
    const configArgs: string[] = [];
    if (options.config) {
      const file = join(dir, 'redis.conf');
      await writeFile(file, options.config({ dir, port }));
      configArgs.push(file);
    }
    if (options.sentinel) configArgs.push('--sentinel');
    const args = [
      ...configArgs,
      '--port', String(port),
      '--bind', LOCAL_HOST,
      '--save', '',
      '--appendonly', 'no',
      '--dir', dir,
      '--unixsocket', socket,
      '--unixsocketperm', '700',
      '--daemonize', 'no',
      '--logfile', '',
      // A primary ships the first sync to a replica at once instead of waiting 5 s for more.
      '--repl-diskless-sync-delay', '0',
      ...(target ? ['--replicaof', target.host, String(target.port)] : []),
      ...(options.args ?? []),
    ];
    const child = own(spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    const output = new OutputTail().follow(child.stdout).follow(child.stderr);
    const started = new StartedLocalRedis(port, socket, child, output, dir);
    try {
      // PING alone could be answered by whoever won the race for the port: check the pid too.
      await waitFor(async () => (await pingRedis({ host: LOCAL_HOST, port })) && isOwnServer({ host: LOCAL_HOST, port }, child), {
        timeoutMs,
        what: `redis-server on port ${port} to answer PING`,
        bail: () =>
          isRunning(child) ? undefined : new Error(`redis-server exited (code ${child.exitCode}, signal ${child.signalCode}):\n${output}`),
      });
      return started;
    } catch (err) {
      lastError = err;
      await started.stop();
      // Only a lost race for a port is worth another try.
      if (!/Address already in use/i.test(output.toString())) break;
    }
  }
  throw lastError;
}

/** The part of testcontainers' StartedRedisContainer the harness uses. */
interface RedisContainerHandle {
  getHost(): string;
  getPort(): number;
  getNetworkNames(): string[];
  getIpAddress(networkName: string): string;
  logs(): Promise<Readable>;
  stop(): Promise<unknown>;
}

class StartedContainerRedis implements StartedRedis {
  readonly kind = 'container';
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly replicationAddress: RedisAddress;
  private readonly output = new OutputTail();
  private stopping: Promise<void> | undefined;

  constructor(private readonly container: RedisContainerHandle) {
    this.host = container.getHost();
    this.port = container.getPort();
    this.url = `redis://${this.host}:${this.port}`;
    const network = container.getNetworkNames()[0];
    this.replicationAddress = network ? { host: container.getIpAddress(network), port: 6379 } : { host: this.host, port: this.port };
    void container.logs().then(
      (stream) => this.output.follow(stream),
      () => {},
    );
  }

  logs(): string {
    return this.output.toString();
  }

  stop(): Promise<void> {
    this.stopping ??= this.container.stop().then(() => undefined);
    return this.stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

async function startContainerRedis(options: StartRedisOptions): Promise<StartedRedis> {
  // Loaded only here: testcontainers pulls in a Docker client that the local path never needs.
  const { RedisContainer } = await import('@testcontainers/redis');
  const target = replicationTarget(options.replicaOf);
  const image = process.env.REDISFS_E2E_REDIS_IMAGE ?? 'redis:7.4-alpine';
  const container = await new RedisContainer(image)
    .withCommand([
      'redis-server',
      '--save', '',
      '--appendonly', 'no',
      '--repl-diskless-sync-delay', '0',
      ...(target ? ['--replicaof', target.host, String(target.port)] : []),
      ...(options.args ?? []),
    ])
    .withStartupTimeout(options.startupTimeoutMs ?? 120_000)
    .start();
  return new StartedContainerRedis(container);
}

/**
 * Starts a real Redis: in a container when a runtime answers (falling back to the local binary if
 * the container cannot start, e.g. no network to pull the image), else a local redis-server.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<StartedRedis> {
  const redis = await startAnyRedis(options);
  disposeWhenTestEnds(redis);
  return redis;
}

async function startAnyRedis(options: StartRedisOptions): Promise<StartedRedis> {
  if (await containerRuntimeAnswers()) {
    try {
      return await startContainerRedis(options);
    } catch (err) {
      if (process.env.REDISFS_E2E_REDIS === 'container' || !findExecutable('redis-server')) throw err;
      console.warn(`[e2e] Redis container did not start (${(err as Error).message}); using the local redis-server`);
    }
  }
  return startLocalRedis(options);
}
