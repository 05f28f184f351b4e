/**
 * A real Redis Sentinel setup for one test: a master, its replicas and a few sentinels
 * (`redis-server <conf> --sentinel`), all local redis-servers on 127.0.0.1. A master is seen down
 * after 1 s, so `killMaster()` settles in a few seconds.
 *
 *   await using sentinel = await startRedisSentinel();
 *   const before = await sentinel.master();
 *   const after = await sentinel.killMaster(); // a promoted replica
 */
import { disposeWhenTestEnds } from './lifecycle.js';
import { type LocalRedis, type RedisAddress, type RedisReply, redisCommand, startLocalRedis } from './redis-server.js';
import { waitFor, waitForNoProblem } from './wait-for.js';

const DOWN_AFTER_MS = 1000;
const FAILOVER_TIMEOUT_MS = 5000;
/** Sentinels find each other through hello messages sent every 2 s; a failover takes a few. */
const SETTLE_TIMEOUT_MS = 30_000;

export interface StartRedisSentinelOptions {
  /** The name the sentinels monitor the master under; 'mymaster' unless told. */
  masterName?: string;
  /** 1 unless told. */
  replicas?: number;
  /** 3 unless told; the quorum is a majority of them. */
  sentinels?: number;
  /** Extra redis-server arguments for the master and replicas (not the sentinels). */
  args?: string[];
}

/** A running sentinel setup. Stop it with `stop()` or let `await using` (or the test's end) do it. */
export interface StartedRedisSentinel extends AsyncDisposable {
  readonly masterName: string;
  /** Where a sentinel client can start: every sentinel's address. */
  readonly sentinels: readonly RedisAddress[];
  /** The data servers: the first master, then its replicas, including ones a test has killed. */
  readonly nodes: readonly LocalRedis[];
  /** The node the sentinels report as master now (SENTINEL get-master-addr-by-name). */
  master(): Promise<LocalRedis>;
  /**
   * Crashes (kill -9) the current master and waits until every sentinel reports a new master, that
   * master answers ROLE as master and every other running node replicates from it. Resolves with it.
   */
  killMaster(): Promise<LocalRedis>;
  /** Waits until every sentinel reports the same running master, knows every other sentinel and sees every running replica linked. */
  waitUntilSettled(timeoutMs?: number): Promise<void>;
  /** The sentinels' recent log output, for failure messages. */
  sentinelLogs(): string;
  /** Stops the sentinels, then the data servers, and removes their temp dirs. Idempotent. */
  stop(): Promise<void>;
}

/** A flat [field, value, field, value, ...] reply as a record. */
function fields(reply: RedisReply): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

class RedisSentinel implements StartedRedisSentinel {
  readonly nodes: LocalRedis[] = [];
  private readonly sentinelServers: LocalRedis[] = [];
  private stopping: Promise<void> | undefined;

  constructor(readonly masterName: string) {}

  get sentinels(): RedisAddress[] {
    return this.sentinelServers.map((s) => ({ host: s.host, port: s.port }));
  }

  async boot(replicas: number, sentinels: number, args: string[]): Promise<void> {
    const master = await this.track(this.nodes, startLocalRedis({ args }));
    await Promise.all(Array.from({ length: replicas }, () => this.track(this.nodes, startLocalRedis({ replicaOf: master, args }))));
    const quorum = Math.floor(sentinels / 2) + 1;
    const name = this.masterName;
    const config = ({ dir, port }: { dir: string; port: number }) =>
      [
        `port ${port}`,
        `dir ${dir}`,
        'sentinel resolve-hostnames no',
        `sentinel monitor ${name} ${master.host} ${master.port} ${quorum}`,
        `sentinel down-after-milliseconds ${name} ${DOWN_AFTER_MS}`,
        `sentinel failover-timeout ${name} ${FAILOVER_TIMEOUT_MS}`,
        '',
      ].join('\n');
    await Promise.all(
      Array.from({ length: sentinels }, () => this.track(this.sentinelServers, startLocalRedis({ sentinel: true, config }))),
    );
    await this.waitUntilSettled();
  }

  /** Records a server as soon as it runs, so stop() finds it even if its siblings fail to start. */
  private async track(list: LocalRedis[], starting: Promise<LocalRedis>): Promise<LocalRedis> {
    const server = await starting;
    list.push(server);
    // Stopped while starting (the test ended): stop() did not see this one.
    if (this.stopping) await server.stop();
    return server;
  }

