/**
 * The setup most e2e files share: check what the machine must have (failing under CI, skipping
 * with a message elsewhere), then one Redis for the whole describe block, started before its
 * first test and stopped after its last, pass or fail.
 *
 *   await describeWithRedis('persistence across mounts', { fuse: true }, (redis) => {
 *     it('…', async () => {
 *       await using mnt = await mountRedisfs({ redis, prefix: uniquePrefix('p') });
 *     });
 *   });
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { requireFuse, requireRedis, requireRedisTools } from './prerequisites.js';
import { startRedis, type StartRedisOptions, type StartedRedis } from './redis-server.js';

/** What describeWithRedis can start and stop: a server, a cluster, a layout-1 fixture… */
export interface StoppableServer {
  stop(): Promise<void>;
}

export interface DescribeWithRedisOptions<S extends StoppableServer = StartedRedis> {
  /** The tests mount redisfs: FUSE is a prerequisite too. */
  fuse?: boolean;
  /** The server is made of local redis-server and redis-cli processes (a cluster, sentinels). */
  redisTools?: boolean;
  /** Skip the block for another reason as well (as `describe.skipIf`); prerequisites are still checked. */
  skipIf?: boolean;
  /** Starts the block's server; `startRedis(server)` unless told. */
  start?: () => Promise<S>;
  /** Options of the default `startRedis`. */
  server?: StartRedisOptions;
}

/** What the current prerequisites need: throws under CI when one is missing, else warns and says false. */
export async function prerequisitesMet(options: { fuse?: boolean; redisTools?: boolean } = {}): Promise<boolean> {
  const redis = options.redisTools ? requireRedisTools() : await requireRedis();
  return redis && (!options.fuse || requireFuse());
}

/**
 * Checks the prerequisites, then declares `describe(title)` whose tests share one server. `body`
 * gets a stand-in for that server, usable inside tests and hooks (after the block's own
 * beforeAll started it): hooks `body` registers run after the start and before the stop.
 */
export async function describeWithRedis<S extends StoppableServer = StartedRedis>(
  title: string,
  options: DescribeWithRedisOptions<S>,
  body: (server: S) => void,
): Promise<void> {
  const ready = await prerequisitesMet(options);
  describe.skipIf(!ready || options.skipIf === true)(title, () => {
    let server: S | undefined;
    beforeAll(async () => {
      server = options.start ? await options.start() : ((await startRedis(options.server)) as unknown as S);
    });
    afterAll(async () => {
      await server?.stop();
    });
    body(standIn(title, () => server));
  });
}

/**
 * An object that forwards every property to the started server (methods bound to it), so that
 * `body` can name the server before beforeAll starts it, as `let redis` used to.
 */
function standIn<S extends object>(title: string, current: () => S | undefined): S {
  return new Proxy(Object.create(null) as S, {
    get(_target, key) {
      const server = current();
      if (server === undefined) {
        // Probes of a thenable or of inspect hooks (symbols) must not throw.
        if (typeof key === 'symbol' || key === 'then') return undefined;
        throw new Error(`the server of '${title}' is used before its beforeAll started it: use it inside a test or a hook`);
      }
      const value: unknown = Reflect.get(server, key, server);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(server) : value;
    },
    has: (_target, key) => {
      const server = current();
      return server !== undefined && key in server;
    },
    ownKeys: () => {
      const server = current();
      return server === undefined ? [] : Reflect.ownKeys(server);
    },
    getOwnPropertyDescriptor: (_target, key) => {
      const server = current();
      if (server === undefined) return undefined;
      const descriptor = Reflect.getOwnPropertyDescriptor(server, key);
      return descriptor && { ...descriptor, configurable: true };
    },
  });
}
