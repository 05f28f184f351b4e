/**
 * The Lua scripts of flock(2) and fcntl(2) byte-range locks (locks.ts has the API). Each
 * operation is one script, so two hosts racing for one lock see each other's whole change.
 * ARGV[1] is the metadata prefix `{P}:`, ARGV[2] the session id, ARGV[3] the inode, ARGV[4] the
 * lock owner; a lock's holder is the hash field `<sid>:<owner>` (one kernel owner on two hosts
 * is two owners).
 *
 *   lf:<ino>  field `<sid>:<owner>` → 'R' | 'W'
 *   lp:<ino>  field `<sid>:<owner>` → that owner's ranges, sorted by start, disjoint, adjacent
 *             ranges of one type merged: `T,start,end,pid` joined by ';', where T is R or W,
 *             [start, end) in bytes (end exclusive; `inf` = to the end of the file, whatever its
 *             size), pid the process that set it. Example: `W,0,100,4242;R,200,inf,4242`.
 *   sl:<sid>  inodes on which the session holds any lock in lf: or lp: (kept exact here; the
 *             session cleanup uses it to find a dead session's fields).
 *
 * Offsets are exact up to 2^53: Lua numbers are doubles, printed with '%.0f' (tostring would
 * print 1e+15). Whenever a lock is released, downgraded (W → R) or shrunk, the script PUBLISHes
 * the inode number on LOCK_CHANNEL so that waiters on every host try again; never when nothing
 * was released. There is no deadlock detection (EDEADLK): F_SETLKW waiters that wait for each
 * other wait until interrupted, as with flock(2) on Linux.
 */
import { LUA_KEY_FUNCTIONS } from '@redisfs/schema';

/** Most ranges one owner may hold on one inode (bounds what a script parses). */
export const MAX_LOCK_RANGES = 1024;

const COMMON = `${LUA_KEY_FUNCTIONS}
local function fail(code) error({ err = 'RFS:' .. code }) end
local SID, INO, OWNER = ARGV[2], ARGV[3], ARGV[4]
local ME = SID .. ':' .. OWNER
local INF = math.huge
local MAX_RANGES = ${MAX_LOCK_RANGES}
local function must_exist()
  if redis.call('HEXISTS', ibkey(INO), INO) == 0 then fail('ENOENT') end
end
local function num(s) if s == 'inf' then return INF end return tonumber(s) end
local function str(n) if n == INF then return 'inf' end return string.format('%.0f', n) end
-- An lp: value as a list of { type, start, end, pid } (pid kept as its string).
local function parse(v)
  local out = {}
  if not v then return out end
  for t, s, e, pid in string.gmatch(v, '([RW]),(%d+),(%w+),(%d+)') do
    out[#out + 1] = { t, tonumber(s), num(e), pid }
  end
  return out
end
local function format(rs)
  local parts = {}
  for i, r in ipairs(rs) do parts[i] = r[1] .. ',' .. str(r[2]) .. ',' .. str(r[3]) .. ',' .. r[4] end
  return table.concat(parts, ';')
end
-- The session holds a lock on INO (in lf: or lp:) exactly when INO is in sl:<sid>.
local function sync_session()
  local p = SID .. ':'
  for _, k in ipairs({ lfkey(INO), lpkey(INO) }) do
    for _, f in ipairs(redis.call('HKEYS', k)) do
      if string.sub(f, 1, #p) == p then
        redis.call('SADD', slkey(SID), INO)
        return
      end
    end
  end
  redis.call('SREM', slkey(SID), INO)
end
local function released() redis.call('PUBLISH', LOCK_CHANNEL, INO) end
-- The lowest-starting range of another owner that conflicts with type t over [s, e):
-- field, range; nil when none. W conflicts with any overlapping lock, R with a W.
local function conflict(t, s, e)
  local h = redis.call('HGETALL', lpkey(INO))
  local bf, br
  for i = 1, #h, 2 do
    if h[i] ~= ME then
      for _, r in ipairs(parse(h[i + 1])) do
        if r[2] >= e then break end
        if s < r[3] and (t == 'W' or r[1] == 'W') then
          if not br or r[2] < br[2] then bf, br = h[i], r end
          break
        end
      end
    end
  end
  return bf, br
end
`;

