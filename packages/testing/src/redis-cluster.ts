/**
 * A real Redis Cluster for one test: masters × (1 + replicas) local redis-servers joined with
 * `redis-cli --cluster create` (by hand for fewer than 3 masters, which it refuses), plus what
 * cluster tests need to do to it: find the node serving a key, crash a master and wait for its
 * replica to take over, move slots. The node timeout is 1 s, so a failover settles in a few seconds.
 *
 *   await using cluster = await startRedisCluster();
 *   const before = await cluster.masterOf('{fs1}:inode:1');
 *   const after = await cluster.failover('{fs1}:inode:1'); // a promoted replica
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { disposeWhenTestEnds } from './lifecycle.js';
import { findExecutable } from './prerequisites.js';
import { type LocalRedis, type RedisAddress, type RedisReply, redisCommand, startLocalRedis } from './redis-server.js';
import { runOk } from './run.js';
import { waitFor, waitForNoProblem } from './wait-for.js';

/** The number of hash slots in a Redis Cluster. */
export const CLUSTER_SLOT_COUNT = 16384;
/** A node's cluster bus listens on its port + 10000. */
const BUS_PORT_OFFSET = 10_000;
const NODE_TIMEOUT_MS = 1000;
/** How long a cluster may take to agree after a change (create, failover, slot move). */
const SETTLE_TIMEOUT_MS = 30_000;

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** CRC16/XMODEM, the checksum Redis Cluster hashes keys with. */
export function crc16(data: Uint8Array): number {
  let crc = 0;
  for (const byte of data) crc = ((crc << 8) & 0xffff) ^ (CRC16_TABLE[((crc >> 8) ^ byte) & 0xff] ?? 0);
  return crc;
}

/**
 * The hash slot of a key, as `CLUSTER KEYSLOT` computes it: only the part between the first `{`
 * and the next `}` is hashed when that part is not empty (`{user1}:a` and `{user1}:b` share a slot).
 */
export function keySlot(key: string | Uint8Array): number {
  const bytes = typeof key === 'string' ? Buffer.from(key) : key;
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % CLUSTER_SLOT_COUNT;
  }
  return crc16(bytes) % CLUSTER_SLOT_COUNT;
}

/** A key (`<prefix>{<n>}`) that hashes to `slot`, found by counting up n; for putting data in a chosen slot. */
export function keyForSlot(slot: number, prefix = 'key'): string {
  for (let n = 0; ; n++) if (keySlot(String(n)) === slot) return `${prefix}{${n}}`;
}

export type ClusterRole = 'master' | 'replica';

/** One redis-server of the cluster. */
export interface RedisClusterNode extends RedisAddress {
  /** redis://host:port */
  readonly url: string;
  readonly pid: number;
  /** The node's cluster id (CLUSTER MYID); it keeps it for life. */
  readonly id: string;
  /** Asks the node now (ROLE); a failover changes it. */
  role(): Promise<ClusterRole>;
  /** Whether the process has not exited (kill9 ends it). */
  isRunning(): boolean;
  /** Crashes the node (SIGKILL) and waits until the process is gone. */
  kill9(): Promise<void>;
  stop(): Promise<void>;
  logs(): string;
}

/** A range of slots and the id of the master serving it, as CLUSTER SLOTS reports. */
export interface SlotRange {
  start: number;
  end: number;
  masterId: string;
}

export interface StartRedisClusterOptions {
  /** 3 unless told. Fewer than 3 (which redis-cli refuses) are joined by hand: MEET, ADDSLOTSRANGE, REPLICATE. */
  masters?: number;
  /** 1 unless told. */
  replicasPerMaster?: number;
  /** Extra redis-server arguments for every node. */
  args?: string[];
}

