/**
 * The filesystems one bench run compares, each a directory the workloads run in:
 *   tmpfs          a directory in /dev/shm: the local limit;
 *   memfs          bench/src/memfs.ts, a plain in-memory filesystem on the same fuse-native
 *                  binding and kernel options as redisfs: the binding's own floor;
 *   redisfs-tcp    the built `redisfs` CLI on a local redis-server over TCP (127.0.0.1);
 *   redisfs-unix   the same server over its unix socket;
 *   cluster-tcp    the same redisfs on a Redis Cluster of 3 masters, no replicas (cluster mode);
 *   cluster1-tcp   the same on a cluster of 1 master: "3 masters against 1" compares like with like;
 *   nosync1-tcp    the same on a master with one replica (redis-setups.ts);
 *   sync1-tcp      the same with `--sync-replicas 1` (WAIT 1 after each change): what durability costs.
 * The last four start their own servers and stop them with the mount; none of them is in
 * `--quick` (CI), all are in a full run.
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
import { OutputTail, own, stopChild, waitFor, freePort, pingRedis } from '@redisfs/testing';
import { isMounted, forceUnmount } from '../../e2e/helpers/index.js';
import { MOUNT_CLI, REPO_ROOT, requireBuilt } from '../../e2e/helpers/paths.js';
import { type BenchServers, startBenchCluster, startReplicatedPair } from './redis-setups.js';
import type { Leftovers } from './teardown.js';

export type TargetName =
  | 'tmpfs' | 'memfs' | 'redisfs-tcp' | 'redisfs-unix'
  | 'cluster-tcp' | 'cluster1-tcp' | 'nosync1-tcp' | 'sync1-tcp'
  | 'baseline-tcp' | 'baseline-unix';
/** The targets of `--quick` (CI); a full run adds CLUSTER_TARGETS. */
export const ALL_TARGETS: readonly TargetName[] = ['tmpfs', 'memfs', 'redisfs-tcp', 'redisfs-unix'];
/** Targets that start their own Redis setup: a cluster of 1 or 3 masters, a master with a replica. */
export const CLUSTER_TARGETS: readonly TargetName[] = ['cluster1-tcp', 'cluster-tcp', 'nosync1-tcp', 'sync1-tcp'];
/** Targets that run another checkout's build of redisfs (`--baseline DIR`), to compare in one run. */
export const BASELINE_TARGETS: readonly TargetName[] = ['baseline-tcp', 'baseline-unix'];

const makeClient = (url: string) => createClient({ url });
export type RedisClient = ReturnType<typeof makeClient>;

/** One master a filesystem's keys live on, with a plain client of that node. */
export interface RedisNode {
  /** host:port */
  readonly address: string;
  readonly client: RedisClient;
}

/** Whether a target is a redisfs mount of this build (not tmpfs, memfs or a --baseline build). */
export function isRedisfsTarget(name: TargetName): boolean {
  return name.startsWith('redisfs-') || CLUSTER_TARGETS.includes(name);
}

/** A mounted (or plain) directory to run workloads in. */
export interface Target {
  readonly name: TargetName;
  readonly dir: string;
  /**
   * A client of the Redis node holding the filesystem's metadata (redisfs only), for INFO and
   * the collector's state: the server, or in a cluster the master of the prefix's hash tag.
   */
  readonly redis?: RedisClient;
  /** Every master holding the filesystem's keys (redisfs only): the one server, or every master of a cluster. */
  readonly masters?: readonly RedisNode[];
  /** The filesystem's prefix in Redis (redisfs only). */
  readonly prefix?: string;
  /** FUSE calls served so far, by operation, as the FUSE server counts them (memfs, redisfs). */
  fuseCalls?(): Promise<Record<string, number>>;
  /**
   * Redis round trips redisfs has made so far, by command, as its store counts them: a script
   * call is one ("EVALSHA create"), unlike INFO commandstats, which also counts what runs inside.
   */
  redisCalls?(): Promise<Record<string, number>>;
  /**
   * Mounts the same filesystem (same prefix, same Redis) a second time, in a process of its own
   * on a new directory, as a second host would (redisfs only): for locks across mounts. The
   * second mount is stopped on its own; stopping it leaves this one and the servers running.
   */
  mountAgain?(): Promise<Target>;
  /** Its own process, mount and directory, for the guardian (teardown.ts); not the servers it stops. */
  readonly leftovers: Leftovers;
  stop(): Promise<void>;
}

