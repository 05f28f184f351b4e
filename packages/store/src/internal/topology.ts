/**
 * Deployments other than one server: Redis Cluster and Sentinel, through node-redis's own
 * cluster and sentinel clients. The store talks to all three through one command surface
 * (RedisClient: the command methods route by their first key in a cluster, and go to the
 * current master through Sentinel); the few things that need a particular node (SCAN, INFO,
 * CLIENT LIST, WAIT, multi-key UNLINK) go through the functions here, which know the topology.
 *
 * Failover. node-redis's cluster client follows MOVED and ASK (resharding) by itself, but not a
 * master that died: commands for its slots would wait on a client that never reconnects. So
 * node connections here do not queue while offline, and a command that failed for a reason a
 * retry cures (connection lost, CLUSTERDOWN, TRYAGAIN, READONLY of a demoted master, LOADING)
 * is retried after asking the cluster for its slots again, with backoff, until FAILOVER_MS
 * passes: a failover looks like a slow command, not an error. A command lost with its
 * connection may have run (its reply was lost): writes are safe to run twice (block values
 * under fresh ids, compare-and-set map swaps), and a create that finds its own entry (by the
 * inode number only this store reserved) succeeds; an unlink, rmdir or rename that ran answers
 * ENOENT the second time.
 */
import { createClient, createCluster, createSentinel, RESP_TYPES, type RedisClusterType, type RedisSentinelType } from '@redis/client';
import { countCommands, commandCounterOf, hookClientInto, type CommandCounter } from './stats.js';
import type { ParsedRedisUrl } from './redis-url.js';
import { withDeadline, type ConnectOptions } from './connect.js';

export type RedisClient = ReturnType<typeof createClient>;
type Cluster = RedisClusterType;
type Sentinel = RedisSentinelType;

export type Topology =
  | { kind: 'single' }
  | { kind: 'cluster'; cluster: Cluster }
  | { kind: 'sentinel'; sentinel: Sentinel };

const topologies = new WeakMap<object, Topology>();

/** The deployment a client of connectClient talks to. */
export function topologyOf(client: RedisClient): Topology {
  return topologies.get(client) ?? { kind: 'single' };
}

/** How long a command keeps being retried through a failover before its error is returned. */
export const FAILOVER_MS = 30_000;

/** Whether a single connection is to a Redis Cluster node (INFO cluster; false when refused). */
export async function isClusterNode(client: RedisClient): Promise<boolean> {
  try {
    return /^cluster_enabled:1\s*$/m.test(await client.info('cluster'));
  } catch {
    return false;
  }
}

function nodeOptions(url: ParsedRedisUrl, opts: ConnectOptions, timeout: number, connected: () => boolean) {
  return {
    ...(url.username !== undefined ? { username: url.username } : {}),
    ...(url.password !== undefined ? { password: url.password } : {}),
    ...(opts.clientName ? { name: opts.clientName } : {}),
    // Fail fast while a node is down, so the retry below can go to its successor.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: timeout,
      ...(url.tls ? { tls: true as const } : {}),
      reconnectStrategy: (retries: number) =>
        connected() && opts.reconnect !== false ? Math.min(50 * 2 ** retries, 1000) : false,
    },
  };
}

/** Connects to a Redis Cluster through any of the seed nodes. */
export async function connectCluster(url: ParsedRedisUrl, opts: ConnectOptions, timeout: number): Promise<RedisClient> {
  let connected = false;
  const cluster = createCluster({
    rootNodes: url.hosts.map((h) => ({ socket: { host: h.host, port: h.port } })),
    defaults: nodeOptions(url, opts, timeout, () => connected),
    // Replicas are not read: a read must see every acknowledged write.
    useReplicas: false,
  });
  cluster.on('error', () => {});
  cluster.on('node-error', () => {});
  try {
    await withDeadline(cluster.connect(), timeout, 'connecting to the cluster');
  } catch (err) {
    cluster.destroy();
    throw err;
  }
  connected = true;
  return adopt(cluster, { kind: 'cluster', cluster }, opts.reconnect !== false);
}

