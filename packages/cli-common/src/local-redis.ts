/**
 * Where a redisfs CLI finds Redis when told nothing: 127.0.0.1:6379, or else the private server
 * that `redisfs` starts (a unix socket in the user's data directory), if it is running.
 * Probing speaks the inline protocol over a raw socket: only the store package uses a Redis client.
 */
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The default Redis address redisfs looks at before starting its own. */
export const DEFAULT_REDIS = { host: '127.0.0.1', port: 6379 } as const;

/** `$XDG_DATA_HOME/redisfs/redis`, default `~/.local/share/redisfs/redis`. */
export function embeddedDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME && env.XDG_DATA_HOME.startsWith('/') ? env.XDG_DATA_HOME : join(homedir(), '.local', 'share');
  return join(base, 'redisfs', 'redis');
}

/** Where to probe: a TCP address or a unix socket. */
export type ProbeAddress = { host: string; port: number } | { path: string };

/**
 * What answers a PING at `address` within `timeoutMs`: 'pong' (a ready Redis), 'other' (some
 * other reply: a Redis that is loading or wants a password), 'none' (nothing listening or no reply).
 * Speaks the inline protocol over a raw socket: only the store package uses a Redis client.
 */
export async function pingRedis(address: ProbeAddress, timeoutMs = 500): Promise<'pong' | 'other' | 'none'> {
  return new Promise((resolvePing) => {
    const socket = 'path' in address ? connect(address.path) : connect(address.port, address.host);
    let reply = '';
    const finish = (result: 'pong' | 'other' | 'none') => {
      clearTimeout(timer);
      socket.destroy();
      resolvePing(result);
    };
    const timer = setTimeout(() => finish(reply ? 'other' : 'none'), timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG') ? 'pong' : 'other');
    });
    socket.once('error', () => finish('none'));
    socket.once('close', () => finish(reply ? 'other' : 'none'));
  });
}

/** The private server's socket, in {@link embeddedDataDir}. */
export function embeddedSocket(env: NodeJS.ProcessEnv = process.env): string {
  return join(embeddedDataDir(env), 'redis.sock');
}

/**
 * For a CLI given no Redis address: the private server's socket when nothing answers on
 * 127.0.0.1:6379 and that server is running; otherwise undefined (use the default address).
 */
export async function findPrivateRedis(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if ((await pingRedis(DEFAULT_REDIS)) !== 'none') return undefined;
  const socket = embeddedSocket(env);
  return (await pingRedis({ path: socket })) === 'none' ? undefined : socket;
}
