/**
 * The filesystems one bench run compares, each a directory the workloads run in:
 *   tmpfs          a directory in /dev/shm: the local limit;
 *   memfs          bench/src/memfs.ts, a plain in-memory filesystem on the same fuse-native
 *                  binding and kernel options as redisfs: the binding's own floor;
 *   redisfs-tcp    the built `redisfs` CLI on a local redis-server over TCP (127.0.0.1);
 *   redisfs-unix   the same server over its unix socket.
 * Every FUSE target runs in its own process (the workloads make blocking syscalls from this one).
 * Both FUSE servers report their counters on SIGUSR2: memfs as a JSON line on stdout, redisfs
 * as its `redisfs: stats {…}` line on stderr (FUSE calls served, Redis round trips made).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@redis/client';
import { own } from '../../e2e/helpers/child.js';
import { OutputTail, isMounted, stopChild, waitFor, forceUnmount, freePort, pingRedis } from '../../e2e/helpers/index.js';
import { MOUNT_CLI, REPO_ROOT, requireBuilt } from '../../e2e/helpers/paths.js';

export type TargetName = 'tmpfs' | 'memfs' | 'redisfs-tcp' | 'redisfs-unix' | 'baseline-tcp' | 'baseline-unix';
export const ALL_TARGETS: readonly TargetName[] = ['tmpfs', 'memfs', 'redisfs-tcp', 'redisfs-unix'];
/** Targets that run another checkout's build of redisfs (`--baseline DIR`), to compare in one run. */
export const BASELINE_TARGETS: readonly TargetName[] = ['baseline-tcp', 'baseline-unix'];

const makeClient = (url: string) => createClient({ url });
export type RedisClient = ReturnType<typeof makeClient>;

/** A mounted (or plain) directory to run workloads in. */
export interface Target {
  readonly name: TargetName;
  readonly dir: string;
  /** A client of the Redis behind the target (redisfs only), for INFO. */
  readonly redis?: RedisClient;
  /** The filesystem's prefix in Redis (redisfs only). */
  readonly prefix?: string;
  /** FUSE calls served so far, by operation, as the FUSE server counts them (memfs, redisfs). */
  fuseCalls?(): Promise<Record<string, number>>;
  /**
   * Redis round trips redisfs has made so far, by command, as its store counts them: a script
   * call is one ("EVALSHA create"), unlike INFO commandstats, which also counts what runs inside.
   */
  redisCalls?(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** A local redis-server listening on a free TCP port and a unix socket, persistence off. */
export interface BenchRedis {
  readonly port: number;
  readonly socket: string;
  readonly url: string;
  readonly client: RedisClient;
  stop(): Promise<void>;
}

export async function startBenchRedis(): Promise<BenchRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'redisfs-bench-redis-'));
  const port = await freePort();
  const socket = join(dir, 'redis.sock');
  const logs = new OutputTail();
  const child = own(
    spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--unixsocket', socket, '--unixsocketperm', '700',
        '--save', '', '--appendonly', 'no', '--dir', dir, '--maxmemory', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  logs.follow(child.stdout).follow(child.stderr);
  await waitFor(() => pingRedis({ host: '127.0.0.1', port }).catch(() => false), {
    timeoutMs: 20_000,
    what: `redis-server on port ${port}`,
    bail: () => (child.exitCode !== null ? new Error(`redis-server exited:\n${logs}`) : undefined),
  });
  const url = `redis://127.0.0.1:${port}`;
  const client = makeClient(url);
  await client.connect();
  return {
    port,
    socket,
    url,
    client,
    async stop() {
      await client.quit().catch(() => undefined);
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function newDir(base: string, label: string): Promise<string> {
  return realpath(await mkdtemp(join(base, `redisfs-bench-${label}-`)));
}

export async function startTmpfs(): Promise<Target> {
  if (!existsSync('/dev/shm')) throw new Error('/dev/shm (tmpfs) is missing');
  const dir = await newDir('/dev/shm', 'tmpfs');
  return {
    name: 'tmpfs',
    dir,
    async stop() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Spawns a FUSE server process and waits until `dir` is mounted; `onStderrLine` sees each line. */
async function startFuseProcess(
  dir: string,
  command: string,
  args: string[],
  what: string,
  onStderrLine?: (line: string) => void,
): Promise<ChildProcess> {
  const logs = new OutputTail();
  const child = own(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT }));
  logs.follow(child.stderr);
  if (onStderrLine) eachLine(child.stderr!, onStderrLine);
  await waitFor(() => isMounted(dir), {
    timeoutMs: 30_000,
    what: `${what} to mount ${dir}`,
    bail: () => (child.exitCode !== null ? new Error(`${what} exited before mounting:\n${logs}`) : undefined),
  });
  return child;
}

/** Calls `fn` with each complete line `stream` emits (OutputTail has set it to utf8). */
function eachLine(stream: NodeJS.ReadableStream, fn: (line: string) => void): void {
  let buffered = '';
  stream.on('data', (chunk: string | Buffer) => {
    buffered += String(chunk);
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      fn(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  });
}

/** What a redisfs mount reports on SIGUSR2 (apps/mount/src/run.ts). */
interface RedisfsStats {
  fuseCalls: Record<string, number>;
  redisCommands: Record<string, number>;
}

const STATS_LINE = /^redisfs: stats (\{.*\})$/;
const STATS_TIMEOUT_MS = 10_000;

/**
 * Asks a redisfs process for its counters. Requests made while one is pending share it: the
 * kernel merges signals that arrive before the first is handled, so one signal, one line.
 */
class StatsProbe {
  private pending: Promise<RedisfsStats> | undefined;
  private deliver: ((stats: RedisfsStats) => void) | undefined;

  constructor(private readonly child: ChildProcess) {}

  /** Feed every stderr line of the process here. */
  onLine(line: string): void {
    const m = STATS_LINE.exec(line);
    if (!m || !this.deliver) return;
    this.deliver(JSON.parse(m[1]!) as RedisfsStats);
  }

  request(): Promise<RedisfsStats> {
    this.pending ??= new Promise<RedisfsStats>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`redisfs (pid ${this.child.pid}) wrote no stats line within ${STATS_TIMEOUT_MS} ms of SIGUSR2`)),
        STATS_TIMEOUT_MS,
      );
      this.deliver = (stats) => {
        clearTimeout(timer);
        resolve(stats);
      };
      this.child.kill('SIGUSR2');
    }).finally(() => {
      this.pending = undefined;
      this.deliver = undefined;
    });
    return this.pending;
  }
}