/**
 * flock(2). ARGV: MP, sid, ino, owner, type ('R' | 'W') → 1 when granted (also a conversion of
 * the owner's own lock, done atomically: a refused conversion keeps the old lock), 0 when
 * another owner's lock conflicts.
 */
const FLOCK = `${COMMON}
local t = ARGV[5]
must_exist()
local h = redis.call('HGETALL', lfkey(INO))
local old
for i = 1, #h, 2 do
  if h[i] == ME then old = h[i + 1]
  elseif t == 'W' or h[i + 1] == 'W' then return 0 end
end
if old ~= t then redis.call('HSET', lfkey(INO), ME, t) end
redis.call('SADD', slkey(SID), INO)
if old == 'W' and t == 'R' then released() end
return 1
`;

/**
 * Drops the owner's flock lock. ARGV: MP, sid, ino, owner → 1 when it had one. Runs whether or
 * not the inode still exists, so that no lock of a removed inode lingers.
 */
const FUNLOCK = `${COMMON}
if redis.call('HDEL', lfkey(INO), ME) == 0 then return 0 end
sync_session()
released()
return 1
`;

/**
 * F_SETLK. ARGV: MP, sid, ino, owner, type ('R' | 'W' | 'U'), start, end ('inf' or a number),
 * pid → 1 when done, 0 when another owner's lock conflicts (nothing changed), 'ENOLCK' when the
 * owner would hold more than MAX_RANGES ranges. The owner's own ranges over [start, end) are
 * replaced (split where they stick out), then adjacent ranges of one type merged (POSIX).
 */
const SET_LOCK = `${COMMON}
local t, s, e, pid = ARGV[5], tonumber(ARGV[6]), num(ARGV[7]), ARGV[8]
must_exist()
if t ~= 'U' and conflict(t, s, e) then return 0 end
local out = {}
local touched, freed = false, false
for _, r in ipairs(parse(redis.call('HGET', lpkey(INO), ME))) do
  if r[3] <= s or r[2] >= e then
    out[#out + 1] = r
  else
    touched = true
    if t == 'U' or (t == 'R' and r[1] == 'W') then freed = true end
    if r[2] < s then out[#out + 1] = { r[1], r[2], s, r[4] } end
    if r[3] > e then out[#out + 1] = { r[1], e, r[3], r[4] } end
  end
end
if t == 'U' and not touched then return 1 end
if t ~= 'U' then out[#out + 1] = { t, s, e, pid } end
table.sort(out, function(a, b) return a[2] < b[2] end)
-- Only the new range can touch a neighbour of its type: a merged range takes the new pid.
local merged = {}
for _, r in ipairs(out) do
  local last = merged[#merged]
  if last and last[1] == r[1] and last[3] == r[2] then
    last[3] = r[3]
    last[4] = pid
  else
    merged[#merged + 1] = r
  end
end
if #merged > MAX_RANGES then return 'ENOLCK' end
if #merged == 0 then
  redis.call('HDEL', lpkey(INO), ME)
else
  redis.call('HSET', lpkey(INO), ME, format(merged))
end
sync_session()
if freed then released() end
return 1
`;

/**
 * F_GETLK. ARGV: MP, sid, ino, owner, type ('R' | 'W'), start, end → nil, or the lowest-starting
 * conflicting range of another owner: { field, type, start, end, pid }.
 */
const GET_LOCK = `${COMMON}
local t, s, e = ARGV[5], tonumber(ARGV[6]), num(ARGV[7])
must_exist()
local f, r = conflict(t, s, e)
if not f then return nil end
return { f, r[1], str(r[2]), str(r[3]), r[4] }
`;

/**
 * Drops every byte-range lock of the owner on the inode (close(2) by that owner). ARGV: MP, sid,
 * ino, owner → 1 when it had any. Runs whether or not the inode still exists (as FUNLOCK).
 */
const RELEASE_POSIX = `${COMMON}
if redis.call('HDEL', lpkey(INO), ME) == 0 then return 0 end
sync_session()
released()
return 1
`;

/** The lock scripts, by name (spread into ScriptRunner's SCRIPTS). */
export const LOCK_SCRIPTS = {
  flock: FLOCK,
  funlock: FUNLOCK,
  setLock: SET_LOCK,
  getLock: GET_LOCK,
  releasePosix: RELEASE_POSIX,
} as const;
