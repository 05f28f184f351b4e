/**
 * The cluster and sentinel helpers checked on their own (no FUSE, no redisfs): a real cluster and
 * a real sentinel setup come up, fail over, move slots, and leave no server behind.
 */
import { readFile, readdir } from 'node:fs/promises';
import { createClient } from '@redis/client';
import { describe, expect, it } from 'vitest';
import {
  crc16,
  keyForSlot,
  keySlot,
  pingRedis,
  redisCommand,
  requireRedisTools,
  runOk,
  startRedisCluster,
  startRedisSentinel,
  type RedisAddress,
  type RedisClusterNode,
  type StartedRedisCluster,
} from './index.js';

/**
 * SET, then WAIT 1 on the same connection (WAIT counts the writes of its own connection only: on
 * a fresh one it returns at once, proving nothing). Resolves with the replicas that have the key.
 */
async function setReplicated(node: RedisAddress, key: string, value: string): Promise<number> {
  const client = createClient({ socket: { host: node.host, port: node.port } });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.set(key, value);
    return Number(await client.sendCommand(['WAIT', '1', '5000']));
  } finally {
    client.destroy();
  }
}

/** `redis-cli -c` against one node: follows MOVED like a cluster client. */
async function cli(node: RedisClusterNode, ...args: string[]): Promise<string> {
  return (await runOk('redis-cli', ['-c', '-h', node.host, '-p', String(node.port), ...args])).trim();
}

async function masters(cluster: StartedRedisCluster): Promise<RedisClusterNode[]> {
  const roles = await Promise.all(cluster.nodes.map((n) => n.role()));
  return cluster.nodes.filter((_, i) => roles[i] === 'master');
}

/** The slots a CLUSTER NODES line gives a node (`0-5460`, `5461`; open-slot markers skipped). */
function slotsInClusterNodes(text: string, id: string): number[] {
  const line = text.split('\n').find((l) => l.startsWith(`${id} `));
  const slots: number[] = [];
  for (const token of line?.split(' ').slice(8) ?? []) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(token);
    if (!m) continue;
    for (let s = Number(m[1]); s <= Number(m[2] ?? m[1]); s++) slots.push(s);
  }
  return slots;
}

/** redis-server processes whose parent is this test process. */
async function redisChildren(): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const [state, ppid] = stat.slice(close + 2).split(' ');
    if (Number(ppid) !== process.pid) continue;
    const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
    if (/redis/.test(comm) || /redis/.test(cmdline)) found.push(`${entry} ${state} ${cmdline}`);
  }
  return found;
}

const ready = requireRedisTools();

describe('keySlot', () => {
  it('is CRC16/XMODEM mod 16384 of the key, or of its first non-empty {hashtag}', () => {
    expect(crc16(Buffer.from('123456789'))).toBe(0x31c3);
    expect(keySlot('{user1}:a')).toBe(keySlot('user1'));
    expect(keySlot('a{}b')).toBe(crc16(Buffer.from('a{}b')) % 16384);
    expect(keySlot(keyForSlot(4242, 'x'))).toBe(4242);
  });
});

