/**
 * fsck, repairing: applies one finding's action as one atomic step (a single command or a small
 * Lua script), after re-checking in that same step what can be re-checked cheaply: an entry is
 * removed only if it still holds the value fsck saw, an nlink, parent or reference count is set
 * only if it is still the value fsck saw, an orphan is deleted only if its nlink and ctime did
 * not change (a link or rename would change them), a map entry of a missing block is removed
 * only while the block is still missing, a block is deleted only while no map fsck can name
 * holds it and it is neither counted nor free. A repair whose condition no longer holds is
 * skipped (and the next check looks again). An inode is a packed record, a field of its bucket
 * hash: a script that changes one decodes it (LUA_INODE_CODEC), compares, and writes it back
 * whole; one that would not be written back exactly as it was (corrupt) is left alone.
 *
 * Block maps are released as the store releases them, a batch of entries per script: a dead or
 * shrunk file's inode goes into `{P}:gc` in the script that judges it, then fsck runs the
 * collector's own step (gcStep) until the map is done (a crash in between leaves it to the
 * collector); a map whose inode is gone for good is released with the store's releaseKey. Every
 * reference released follows the store's rules (lua.ts, release): a shared block's count drops,
 * a block nothing references any more goes to `{F}#free`, whose keys the collector deletes.
 *
 * Scripts that touch a data block key and family keys at once (remove-map-entry, delete-block)
 * need a single server, as the block scan does: data blocks carry no hash tag. Repairs of
 * sessions and what they hold run the store's own scripts (fsck-sessions.ts).
 */
import { INODE_FIELDS, LUA_INODE_CODEC, ROOT_INO, encodeInodeRecord, type KeyLayout } from '@redisfs/schema';
import type { FsckRepair } from '../fsck.js';
import type { Finding } from './fsck-check.js';
import type { RedisClient } from './connect.js';
import { ScriptRunner } from './scripts.js';
import { releaseKey, releaseMapWork } from './release.js';
import { applySessionRepair } from './fsck-sessions.js';
import { nameBytes, showName } from './names.js';

const F = INODE_FIELDS;
const S_IFMT = 61440;
const S_IFDIR = 16384;
const S_IFREG = 32768;
const S_IFLNK = 40960;

/** KEYS[1] dir hash; ARGV: name, expected value, new value ('' = remove the entry). */
const SET_ENTRY = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
`;

/**
 * `iread(bucket, ino)`: inode ino's record, from its bucket: its fields as the store's scripts
 * see them (decimal strings), or nil when it is absent or would not be written back exactly as
 * it is (a corrupt record is never rewritten: fsck reports it).
 */
const READ_INODE = `${LUA_INODE_CODEC}
local function iread(bucket, ino)
  local v = redis.call('HGET', bucket, ino)
  if not v then return nil end
  local r = idecode(v)
  if r.x or iencode(r) ~= v then return nil end
  return r