async function stopFuse(child: ChildProcess, dir: string): Promise<void> {
  await stopChild(child, 'SIGTERM', 20_000);
  await forceUnmount(dir);
  await rm(dir, { recursive: true, force: true });
}

export async function startMemfs(): Promise<Target> {
  const dir = await newDir(tmpdir(), 'memfs');
  // One process (`tsx file` would run a child and not pass SIGUSR2 on).
  const child = await startFuseProcess(dir, process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench/src/memfs.ts'), dir], 'memfs');
  const stdout = child.stdout!;
  stdout.setEncoding('utf8');
  let buffered = '';
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  stdout.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  return {
    name: 'memfs',
    dir,
    fuseCalls() {
      return new Promise((resolve) => {
        waiting.push((line) => resolve(JSON.parse(line) as Record<string, number>));
        child.kill('SIGUSR2');
      });
    },
    stop: () => stopFuse(child, dir),
  };
}

export async function startRedisfs(
  redis: BenchRedis,
  via: 'tcp' | 'unix',
  prefix: string,
  baseline?: { root: string },
): Promise<Target> {
  const dir = await newDir(tmpdir(), `${baseline ? 'baseline' : 'redisfs'}-${via}`);
  const cli = baseline ? join(baseline.root, 'apps/mount/dist/cli.js') : requireBuilt(MOUNT_CLI);
  const target = via === 'tcp' ? ['--host', '127.0.0.1', '--port', String(redis.port)] : ['--socket', redis.socket];
  let probe: StatsProbe | undefined;
  const child = await startFuseProcess(
    dir,
    process.execPath,
    [cli, ...target, '--prefix', prefix, '--mount', dir],
    'redisfs',
    (line) => probe?.onLine(line),
  );
  probe = new StatsProbe(child);
  const stats = probe;
  return {
    name: `${baseline ? 'baseline' : 'redisfs'}-${via}`,
    dir,
    redis: redis.client,
    prefix,
    fuseCalls: async () => (await stats.request()).fuseCalls,
    redisCalls: async () => (await stats.request()).redisCommands,
    stop: () => stopFuse(child, dir),
  };
}

export async function startTarget(name: TargetName, redis: BenchRedis, baselineRoot?: string): Promise<Target> {
  switch (name) {
    case 'tmpfs':
      return startTmpfs();
    case 'memfs':
      return startMemfs();
    case 'redisfs-tcp':
      return startRedisfs(redis, 'tcp', 'bench-tcp');
    case 'redisfs-unix':
      return startRedisfs(redis, 'unix', 'bench-unix');
    case 'baseline-tcp':
    case 'baseline-unix':
      if (!baselineRoot) throw new Error(`${name} needs --baseline DIR (a built checkout of redisfs)`);
      return startRedisfs(redis, name === 'baseline-tcp' ? 'tcp' : 'unix', `base-${name.slice(9)}`, { root: baselineRoot });
  }
}

/** A scratch directory on tmpfs for source data (tarballs, random bytes). */
export async function scratchDir(): Promise<{ dir: string; stop(): Promise<void> }> {
  const dir = await newDir(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'src');
  await mkdir(dir, { recursive: true });
  return { dir, stop: () => rm(dir, { recursive: true, force: true }) };
}