/** Connects to the master `url.masterName` that the sentinels name, following its failovers. */
export async function connectSentinel(url: ParsedRedisUrl, opts: ConnectOptions, timeout: number): Promise<RedisClient> {
  let connected = false;
  const sentinel = createSentinel({
    name: url.masterName!,
    sentinelRootNodes: url.hosts,
    nodeClientOptions: nodeOptions(url, opts, timeout, () => connected),
    sentinelClientOptions: { socket: { connectTimeout: timeout } },
    masterPoolSize: 1,
    // Commands wait for the new master rather than fail at once.
    maxCommandRediscovers: 64,
  });
  sentinel.on('error', () => {});
  try {
    await withDeadline(sentinel.connect(), timeout, `connecting to master '${url.masterName}' through the sentinels`);
  } catch (err) {
    void sentinel.destroy().catch(() => {});
    throw err;
  }
  connected = true;
  return adopt(sentinel, { kind: 'sentinel', sentinel }, opts.reconnect !== false);
}

/** A connected cluster or sentinel client as the store's RedisClient: registered, counted, retried. */
function adopt(target: Cluster | Sentinel, topology: Topology, retry: boolean): RedisClient {
  const client = target as unknown as RedisClient;
  topologies.set(client, topology);
  retryThroughFailover(target, countCommands(client, false), retry);
  return client;
}

/** Errors after which the command did not run, or may safely run again once the nodes settle. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    isConnectionDrop(err) ||
    /^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING|BUSY|READONLY)\b|^The client is (offline|closed)|All the root nodes are unavailable|Connection timeout|No available master|Cannot find node/i.test(
      err.message,
    )
  );
}

/**
 * A command lost with its connection (Redis crashed or restarted, the network broke): it may or
 * may not have run. One server's store runs a read or a write again (inode-store.ts op).
 */
export function isConnectionDrop(err: unknown): boolean {
  return err instanceof Error && /^Socket closed unexpectedly|ECONNREFUSED|ECONNRESET|EPIPE/i.test(err.message);
}

interface Executor {
  _self?: Executor;
  _execute(...args: unknown[]): Promise<unknown>;
}

/**
 * Wraps the cluster's or sentinel's command executor: counts the commands of every node client
 * it hands out (stats.ts) and, when `retry`, retries transient failures (see the module comment).
 */
function retryThroughFailover(target: Cluster | Sentinel, counter: CommandCounter, retry: boolean): void {
  const self = ((target as unknown as Executor)._self ?? target) as unknown as Executor;
  const execute = self._execute;
  const isCluster = 'getMasters' in (target as object);
  self._execute = async function (this: Executor, ...args: unknown[]): Promise<unknown> {
    // cluster: (firstKey, isReadonly, options, fn); sentinel: (isReadonly, fn)
    const at = isCluster ? 3 : 1;
    const fn = args[at] as (client: RedisClient, ...rest: unknown[]) => Promise<unknown>;
    args[at] = (client: RedisClient, ...rest: unknown[]) => {
      hookClientInto(client, counter);
      return fn(client, ...rest);
    };
    const deadline = Date.now() + FAILOVER_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await execute.apply(this, args);
      } catch (err) {
        if (!retry || !isTransient(err) || Date.now() >= deadline) throw err;
        counter.add('RETRY');
        if (isCluster) await rediscover(target as Cluster);
        await new Promise((resolve) => setTimeout(resolve, Math.min(25 * 2 ** attempt, 500)));
      }
    }
  };
}

/**
 * After a failover: waits (up to FAILOVER_MS) until the deployment answers again, with a fresh
 * view of who the masters are.
 */
export async function settle(client: RedisClient): Promise<void> {
  const t = topologyOf(client);
  const deadline = Date.now() + FAILOVER_MS;
  for (let attempt = 0; ; attempt++) {
    if (t.kind === 'cluster') await rediscover(t.cluster);
    try {
      // Every master answers (a PING each, through the same connections WAIT uses).
      if (t.kind === 'sentinel') await t.sentinel.sendCommand(false, ['PING']);
      else await Promise.all((await masters(client)).map((m) => m.sendCommand(['PING'])));
      return;
    } catch (err) {
      if (!isTransient(err) || Date.now() >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.min(25 * 2 ** attempt, 500)));
    }
  }
}

