/**
 * Where a redisfs CLI looks for Redis when told nothing: 127.0.0.1:6379 (else the private server,
 * see private-redis.ts). Probing speaks the inline protocol over a raw socket: only the store
 * package uses a Redis client.
 */
import { connect } from 'node:net';

/** The default Redis address redisfs looks at before starting its own. */
export const DEFAULT_REDIS = { host: '127.0.0.1', port: 6379 } as const;

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
