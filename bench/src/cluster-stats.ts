/** Where a filesystem's data blocks are in a cluster: keys and bytes per master, counted on each master. */
import { keysFor } from '@redisfs/schema';
import { collectorIdle } from './extras.js';
import { usedMemory } from './redis-stats.js';
import type { RedisNode, Target } from './targets.js';

export interface MasterBlocks {
  /** host:port */
  address: string;
  /** Whether this master also holds the filesystem's metadata (its hash tag's slot). */
  metadata: boolean;
  /** Data block keys (`F:b:*`) on this master. */
  blocks: number;
  /** Their values' bytes (STRLEN: codec byte + payload, compressed where it was stored so). */
  blockBytes: number;
  /** blockBytes / every master's blockBytes. */
  share: number;
  /** INFO memory used_memory of the master, for scale. */
  usedMemory: number;
}

export interface BlockShare {
  /** The workloads that had run when it was counted (their files were all still there). */
  afterWorkloads: number[];
  blocks: number;
  blockBytes: number;
  masters: MasterBlocks[];
}

const STRLEN_BATCH = 1000;

/** SCAN MATCH of the family's block pattern on one node, with STRLEN of every key found. */
async function blocksOn(node: RedisNode, pattern: string): Promise<{ blocks: number; blockBytes: number }> {
  let cursor = '0';
  let blocks = 0;
  let blockBytes = 0;
  do {
    const reply = await node.client.scan(cursor, { MATCH: pattern, COUNT: STRLEN_BATCH });
    cursor = String(reply.cursor);
    // Sent together: node-redis pipelines commands issued in one tick.
    const lengths = await Promise.all(reply.keys.map((key) => node.client.strLen(key)));
    blocks += reply.keys.length;
    blockBytes += lengths.reduce((a, b) => a + b, 0);
  } while (cursor !== '0');
  return { blocks, blockBytes };
}

/** Counts the target's data blocks on each of its masters, once its collector has nothing left to delete. */
export async function blockShare(target: Target, afterWorkloads: number[]): Promise<BlockShare> {
  const masters = target.masters ?? [];
  const metadataClient = target.redis!;
  await collectorIdle(metadataClient, target.prefix!);
  const pattern = keysFor(target.prefix!).blockPattern;
  const counted = await Promise.all(
    masters.map(async (m) => ({ ...(await blocksOn(m, pattern)), address: m.address, metadata: m.client === metadataClient, usedMemory: await usedMemory(m.client) })),
  );
  const blocks = counted.reduce((a, m) => a + m.blocks, 0);
  const blockBytes = counted.reduce((a, m) => a + m.blockBytes, 0);
  return {
    afterWorkloads,
    blocks,
    blockBytes,
    masters: counted.map((m) => ({
      address: m.address,
      metadata: m.metadata,
      blocks: m.blocks,
      blockBytes: m.blockBytes,
      share: blockBytes > 0 ? m.blockBytes / blockBytes : 0,
      usedMemory: m.usedMemory,
    })),
  };
}
