/**
 * The Lua scripts of sessions (session.ts has the lifecycle). A session is one read-write mount
 * of the filesystem: `MP ss` lists it with its lease expiry (ms, Redis TIME), `MP s:<sid>`
 * describes it, `MP so:<sid>` counts the opens it holds per inode and `MP o:<ino>` lists the
 * sessions holding an inode, so that an inode whose last name goes while open is kept
 * (lua.ts, drop_link) until its last holder releases it, on any host. `MP sl:<sid>` lists the
 * inodes where it holds locks (fields `<sid>:<owner>` of `MP lf:<ino>` and `MP lp:<ino>`).
 *
 * Session keys are state of the mounts, not contents: no script routes them through w() (a
 * snapshot never preserves them) and copies skip them. ARGV[1] is the metadata prefix.
 */
import { LUA_COMMON } from './lua.js';

/** Holds, releases, and the end of a session, in bounded batches. */
const SESSION_COMMON = `${LUA_COMMON}
local function redis_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Sessions whose lease has run out (score 0: declared dead, cleanup under way), a few at a time.
local function expired(now)
  return redis.call('ZRANGEBYSCORE', SESSIONS, '-inf', int(now), 'LIMIT', 0, 16)
end
-- Whether session sid is alive: its lease runs past now, and its description exists.
local function alive(sid, now)
  local score = tonumber(redis.call('ZSCORE', SESSIONS, sid) or '0') or 0
  return score > now and redis.call('EXISTS', skey(sid)) == 1
end
local function hold(sid, ino, count)
  redis.call('HINCRBY', sokey(sid), ino, count)
  redis.call('SADD', okey(ino), sid)
end
-- Holds a regular file (type char tc) for session sid: '1' held, '0' not a regular file (or no
-- session), 'LOST' when the session no longer exists (declared dead: its owner registers anew).
local function try_hold(sid, ino, tc)
  if sid == '' or tc ~= 'f' then return '0' end
  if redis.call('EXISTS', skey(sid)) == 0 then return 'LOST' end
  hold(sid, ino, 1)
  return '1'
end
-- Drops count holds of session sid on ino (all of them when count is nil). True when sid holds
-- it no more.
local function unhold(sid, ino, count)
  local so = sokey(sid)
  if count then
    local cur = tonumber(redis.call('HGET', so, ino) or '0') or 0
    if cur > count then
      redis.call('HINCRBY', so, ino, -count)
      return false
    end
  end
  redis.call('HDEL', so, ino)
  redis.call('SREM', okey(ino), sid)
  return true
end
-- Frees ino when its last link is gone and no session holds it any more. True when freed.
local function free_if_unheld(ino)
  if redis.call('EXISTS', okey(ino)) == 1 then return false end
  local h = imget(ino, 'm', 'n')
  local m, n = tonumber(h[1]), tonumber(h[2])
  if not m then
    if redis.call('SISMEMBER', ORPHANS, ino) == 1 then redis.call('SREM', w(ORPHANS), ino) end
    return false
  end
  if not n or n > 0 or fmt(m) == S_IFDIR then return false end
  free_inode(ino, fmt(m) == S_IFREG)
  return true
end
-- Drops session sid's locks on ino (fields '<sid>:...' of its flock and POSIX hashes) and tells
-- lock waiters on every host. Returns the work it took (fields looked at).
local function drop_locks(sid, ino)
  local head = sid .. ':'
  local dropped, cost = 0, 1
  for _, key in ipairs({ lfkey(ino), lpkey(ino) }) do
    local fields = redis.call('HKEYS', key)
    cost = cost + #fields
    for _, f in ipairs(fields) do
      if string.sub(f, 1, #head) == head then
        redis.call('HDEL', key, f)
        dropped = dropped + 1
      end
    end
  end
  if dropped > 0 then redis.call('PUBLISH', LOCK_CHANNEL, ino) end
  return cost
end
`;

/**
 * Registers session sid. ARGV: MP, sid, lease ms, host, pid, mountpoint, version
 * → {expiry ms, expired session ids...}.
 */
const REGISTER = `${SESSION_COMMON}
local sid, lease = ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', skey(sid)) == 1 or redis.call('ZSCORE', SESSIONS, sid) then fail('EEXIST') end
local now = redis_ms()
redis.call('HSET', skey(sid), 'host', ARGV[4], 'pid', ARGV[5], 'mnt', ARGV[6], 'ver', ARGV[7], 'start', int(now))
redis.call('ZADD', SESSIONS, int(now + lease), sid)
local out = { int(now + lease) }
for _, s in ipairs(expired(now)) do out[#out + 1] = s end
return out
`;