/** Asks the cluster for its slots again, starting from a node that is up. */
async function rediscover(cluster: Cluster): Promise<void> {
  const slots = (cluster as unknown as { _slots: { rediscover(c: unknown): Promise<void>; masters: { client?: { isReady: boolean } }[] } })._slots;
  const live = slots.masters.find((m) => m.client?.isReady)?.client ?? slots.masters[0]?.client;
  if (!live) return;
  await slots.rediscover(live).catch(() => undefined);
}

/** The single-server client that serves `key`: the slot's master in a cluster, else the client itself. */
async function nodeFor(client: RedisClient, key: string): Promise<RedisClient> {
  const t = topologyOf(client);
  if (t.kind !== 'cluster') return client;
  return (await t.cluster.nodeClient(t.cluster.getSlotMaster(keySlot(key)))) as unknown as RedisClient;
}

/** Clients of every master (one server: the client itself). */
async function masters(client: RedisClient): Promise<RedisClient[]> {
  const t = topologyOf(client);
  if (t.kind !== 'cluster') return [client];
  return Promise.all(t.cluster.masters.map((m) => t.cluster.nodeClient(m) as unknown as Promise<RedisClient>));
}

/** Command options under which bulk strings in a reply are Buffers (names are bytes). */
const BINARY_REPLY = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } };

/**
 * Runs a raw command on the node that serves `routingKey` (in a cluster; elsewhere the one
 * server or the current master): INFO, CLIENT LIST, or the key's own HSCAN/SSCAN/ZSCAN.
 * `binary`: bulk strings of the reply come as Buffers, not decoded as UTF-8.
 */
export async function commandAt(client: RedisClient, routingKey: string, args: string[], readOnly = false, binary = false): Promise<unknown> {
  const options = binary ? BINARY_REPLY : undefined;
  const t = topologyOf(client);
  if (t.kind === 'sentinel') return t.sentinel.sendCommand(readOnly, args, options);
  if (t.kind === 'cluster') return t.cluster.sendCommand(routingKey, readOnly, args, options);
  return client.sendCommand(args, options);
}

/** INFO `section` of the node serving `routingKey`. */
export async function infoAt(client: RedisClient, routingKey: string, section: string): Promise<string> {
  return String(await commandAt(client, routingKey, ['INFO', section]));
}

/** INFO `section` of every master. */
export async function infoOfMasters(client: RedisClient, section: string): Promise<string[]> {
  const t = topologyOf(client);
  if (t.kind !== 'cluster') return [await infoAt(client, '', section)];
  return Promise.all((await masters(client)).map((m) => m.info(section)));
}

/**
 * Every key matching `match`, in SCAN batches (a key may come twice). In a cluster, a pattern
 * that starts with a hash tag (`{F}…`) is looked for on that slot's master only; any other on
 * every master.
 */
export async function* scanMatching(client: RedisClient, match: string, count: number): AsyncGenerator<string[]> {
  const t = topologyOf(client);
  if (t.kind === 'single') {
    yield* client.scanIterator({ MATCH: match, COUNT: count });
    return;
  }
  if (t.kind === 'sentinel') {
    yield* pages(client, '', (cursor) => ['SCAN', cursor, 'MATCH', match, 'COUNT', String(count)]);
    return;
  }
  const tag = /^\{([^}]+)\}/.exec(match);
  const nodes = tag && !/[*?[\\]/.test(tag[1]!) ? [await nodeFor(client, match)] : await masters(client);
  for (const node of nodes) yield* node.scanIterator({ MATCH: match, COUNT: count });
}

/** UNLINKs keys that may lie in different slots. Returns how many existed. */
export async function unlinkKeys(client: RedisClient, keys: string[]): Promise<number> {
  if (keys.length === 0) return 0;
  if (topologyOf(client).kind !== 'cluster') return client.unlink(keys);
  const bySlot = new Map<number, string[]>();
  for (const k of keys) {
    const slot = keySlot(k);
    const group = bySlot.get(slot);
    if (group) group.push(k);
    else bySlot.set(slot, [k]);
  }
  const counts = await Promise.all([...bySlot.values()].map((group) => client.unlink(group)));
  return counts.reduce((a, b) => a + b, 0);
}

/**
 * WAIT for `replicas` replicas to acknowledge every write made so far through this client, on
 * every master it wrote to (in a cluster: every master). Resolves to the fewest acknowledgements
 * any master got within `timeoutMs`.
 */