  private async reportedMaster(sentinel: RedisAddress): Promise<LocalRedis> {
    const reply = await redisCommand(sentinel, ['SENTINEL', 'get-master-addr-by-name', this.masterName]);
    if (!Array.isArray(reply)) throw new Error(`sentinel ${sentinel.port} knows no master ${this.masterName}`);
    const port = Number(reply[1]);
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`sentinel ${sentinel.port} reports ${String(reply[0])}:${port}, not a server of this setup`);
    return node;
  }

  async master(): Promise<LocalRedis> {
    let lastError: unknown = new Error('no sentinel is running');
    for (const sentinel of this.sentinelServers.filter((s) => s.isRunning())) {
      try {
        return await this.reportedMaster(sentinel);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  }

  /** Why the setup is not settled yet, or undefined when it is. */
  private async unsettledBecause(): Promise<string | undefined> {
    const running = this.nodes.filter((n) => n.isRunning());
    const sentinels = this.sentinelServers.filter((s) => s.isRunning());
    let master: LocalRedis | undefined;
    for (const sentinel of sentinels) {
      const reported = await this.reportedMaster(sentinel);
      master ??= reported;
      if (reported !== master) return `sentinel ${sentinel.port} reports master ${reported.port}, another ${master.port}`;
      const state = fields(await redisCommand(sentinel, ['SENTINEL', 'master', this.masterName]));
      if (/s_down|o_down|failover/.test(state.flags ?? '')) return `sentinel ${sentinel.port} flags the master ${state.flags}`;
      const peers = await redisCommand(sentinel, ['SENTINEL', 'sentinels', this.masterName]);
      const peerCount = Array.isArray(peers) ? peers.length : 0;
      if (peerCount !== this.sentinelServers.length - 1) return `sentinel ${sentinel.port} knows ${peerCount} other sentinels`;
      const replicas = (await redisCommand(sentinel, ['SENTINEL', 'replicas', this.masterName])) as RedisReply[];
      for (const node of running.filter((n) => n !== master)) {
        const seen = replicas.map(fields).find((r) => Number(r.port) === node.port);
        if (seen?.['master-link-status'] !== 'ok' || /s_down|disconnected/.test(seen.flags ?? '')) {
          return `sentinel ${sentinel.port} does not see replica ${node.port} linked (${seen ? seen.flags : 'unknown'})`;
        }
      }
    }
    if (!master?.isRunning()) return `the reported master ${master?.port} is not running`;
    const role = await redisCommand(master, ['ROLE']);
    if (!Array.isArray(role) || role[0] !== 'master') return `the reported master ${master.port} answers ROLE ${String(Array.isArray(role) ? role[0] : role)}`;
    for (const node of running.filter((n) => n !== master)) {
      const r = await redisCommand(node, ['ROLE']);
      if (!Array.isArray(r) || r[0] !== 'slave' || Number(r[2]) !== master.port || r[3] !== 'connected') {
        return `${node.port} is not a linked replica of ${master.port} (ROLE ${JSON.stringify(r)})`;
      }
    }
    return undefined;
  }

  async waitUntilSettled(timeoutMs = SETTLE_TIMEOUT_MS): Promise<void> {
    await waitForNoProblem(() => this.unsettledBecause(), { timeoutMs, intervalMs: 100, what: `the sentinels of ${this.masterName} to settle` });
  }

  async killMaster(): Promise<LocalRedis> {
    const old = await this.master();
    await old.kill9();
    await waitFor(async () => (await this.master()) !== old, {
      timeoutMs: SETTLE_TIMEOUT_MS,
      intervalMs: 100,
      what: `the sentinels to promote a replica after killing master ${old.port}`,
    });
    await this.waitUntilSettled();
    return this.master();
  }

  sentinelLogs(): string {
    return this.sentinelServers.map((s) => `--- sentinel ${s.port}\n${s.logs()}`).join('\n');
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // Sentinels first, so none starts a failover while the data servers go.
      await Promise.all(this.sentinelServers.map((s) => s.stop()));
      await Promise.all(this.nodes.map((n) => n.stop()));
    })();
    return this.stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/**
 * Starts a master, `replicas` replicas and `sentinels` sentinels monitoring it as `masterName`,
 * and waits until every sentinel knows the master, its replicas and the other sentinels. Every
 * server is stopped when the running test ends, pass or fail; outside a test the caller stops it.
 */
export async function startRedisSentinel(options: StartRedisSentinelOptions = {}): Promise<StartedRedisSentinel> {
  const setup = new RedisSentinel(options.masterName ?? 'mymaster');
  disposeWhenTestEnds(setup);
  try {
    await setup.boot(options.replicas ?? 1, options.sentinels ?? 3, options.args ?? []);
  } catch (err) {
    await setup.stop();
    throw err;
  }
  return setup;
}