end
`;

/** KEYS[1] bucket; ARGV: ino, field, expected value ('' = absent), new value. */
const SET_FIELD = `${READ_INODE}
local r = iread(KEYS[1], ARGV[1])
if not r or (r[ARGV[2]] or '') ~= ARGV[3] then return 0 end
r[ARGV[2]] = ARGV[4]
redis.call('HSET', KEYS[1], ARGV[1], iencode(r))
return 1
`;

/**
 * KEYS: bucket, the inode's entries hash, its xattr hash, its block map, `{P}:gc`, its symlink
 * target; ARGV: ino, expected nlink, expected ctime → 0 (changed: skipped), 1 (deleted), 2
 * (deleted; its map queued in gc).
 */
const DELETE_INODE = `${READ_INODE}
local r = iread(KEYS[1], ARGV[1])
if not r or r.${F.nlink} ~= ARGV[2] or r.${F.ctime} ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
-- A symlink's target goes with it (one of any other inode is stray: it goes too).
redis.call('DEL', KEYS[2], KEYS[3], KEYS[6])
if redis.call('EXISTS', KEYS[4]) == 0 then return 1 end
redis.call('SADD', KEYS[5], ARGV[1])
return 2
`;

/**
 * KEYS: bucket, the inode's block map, `{P}:gc`; ARGV: ino, block size. Queues the map in gc
 * while the inode is a regular file whose map holds entries at or past its end.
 */
const QUEUE_PAST_EOF = `${READ_INODE}
local r = iread(KEYS[1], ARGV[1])
if not r then return 0 end
local m, s = tonumber(r.${F.mode}), tonumber(r.${F.size})
if bit.band(m, ${S_IFMT}) ~= ${S_IFREG} then return 0 end
if redis.call('ZCOUNT', KEYS[2], math.ceil(s / tonumber(ARGV[2])), '+inf') == 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[1])
return 1
`;

/**
 * KEYS: bucket, the inode's block map; ARGV: ino. 1 while the map exists and its inode is gone
 * or (readably) not a regular file. Inode numbers are never reused and a file type never
 * changes, so this stays true.
 */
const IS_ORPHAN_MAP = `${READ_INODE}
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 1 end
local r = iread(KEYS[1], ARGV[1])
if not r or bit.band(tonumber(r.${F.mode}), ${S_IFMT}) == ${S_IFREG} then return 0 end
return 1
`;

/**
 * KEYS: block map, block, `{F}#rc`, `{F}#free`; ARGV: id, index, '1' when the block must be
 * missing. Removes the entry if it still holds the id at that index, releasing its reference: a
 * shared block's count drops; an unshared one that is stored goes to free.
 */
const REMOVE_ENTRY = `
local z = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not z or tonumber(z) ~= tonumber(ARGV[2]) then return 0 end
local stored = redis.call('EXISTS', KEYS[2]) == 1
if ARGV[3] == '1' and stored then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
local c = redis.call('HGET', KEYS[3], ARGV[1])
if c then
  if (tonumber(c) or 0) <= 2 then redis.call('HDEL', KEYS[3], ARGV[1]) else redis.call('HINCRBY', KEYS[3], ARGV[1], -1) end
elseif stored then
  redis.call('SADD', KEYS[4], ARGV[1])
end
return 1
`;

/**
 * KEYS: `{F}#rc`, `{F}#free`; ARGV: id, expected field ('' = absent), new count: >= 2 sets
 * it, 1 removes the field, 0 removes it and hands the block to the collector.
 */
const SET_REFCOUNT = `
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
local to = tonumber(ARGV[3])
if to >= 2 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) else redis.call('HDEL', KEYS[1], ARGV[1]) end
if to == 0 then redis.call('SADD', KEYS[2], ARGV[1]) end
return 1
`;

/**
 * KEYS: block, `{F}#rc`, `{F}#free`, then the maps that could reference it; ARGV: id.
 * Deletes the block while it is stored, neither counted nor free, and in none of those maps.
 */
const DELETE_BLOCK = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return 0 end
for i = 4, #KEYS do
  local z = redis.pcall('ZSCORE', KEYS[i], ARGV[1])
  if z then return 0 end
end
redis.call('UNLINK', KEYS[1])
return 1
`;

/**
 * KEYS: the stray key, its inode's bucket; ARGV: ino, 'dir' | 'xattr' | 'target'. Deletes it only
 * while the inode is still gone, or (for 'dir' and 'target') readably not a directory / symlink.
 */
const DELETE_HASH = `${READ_INODE}
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  if ARGV[2] == 'xattr' then return 0 end
  local r = iread(KEYS[2], ARGV[1])
  local keep = ARGV[2] == 'dir' and ${S_IFDIR} or ${S_IFLNK}
  if not r or bit.band(tonumber(r.${F.mode}), ${S_IFMT}) == keep then return 0 end
