/**
 * Opening node-redis clients: one place for URL handling, timeouts and safe descriptions
 * (a Redis URL may carry a password, which must never reach a log line).
 */
import { createClient, RESP_TYPES } from '@redis/client';
import { FsError } from '../errors.js';
import { countCommands } from './stats.js';

export type RedisClient = ReturnType<typeof createClient>;

export interface ConnectOptions {
  url?: string | undefined;
  socket?: string | undefined;
  connectTimeoutMs?: number | undefined;
  /** Reconnect after a drop (a mount: yes, default); no for one-shot tools, whose commands then fail. */
  reconnect?: boolean | undefined;
  /** CLIENT SETNAME on every (re)connection, so admin tools can tell who is connected. */
  clientName?: string | undefined;
}

export const DEFAULT_URL = 'redis://127.0.0.1:6379';

/** A URL with any password replaced by '***', for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid url>';
  }
}

/** Where a client connects, safe to print. */
export function describeTarget(opts: ConnectOptions): string {
  return opts.socket ? `unix:${opts.socket}` : redactUrl(opts.url ?? DEFAULT_URL);
}

/**
 * Connects a client, failing within connectTimeoutMs with a clear FsError instead of retrying
 * forever. Once connected, the client reconnects on its own after a drop, and counts the
 * commands it sends (internal/stats.ts).
 */
export async function connectClient(opts: ConnectOptions): Promise<RedisClient> {
  const timeout = opts.connectTimeoutMs ?? 5000;
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
    const reason = err instanceof Error ? err.message.replace(url, describeTarget(opts)) : String(err);
    // An ACL without `client|setname`: connect unnamed (admin tools then cannot see this client).
    if (opts.clientName && /\bNOPERM\b.*\bclient\|setname\b/i.test(reason)) {
      return connectClient({ ...opts, clientName: undefined });
    }
    // Reached, but the user or password was refused: say so, rather than "cannot reach".
    if (/\b(WRONGPASS|NOAUTH|NOPERM)\b/.test(reason)) {
      throw new FsError('EACCES', `Redis at ${describeTarget(opts)} refused the login: ${reason}`, { cause: err });
    }
    throw new FsError('EIO', `cannot reach Redis at ${describeTarget(opts)}: ${reason}`, { cause: err });
  }
  connected = true;
  countCommands(client as unknown as RedisClient);
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

/** The few commands the store runs with Buffer replies (data blocks, xattr values). */
export interface BinaryClient {
  get(key: string): Promise<Buffer | null>;
  set(key: string, value: Buffer): Promise<unknown>;
  hGet(key: string, field: string): Promise<Buffer | null>;
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
  return client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }) as unknown as BinaryClient;
}

/** Rejects with ETIMEDOUT when `p` does not settle within `ms`. */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
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
