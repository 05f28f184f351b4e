/**
 * Inode access inside the filesystem scripts (layout 3). An inode is one field of its bucket
 * hash `MP in:<ino / 64>` (a packed record: @redisfs/schema's inode-record.ts); a symlink's target
 * is the string `MP l:<ino>`. Scripts use these functions where layout 2 used HGET, HMGET,
 * HSET, HINCRBY, HDEL, EXISTS, DEL and HGETALL on the inode's own hash, with the same field names
 * and the same decimal-string values (`l` reads or writes the target key). A record is read once
 * per script; the fixed fields (mode, owner, link count, size, times) are read and rewritten in
 * place in its bytes, the whole record is decoded only for a reply (iall) or for the optional
 * fields (r, p, z). Every write goes through w() (copy-on-write for a snapshot in progress).
 *
 * A record that does not decode (corrupt) reads as an inode with no fields (iall gives the field
 * x, which the store's decoder refuses: EIO), and is never overwritten (EIO).
 *
 * Needs LUA_KEY_FUNCTIONS, LUA_INODE_CODEC, S_IFMT, S_IFLNK, fail() and w() before it (LUA_COMMON
 * has them).
 */
export const LUA_INODES = `
local IRAW, IOK = {}, {}
local function ino_str(ino) return type(ino) == 'number' and dec(ino) or ino end
-- The inode's record (its bytes), or false when there is none.
local function iraw(ino)
  local v = IRAW[ino]
  if v == nil then
    v = redis.call('HGET', ibkey(ino), ino)
    IRAW[ino] = v
    IOK[ino] = v and ivalid(v)
  end
  return v
end
local function iexists(ino) return iraw(ino_str(ino)) and 1 or 0 end
-- HGET: a field's value, false when the inode or the field is absent.
local function iget(ino, f)
  ino = ino_str(ino)
  local v = iraw(ino)
  if not v then return false end
  if f == 'l' then return redis.call('GET', lkey(ino)) end
  if not IOK[ino] then return false end
  if IREC_AT[f] then return ifield(v, f) end
  if f == 'z' then return bit.band(string.byte(v, 1), 1) ~= 0 and '1' or false end
  return idecode(v)[f] or false
end
-- HMGET
local function imget(ino, ...)
  local out = {}
  for i, f in ipairs({ ... }) do out[i] = iget(ino, f) end
  return out
end
-- HGETALL, for a reply: a flat field/value list (ireply: numbers, times split in seconds and
-- nanoseconds; no target), empty when the inode is absent; then its mode and size (numbers).
local function iall(ino)
  ino = ino_str(ino)
  local v = iraw(ino)
  if not v then return {} end
  return ireply(v)
end
local function iwrite(ino, v)
  redis.call('HSET', w(ibkey(ino)), ino, v)
  IRAW[ino], IOK[ino] = v, true
end
-- A well-formed record v with field f set to value (nil: removed): a fixed field or the flag z
-- in place, any other field (r, p) by decoding and encoding it whole. 'l', the target, is a key
-- of its own (w() first: copy-on-write).
local function ichange(ino, v, f, value)
  if f == 'l' then
    if value == nil then redis.call('DEL', w(lkey(ino))) else redis.call('SET', w(lkey(ino)), value) end
  elseif IREC_AT[f] and value ~= nil then
    v = ipatch(v, f, value)
  elseif f == 'z' then
    local flags = string.byte(v, 1)
    v = string.char(value == nil and bit.band(flags, 6) or bit.bor(flags, 1)) .. string.sub(v, 2)
  else
    local d = idecode(v)
    d[f] = value
    v = iencode(d)
  end
  return v
end
-- HSET field, value, …: creates the record when absent.
local function iset(ino, ...)
  ino = ino_str(ino)
  local args = { ... }
  local v = iraw(ino)
  if v and not IOK[ino] then fail('EIO') end
  if not v then
    local r = {}
    for i = 1, #args, 2 do
      if args[i] == 'l' then ichange(ino, nil, 'l', args[i + 1]) else r[args[i]] = args[i + 1] end
    end
    v = iencode(r)
  else
    for i = 1, #args, 2 do v = ichange(ino, v, args[i], args[i + 1]) end
  end
  iwrite(ino, v)
end
-- HINCRBY: the new value (a number).
local function iincr(ino, f, d)
  local n = (tonumber(iget(ino, f) or '0') or 0) + d
  iset(ino, f, dec(n))
  return n
end
-- HDEL of fields (of an inode that exists).
local function iunset(ino, ...)
  ino = ino_str(ino)
  local v = iraw(ino)
  if not v then return end
  if not IOK[ino] then fail('EIO') end
  for _, f in ipairs({ ... }) do v = ichange(ino, v, f, nil) end
  iwrite(ino, v)
end
-- DEL: the record and a symlink's target.
local function idelete(ino)
  ino = ino_str(ino)
  local v = iraw(ino)
  if not v then return end
  local m = iget(ino, 'm')
  redis.call('HDEL', w(ibkey(ino)), ino)
  if m and bit.band(tonumber(m), S_IFMT) == S_IFLNK then redis.call('DEL', w(lkey(ino))) end
  IRAW[ino], IOK[ino] = false, false
end
`;
