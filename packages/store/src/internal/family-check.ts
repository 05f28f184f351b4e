/**
 * Test-only: the block bookkeeping of a family (layout 2) checked against its block maps, from
 * outside, with a plain client. Not exported from the package.
 *
 * What layout 2 promises, for every block id of family F:
 *  - `{F}#rc` holds n exactly when n >= 2 block-map entries (of any member) reference the id;
 *  - a referenced id has its block key `F:b:<id>`, and is not in `{F}#free`;
 *  - a block key nobody references is in `{F}#free` (waiting for the collector); once the
 *    collector is idle there is none: the block keys are exactly the referenced ids.
 */
import { keysFor, parseBlockKey } from '@redisfs/schema';
import type { RawClient } from './test-fixture.js';
import { scanMatching, type RedisClient } from './topology.js';

/** The plain client of the test fixture. */
type Reader = RawClient;

export interface FamilyState {
  /** Every block-map key of the family (all members), with the ids it references. */
  maps: Map<string, string[]>;
  /** References per block id, over every map of the family. */
  refs: Map<string, number>;
  rc: Record<string, string>;
  free: string[];
  /** Ids whose block key exists. */
  blocks: string[];
}

async function scan(client: Reader, pattern: string): Promise<string[]> {
  const out: string[] = [];
  for await (const keys of scanMatching(client as unknown as RedisClient, pattern, 1000)) out.push(...(keys as string[]));
  return [...new Set(out)].sort();
}

/** The block ids whose key exists in the family. */
export async function blockIdsOf(client: Reader, family: string): Promise<string[]> {
  const k = keysFor(family);
  return (await scan(client, k.blockPattern)).map((key) => parseBlockKey(k, key) ?? `?${key}`).sort();
}

/** The ids the block maps of one member reference (each once, sorted). */
export async function mapIdsOf(client: Reader, prefix: string): Promise<string[]> {
  const k = keysFor(prefix);
  const ids = new Set<string>();
  for (const key of await scan(client, k.metaPattern)) {
    if (!key.startsWith(`${k.metaPrefix}m:`)) continue;
    for (const id of await client.zRange(key, 0, -1)) ids.add(id);
  }
  return [...ids].sort();
}

/** Every key of a family: members' metadata, family keys (`{F}#…`) and blocks. */
export async function familyKeysOf(client: Reader, family: string): Promise<string[]> {
  const k = keysFor(family);
  return [...(await scan(client, `${k.hashTag}*`)), ...(await scan(client, k.blockPattern))].sort();
}

export async function familyState(client: Reader, family: string): Promise<FamilyState> {
  const k = keysFor(family);
  const maps = new Map<string, string[]>();
  const refs = new Map<string, number>();
  const mapKey = new RegExp(`^\\{${family.replace(/[.]/g, '\\.')}\\}(@[^:]+)?:m:\\d+$`);
  for (const key of await scan(client, `${k.hashTag}*`)) {
    if (!mapKey.test(key)) continue;
    const ids = await client.zRange(key, 0, -1);
    maps.set(key, ids);
    for (const id of ids) refs.set(id, (refs.get(id) ?? 0) + 1);
  }
  return {
    maps,
    refs,
    rc: await client.hGetAll(k.refcounts),
    free: (await client.sMembers(k.freeBlocks)).sort(),
    blocks: await blockIdsOf(client, family),
  };
}

/**
 * What is wrong with the family's block bookkeeping (empty when nothing is). `idle`: the
 * collector has finished, so no block may wait in `{F}#free` either.
 */
export async function familyProblems(client: Reader, family: string, idle = true): Promise<string[]> {
  const s = await familyState(client, family);
  const problems: string[] = [];
  const blocks = new Set(s.blocks);
  const free = new Set(s.free);
  for (const [id, n] of s.refs) {
    const want = n >= 2 ? String(n) : undefined;
    if (s.rc[id] !== want) problems.push(`block ${id}: ${n} reference(s) but rc ${s.rc[id] ?? '(absent)'}`);
    if (!blocks.has(id)) problems.push(`block ${id}: referenced but its key is missing`);
    if (free.has(id)) problems.push(`block ${id}: referenced but listed as free`);
  }
  for (const id of Object.keys(s.rc)) {
    if (!s.refs.has(id)) problems.push(`block ${id}: no reference but rc ${s.rc[id]}`);
  }
  for (const id of s.blocks) {
    if (s.refs.has(id)) continue;
    if (idle) problems.push(`block ${id}: stored, referenced by no map${free.has(id) ? ' (still listed as free)' : ' (leaked: not listed as free)'}`);
    else if (!free.has(id)) problems.push(`block ${id}: stored, referenced by no map, not listed as free (leaked)`);
  }
  if (idle && s.free.length > 0) problems.push(`ids still listed as free after collection: ${s.free.join(' ')}`);
  return problems;
}