/** A local redis-server listening on a free TCP port and a unix socket, persistence off. */
export interface BenchRedis {
  readonly port: number;
  readonly socket: string;
  readonly url: string;
  readonly client: RedisClient;
  readonly leftovers: Leftovers;
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
    leftovers: { pids: child.pid ? [child.pid] : [], dirs: [dir] },
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
    leftovers: { dirs: [dir] },
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
  try {
    await waitFor(() => isMounted(dir), {
      timeoutMs: 30_000,
      what: `${what} to mount ${dir}`,
      bail: () => (child.exitCode !== null ? new Error(`${what} exited before mounting:\n${logs}`) : undefined),
    });
  } catch (err) {
    await stopFuse(child, dir);
    throw err;
  }
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

function fuseLeftovers(child: ChildProcess, dir: string): Leftovers {
  return { pids: child.pid ? [child.pid] : [], mounts: [dir], dirs: [dir] };
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
    leftovers: fuseLeftovers(child, dir),
    fuseCalls() {
      return new Promise((resolve) => {
        waiting.push((line) => resolve(JSON.parse(line) as Record<string, number>));
        child.kill('SIGUSR2');
      });
    },
    stop: () => stopFuse(child, dir),
  };
}

interface RedisfsMount {
  name: TargetName;
  /** The CLI's flags that say where Redis is. */
  address: string[];
  prefix: string;
  redis: RedisClient;
  masters: readonly RedisNode[];
  /** The built CLI of another checkout (--baseline) instead of this one's. */
  cli?: string;
  extraArgs?: string[];
  /** Servers the target owns, stopped after the mount. */
  servers?: { stop(): Promise<void> };
}

/** One redisfs process mounted on a new directory; `stop` unmounts it and nothing else. */
async function spawnRedisfs(m: RedisfsMount, label: string): Promise<Target> {
  const dir = await newDir(tmpdir(), label);
  let probe: StatsProbe | undefined;
  const child = await startFuseProcess(
    dir,
    process.execPath,
    [m.cli ?? requireBuilt(MOUNT_CLI), ...m.address, '--prefix', m.prefix, '--mount', dir, ...(m.extraArgs ?? [])],
    'redisfs',
    (line) => probe?.onLine(line),
  );
  probe = new StatsProbe(child);
  const stats = probe;
  return {
    name: m.name,
    dir,
    redis: m.redis,
    masters: m.masters,
    prefix: m.prefix,
    leftovers: fuseLeftovers(child, dir),
    fuseCalls: async () => (await stats.request()).fuseCalls,
    redisCalls: async () => (await stats.request()).redisCommands,
    stop: () => stopFuse(child, dir),
  };
}

async function startRedisfsMount(m: RedisfsMount): Promise<Target> {
  const first = await spawnRedisfs(m, m.name);
  return {
    ...first,
    mountAgain: () => spawnRedisfs(m, `${m.name}-again`),
    async stop() {
      try {
        await first.stop();
      } finally {
        await m.servers?.stop();
      }
    },
  };
}

export function startRedisfs(redis: BenchRedis, via: 'tcp' | 'unix', prefix: string, baseline?: { root: string }): Promise<Target> {
  return startRedisfsMount({
    name: `${baseline ? 'baseline' : 'redisfs'}-${via}`,
    address: via === 'tcp' ? ['--host', '127.0.0.1', '--port', String(redis.port)] : ['--socket', redis.socket],
    prefix,
    redis: redis.client,
    masters: [{ address: `127.0.0.1:${redis.port}`, client: redis.client }],
    ...(baseline ? { cli: join(baseline.root, 'apps/mount/dist/cli.js') } : {}),
  });
}

/** redisfs on servers of its own (`--url`), which it stops with the mount (or when it fails to mount). */
async function startOnOwnServers(name: TargetName, servers: BenchServers, extraArgs: string[] = []): Promise<Target> {
  const prefix = `bench-${name.replace(/-tcp$/, '')}`;
  try {
    const metadata = await servers.metadataMaster(prefix);
    return await startRedisfsMount({ name, address: ['--url', servers.url], prefix, redis: metadata.client, masters: servers.masters, extraArgs, servers });
  } catch (err) {
    await servers.stop();
    throw err;
  }
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
    case 'cluster-tcp':
      return startOnOwnServers(name, await startBenchCluster(3));
    case 'cluster1-tcp':
      return startOnOwnServers(name, await startBenchCluster(1));
    case 'nosync1-tcp':
      return startOnOwnServers(name, await startReplicatedPair());
    case 'sync1-tcp':
      return startOnOwnServers(name, await startReplicatedPair(), ['--sync-replicas', '1']);
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