/** A running cluster. Stop it with `stop()` or let `await using` (or the test's end) do it. */
export interface StartedRedisCluster extends AsyncDisposable {
  /** Every node, in the order they came up, including ones a test has killed. */
  readonly nodes: readonly RedisClusterNode[];
  /** Where a cluster client can start: every node's address. */
  readonly seeds: readonly RedisAddress[];
  /** redis://host:port of the first node. */
  readonly url: string;
  /** The slot map as a running node reports it. */
  slots(): Promise<SlotRange[]>;
  /** The slots `node` serves, ascending. */
  slotsOf(node: RedisClusterNode): Promise<number[]>;
  /** The node serving `slot` now, as a running node reports it. */
  masterOfSlot(slot: number): Promise<RedisClusterNode>;
  /** The node serving the key's slot now. */
  masterOf(key: string): Promise<RedisClusterNode>;
  /**
   * Crashes (kill -9) the master of the key's slot and waits until one of its replicas serves the
   * slot, answers ROLE as master and the cluster is settled again. Resolves with the new master.
   */
  failover(key: string): Promise<RedisClusterNode>;
  /**
   * Moves `slots` slots from one master to another with `redis-cli --cluster reshard` (keys
   * included; it takes the source's lowest slots) and waits until every node agrees. Resolves
   * with the slots that moved. Works after a failover too (redis-cli skips failed nodes).
   */
  reshard(options: { from: RedisClusterNode; to: RedisClusterNode; slots: number }): Promise<number[]>;
  /**
   * Moves one slot, keys included, to master `to` the way the cluster spec describes (SETSLOT
   * IMPORTING/MIGRATING, MIGRATE in batches, SETSLOT NODE everywhere) and waits until every node
   * agrees. Keys must be UTF-8 text.
   */
  moveSlot(slot: number, to: RedisClusterNode): Promise<void>;
  /** Waits until every running node says cluster_state:ok, knows every node and agrees on the slot map, and every running replica is linked. */
  waitUntilSettled(timeoutMs?: number): Promise<void>;
  /** Stops every node and removes their temp dirs. Idempotent. */
  stop(): Promise<void>;
}

/** Whether nothing listens on 127.0.0.1:port right now. */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free port whose cluster bus port (+10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await freePort();
    if (port + BUS_PORT_OFFSET <= 65535 && (await portIsFree(port + BUS_PORT_OFFSET))) return port;
  }
  throw new Error('found no free port whose cluster bus port (+10000) is free too');
}

function parseSlots(reply: RedisReply): SlotRange[] {
  if (!Array.isArray(reply)) throw new Error(`CLUSTER SLOTS answered ${JSON.stringify(reply)}`);
  return reply
    .map((entry) => {
      const [start, end, master] = entry as [number, number, RedisReply[]];
      return { start, end, masterId: String(master[2]) };
    })
    .sort((a, b) => a.start - b.start);
}

function describeSlots(ranges: SlotRange[]): string {
  return ranges.map((r) => `${r.start}-${r.end}:${r.masterId.slice(0, 8)}`).join(' ');
}

class ClusterNode implements RedisClusterNode {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly pid: number;

  constructor(
    private readonly server: LocalRedis,
    readonly id: string,
  ) {
    this.host = server.host;
    this.port = server.port;
    this.url = server.url;
    this.pid = server.pid;
  }

  async role(): Promise<ClusterRole> {
    const reply = await redisCommand(this, ['ROLE']);
    return Array.isArray(reply) && reply[0] === 'master' ? 'master' : 'replica';
  }

  isRunning(): boolean {
    return this.server.isRunning();
  }

  kill9(): Promise<void> {
    return this.server.kill9();
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  logs(): string {
    return this.server.logs();
  }
}

class RedisCluster implements StartedRedisCluster {
  readonly nodes: ClusterNode[] = [];
  /** Every server started, also those that never became a node (start failed half-way). */
  private readonly servers: LocalRedis[] = [];
  private stopping: Promise<void> | undefined;

  get seeds(): RedisAddress[] {
    return this.nodes.map((n) => ({ host: n.host, port: n.port }));
  }

  get url(): string {
    const first = this.nodes[0];
    if (!first) throw new Error('the cluster has no nodes');
    return first.url;
  }

