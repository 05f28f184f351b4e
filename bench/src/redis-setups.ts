/**
 * The Redis setups behind the cluster and durability targets, beside the one redis-server of
 * targets.ts: a Redis Cluster of N masters without replicas (@redisfs/testing: packages/testing/src/redis-cluster.ts), and a
 * master with one replica. All local redis-servers with persistence off, like the single server,
 * so that the targets compare. Each registers its stop with the teardown as soon as it runs.
 */
import { createClient } from '@redis/client';
import { keysFor } from '@redisfs/schema';
import { type LocalRedis, redisCommand, startLocalRedis, startRedisCluster, waitFor } from '@redisfs/testing';
import { atTeardown } from './teardown.js';
import type { RedisClient, RedisNode } from './targets.js';

/** Servers a redisfs target mounts: its URL, a client of every master, and how to stop them all. */
export interface BenchServers {
  /** What `redisfs --url` gets: every master as a seed for a cluster. */
  readonly url: string;
  /** Every master, in start order. */
  readonly masters: readonly RedisNode[];
  /** The master that serves `prefix`'s metadata (its hash tag's slot). */
  metadataMaster(prefix: string): Promise<RedisNode>;
  stop(): Promise<void>;
}

async function connect(url: string): Promise<RedisClient> {
  const client = createClient({ url });
  await client.connect();
  return client;
}

/** Clients of `urls`, quit by the returned stop (also when connecting fails half-way). */
async function connectAll(urls: string[], stopServers: () => Promise<void>): Promise<{ clients: RedisClient[]; stop(): Promise<void> }> {
  const clients: RedisClient[] = [];
  const stop = async () => {
    await Promise.all(clients.map((c) => c.quit().catch(() => undefined)));
    await stopServers();
  };
  try {
    for (const url of urls) clients.push(await connect(url));
  } catch (err) {
    await stop();
    throw err;
  }
  return { clients, stop };
}

/** A Redis Cluster of `masters` masters and no replicas, settled. */
export async function startBenchCluster(masters: number): Promise<BenchServers> {
  const cluster = await startRedisCluster({ masters, replicasPerMaster: 0 });
  // Each node's temp dir is its working dir.
  const dirs = await Promise.all(cluster.nodes.map(async (n) => ((await redisCommand(n, ['CONFIG', 'GET', 'dir'])) as string[])[1]!)).catch(
    async (err: unknown) => {
      await cluster.stop();
      throw err;
    },
  );
  const stopCluster = atTeardown(`Redis Cluster of ${masters}`, () => cluster.stop(), { pids: cluster.nodes.map((n) => n.pid), dirs });
  const { clients, stop } = await connectAll(cluster.nodes.map((n) => n.url), stopCluster);
  const nodes = cluster.nodes.map((n, i) => ({ address: `${n.host}:${n.port}`, client: clients[i]! }));
  return {
    url: `redis://${cluster.seeds.map((s) => `${s.host}:${s.port}`).join(',')}`,
    masters: nodes,
    async metadataMaster(prefix) {
      const owner = await cluster.masterOf(keysFor(prefix).superblock);
      const node = nodes.find((n) => n.address === `${owner.host}:${owner.port}`);
      if (!node) throw new Error(`the metadata of '${prefix}' is on ${owner.host}:${owner.port}, not a master the bench knows`);
      return node;
    },
    stop,
  };
}

/** A master with one replica attached and in sync; `url` is the master's. */
export async function startReplicatedPair(): Promise<BenchServers> {
  const servers: LocalRedis[] = [];
  const stopServers = async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    const master = await startLocalRedis();
    servers.push(master);
    servers.push(await startLocalRedis({ replicaOf: master }));
    await waitFor(async () => /^slave0:.*state=online/m.test(String(await redisCommand(master, ['INFO', 'replication']))), {
      timeoutMs: 30_000,
      what: `the replica of ${master.port} to be online`,
    });
  } catch (err) {
    await stopServers();
    throw err;
  }
  const master = servers[0]!;
  const stopPair = atTeardown('Redis master and replica', stopServers, { pids: servers.map((s) => s.pid), dirs: servers.map((s) => s.dir) });
  const { clients, stop } = await connectAll([master.url], stopPair);
  const node = { address: `${master.host}:${master.port}`, client: clients[0]! };
  return { url: master.url, masters: [node], metadataMaster: async () => node, stop };
}
