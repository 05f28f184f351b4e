/**
 * Releasing what a family no longer references, in bounded steps (used by the collector, the
 * admin tools and fsck): the map work listed in `MP gc`, the keys of a deleted member, and the
 * blocks in `{F}#free`.
 */
import { decodeGcEntry, keysFor, type KeyLayout } from '@redisfs/schema';
import type { RedisClient } from './connect.js';
import type { ScriptRunner } from './scripts.js';
import { SCAN_COUNT } from './admin-client.js';
import { sScanMembers, scanMatching, unlinkKeys } from './topology.js';

/** Block keys deleted per step. */
export const FREE_BATCH = 256;

/**
 * Deletes up to FREE_BATCH blocks listed in `{F}#free` (their keys, then the ids). Returns how
 * many ids it handled; 0 when the set is empty. `perKey`: one UNLINK per key (a cluster, where
 * the keys live in different slots), else one UNLINK of them all.
 */
export async function deleteFreeBlocks(client: RedisClient, keys: KeyLayout): Promise<number> {
  const ids = await client.sRandMemberCount(keys.freeBlocks, FREE_BATCH);
  if (ids.length === 0) return 0;
  const blockKeys = ids.map((id) => keys.block(id));
  await unlinkKeys(client, blockKeys);
  // An id in the set is never referenced again (ids are not reused): removing it last means a
  // crash in between only repeats an UNLINK.
  await client.sRem(keys.freeBlocks, ids);
  return ids.length;
}

/**
 * Releases the map work `MP gc` lists for inode `ino` (all its map when the inode is gone, else
 * the entries past its size), one script (gcStep) of RELEASE_BATCH entries at a time, until the
 * script says it is done. Returns the steps taken; stops early, to be resumed, on `stop()`.
 */
export async function releaseMapWork(
  scripts: ScriptRunner,
  layout: KeyLayout,
  ino: number,
  blockSize: number,
  stop: () => boolean = () => false,
): Promise<number> {
  let steps = 0;
  while (!stop()) {
    steps++;
    if (Number(await scripts.run('gcStep', layout.metaPrefix, [String(ino), String(blockSize)])) === 1) break;
  }
  return steps;
}

/**
 * Works through `MP gc` (a few members at a time) until it is empty or `stop()` says so; a
 * member that is not an inode number is removed. Returns the steps taken.
 */
export async function releaseGcWork(
  client: RedisClient,
  scripts: ScriptRunner,
  layout: KeyLayout,
  blockSize: number,
  stop: () => boolean = () => false,
): Promise<number> {
  let steps = 0;
  while (!stop()) {
    const members = await client.sRandMemberCount(layout.gc, GC_MEMBERS_PER_STEP);
    if (members.length === 0) break;
    for (const member of members) {
      const ino = decodeGcEntry(member);
      if (ino === undefined) await client.sRem(layout.gc, member); // not a member this layout writes
      else steps += await releaseMapWork(scripts, layout, ino, blockSize, stop);
      if (stop()) break;
    }
  }
  return steps;
}

/**
 * Releases one metadata key of `member`'s family, one script (releaseKey) at a time: a block map
 * loses RELEASE_BATCH references per step, another key goes in one. Stops early on `stop()`.
 */
export async function releaseKey(
  scripts: ScriptRunner,
  member: KeyLayout,
  key: string,
  stop: () => boolean = () => false,
): Promise<{ steps: number; done: boolean }> {
  let steps = 0;
  while (!stop()) {
    steps++;
    if (Number(await scripts.run('releaseKey', member.metaPrefix, [key])) === 1) return { steps, done: true };
  }
  return { steps, done: false };
}

/** `MP gc` members looked at per SRANDMEMBER. */
const GC_MEMBERS_PER_STEP = 16;

/**
 * Releases every metadata key of `member` but `except`: block maps lose their references in
 * batches (blocks nobody else references go to `{F}#free`), other keys are deleted. Returns the
 * number of steps taken (script calls); stops early, to be resumed, when `stop()` says so.
 * `onBatch` is told the keys of each SCAN batch once they are released (progress).
 */
export async function releaseKeys(
  client: RedisClient,
  scripts: ScriptRunner,
  member: KeyLayout,
  except: readonly string[] = [],
  stop: () => boolean = () => false,
  onBatch?: (keys: readonly string[]) => void,
): Promise<{ steps: number; keys: number; stopped: boolean }> {
  let steps = 0;
  let keys = 0;
  for await (const batch of scanMatching(client, member.metaPattern, SCAN_COUNT)) {
    for (const key of batch as string[]) {
      if (except.includes(key)) continue;
      keys++;
      const released = await releaseKey(scripts, member, key, stop);
      steps += released.steps;
      if (!released.done) return { steps, keys, stopped: true };
    }
    onBatch?.(batch as string[]);
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
  onBatch?: (keys: readonly string[]) => void,
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
  const done = await releaseKeys(client, scripts, member, [], stop, onBatch);
  if (!done.stopped) await scripts.run('releaseDone', member.metaPrefix, []);
  return done;
}

/** Deletes every block listed in `{F}#free`, in batches. Returns how many; `onBatch` is told the total after each batch. */
export async function drainFreeBlocks(
  client: RedisClient,
  keys: KeyLayout,
  perKey = false,
  onBatch?: (deleted: number) => void,
): Promise<number> {
  let total = 0;
  for (let n = await deleteFreeBlocks(client, keys); n > 0; n = await deleteFreeBlocks(client, keys)) {
    total += n;
    onBatch?.(total);
  }
  return total;
}

/** Orphans (`MP orph`) looked at per script: freeing one costs up to one batch of its block map. */
const ORPHANS_PER_STEP = 16;

/**
 * Frees the inodes of `MP orph` (kept with link count 0 while a session holds them open) that no
 * session holds any more: a session's end cut short by a crash, or a copy that brought them
 * from a filesystem where they were held. SSCAN in batches, one short script (sweepOrphans) per
 * few members, each re-checking in Redis. Returns the inodes freed, and whether any left work
 * for the collector.
 */
export async function sweepOrphans(
  client: RedisClient,
  scripts: ScriptRunner,
  layout: KeyLayout,
  stop: () => boolean = () => false,
): Promise<{ freed: number; work: boolean }> {
  let freed = 0;
  let work = false;
  for await (const page of sScanMembers(client, layout.orphans, SCAN_COUNT)) {
    for (let i = 0; i < page.length && !stop(); i += ORPHANS_PER_STEP) {
      const [queued, n] = (await scripts.run('sweepOrphans', layout.metaPrefix, page.slice(i, i + ORPHANS_PER_STEP))) as [string, number];
      freed += Number(n);
      if (queued === '1') work = true;
    }
    if (stop()) break;
  }
  return { freed, work };
}
