/**
 * Inode access inside the filesystem scripts (layout 3). An inode is one field of its bucket
 * hash `MP in:<ino / 64>` (a packed record: @redisfs/schema's inode-record.ts); a symlink's target
 * is the string `MP l:<ino>`. Scripts use these functions where layout 2 used HGET, HMGET,
 * HSET, HINCRBY, HDEL, EXISTS, DEL and HGETALL on the inode's own hash, with the same field names
 * and the same decimal-string values (`l` reads or writes the target key). Records are read once
 * per script and cached; every write goes through w() (copy-on-write for a snapshot in progress).
 *
 * Needs LUA_KEY_FUNCTIONS, LUA_INODE_CODEC, fail() and w() before it (LUA_COMMON has them).
 */
export const LUA_INODES = `
local IREC = {}
local function ino_str(ino) return type(ino) == 'number' and dec(ino) or ino end
-- The inode's record (a table of fields), or false when there is none.
local function irec(ino)
  ino = ino_str(ino)
  local r = IREC[ino]
  if r == nil then
    local v = redis.call('HGET', ibkey(ino), ino)
    r = v and idecode(v) or false
    IREC[ino] = r
  end
  return r
end
local function iexists(ino) return irec(ino) and 1 or 0 end
-- HGET: a field's value, false when the inode or the field is absent.
local function iget(ino, f)
  local r = irec(ino)
  if not r then return false end
  if f == 'l' then return redis.call('GET', lkey(ino_str(ino))) end
  return r[f] or false
end
-- HMGET
local function imget(ino, ...)
  local out = {}
  for i, f in ipairs({ ... }) do out[i] = iget(ino, f) end
  return out
end
-- HGETALL: a flat field/value list (no target), empty when the inode is absent.
local function iall(ino)
  local r = irec(ino)
  return r and iflat(r) or {}
end
local function iput(ino, r)
  -- A record that cannot be decoded is not overwritten (fsck reports it).
  if r.x then fail('EIO') end
  ino = ino_str(ino)
  redis.call('HSET', w(ibkey(ino)), ino, iencode(r))
  IREC[ino] = r
end
-- HSET field, value, …: creates the record when absent.
local function iset(ino, ...)
  local args = { ... }
  local r = irec(ino) or {}
  for i = 1, #args, 2 do
    if args[i] == 'l' then redis.call('SET', w(lkey(ino_str(ino))), args[i + 1]) else r[args[i]] = args[i + 1] end
  end
  iput(ino, r)
end
-- HINCRBY: the new value (a number).
local function iincr(ino, f, d)
  local r = irec(ino) or {}
  local n = (tonumber(r[f] or '0') or 0) + d
  r[f] = dec(n)
  iput(ino, r)
  return n
end
-- HDEL of fields (of an inode that exists).
local function iunset(ino, ...)
  local r = irec(ino)
  if not r then return end
  for _, f in ipairs({ ... }) do
    if f == 'l' then redis.call('DEL', w(lkey(ino_str(ino)))) else r[f] = nil end
  end
  iput(ino, r)
end
-- DEL: the record and a symlink's target.
local function idelete(ino)
  ino = ino_str(ino)
  local r = irec(ino)
  if not r then return end
  redis.call('HDEL', w(ibkey(ino)), ino)
  if r.m and bit.band(tonumber(r.m) or 0, 61440) == 40960 then redis.call('DEL', w(lkey(ino))) end
  IREC[ino] = false
end
`;
