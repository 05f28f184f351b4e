/** What every operation module needs: clients, key layout, scripts and filesystem settings. */
import type { KeyLayout } from '@redisfs/schema';
import type { BinaryClient, RedisClient } from './connect.js';
import type { ScriptRunner } from './scripts.js';
import type { StoredCodec } from './codec.js';
import type { BlockIds } from './data.js';
import type { Session } from './session.js';

export interface StoreContext {
  client: RedisClient;
  /** The same connection, with bulk strings decoded as Buffers (data blocks). */
  bin: BinaryClient;
  keys: KeyLayout;
  scripts: ScriptRunner;
  blockSize: number;
  codec: StoredCodec;
  readOnly: boolean;
  /**
   * Whether write scripts store block values themselves (one server: every key is reachable
   * from a script). False where blocks live on other nodes than the metadata (Redis Cluster):
   * values are stored first, then a script swaps the map entries.
   */
  inlineBlocks: boolean;
  /** Replicas that must acknowledge each change (StoreOptions.syncReplicas), and for how long to wait. */
  syncReplicas: number;
  syncTimeoutMs: number;
  /** Block ids reserved from the family's counter. */
  blockIds: BlockIds;
  /** Asks the background collector for a round (after an operation left work for it). */
  collect: () => void;
  warn: (message: string, cause?: unknown) => void;
  /**
   * This store's session (a read-write store opened with StoreOptions.session): its `id` is the
   * current session id, which changes when the session, declared dead, registers anew.
   */
  session?: Session | undefined;
}