/**
 * Renews the lease of session sid, unless someone declared it dead (its description gone, or
 * its score 0). ARGV: MP, sid, lease ms → {'OK' or 'LOST', expired session ids...}.
 */
const HEARTBEAT = `${SESSION_COMMON}
local sid, lease = ARGV[2], tonumber(ARGV[3])
local now = redis_ms()
local score = redis.call('ZSCORE', SESSIONS, sid)
local state = 'LOST'
if score and tonumber(score) ~= 0 and redis.call('EXISTS', skey(sid)) == 1 then
  redis.call('ZADD', SESSIONS, int(now + lease), sid)
  state = 'OK'
end
local out = { state }
for _, s in ipairs(expired(now)) do out[#out + 1] = s end
return out
`;

/**
 * resolve, and a hold of a regular file for session sid, in one step. ARGV: MP, sid ('' none),
 * name1, name2, ... → {ino, HGETALL, held ('1', '0', 'LOST')}; 'ENOENT' or 'ENOTDIR' as resolve.
 */
const OPEN = `${SESSION_COMMON}
local sid = ARGV[2]
local ino, t = walk(3)
if not ino then return t end
local h = attrs(ino)
if #h == 0 then return 'ENOENT' end
return { ino, h, try_hold(sid, ino, t) }
`;

/**
 * Creates regular file name in parent (or, unless exclusive, opens the regular file of that
 * name) and holds it for session sid. ARGV: MP, parent, name, newIno, mode, uid, gid, now,
 * exclusive ('1' or ''), sid → {ino, HGETALL, created ('1' or ''), held, parent, its HGETALL}
 * (the parent only when created).
 */
const CREATE_OPEN = `${SESSION_COMMON}
local parent, name, ino, now, sid = ARGV[2], ARGV[3], ARGV[4], ARGV[8], ARGV[10]
must_dir(parent)
local v = redis.call('HGET', dkey(parent), name)
if v then
  -- open(2) with O_CREAT: O_EXCL refuses any name; without it a regular file is opened.
  if ARGV[9] == '1' then fail('EEXIST') end
  local tc = string.sub(v, 1, 1)
  if tc == 'd' then fail('EISDIR') end
  if tc ~= 'f' then fail('EEXIST') end
  local old = string.sub(v, 2)
  local h = attrs(old)
  if #h == 0 then fail('ENOENT') end
  return { old, h, '', try_hold(sid, old, tc) }
end
iset(ino, 'm', ARGV[5], 'u', ARGV[6], 'g', ARGV[7], 's', '0', 'n', '1',
  'a', now, 't', now, 'c', now)
redis.call('HSET', w(dkey(parent)), name, 'f' .. ino)
touch(parent, now)
redis.call('HINCRBY', w(STATS), 'inodes', 1)
local held = try_hold(sid, ino, 'f')
return { ino, attrs(ino), '1', held, parent, attrs(parent) }
`;

/**
 * Holds several inodes for session sid again (after it registered anew), those that still
 * exist. ARGV: MP, sid, then pairs of ino and count → number held, or 'LOST'.
 */
const HOLD_MANY = `${SESSION_COMMON}
local sid = ARGV[2]
if redis.call('EXISTS', skey(sid)) == 0 then return 'LOST' end
local n = 0
for i = 3, #ARGV, 2 do
  if iexists(ARGV[i]) == 1 then
    hold(sid, ARGV[i], tonumber(ARGV[i + 1]))
    n = n + 1
  end
end
return n
`;

/**
 * Sets the holds of session sid on each ino to the count its store knows (absolute, so it can be
 * sent again safely: for releases whose reply was lost); 0 drops them, and frees an inode whose
 * last link is gone and that no session holds any more. ARGV: MP, sid, ino1, count1, …
 * → 'LOST' when the session no longer exists, else {'1' when work was left for the collector}.
 */
const SET_HOLDS = `${SESSION_COMMON}
local sid = ARGV[2]
if redis.call('EXISTS', skey(sid)) == 0 then return 'LOST' end
for i = 3, #ARGV, 2 do
  local ino, count = ARGV[i], tonumber(ARGV[i + 1])
  if count > 0 then
    if iexists(ino) == 1 then
      redis.call('HSET', sokey(sid), ino, count)
      redis.call('SADD', okey(ino), sid)
    end
  elseif unhold(sid, ino, nil) then
    free_if_unheld(ino)
  end
end
return { work() }
`;

