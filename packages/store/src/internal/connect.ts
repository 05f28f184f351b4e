/**
 * Opening node-redis clients: one place for addresses (internal/redis-url.ts), deployments
 * (one server, Redis Cluster, Sentinel: internal/topology.ts), timeouts and safe descriptions
 * (an address may carry a password, which must never reach a log line).
 */
import { createClient, RESP_TYPES } from '@redis/client';
import { FsError } from '../errors.js';
import { countCommands } from './stats.js';
import { waitThroughBusy } from './busy-wait.js';
import { parseRedisUrl, redactRedisUrl, type ParsedRedisUrl } from './redis-url.js';
import { connectCluster, connectSentinel, isClusterNode, topologyOf, type RedisClient } from './topology.js';

export type { RedisClient };

export interface ConnectOptions {
  /** An address as internal/redis-url.ts describes: one server, cluster seeds, or sentinels. */
  url?: string | undefined;
  socket?: string | undefined;
  connectTimeoutMs?: number | undefined;
  /** Reconnect after a drop (a mount: yes, default); no for one-shot tools, whose commands then fail. */
  reconnect?: boolean | undefined;
  /** CLIENT SETNAME on every (re)connection, so admin tools can tell who is connected. */
  clientName?: string | undefined;
  /**
   * How long one command waits through a server's LOADING or BUSY refusals before it fails
   * (busy-wait.ts); default 10 s. An operation's deadline: no command runs after it.
   */
  busyWaitMs?: number | undefined;
}

export const DEFAULT_URL = 'redis://127.0.0.1:6379';

/** An address with any password replaced by '***', for messages and logs. */
export function redactUrl(url: string): string {
  return redactRedisUrl(url);
}

/** Where a client connects, safe to print. */
export function describeTarget(opts: ConnectOptions): string {
  return opts.socket ? `unix:${opts.socket}` : redactUrl(opts.url ?? DEFAULT_URL);
}

/**
 * Connects to one server, a Redis Cluster (several seed nodes, or one node that says it is a
 * cluster node) or a master through Sentinel, failing within connectTimeoutMs with a clear
 * FsError instead of retrying forever. Once connected, the client reconnects on its own after a
 * drop (and, for a cluster or Sentinel, follows failovers: topology.ts), and counts the commands
 * it sends (internal/stats.ts).
 */
export async function connectClient(opts: ConnectOptions): Promise<RedisClient> {
  let parsed: ParsedRedisUrl | undefined;
  if (!opts.socket) {
    try {
      parsed = parseRedisUrl(opts.url ?? DEFAULT_URL);
    } catch (err) {
      throw new FsError('EINVAL', `invalid Redis address ${describeTarget(opts)}: ${(err as Error).message}`);
    }
  }
  const timeout = opts.connectTimeoutMs ?? 5000;
  try {
    if (parsed?.sentinel) return await connectSentinel(parsed, opts, timeout);
    if (parsed && parsed.hosts.length > 1) return await connectCluster(parsed, opts, timeout);
    const client = await connectSingle(opts, timeout);
    if (!parsed || !(await isClusterNode(client))) return client;
    // A cluster node answers for its own slots only: go through the cluster client instead.
    client.destroy();
    return await connectCluster(parsed, opts, timeout);
  } catch (err) {
    throw connectError(opts, err);
  }
}

/** The FsError for a failed connection: EACCES for a refused login, else EIO; no password. */
function connectError(opts: ConnectOptions, err: unknown): FsError {
  const url = opts.url ?? DEFAULT_URL;
  const reason = err instanceof Error ? err.message.split(url).join(describeTarget(opts)) : String(err);
  if (/\b(WRONGPASS|NOAUTH|NOPERM)\b/.test(reason)) {
    return new FsError('EACCES', `Redis at ${describeTarget(opts)} refused the login: ${reason}`, { cause: err });
  }
  return new FsError('EIO', `cannot reach Redis at ${describeTarget(opts)}: ${reason}`, { cause: err });
}

