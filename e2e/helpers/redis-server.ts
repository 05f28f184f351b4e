/**
 * A real Redis for one test file: a testcontainers RedisContainer when a container runtime
 * answers, else a `redis-server` from PATH on a free port with its own temp dir. Never a mock.
 *
 *   await using redis = await startRedis();
 *   // redis.url, redis.host, redis.port, redis.socket (local only)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
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

/** Sends PING over a fresh connection; resolves true on +PONG. Errors and timeouts reject. */
export function pingRedis(address: RedisAddress, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address.host, port: address.port, timeout: timeoutMs });
    let reply = '';
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('\r\n')) {
        socket.destroy();
        if (reply.startsWith('+PONG')) resolve(true);
        else reject(new Error(`PING answered ${JSON.stringify(reply.trim())}`));
      }
    });
    socket.once('timeout', () => (socket.destroy(), reject(new Error(`no answer within ${timeoutMs} ms`))));
    socket.once('error', reject);
  });
}

function replicationTarget(replicaOf: StartRedisOptions['replicaOf']): RedisAddress | undefined {
  if (!replicaOf) return undefined;
  return 'replicationAddress' in replicaOf ? replicaOf.replicationAddress : replicaOf;
}

class StartedLocalRedis implements StartedRedis {
  readonly kind = 'local';
  readonly host = LOCAL_HOST;
  readonly url: string;
  readonly replicationAddress: RedisAddress;
  private stopping: Promise<void> | undefined;

  constructor(
    readonly port: number,
    readonly socket: string,
    private readonly child: ChildProcess,
    private readonly output: OutputTail,
    private readonly dir: string,
  ) {
    this.url = `redis://${LOCAL_HOST}:${port}`;
    this.replicationAddress = { host: LOCAL_HOST, port };
  }

  logs(): string {
    return this.output.toString();
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

async function startLocalRedis(options: StartRedisOptions): Promise<StartedRedis> {
  const binary = findExecutable('redis-server');
  if (!binary) throw new Error('redis-server is not on PATH: install it with `sudo apt-get install redis-server`');
  const timeoutMs = options.startupTimeoutMs ?? 20_000;
  const target = replicationTarget(options.replicaOf);
  // The free port can be taken by someone else before redis-server binds it: try a few.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), 'redisfs-e2e-redis-'));
    const socket = join(dir, 'redis.sock');
    const args = [
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
      await waitFor(() => pingRedis({ host: LOCAL_HOST, port }), {
        timeoutMs,
        what: `redis-server on port ${port} to answer PING`,
        bail: () =>
          isRunning(child) ? undefined : new Error(`redis-server exited (code ${child.exitCode}, signal ${child.signalCode}):\n${output}`),
      });
      return started;
    } catch (err) {
      lastError = err;
      await started.stop();
      // Only a lost race for the port is worth another try.
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