describe.skipIf(!ready)('startRedisCluster', () => {
  it('comes up with 3 masters and 3 replicas; a key set through one node is read through another', async () => {
    await using cluster = await startRedisCluster();
    expect(cluster.nodes).toHaveLength(6);
    expect(await masters(cluster)).toHaveLength(3);
    expect(cluster.seeds).toEqual(cluster.nodes.map((n) => ({ host: n.host, port: n.port })));
    expect(cluster.url).toBe(`redis://127.0.0.1:${cluster.nodes[0]?.port}`);
    // The slot of a key as the server computes it, hash tags and non-ASCII included.
    const first = cluster.nodes[0]!;
    for (const key of ['foo', '{user1}:a', 'a{}b', '{}{x}', 'x{y', '{a}{b}', 'zürich', 'k{ü}']) {
      expect(keySlot(key), key).toBe(await redisCommand(first, ['CLUSTER', 'KEYSLOT', key]));
    }

    const key = 'greeting';
    const owner = await cluster.masterOf(key);
    const [writer, reader] = cluster.nodes.filter((n) => n !== owner);
    await expect(redisCommand(writer!, ['SET', key, 'hello'])).rejects.toThrow(new RegExp(`^MOVED ${keySlot(key)} 127.0.0.1:${owner.port}$`));
    expect(await cli(writer!, 'SET', key, 'hello')).toBe('OK');
    expect(await redisCommand(owner, ['GET', key])).toBe('hello');
    expect(await cli(reader!, 'GET', key)).toBe('hello');
  });

  it('failover(key) kills the key’s master, promotes its replica, and the key is still there', async () => {
    await using cluster = await startRedisCluster();
    const key = '{failover}:k';
    const old = await cluster.masterOf(key);
    const replicasOfOld: RedisClusterNode[] = [];
    for (const node of cluster.nodes) {
      const role = await redisCommand(node, ['ROLE']);
      if (Array.isArray(role) && role[0] === 'slave' && Number(role[2]) === old.port) replicasOfOld.push(node);
    }
    expect(replicasOfOld).toHaveLength(1);
    expect(await setReplicated(old, key, 'kept')).toBe(1);

    const promoted = await cluster.failover(key);
    expect(old.isRunning()).toBe(false);
    expect(promoted).toBe(replicasOfOld[0]);
    expect(await promoted.role()).toBe('master');
    expect(await cluster.masterOf(key)).toBe(promoted);
    const entry = cluster.nodes.find((n) => n.isRunning() && n !== promoted)!;
    expect(await cli(entry, 'GET', key)).toBe('kept');
  });

  it('reshard moves slots with their keys; moveSlot moves one chosen slot', async () => {
    await using cluster = await startRedisCluster();
    const [from, to] = await masters(cluster);
    const fromSlots = await cluster.slotsOf(from!);
    // One key in each of the first 20 slots of `from` (redis-cli takes a source's slots from the low end).
    const keyed = fromSlots.slice(0, 20);
    for (const slot of keyed) expect(await cli(from!, 'SET', keyForSlot(slot, 'r'), String(slot))).toBe('OK');

    const moved = await cluster.reshard({ from: from!, to: to!, slots: 10 });
    expect(moved).toHaveLength(10);
    expect(moved.every((s) => fromSlots.includes(s))).toBe(true);
    const movedKeyed = keyed.filter((s) => moved.includes(s));
    expect(movedKeyed.length).toBeGreaterThan(0);
    for (const slot of keyed) {
      const owner = moved.includes(slot) ? to! : from!;
      const other = owner === to ? from! : to!;
      expect(await redisCommand(owner, ['CLUSTER', 'COUNTKEYSINSLOT', slot]), `slot ${slot}`).toBe(1);
      expect(await redisCommand(other, ['CLUSTER', 'COUNTKEYSINSLOT', slot]), `slot ${slot}`).toBe(0);
      expect(await cli(from!, 'GET', keyForSlot(slot, 'r'))).toBe(String(slot));
    }
    const nodesText = String(await redisCommand(cluster.nodes[5]!, ['CLUSTER', 'NODES']));
    expect(slotsInClusterNodes(nodesText, to!.id)).toEqual(expect.arrayContaining(moved));
    expect(slotsInClusterNodes(nodesText, from!.id)).not.toContain(moved[0]);

    // One chosen slot, three keys in it.
    const slot = fromSlots.at(-1)!;
    const keys = ['a', 'b', 'c'].map((p) => keyForSlot(slot, p));
    for (const k of keys) expect(await cli(from!, 'SET', k, k)).toBe('OK');
    await cluster.moveSlot(slot, to!);
    expect(await cluster.masterOfSlot(slot)).toBe(to);
    expect(await redisCommand(to!, ['CLUSTER', 'COUNTKEYSINSLOT', slot])).toBe(3);
    expect(await redisCommand(from!, ['CLUSTER', 'COUNTKEYSINSLOT', slot])).toBe(0);
    for (const k of keys) expect(await cli(from!, 'GET', k)).toBe(k);
  });

  it('stop() is idempotent and every node is gone after it', async () => {
    const cluster = await startRedisCluster();
    const pids = (await redisChildren()).map((line) => Number(line.split(' ')[0]));
    expect(pids).toEqual(expect.arrayContaining(cluster.nodes.map((n) => n.pid)));
    await Promise.all([cluster.stop(), cluster.stop()]);
    await cluster.stop();
    for (const node of cluster.nodes) {
      expect(node.isRunning()).toBe(false);
      await expect(pingRedis(node)).rejects.toThrow(/ECONNREFUSED/);
    }
    const left = await redisChildren();
    expect(left.filter((line) => pids.includes(Number(line.split(' ')[0])))).toEqual([]);
  });
});

describe.skipIf(!ready)('startRedisSentinel', () => {
  it('killMaster leads to a new master the sentinels report, with the data written before', async () => {
    await using setup = await startRedisSentinel();
    expect(setup.masterName).toBe('mymaster');
    expect(setup.sentinels).toHaveLength(3);
    expect(setup.nodes).toHaveLength(2);
    const [first, replica] = setup.nodes;
    expect(await setup.master()).toBe(first);
    expect(await setReplicated(first!, 'k', 'before failover')).toBe(1);

    const promoted = await setup.killMaster();
    expect(first!.isRunning()).toBe(false);
    expect(promoted).toBe(replica);
    expect(await redisCommand(promoted, ['ROLE'])).toEqual(expect.arrayContaining(['master']));
    for (const sentinel of setup.sentinels) {
      expect(await redisCommand(sentinel, ['SENTINEL', 'get-master-addr-by-name', 'mymaster'])).toEqual([
        '127.0.0.1',
        String(promoted.port),
      ]);
    }
    expect(await redisCommand(promoted, ['GET', 'k'])).toBe('before failover');
  });
});

describe.skipIf(!ready)('after the tests above', () => {
  it('no redis-server child of this process is left running', async () => {
    expect(await redisChildren()).toEqual([]);
  });
});