async function connectSingle(opts: ConnectOptions, timeout: number): Promise<RedisClient> {
  const url = opts.url ?? DEFAULT_URL;
  let connected = false;
  const client = createClient({
    url: opts.socket ? undefined : url,
    socket: {
      ...(opts.socket ? { path: opts.socket } : {}),
      connectTimeout: timeout,
      // Before the first connection: give up (openStore reports it). After: back off, up to 1 s.
      reconnectStrategy: (retries: number) =>
        connected && opts.reconnect !== false ? Math.min(50 * 2 ** retries, 1000) : false,
    },
    ...(opts.socket && url !== DEFAULT_URL ? urlCredentials(url) : {}),
    ...(opts.clientName ? { name: opts.clientName } : {}),
  });
  // node-redis emits 'error' on every failed reconnect; without a listener it would throw.
  client.on('error', () => {});
  try {
    await withDeadline(client.connect(), timeout, `connecting to ${describeTarget(opts)}`);
  } catch (err) {
    try {
      client.destroy();
    } catch {
      // Already closed: the reconnect strategy gave up first.
    }
    // An ACL without `client|setname`: connect unnamed (admin tools then cannot see this client).
    if (opts.clientName && err instanceof Error && /\bNOPERM\b.*\bclient\|setname\b/i.test(err.message)) {
      return connectSingle({ ...opts, clientName: undefined }, timeout);
    }
    throw err; // connectClient says what failed
  }
  connected = true;
  countCommands(client as unknown as RedisClient);
  // After the counting hook: each command sent again is one more round trip.
  waitThroughBusy(client, opts.busyWaitMs ?? 10_000);
  return client as unknown as RedisClient;
}

function urlCredentials(url: string): { username?: string; password?: string; database?: number } {
  const u = new URL(url);
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.pathname.length > 1 ? { database: Number(u.pathname.slice(1)) } : {}),
  };
}

/**
 * The few commands the store runs with Buffer replies (data blocks, xattr values, and what
 * carries names or symlink targets, which are bytes and need not be valid UTF-8).
 */
export interface BinaryClient {
  get(key: string): Promise<Buffer | null>;
  set(key: string, value: Buffer): Promise<unknown>;
  hGet(key: string, field: string): Promise<Buffer | null>;
  hmGet(key: string, fields: string[]): Promise<(Buffer | null)[]>;
  hScan(key: string, cursor: string, options: { COUNT: number }): Promise<{ cursor: Buffer | string; entries: { field: Buffer; value: Buffer }[] }>;
  evalSha(sha: string, options: ScriptOptions): Promise<unknown>;
  evalShaRo(sha: string, options: ScriptOptions): Promise<unknown>;
  eval(script: string, options: ScriptOptions): Promise<unknown>;
  evalRo(script: string, options: ScriptOptions): Promise<unknown>;
}

/** Keys and arguments of a script call. */
export interface ScriptOptions {
  keys: string[];
  arguments: (string | Buffer)[];
}

/** A view of the client whose bulk-string replies are Buffers (for data blocks). */
export function bufferView(client: RedisClient): BinaryClient {
  const typeMapping = { [RESP_TYPES.BLOB_STRING]: Buffer };
  if (topologyOf(client).kind === 'sentinel') {
    // node-redis's sentinel withTypeMapping changes the options of every view (its commands read
    // the shared `commandOptions`): shadow that getter on a view of our own instead.
    const base = client as unknown as { commandOptions?: object };
    return Object.create(client, {
      commandOptions: { get: () => ({ ...(base.commandOptions ?? {}), typeMapping }) },
    }) as BinaryClient;
  }
  return client.withTypeMapping(typeMapping) as unknown as BinaryClient;
}

/** Rejects with ETIMEDOUT when `p` does not settle within `ms` (Infinity: waits as long as it takes). */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  if (!Number.isFinite(ms)) return p;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FsError('ETIMEDOUT', `${what}: no answer from Redis in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
