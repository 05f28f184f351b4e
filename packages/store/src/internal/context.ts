/** What every operation module needs: clients, key layout, scripts and filesystem settings. */
import type { KeyLayout } from '@redisfs/schema';
import type { BinaryClient, RedisClient } from './connect.js';
import type { ScriptRunner } from './scripts.js';
import type { StoredCodec } from './codec.js';

export interface StoreContext {
  client: RedisClient;
  /** The same connection, with bulk strings decoded as Buffers (data blocks). */
  bin: BinaryClient;
  keys: KeyLayout;
  scripts: ScriptRunner;
  blockSize: number;
  codec: StoredCodec;
  readOnly: boolean;
  warn: (message: string, cause?: unknown) => void;
}