end
return redis.call('DEL', KEYS[1])
`;

/** KEYS[1] the root's bucket; ARGV: ino (1), its record. Only while the root is missing. */
const CREATE_ROOT = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

/** KEYS[1] stats; ARGV: expected inodes, expected bytes ('' = absent), new inodes, new bytes. */
const SET_STATS = `
if (redis.call('HGET', KEYS[1], 'inodes') or '') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], 'bytes') or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'inodes', ARGV[3], 'bytes', ARGV[4])
return 1
`;

/** KEYS[1] inode counter; ARGV: the lowest acceptable value. Never lowers it. */
const RAISE_COUNTER = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if cur >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
`;

/**
 * Applies the action of one finding. Returns what was done, or undefined when the finding has
 * no action or its re-checked condition no longer held.
 */
export async function applyRepair(
  client: RedisClient,
  layout: KeyLayout,
  found: Finding,
  blockSize: number,
  scripts: ScriptRunner = new ScriptRunner(client, layout.superblock),
): Promise<FsckRepair | undefined> {
  const action = found.action;
  if (!action) return undefined;
  const call = async (script: string, keys: string[], args: (string | Buffer)[]) => Number(await client.eval(script, { keys, arguments: args }));
  const run = async (script: string, keys: string[], args: (string | Buffer)[]) => (await call(script, keys, args)) === 1;
  // An entry's exact bytes, and what it held (one char per byte): HGET compares bytes.
  const entry = (a: { name: Buffer | string; value: string }) => ({ name: nameBytes(a.name), value: Buffer.from(a.value, 'latin1') });
  const collect = (ino: number) => releaseMapWork(scripts, layout, ino, blockSize);
  const done = (message: string): FsckRepair => ({
    kind: found.problem.kind,
    message,
    ...(found.problem.ino === undefined ? {} : { ino: found.problem.ino }),
    ...(found.problem.key === undefined ? {} : { key: found.problem.key }),
  });
  switch (action.op) {
    case 'remove-entry': {
      const { name, value } = entry(action);
      return (await run(SET_ENTRY, [layout.dir(action.dir)], [name, value, '']))
        ? done(`removed entry '${showName(name)}' (${showName(value)}) of directory ${action.dir}`)
        : undefined;
    }
    case 'set-entry': {
      const { name, value } = entry(action);
      return (await run(SET_ENTRY, [layout.dir(action.dir)], [name, value, action.newValue]))
        ? done(`set entry '${showName(name)}' of directory ${action.dir} to ${action.newValue} (was ${showName(value)})`)
        : undefined;
    }
    case 'set-nlink':
      return (await run(SET_FIELD, [layout.inodes(action.ino)], [String(action.ino), F.nlink, action.from, String(action.to)]))
        ? done(`set nlink of inode ${action.ino} to ${action.to} (was ${action.from || 'unset'})`)
        : undefined;
    case 'set-parent':
      return (await run(SET_FIELD, [layout.inodes(action.ino)], [String(action.ino), F.parent, action.from, String(action.to)]))
        ? done(`set parent of directory ${action.ino} to ${action.to} (was ${action.from || 'unset'})`)
        : undefined;
    case 'delete-inode': {
      const { ino } = action;
      const keys = [layout.inodes(ino), layout.dir(ino), layout.xattr(ino), layout.map(ino), layout.gc, layout.target(ino)];
      const deleted = await call(DELETE_INODE, keys, [String(ino), action.nlink, action.ctime]);
      if (deleted === 0) return undefined;
      if (deleted === 2) await collect(action.ino);
      return done(`deleted orphan inode ${action.ino}${deleted === 2 ? ` and released its ${action.blocks} block(s)` : ''}`);
    }
    case 'release-map': {
      const map = layout.map(action.ino);
      if (action.whole) {
        if (!(await run(IS_ORPHAN_MAP, [layout.inodes(action.ino), map], [String(action.ino)]))) return undefined;
        await releaseKey(scripts, layout, map);
        return done(`released block map ${map}: inode ${action.ino} is gone or not a regular file`);
      }
      if (!(await run(QUEUE_PAST_EOF, [layout.inodes(action.ino), map, layout.gc], [String(action.ino), String(blockSize)]))) return undefined;
      await collect(action.ino);
      return done(`released the blocks of inode ${action.ino} at or past the end of the file`);
    }
    case 'remove-map-entry': {
      const keys = [layout.map(action.ino), layout.block(action.id), layout.refcounts, layout.freeBlocks];
      if (!(await run(REMOVE_ENTRY, keys, [action.id, scoreArg(action.index), action.missing ? '1' : '']))) return undefined;
      return done(
        action.missing
          ? `removed block ${action.index} of inode ${action.ino} (missing block ${action.id}): it now reads as zeros`
          : `removed the corrupt entry ${JSON.stringify(action.id)} of ${layout.map(action.ino)}`,
      );
    }
    case 'set-refcount': {
      if (!(await run(SET_REFCOUNT, [layout.refcounts, layout.freeBlocks], [action.id, action.from, String(action.to)]))) return undefined;
      if (action.to === 0) return done(`removed the count of block ${action.id}, which nothing references, and freed it`);
      return done(action.to === 1 ? `removed the count of block ${action.id} (one reference)` : `set the count of block ${action.id} to ${action.to}`);
    }
    case 'delete-block':
      return (await run(DELETE_BLOCK, [layout.block(action.id), layout.refcounts, layout.freeBlocks, ...action.maps], [action.id]))
        ? done(`deleted ${layout.block(action.id)}, which nothing references`)
        : undefined;
    case 'unfree-block':
      return (await client.sRem(layout.freeBlocks, action.id)) === 1
        ? done(`took block ${action.id}, which is in use, off ${layout.freeBlocks}`)
        : undefined;
    case 'delete-hash': {
      const key = action.which === 'dir' ? layout.dir(action.ino) : action.which === 'xattr' ? layout.xattr(action.ino) : layout.target(action.ino);
      return (await run(DELETE_HASH, [key, layout.inodes(action.ino)], [String(action.ino), action.which])) ? done(`deleted ${key}`) : undefined;
    }
    case 'create-root':
      return (await run(CREATE_ROOT, [layout.inodes(ROOT_INO)], [String(ROOT_INO), rootInode(action.nlink)]))
        ? done(`created the root directory (inode ${ROOT_INO}, mode 0755, owner 0:0, nlink ${action.nlink})`)
        : undefined;
    case 'set-stats':
      return (await run(SET_STATS, [layout.stats], [action.from.inodes, action.from.bytes, String(action.to.inodes), action.to.bytes]))
        ? done(`set ${layout.stats} to ${action.to.inodes} inodes and ${action.to.bytes} bytes`)
        : undefined;
    case 'raise-counter':
      return (await run(RAISE_COUNTER, [layout.inoCounter], [String(action.to)]))
        ? done(`raised ${layout.inoCounter} to ${action.to}`)
        : undefined;
    case 'end-session':
    case 'free-removed':
    case 'drop-hold':
    case 'sweep-orphan':
    case 'drop-locks':
    case 'unlink-entry':
      return applySessionRepair(client, layout, action, blockSize, scripts, done);
  }
}

/** A score as Lua's tonumber reads it back (ZSCORE answers 'inf' for Infinity). */
function scoreArg(index: number): string {
  return Number.isFinite(index) ? String(index) : index > 0 ? 'inf' : '-inf';
}

function rootInode(nlink: number): Buffer {
  const now = BigInt(Date.now()) * 1_000_000n;
  return encodeInodeRecord({
    mode: S_IFDIR | 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    nlink,
    rdev: 0,
    atimeNs: now,
    mtimeNs: now,
    ctimeNs: now,
    target: undefined,
    generation: 1,
    parent: ROOT_INO,
  });
}
