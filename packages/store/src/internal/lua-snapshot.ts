/**
 * The Lua scripts of a point-in-time copy (snapshot.ts has the protocol). ARGV[1] is the
 * metadata prefix `{P}:` of the filesystem the script is about: the source for snapStart,
 * snapCopy, snapFinish and snapAbort, the target for snapLock. Errors are `RFS:<CODE>`.
 */
import { LUA_KEY_FUNCTIONS } from '@redisfs/schema';
import { LUA_SHARE } from './lua.js';

const COMMON = `${LUA_KEY_FUNCTIONS}
local function fail(code) error({ err = 'RFS:' .. code }) end
${LUA_SHARE}
-- The snapshot in progress from this filesystem must be ours (id), and hold the target's lock.
local function own_snapshot(id)
  local s = redis.call('HMGET', SNAP, 'id', 'to')
  if s[1] ~= id then fail('ESTALE') end
  local lock = snap_lock_of(s[2])
  if redis.call('HGET', lock, 'id') ~= id then fail('ESTALE') end
  return s[2], lock
end
`;

/**
 * Locks prefix P as the target of a copy. ARGV: MP, from, id, lease ms, force ('1' or '')
 * → 1 when P holds a filesystem (replaced only with force), else 0.
 */
const SNAP_LOCK = `${COMMON}
local lock = snap_lock_of(PFX)
if redis.call('EXISTS', lock) == 1 then fail('EBUSY') end
if redis.call('EXISTS', SNAP) == 1 then fail('EBUSY') end
-- A deleted member whose keys are still being released: a copy into it would be released too.
if redis.call('SISMEMBER', DEAD, PFX) == 1 then fail('EBUSY') end
local exists = redis.call('EXISTS', SB)
if exists == 1 and ARGV[5] ~= '1' then fail('EEXIST') end
redis.call('HSET', lock, 'from', ARGV[2], 'id', ARGV[3])
redis.call('PEXPIRE', lock, ARGV[4])
return exists
`;

/**
 * Starts the snapshot: from now on every script that changes a key of the source first
 * preserves it in the target (lua.ts, w()). ARGV: MP, to, id, lease ms → the time, ns.
 */
const SNAP_START = `${COMMON}
if redis.call('EXISTS', SB) == 0 then fail('ENOENT') end
if redis.call('EXISTS', SNAP) == 1 then fail('EBUSY') end
if redis.call('HGET', snap_lock_of(ARGV[2]), 'id') ~= ARGV[3] then fail('ESTALE') end
redis.call('DEL', SNAP_DONE)
redis.call('HSET', SNAP, 'to', ARGV[2], 'id', ARGV[3])
redis.call('PEXPIRE', SNAP, ARGV[4])
local t = redis.call('TIME')
return t[1] .. string.format('%06d', tonumber(t[2])) .. '000'
`;

/**
 * Copies a batch of source keys that no writer has preserved yet (those are already in the
 * target, as they were at the start), but for session and lock keys, and renews the lease.
 * ARGV: MP, id, lease ms, key…
 * → number of keys copied.
 */
const SNAP_COPY = `${COMMON}
local to, lock = own_snapshot(ARGV[2])
redis.call('PEXPIRE', SNAP, ARGV[3])
redis.call('PEXPIRE', SNAP_DONE, ARGV[3])
redis.call('PEXPIRE', lock, ARGV[3])
local skip = { [SB] = true, [SNAP] = true, [SNAP_DONE] = true, [snap_lock_of(PFX)] = true }
local n = 0
-- No writer has preserved anything yet (the usual case on a quiet filesystem): skip the lookups.
local any_done = redis.call('SCARD', SNAP_DONE) > 0
for i = 4, #ARGV do
  local key = ARGV[i]
  -- Session and lock keys describe the mounts of the source, not its contents: never copied.
  if not skip[key] and string.sub(key, 1, #MP) == MP and not is_session_key(key)
    and not (any_done and redis.call('SISMEMBER', SNAP_DONE, key) == 1) then
    n = n + preserve(key, to)
  end
end
return n
`;

/**
 * Ends the snapshot: writes the target's superblock (a copy of the source's; with
 * snapshot = '1' also marked as a snapshot of the source taken at ARGV[4]) and stops the
 * copy-on-write, in one step. ARGV: MP, id, snapshot flag, snapat ns.
 */
const SNAP_FINISH = `${COMMON}
local to, lock = own_snapshot(ARGV[2])
local sb = redis.call('HGETALL', SB)
if #sb == 0 then fail('ENOENT') end
local target_sb = meta_of(to) .. 'sb'
local fields = {}
for i = 1, #sb, 2 do
  if sb[i] ~= 'snapof' and sb[i] ~= 'snapat' then
    table.insert(fields, sb[i]); table.insert(fields, sb[i + 1])
  end
end
if ARGV[3] == '1' then
  table.insert(fields, 'snapof'); table.insert(fields, PFX)
  table.insert(fields, 'snapat'); table.insert(fields, ARGV[4])
end
redis.call('DEL', target_sb)
redis.call('HSET', target_sb, unpack(fields))
redis.call('DEL', SNAP, SNAP_DONE, lock)
return 'OK'
`;

/** Stops a snapshot of ours that failed (the target is cleaned up after). ARGV: MP, id. */
const SNAP_ABORT = `${COMMON}
if redis.call('HGET', SNAP, 'id') == ARGV[2] then redis.call('DEL', SNAP, SNAP_DONE) end
return 'OK'
`;

/** Releases the target lock if it is still ours. ARGV: MP (target), id. */
const SNAP_UNLOCK = `${COMMON}
local lock = snap_lock_of(PFX)
if redis.call('HGET', lock, 'id') == ARGV[2] then redis.call('DEL', lock) end
return 'OK'
`;

export const SNAPSHOT_SCRIPTS = {
  snapLock: SNAP_LOCK,
  snapStart: SNAP_START,
  snapCopy: SNAP_COPY,
  snapFinish: SNAP_FINISH,
  snapAbort: SNAP_ABORT,
  snapUnlock: SNAP_UNLOCK,
} as const;