export async function waitForReplicas(client: RedisClient, replicas: number, timeoutMs: number): Promise<number> {
  const t = topologyOf(client);
  const args = ['WAIT', String(replicas), String(timeoutMs)];
  if (t.kind === 'sentinel') return Number(await t.sentinel.sendCommand(false, args));
  const acks = await Promise.all((await masters(client)).map((m) => m.sendCommand(args)));
  return Math.min(...acks.map(Number));
}

/** Closes a client of any topology. */
export function destroyClient(client: RedisClient): void {
  const t = topologyOf(client);
  if (t.kind === 'sentinel') void t.sentinel.destroy().catch(() => {});
  else client.destroy();
}

/** The Redis Cluster hash slot of a key (CRC16 of the key or of its first non-empty {tag}). */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  let part = key;
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) part = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(part)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

export { commandCounterOf };

/**
 * The pages of a cursor command (SCAN, HSCAN, SSCAN, ZSCAN) run on the node serving
 * `routingKey`, from cursor 0 until the server says 0 again.
 */
async function* pages(client: RedisClient, routingKey: string, command: (cursor: string) => string[]): AsyncGenerator<string[]> {
  for await (const page of rawPages(client, routingKey, command, false)) yield page.map(String);
}

/** The same, the reply's elements as they come (Buffers when `binary`). */
async function* rawPages(client: RedisClient, routingKey: string, command: (cursor: string) => string[], binary: boolean): AsyncGenerator<unknown[]> {
  let cursor = '0';
  do {
    const reply = (await commandAt(client, routingKey, command(cursor), true, binary)) as [unknown, unknown[]];
    cursor = String(reply[0]);
    yield reply[1];
  } while (cursor !== '0');
}

function scanKey(client: RedisClient, command: 'HSCAN' | 'SSCAN' | 'ZSCAN', key: string, count: number): AsyncGenerator<string[]> {
  return pages(client, key, (cursor) => [command, key, cursor, 'COUNT', String(count)]);
}

/** The fields and values of a hash, in HSCAN pages (any topology). */
export async function* hScanEntries(client: RedisClient, key: string, count: number): AsyncGenerator<{ field: string; value: string }[]> {
  for await (const flat of scanKey(client, 'HSCAN', key, count)) {
    const page: { field: string; value: string }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) page.push({ field: flat[i]!, value: flat[i + 1]! });
    yield page;
  }
}

/**
 * The fields and values of a hash, in HSCAN pages (any topology), as Buffers: for hashes whose
 * fields are bytes (directory entries: names need not be valid UTF-8).
 */
export async function* hScanBinary(client: RedisClient, key: string, count: number): AsyncGenerator<{ field: Buffer; value: Buffer }[]> {
  for await (const flat of rawPages(client, key, (cursor) => ['HSCAN', key, cursor, 'COUNT', String(count)], true)) {
    const page: { field: Buffer; value: Buffer }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) page.push({ field: asBuffer(flat[i]), value: asBuffer(flat[i + 1]) });
    yield page;
  }
}

/** A hash's fields and values in one HGETALL (any topology), as Buffers (see hScanBinary). */
export async function hGetAllBinary(client: RedisClient, key: string): Promise<{ field: Buffer; value: Buffer }[]> {
  const flat = (await commandAt(client, key, ['HGETALL', key], true, true)) as unknown[];
  const out: { field: Buffer; value: Buffer }[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ field: asBuffer(flat[i]), value: asBuffer(flat[i + 1]) });
  return out;
}

function asBuffer(v: unknown): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(String(v));
}

/** The members of a set, in SSCAN pages (any topology). */
export function sScanMembers(client: RedisClient, key: string, count: number): AsyncGenerator<string[]> {
  return scanKey(client, 'SSCAN', key, count);
}

/** The members and scores of a sorted set, in ZSCAN pages (any topology). */
export async function* zScanMembers(client: RedisClient, key: string, count: number): AsyncGenerator<{ value: string; score: number }[]> {
  for await (const flat of scanKey(client, 'ZSCAN', key, count)) {
    const page: { value: string; score: number }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) page.push({ value: flat[i]!, score: Number(flat[i + 1]) });
    yield page;
  }
}
