/**
 * Test-only: a redis-server of its own (startLocalRedis) loading a copy of a fixture's RDB dump,
 * made in the server's own directory (which goes with it: the committed file is never the
 * server's), and a plain client of it. The layout-1 and layout-2 fixtures start this way.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient } from '@redis/client';
import { startLocalRedis } from './redis-server.js';

const makeRaw = (url: string) => createClient({ url });
type RawClient = ReturnType<typeof makeRaw>;

/** A redis-server holding a fresh copy of a fixture. */
export interface FixtureRedis extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  /** A plain client of it, closed by stop(). */
  readonly raw: RawClient;
  logs(): string;
  /** Stops the server and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Starts a redis-server on a free port that loads a copy of `dump` (an RDB file). */
export async function startFixtureRedis(dump: string): Promise<FixtureRedis> {
  const server = await startLocalRedis({
    // Called with the server's own dir before it starts.
    config: ({ dir }) => {
      copyFileSync(dump, join(dir, 'dump.rdb'));
      return '';
    },
  });
  const raw = makeRaw(server.url);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (raw.isOpen) await raw.close().catch(() => raw.destroy());
      await server.stop();
    })());
  try {
    await raw.connect();
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: server.url, port: server.port, raw, logs: () => server.logs(), stop, [Symbol.asyncDispose]: stop };
}