  async boot(masters: number, replicasPerMaster: number, args: string[]): Promise<void> {
    const redisCli = findExecutable('redis-cli');
    if (!redisCli) throw new Error('redis-cli is not on PATH: install it with `sudo apt-get install redis-tools`');
    if (!Number.isInteger(masters) || masters < 1) throw new Error(`a Redis Cluster needs at least 1 master, not ${masters}`);
    const count = masters * (1 + replicasPerMaster);
    const started = await Promise.allSettled(
      Array.from({ length: count }, async () => {
        const server = await startLocalRedis({
          pickPort: freeClusterPort,
          args: [
            '--cluster-enabled', 'yes',
            '--cluster-node-timeout', String(NODE_TIMEOUT_MS),
            ...args,
          ],
          // The config file path must be absolute and the server's own: it is written at startup.
          config: ({ dir }) => `cluster-config-file ${join(dir, 'nodes.conf')}\n`,
        });
        this.servers.push(server);
        // Stopped while starting (the test ended): stop() did not see this one.
        if (this.stopping) await server.stop();
        return server;
      }),
    );
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    for (const server of this.servers) this.nodes.push(new ClusterNode(server, String(await redisCommand(server, ['CLUSTER', 'MYID']))));
    if (masters >= 3) {
      await runOk(redisCli, [
        '--cluster', 'create',
        ...this.nodes.map((n) => `${n.host}:${n.port}`),
        '--cluster-replicas', String(replicasPerMaster),
        '--cluster-yes',
      ]);
    } else {
      await this.joinByHand(masters);
    }
    await this.waitUntilSettled();
    const withSlots = new Set((await this.slots()).map((r) => r.masterId));
    if (withSlots.size !== masters) throw new Error(`the cluster came up with ${withSlots.size} masters serving slots, not ${masters}`);
  }

  /**
   * What `redis-cli --cluster create` does, for fewer than 3 masters (which it refuses): the first
   * `masters` nodes share the slots in even ranges, the others replicate them in turn.
   */
  private async joinByHand(masters: number): Promise<void> {
    const [first] = this.nodes;
    if (!first) throw new Error('the cluster has no nodes');
    for (const node of this.nodes.slice(1)) await redisCommand(node, ['CLUSTER', 'MEET', first.host, first.port]);
    const primaries = this.nodes.slice(0, masters);
    for (const [i, node] of primaries.entries()) {
      const start = Math.floor((i * CLUSTER_SLOT_COUNT) / masters);
      const end = Math.floor(((i + 1) * CLUSTER_SLOT_COUNT) / masters) - 1;
      await redisCommand(node, ['CLUSTER', 'ADDSLOTSRANGE', start, end]);
    }
    for (const [i, node] of this.nodes.slice(masters).entries()) {
      const master = primaries[i % masters]!;
      // REPLICATE fails until the node has heard of its master through the cluster bus.
      await waitFor(async () => (await redisCommand(node, ['CLUSTER', 'REPLICATE', master.id])) === 'OK', {
        timeoutMs: SETTLE_TIMEOUT_MS,
        intervalMs: 100,
        what: `${node.port} to replicate ${master.port}`,
      });
    }
  }

  private running(): ClusterNode[] {
    return this.nodes.filter((n) => n.isRunning());
  }

  private node(id: string): ClusterNode {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`no node of this cluster has id ${id}`);
    return node;
  }

