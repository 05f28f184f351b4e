/**
 * fsck, repairing: applies one finding's action as one atomic step (a single command or a small
 * Lua script), after re-checking in that same step what can be re-checked cheaply: an entry is
 * removed only if it still holds the value fsck saw, an nlink or parent is set only if it is
 * still the value fsck saw, an orphan is deleted only if its nlink and ctime did not change (a
 * link or rename would change them), a block is deleted only if it is still outside its file.
 * A repair whose condition no longer holds is skipped (and the next check looks again).
 *
 * Data blocks are deleted after the script that deletes their inode, as the store does: a crash
 * in between leaves blocks of a missing inode, which the next fsck finds.
 */
import { INODE_FIELDS, ROOT_INO, encodeInode, type KeyLayout } from '@redisfs/schema';
import type { FsckRepair } from '../fsck.js';
import type { Finding } from './fsck-check.js';
import type { RedisClient } from './connect.js';

const F = INODE_FIELDS;
const S_IFMT = 61440;
const S_IFDIR = 16384;
const S_IFREG = 32768;
const UNLINK_BATCH = 500;

/** KEYS[1] dir hash; ARGV: name, expected value, new value ('' = remove the entry). */
const SET_ENTRY = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
`;

/** KEYS[1] inode; ARGV: field, expected raw value ('' = absent), new value. */
const SET_FIELD = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`;

/** KEYS: inode, its entries hash, its xattr hash; ARGV: expected nlink, expected ctime. */
const DELETE_INODE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if (redis.call('HGET', KEYS[1], '${F.nlink}') or '') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], '${F.ctime}') or '') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
`;

/** KEYS: the stray hash, its inode; ARGV: 'dir' | 'xattr'. Deletes only while the inode is still gone (or, for 'dir', not a directory). */
const DELETE_HASH = `
if redis.call('EXISTS', KEYS[2]) == 1 then
  if ARGV[1] ~= 'dir' then return 0 end
  local m = tonumber(redis.call('HGET', KEYS[2], '${F.mode}') or '')
  if not m or bit.band(m, ${S_IFMT}) == ${S_IFDIR} then return 0 end
end
return redis.call('DEL', KEYS[1])
`;

/**
 * KEYS: inode, block; ARGV: block index, block size. Deletes the block unless its inode is now a
 * regular file that covers it. (Data blocks carry no hash tag: with Redis Cluster, which the
 * store does not support yet, this script would need the inode and block in one slot.)
 */
const DELETE_BLOCK = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  local m = tonumber(redis.call('HGET', KEYS[1], '${F.mode}') or '')
  local s = tonumber(redis.call('HGET', KEYS[1], '${F.size}') or '')
  if not m or not s then return 0 end
  if bit.band(m, ${S_IFMT}) == ${S_IFREG} and tonumber(ARGV[1]) < math.ceil(s / tonumber(ARGV[2])) then return 0 end
end
return redis.call('UNLINK', KEYS[2])
`;

/** KEYS[1] root inode; ARGV: field/value pairs. Only while the root is missing. */
const CREATE_ROOT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
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
): Promise<FsckRepair | undefined> {
  const action = found.action;
  if (!action) return undefined;
  const run = async (script: string, keys: string[], args: string[]) =>
    Number(await client.eval(script, { keys, arguments: args })) === 1;
  const done = (message: string): FsckRepair => ({
    kind: found.problem.kind,
    message,
    ...(found.problem.ino === undefined ? {} : { ino: found.problem.ino }),
    ...(found.problem.key === undefined ? {} : { key: found.problem.key }),
  });
  switch (action.op) {
    case 'remove-entry':
      return (await run(SET_ENTRY, [layout.dir(action.dir)], [action.name, action.value, '']))
        ? done(`removed entry '${action.name}' (${action.value}) of directory ${action.dir}`)
        : undefined;
    case 'set-entry':
      return (await run(SET_ENTRY, [layout.dir(action.dir)], [action.name, action.value, action.newValue]))
        ? done(`set entry '${action.name}' of directory ${action.dir} to ${action.newValue} (was ${action.value})`)
        : undefined;
    case 'set-nlink':
      return (await run(SET_FIELD, [layout.inode(action.ino)], [F.nlink, action.from, String(action.to)]))
        ? done(`set nlink of inode ${action.ino} to ${action.to} (was ${action.from || 'unset'})`)
        : undefined;
    case 'set-parent':
      return (await run(SET_FIELD, [layout.inode(action.ino)], [F.parent, action.from, String(action.to)]))
        ? done(`set parent of directory ${action.ino} to ${action.to} (was ${action.from || 'unset'})`)
        : undefined;
    case 'delete-inode': {
      const keys = [layout.inode(action.ino), layout.dir(action.ino), layout.xattr(action.ino)];
      if (!(await run(DELETE_INODE, keys, [action.nlink, action.ctime]))) return undefined;
      const blocks = action.blocks.map((index) => layout.block(action.ino, index));
      for (let i = 0; i < blocks.length; i += UNLINK_BATCH) await client.unlink(blocks.slice(i, i + UNLINK_BATCH));
      return done(`deleted orphan inode ${action.ino}${blocks.length > 0 ? ` and its ${blocks.length} block(s)` : ''}`);
    }
    case 'delete-hash': {
      const key = action.which === 'dir' ? layout.dir(action.ino) : layout.xattr(action.ino);
      return (await run(DELETE_HASH, [key, layout.inode(action.ino)], [action.which])) ? done(`deleted ${key}`) : undefined;
    }
    case 'delete-block': {
      const key = layout.block(action.ino, action.index);
      return (await run(DELETE_BLOCK, [layout.inode(action.ino), key], [String(action.index), String(blockSize)]))
        ? done(`deleted ${key}`)
        : undefined;
    }
    case 'create-root':
      return (await run(CREATE_ROOT, [layout.inode(ROOT_INO)], Object.entries(rootInode(action.nlink)).flat()))
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
  }
}

function rootInode(nlink: number): Record<string, string> {
  const now = BigInt(Date.now()) * 1_000_000n;
  return encodeInode({
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
