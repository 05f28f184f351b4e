/**
 * Releasing what a family no longer references, in bounded steps (used by the collector and by
 * the admin tools): the keys of a deleted member, and the blocks in `{F}#free`.
 */
import { keysFor, type KeyLayout } from '@redisfs/schema';
import type { RedisClient } from './connect.js';
import type { ScriptRunner } from './scripts.js';
import { SCAN_COUNT } from './admin-client.js';

/** Block keys deleted per step. */
export const FREE_BATCH = 256;

/**
 * Deletes up to FREE_BATCH blocks listed in `{F}#free` (their keys, then the ids). Returns how
 * many ids it handled; 0 when the set is empty. `perKey`: one UNLINK per key (a cluster, where
 * the keys live in different slots), else one UNLINK of them all.
 */
export async function deleteFreeBlocks(client: RedisClient, keys: KeyLayout, perKey: boolean): Promise<number> {
  const ids = await client.sRandMemberCount(keys.freeBlocks, FREE_BATCH);
  if (ids.length === 0) return 0;
  const blockKeys = ids.map((id) => keys.block(id));
  if (perKey) await Promise.all(blockKeys.map((k) => client.unlink(k)));
  else await client.unlink(blockKeys);
  // An id in the set is never referenced again (ids are not reused): removing it last means a
  // crash in between only repeats an UNLINK.
  await client.sRem(keys.freeBlocks, ids);
  return ids.length;
}

/**
 * Releases every metadata key of `member` but `except`: block maps lose their references in
 * batches (blocks nobody else references go to `{F}#free`), other keys are deleted. Returns the
 * number of steps taken (script calls); stops early, to be resumed, when `stop()` says so.
 */
export async function releaseKeys(
  client: RedisClient,
  scripts: ScriptRunner,
  member: KeyLayout,
  except: readonly string[] = [],
  stop: () => boolean = () => false,
): Promise<{ steps: number; keys: number; stopped: boolean }> {
  let steps = 0;
  let keys = 0;
  for await (const batch of client.scanIterator({ MATCH: member.metaPattern, COUNT: SCAN_COUNT })) {
    for (const key of batch as string[]) {
      if (except.includes(key)) continue;
      keys++;
      for (;;) {
        if (stop()) return { steps, keys, stopped: true };
        steps++;
        if (Number(await scripts.run('releaseKey', member.metaPrefix, [key])) === 1) break;
      }
    }
  }
  return { steps, keys, stopped: false };
}

/**
 * Releases every key of member `prefix` of `family`'s family, which `forget` listed in
 * `{F}#dead` (its superblock already gone), then takes it off that list. Returns the number of
 * steps taken and keys released; stops early (to be resumed) when `stop()` says so.
 */
export async function releaseMember(
  client: RedisClient,
  scripts: ScriptRunner,
  family: KeyLayout,
  prefix: string,
  stop: () => boolean = () => false,
): Promise<{ steps: number; keys: number }> {
  let member: KeyLayout;
  try {
    member = keysFor(prefix);
  } catch {
    await client.sRem(family.deadMembers, prefix); // not a prefix: nothing to release
    return { steps: 0, keys: 0 };
  }
  if (member.family !== family.family) {
    await client.sRem(family.deadMembers, prefix); // not of this family: nothing of ours to release
    return { steps: 0, keys: 0 };
  }
  const done = await releaseKeys(client, scripts, member, [], stop);
  if (!done.stopped) await scripts.run('releaseDone', member.metaPrefix, []);
  return done;
}

/** Deletes every block listed in `{F}#free`, in batches. Returns how many. */
export async function drainFreeBlocks(client: RedisClient, keys: KeyLayout, perKey = false): Promise<number> {
  let total = 0;
  for (let n = await deleteFreeBlocks(client, keys, perKey); n > 0; n = await deleteFreeBlocks(client, keys, perKey)) total += n;
  return total;
}