/**
 * Drops count holds of session sid on ino; when no session holds it any more and its last link
 * is gone, frees it. ARGV: MP, sid, ino, count → {'1' when work was left for the collector
 * else '', '1' when the inode was freed else ''}.
 */
const RELEASE = `${SESSION_COMMON}
local sid, ino = ARGV[2], ARGV[3]
local freed = false
if unhold(sid, ino, tonumber(ARGV[4])) then freed = free_if_unheld(ino) end
return { work(), freed and '1' or '' }
`;

/**
 * One bounded step of the end of session sid. The first step declares it dead (score 0, its
 * description deleted: if its owner comes back, its heartbeat sees that); each later step drops
 * a batch of its holds (freeing inodes removed while open that only it held), then of its locks;
 * the last removes it from the sessions. A step cut short is resumed by any later one.
 * ARGV: MP, sid, force ('1': end it even though its lease runs: the owner's own close)
 * → {'ALIVE' (not expired: nothing done), 'MORE' or 'DONE'; '1' when work was left for the collector}.
 */
const END_SESSION = `${SESSION_COMMON}
local sid, force = ARGV[2], ARGV[3] == '1'
local score = redis.call('ZSCORE', SESSIONS, sid)
if score and tonumber(score) ~= 0 then
  if not force and tonumber(score) > redis_ms() then return { 'ALIVE', '' } end
  redis.call('ZADD', SESSIONS, 0, sid)
  redis.call('DEL', skey(sid))
  return { 'MORE', '' }
end
redis.call('DEL', skey(sid))
local so, sl = sokey(sid), slkey(sid)
-- About 256 small commands per step; freeing an inode costs up to one batch of its map.
local budget = 256
while budget > 0 do
  local inos = redis.call('HRANDFIELD', so, 32)
  if #inos == 0 then break end
  for _, ino in ipairs(inos) do
    unhold(sid, ino, nil)
    budget = budget - 1
    if free_if_unheld(ino) then budget = budget - 64 end
  end
end
while budget > 0 do
  local inos = redis.call('SRANDMEMBER', sl, 16)
  if #inos == 0 then break end
  for _, ino in ipairs(inos) do
    budget = budget - drop_locks(sid, ino)
    redis.call('SREM', sl, ino)
  end
end
if redis.call('EXISTS', so) == 0 and redis.call('EXISTS', sl) == 0 then
  redis.call('ZREM', SESSIONS, sid)
  return { 'DONE', work() }
end
return { 'MORE', work() }
`;

/**
 * Frees members of ORPHANS no session holds (a crash cut a session's end short, or a copy
 * brought them from a filesystem where they were held); drops members that are no orphans.
 * ARGV: MP, ino... → {'1' when work was left for the collector else '', inodes freed, members dropped}.
 */
const SWEEP_ORPHANS = `${SESSION_COMMON}
local freed, dropped = 0, 0
for i = 2, #ARGV do
  local ino = ARGV[i]
  if redis.call('SISMEMBER', ORPHANS, ino) == 1 and redis.call('EXISTS', okey(ino)) == 0 then
    if free_if_unheld(ino) then
      freed = freed + 1
    elseif redis.call('SISMEMBER', ORPHANS, ino) == 1 then
      redis.call('SREM', w(ORPHANS), ino) -- it has links (or is no file): not an orphan
      dropped = dropped + 1
    else
      dropped = dropped + 1 -- its inode was gone
    end
  end
end
return { work(), freed, dropped }
`;

/**
 * The sessions of the filesystem, for a listing. ARGV: MP → {Redis time ms, then per session:
 * sid, expiry, HGETALL of its description, open files, inodes with locks}.
 */
const LIST_SESSIONS = `${SESSION_COMMON}
local out = { int(redis_ms()) }
local all = redis.call('ZRANGE', SESSIONS, 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  local sid = all[i]
  out[#out + 1] = sid
  out[#out + 1] = all[i + 1]
  out[#out + 1] = redis.call('HGETALL', skey(sid))
  out[#out + 1] = redis.call('HLEN', sokey(sid))
  out[#out + 1] = redis.call('SCARD', slkey(sid))
end
return out
`;