  async slots(): Promise<SlotRange[]> {
    let lastError: unknown = new Error('no node of the cluster is running');
    for (const node of this.running()) {
      try {
        return parseSlots(await redisCommand(node, ['CLUSTER', 'SLOTS']));
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  }

  async slotsOf(node: RedisClusterNode): Promise<number[]> {
    const slots: number[] = [];
    for (const r of await this.slots()) if (r.masterId === node.id) for (let s = r.start; s <= r.end; s++) slots.push(s);
    return slots;
  }

  async masterOfSlot(slot: number): Promise<RedisClusterNode> {
    const range = (await this.slots()).find((r) => r.start <= slot && slot <= r.end);
    if (!range) throw new Error(`no master serves slot ${slot}`);
    return this.node(range.masterId);
  }

  masterOf(key: string): Promise<RedisClusterNode> {
    return this.masterOfSlot(keySlot(key));
  }

  async failover(key: string): Promise<RedisClusterNode> {
    const slot = keySlot(key);
    const old = await this.masterOfSlot(slot);
    await old.kill9();
    const promoted = await waitFor(
      async () => {
        const now = await this.masterOfSlot(slot);
        return now !== old && (await now.role()) === 'master' && now;
      },
      { timeoutMs: SETTLE_TIMEOUT_MS, intervalMs: 100, what: `a replica to take over slot ${slot} from the killed master ${old.port}` },
    );
    await this.waitUntilSettled();
    return promoted;
  }

  async reshard(options: { from: RedisClusterNode; to: RedisClusterNode; slots: number }): Promise<number[]> {
    const { from, to } = options;
    const redisCli = findExecutable('redis-cli') ?? 'redis-cli';
    const before = new Set(await this.slotsOf(to));
    await runOk(redisCli, [
      '--cluster', 'reshard', `${from.host}:${from.port}`,
      '--cluster-from', from.id,
      '--cluster-to', to.id,
      '--cluster-slots', String(options.slots),
      '--cluster-yes',
    ]);
    await this.waitUntilSettled();
    return (await this.slotsOf(to)).filter((s) => !before.has(s));
  }

  async moveSlot(slot: number, to: RedisClusterNode): Promise<void> {
    const from = await this.masterOfSlot(slot);
    if (from.id === to.id) return;
    await redisCommand(to, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id]);
    await redisCommand(from, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id]);
    for (;;) {
      const keys = (await redisCommand(from, ['CLUSTER', 'GETKEYSINSLOT', slot, 100])) as string[];
      if (keys.length === 0) break;
      await redisCommand(from, ['MIGRATE', to.host, to.port, '', 0, 5000, 'KEYS', ...keys], 10_000);
    }
    // The new owner first (it bumps its config epoch), then the old one, then everyone else.
    const masters = this.running().filter((n) => n !== to && n !== from);
    for (const node of [to, from]) await redisCommand(node, ['CLUSTER', 'SETSLOT', slot, 'NODE', to.id]);
    for (const node of masters) {
      if ((await node.role()) === 'master') await redisCommand(node, ['CLUSTER', 'SETSLOT', slot, 'NODE', to.id]);
    }
    await this.waitUntilSettled();
  }

  /** Why the cluster is not settled yet, or undefined when it is. */
  private async unsettledBecause(): Promise<string | undefined> {
    const running = this.running();
    let agreed: { port: number; map: string } | undefined;
    for (const node of running) {
      const info = String(await redisCommand(node, ['CLUSTER', 'INFO']));
      if (!info.includes('cluster_state:ok')) return `${node.port} says ${/cluster_state:\w+/.exec(info)?.[0]}`;
      const known = Number(/cluster_known_nodes:(\d+)/.exec(info)?.[1]);
      if (known !== this.nodes.length) return `${node.port} knows ${known} of ${this.nodes.length} nodes`;
      const ranges = parseSlots(await redisCommand(node, ['CLUSTER', 'SLOTS']));
      const map = describeSlots(ranges);
      agreed ??= { port: node.port, map };
      if (map !== agreed.map) return `${node.port} sees slots ${map}; ${agreed.port} sees ${agreed.map}`;
      const dead = ranges.find((r) => !this.node(r.masterId).isRunning());
      if (dead) return `${node.port} has slots ${dead.start}-${dead.end} served by the stopped node ${dead.masterId}`;
      const role = await redisCommand(node, ['ROLE']);
      if (Array.isArray(role) && role[0] === 'slave' && role[3] !== 'connected') return `replica ${node.port} is ${String(role[3])} to ${String(role[2])}`;
    }
    return undefined;
  }

  async waitUntilSettled(timeoutMs = SETTLE_TIMEOUT_MS): Promise<void> {
    await waitForNoProblem(() => this.unsettledBecause(), { timeoutMs, intervalMs: 100, what: 'the cluster to settle' });
  }

  stop(): Promise<void> {
    this.stopping ??= Promise.all(this.servers.map((s) => s.stop())).then(() => undefined);
    return this.stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/**
 * Starts a Redis Cluster of local redis-servers (`masters` × (1 + `replicasPerMaster`) nodes on
 * 127.0.0.1) and waits until it has settled. Every server is stopped when the running test ends,
 * pass or fail; outside a test the caller stops it.
 */
export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<StartedRedisCluster> {
  const cluster = new RedisCluster();
  disposeWhenTestEnds(cluster);
  try {
    await cluster.boot(options.masters ?? 3, options.replicasPerMaster ?? 1, options.args ?? []);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