/**
 * fsck: frees ino, removed (no link) and held by no live session, if its nlink and ctime are
 * still what fsck saw; holds of sessions that are not alive are dropped first.
 * ARGV: MP, ino, nlink, ctime → {'1' when work was left for the collector else '', '1' when freed}.
 */
const FSCK_FREE_REMOVED = `${SESSION_COMMON}
local ino = ARGV[2]
local h = imget(ino, 'n', 'c')
if h[1] ~= ARGV[3] or h[2] ~= ARGV[4] then return { '', '' } end
local now = redis_ms()
for _, sid in ipairs(redis.call('SMEMBERS', okey(ino))) do
  if alive(sid, now) then return { '', '' } end
end
for _, sid in ipairs(redis.call('SMEMBERS', okey(ino))) do unhold(sid, ino, nil) end
local freed = free_if_unheld(ino)
return { work(), freed and '1' or '' }
`;

/**
 * fsck: drops a hold recorded for an inode that does not exist (or by a session that is not
 * alive), while that is still so. ARGV: MP, ino, sid ('' every session in o:<ino>), what
 * ('inode': the inode is gone; 'session': sid is not alive) → 1 when something was dropped.
 */
const FSCK_DROP_HOLD = `${SESSION_COMMON}
local ino, sid, what = ARGV[2], ARGV[3], ARGV[4]
local changed = 0
if what == 'inode' then
  if iexists(ino) == 1 then return 0 end
  local sids = sid ~= '' and { sid } or redis.call('SMEMBERS', okey(ino))
  for _, s in ipairs(sids) do
    changed = changed + redis.call('HDEL', sokey(s), ino) + redis.call('SREM', okey(ino), s)
  end
  if redis.call('SISMEMBER', ORPHANS, ino) == 1 then changed = changed + redis.call('SREM', w(ORPHANS), ino) end
else
  if alive(sid, redis_ms()) then return 0 end
  changed = redis.call('SREM', okey(ino), sid) + redis.call('HDEL', sokey(sid), ino)
  free_if_unheld(ino)
end
return changed > 0 and 1 or 0
`;

/**
 * fsck: drops the lock fields of ino held by sessions that are not alive, and tells lock
 * waiters. ARGV: MP, ino, sid... → fields dropped.
 */
const FSCK_DROP_LOCKS = `${SESSION_COMMON}
local ino = ARGV[2]
local n = 0
local now = redis_ms()
for i = 3, #ARGV do
  local sid = ARGV[i]
  if not alive(sid, now) then
    local head = sid .. ':'
    for _, key in ipairs({ lfkey(ino), lpkey(ino) }) do
      for _, f in ipairs(redis.call('HKEYS', key)) do
        if string.sub(f, 1, #head) == head then n = n + redis.call('HDEL', key, f) end
      end
    end
  end
end
if n > 0 then redis.call('PUBLISH', LOCK_CHANNEL, ino) end
return n
`;

/**
 * fsck: unlinks entry name of parent while it still holds value (as unlink does: a file held
 * open is kept). ARGV: MP, parent, name, value, now → {'1' when work was left for the collector
 * else '', '1' when unlinked else ''}.
 */
const FSCK_UNLINK = `${SESSION_COMMON}
local parent, name, now = ARGV[2], ARGV[3], ARGV[5]
local v = redis.call('HGET', dkey(parent), name)
if v ~= ARGV[4] or string.sub(v, 1, 1) == 'd' then return { '', '' } end
redis.call('HDEL', w(dkey(parent)), name)
touch(parent, now)
local ino = string.sub(v, 2)
if iexists(ino) == 1 then drop_link(ino, string.sub(v, 1, 1), now) end
return { work(), '1' }
`;

export const SESSION_SCRIPTS = {
  registerSession: REGISTER,
  heartbeat: HEARTBEAT,
  open: OPEN,
  createOpen: CREATE_OPEN,
  holdMany: HOLD_MANY,
  setHolds: SET_HOLDS,
  release: RELEASE,
  endSession: END_SESSION,
  sweepOrphans: SWEEP_ORPHANS,
  listSessions: LIST_SESSIONS,
  fsckFreeRemoved: FSCK_FREE_REMOVED,
  fsckDropHold: FSCK_DROP_HOLD,
  fsckDropLocks: FSCK_DROP_LOCKS,
  fsckUnlink: FSCK_UNLINK,
} as const;
