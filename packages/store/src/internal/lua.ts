/**
 * The Lua scripts behind every changing operation. Each script is one atomic step in Redis:
 * another client sees the operation whole or not at all. Scripts build metadata keys from the
 * metadata prefix `{P}:` in ARGV[1] (see LUA_KEY_FUNCTIONS in @redisfs/schema), so every key they
 * touch shares the filesystem's hash tag; KEYS[1] is the superblock key, for routing.
 *
 * Errors are raised as `RFS:<CODE>` (e.g. `RFS:ENOENT`) and mapped to FsError by the caller.
 * Inode field names are those of INODE_FIELDS: m mode, u uid, g gid, s size, n nlink, r rdev,
 * a/t/c atime/mtime/ctime (ns), l symlink target, v generation, p parent (directories).
 */
import { BLOCK_CODECS, LINK_MAX, LUA_INODE_CODEC, LUA_KEY_FUNCTIONS, RELEASE_BATCH } from '@redisfs/schema';
import { LUA_INODES } from './lua-inodes.js';

/**
 * Sharing blocks (lua.ts and lua-snapshot.ts): rc_inc counts one more reference to a block (RC
 * holds counts of shared blocks only: absent = 1); preserve copies a metadata key of this member
 * into member \`to\` (1 if it existed), and a copied block map references its blocks once more.
 */
export const LUA_SHARE = `
local function rc_inc(id)
  if redis.call('HSETNX', RC, id, 2) == 0 then redis.call('HINCRBY', RC, id, 1) end
end
local function preserve(key, to)
  local copied = redis.call('COPY', key, retarget(key, to), 'REPLACE')
  if copied == 1 and is_map(key) then
    for _, id in ipairs(redis.call('ZRANGE', key, 0, -1)) do rc_inc(id) end
  end
  return copied
end
`;

/** What every filesystem script starts with (lua-sessions.ts builds on it too). */
export const LUA_COMMON = `${LUA_KEY_FUNCTIONS}${LUA_INODE_CODEC}
local S_IFMT = 61440
local S_IFDIR = 16384
local S_IFREG = 32768
local S_IFLNK = 40960
local RELEASE_BATCH = ${RELEASE_BATCH}
local TYPE_CHARS = { [32768]='f', [16384]='d', [40960]='l', [8192]='c', [24576]='b', [4096]='p', [49152]='s' }
-- Integers as decimal strings: Lua would print -0 or 1.1e+15, which Redis rejects or misreads.
local function int(n) return string.format('%d', n) end
local function fail(code) error({ err = 'RFS:' .. code }) end
-- Block references. Each map entry holds one reference to its block; RC counts the references
-- of shared blocks only (absent = 1). A block nobody references goes to FREE, whose ids the
-- collector deletes. Family keys (RC, FREE) are never preserved for a snapshot: they describe
-- the blocks of every member at once.
local queued = false
${LUA_SHARE}
local function release(id)
  local c = redis.call('HGET', RC, id)
  if not c then
    redis.call('SADD', FREE, id)
    queued = true
  elseif tonumber(c) <= 2 then
    redis.call('HDEL', RC, id)
  else
    redis.call('HINCRBY', RC, id, -1)
  end
end

-- Copy-on-write for a snapshot in progress (see snapshot.ts): before a key is first changed
-- while SNAP exists, its current value (or its absence) is preserved in the snapshot's prefix.
-- Every write of a member key below goes through w(key). nil: not looked up yet; false: no snapshot.
local snap_to = nil
local function w(key)
  if snap_to == nil then snap_to = redis.call('HGET', SNAP, 'to') end
  if not snap_to then return key end
  if redis.call('SADD', SNAP_DONE, key) == 1 then
    -- The copier may have preserved it already (unchanged since the point in time, so its copy
    -- is right): copying again would count a map's blocks twice.
    if redis.call('EXISTS', retarget(key, snap_to)) == 0 then preserve(key, snap_to) end
    local ttl = redis.call('PTTL', SNAP)
    if ttl > 0 then redis.call('PEXPIRE', SNAP_DONE, ttl) end
  end
  return key
end
${LUA_INODES}
local function fmt(mode) return bit.band(tonumber(mode), S_IFMT) end
local function typechar(mode) return TYPE_CHARS[fmt(mode)] or 'f' end
local function must_dir(ino)
  local m = iget(ino, 'm')
  if not m then fail('ENOENT') end
  if fmt(m) ~= S_IFDIR then fail('ENOTDIR') end
end
local function touch(ino, now) iset(ino, 't', now, 'c', now) end
local function blocks_of(size, bsize) return math.ceil(tonumber(size) / bsize) end
local bsize_cache = nil
local function fs_bsize()
  if not bsize_cache then bsize_cache = tonumber(redis.call('HGET', SB, 'bsize')) or 65536 end
  return bsize_cache
end
-- An inode's fields (iall); for a regular file with field k added: 512-byte sectors its stored
-- blocks hold (holes are not counted), never more than its size rounded up. k is computed, not stored.
local function attrs(ino)
  local h, m, s = iall(ino)
  -- (A corrupt record is left as it is: the caller reports it.)
  if m and bit.band(m, S_IFMT) == S_IFREG then
    -- Entries past the size (a shrink's, still being collected) hold no file data.
    local within = blocks_of(s, fs_bsize())
    local n = within > 0 and redis.call('ZCOUNT', mkey(ino), 0, within - 1) or 0
    h[#h + 1] = 'k'
    h[#h + 1] = int(math.ceil(math.min(s, n * fs_bsize()) / 512))
  end
  return h
end
-- Releases up to RELEASE_BATCH entries of ino's block map with index >= from (the whole map for
-- from = 0). Returns true when no such entry is left.
local function release_from(ino, from)
  local mk = mkey(ino)
  local ids = redis.call('ZRANGEBYSCORE', mk, from, '+inf', 'LIMIT', 0, RELEASE_BATCH + 1)
  if #ids == 0 then return true end
  local last = math.min(#ids, RELEASE_BATCH)
  w(mk)
  for i = 1, last do release(ids[i]) end
  redis.call('ZREM', mk, unpack(ids, 1, last))
  return #ids <= RELEASE_BATCH
end
-- Frees a regular file's blocks: at once when its map is small, else queued in GC for the
-- collector (in batches), so an unlink costs at most one batch whatever the file held.
local function free_map(ino)
  if not release_from(ino, 0) then
    redis.call('SADD', w(GC), ino)
    queued = true
  end
end
-- Deletes the lock hashes of an inode that goes, waking its lock waiters on every host (their
-- retry finds it gone). Session and lock keys are never preserved for a snapshot (no w()).
local function drop_lock_keys(ino)
  if redis.call('DEL', lfkey(ino), lpkey(ino)) > 0 then redis.call('PUBLISH', LOCK_CHANNEL, ino) end
end
-- Frees an inode whose hash exists: its hashes, what it counted in STATS, its block map (a
-- regular file: reg), its lock hashes, and its place in ORPHANS.
local function free_inode(ino, reg)
  local size = tonumber(iget(ino, 's') or '0') or 0
  idelete(ino)
  redis.call('DEL', w(xkey(ino)))
  redis.call('HINCRBY', w(STATS), 'inodes', -1)
  if reg then
    redis.call('HINCRBY', w(STATS), 'bytes', int(0 - size))
    free_map(ino)
  end
  drop_lock_keys(ino)
  if redis.call('SISMEMBER', ORPHANS, ino) == 1 then redis.call('SREM', w(ORPHANS), ino) end
end
-- Drops one link of a non-directory inode. At nlink 0 it is freed, unless a session holds it
-- open (o:<ino> exists): then it is kept, in no directory, listed in ORPHANS, until its last
-- holder releases it (lua-sessions.ts); its usage stays counted meanwhile, as on a local disk.
local function drop_link(ino, tc, now)
  -- (A link count is never below 0: the record holds it unsigned.)
  local n = math.max(0, (tonumber(iget(ino, 'n')) or 0) - 1)
  if n > 0 or redis.call('EXISTS', okey(ino)) == 1 then
    iset(ino, 'n', int(n), 'c', now)
    if n <= 0 then redis.call('SADD', w(ORPHANS), ino) end
    return
  end
  -- Freed: the record goes, so its link count is not written first.
  free_inode(ino, tc == 'f')
end
-- Whether the last block of a file may hold bytes past its size s (its field z, passed in as
-- read, is set by a shrink until the block is rewritten): a growth must have it cleaned first.
-- A hole holds nothing.
local function tail_dirty(ino, s, z, bsize)
  if s % bsize == 0 or not z then return false end
  local t = math.floor(s / bsize)
  return redis.call('ZCOUNT', mkey(ino), t, t) > 0
end
-- Walks the names ARGV[from], ARGV[from + 1], … down from the root: the last one's inode and type
-- character ('1', 'd' for none), or nil and 'ENOENT' or 'ENOTDIR' (a reply, cheaper than an error).
local function walk(from)
  local ino, t = '1', 'd'
  for i = from, #ARGV do
    if t ~= 'd' then return nil, 'ENOTDIR' end
    local v = redis.call('HGET', dkey(ino), ARGV[i])
    if not v then return nil, 'ENOENT' end
    t = string.sub(v, 1, 1)
    ino = string.sub(v, 2)
  end
  return ino, t
end
-- What namespace scripts return first: '1' when they left work for the collector.
local function work() return queued and '1' or '' end
`;

/** ARGV: MP, name1, name2, … → {ino, HGETALL} of the last component ('/' when none). */
const RESOLVE = `${LUA_COMMON}
local ino, t = walk(2)
if not ino then return t end
local h = attrs(ino)
if #h == 0 then return 'ENOENT' end
return { ino, h }
`;

/** ARGV: MP, parent, name → {ino, HGETALL}, or 'ENOENT' (a reply, not an error: misses are common and cheap). */
const LOOKUP = `${LUA_COMMON}
local v = redis.call('HGET', dkey(ARGV[2]), ARGV[3])
if not v then
  -- A miss in a parent that is not a directory is ENOTDIR, as the kernel answers.
  local m = iget(ARGV[2], 'm')
  if m and fmt(m) ~= S_IFDIR then return 'ENOTDIR' end
  return 'ENOENT'
end
local ino = string.sub(v, 2)
local h = attrs(ino)
if #h == 0 then return 'ENOENT' end
return { ino, h }
`;

/**
 * ARGV: MP, parent, name1, name2, … → for each name {ino, HGETALL}, or '' when it is not in
 * parent (or parent is gone or not a directory). Many lookups in one directory at one moment.
 */
const LOOKUPS = `${LUA_COMMON}
local vs = redis.call('HMGET', dkey(ARGV[2]), unpack(ARGV, 3))
local out = {}
for i, v in ipairs(vs) do
  local h = v and attrs(string.sub(v, 2))
  out[i] = (h and #h > 0) and { string.sub(v, 2), h } or ''
end
return out
`;

/** ARGV: MP, ino1, ino2, … → {HGETALL of each} (empty for an inode that is gone). */
const GETATTRS = `${LUA_COMMON}
local out = {}
for i = 2, #ARGV do out[i - 1] = attrs(ARGV[i]) end
return out
`;

/** ARGV: MP, parent, name, newIno, typeChar, mode, uid, gid, rdev, now, target → {ino, HGETALL, parent, its HGETALL}. */
const CREATE = `${LUA_COMMON}
local parent, name, ino, tc, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[10]
must_dir(parent)
if redis.call('HEXISTS', dkey(parent), name) == 1 then fail('EEXIST') end
local f = { 'm', ARGV[6], 'u', ARGV[7], 'g', ARGV[8], 's', '0', 'n', '1', 'a', now, 't', now, 'c', now }
if ARGV[9] ~= '0' then table.insert(f, 'r'); table.insert(f, ARGV[9]) end
if tc == 'd' then
  f[10] = '2'
  table.insert(f, 'p'); table.insert(f, parent)
  iincr(parent, 'n', 1)
elseif tc == 'l' then
  f[8] = tostring(#ARGV[11])
  table.insert(f, 'l'); table.insert(f, ARGV[11])
end
iset(ino, unpack(f))
redis.call('HSET', w(dkey(parent)), name, tc .. ino)
touch(parent, now)
redis.call('HINCRBY', w(STATS), 'inodes', 1)
return { ino, attrs(ino), parent, attrs(parent) }
`;

/** ARGV: MP, ino, newParent, newName, now → {ino, HGETALL, newParent, its HGETALL}. */
const LINK = `${LUA_COMMON}
local ino, parent, name, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local m = iget(ino, 'm')
if not m then fail('ENOENT') end
if fmt(m) == S_IFDIR then fail('EPERM') end
-- A file removed while open (kept for its holders) cannot get a name again, as in Linux.
if tonumber(iget(ino, 'n')) <= 0 then fail('ENOENT') end
must_dir(parent)
if redis.call('HEXISTS', dkey(parent), name) == 1 then fail('EEXIST') end
if tonumber(iget(ino, 'n')) >= ${LINK_MAX} then fail('EMLINK') end
iincr(ino, 'n', 1)
iset(ino, 'c', now)
redis.call('HSET', w(dkey(parent)), name, typechar(m) .. ino)
touch(parent, now)
return { ino, attrs(ino), parent, attrs(parent) }
`;

/** ARGV: MP, parent, name, now → {'1' when work was left for the collector else '', parent, its HGETALL}. */
const UNLINK = `${LUA_COMMON}
local parent, name, now = ARGV[2], ARGV[3], ARGV[4]
local v = redis.call('HGET', dkey(parent), name)
if not v then fail('ENOENT') end
local tc = string.sub(v, 1, 1)
if tc == 'd' then fail('EISDIR') end
redis.call('HDEL', w(dkey(parent)), name)
touch(parent, now)
drop_link(string.sub(v, 2), tc, now)
return { work(), parent, attrs(parent) }
`;

/** ARGV: MP, parent, name, now → {'OK', parent, its HGETALL}. */
const RMDIR = `${LUA_COMMON}
local parent, name, now = ARGV[2], ARGV[3], ARGV[4]
local v = redis.call('HGET', dkey(parent), name)
if not v then fail('ENOENT') end
if string.sub(v, 1, 1) ~= 'd' then fail('ENOTDIR') end
local ino = string.sub(v, 2)
if redis.call('HLEN', dkey(ino)) > 0 then fail('ENOTEMPTY') end
redis.call('HDEL', w(dkey(parent)), name)
idelete(ino)
redis.call('DEL', w(dkey(ino)), w(xkey(ino)))
drop_lock_keys(ino) -- flock(2) works on directories too
iincr(parent, 'n', -1)
touch(parent, now)
redis.call('HINCRBY', w(STATS), 'inodes', -1)
return { 'OK', parent, attrs(parent) }
`;

/** ARGV: MP, srcParent, srcName, dstParent, dstName, now → {'1' when work was left for the collector else '', srcParent, its HGETALL, dstParent, its HGETALL}; '' when nothing changes. */
const RENAME = `${LUA_COMMON}
local sp, sn, dp, dn, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local sv = redis.call('HGET', dkey(sp), sn)
if not sv then fail('ENOENT') end
must_dir(dp)
local st, sino = string.sub(sv, 1, 1), string.sub(sv, 2)
if sp == dp and sn == dn then return '' end
if st == 'd' and sp ~= dp then
  -- A directory may not move into its own subtree (checked first, as the kernel does): walk up
  -- from dp to the root.
  local cur, hops = dp, 0
  while cur and cur ~= '1' do
    if cur == sino then fail('EINVAL') end
    cur = iget(cur, 'p')
    hops = hops + 1
    if hops > 100000 then fail('ELOOP') end
  end
end
local dv = redis.call('HGET', dkey(dp), dn)
local dt, dino
if dv then
  dt, dino = string.sub(dv, 1, 1), string.sub(dv, 2)
  -- POSIX: two links to one inode: rename does nothing and succeeds.
  if dino == sino then return '' end
  if st == 'd' then
    if dt ~= 'd' then fail('ENOTDIR') end
    if redis.call('HLEN', dkey(dino)) > 0 then fail('ENOTEMPTY') end
  elseif dt == 'd' then
    fail('EISDIR')
  end
end
if dv then
  if dt == 'd' then
    idelete(dino)
    redis.call('DEL', w(dkey(dino)), w(xkey(dino)))
    drop_lock_keys(dino)
    iincr(dp, 'n', -1)
    redis.call('HINCRBY', w(STATS), 'inodes', -1)
  else
    drop_link(dino, dt, now)
  end
end
redis.call('HDEL', w(dkey(sp)), sn)
redis.call('HSET', w(dkey(dp)), dn, sv)
if st == 'd' and sp ~= dp then
  iincr(sp, 'n', -1)
  iincr(dp, 'n', 1)
  iset(sino, 'p', dp)
end
iset(sino, 'c', now)
touch(sp, now)
if dp ~= sp then touch(dp, now) end
return { work(), sp, attrs(sp), dp, attrs(dp) }
`;

/**
 * ARGV: MP, ino, now, bsize, mode, uid, gid, size, atime, mtime ('' = leave alone)
 * → {HGETALL, '1' when work was left for the collector else '', index of a tail block to trim
 * or -1}; or, with no change, 'TRIM' when growing the file must first release more than one
 * batch of entries a shrink left past the old size (call again: each call releases one batch),
 * and 'CLEAR' when growing it would expose bytes a shrink left in its last block (rewrite that
 * block, writeBlocks, then call again).
 */
const SETATTR = `${LUA_COMMON}
local ino, now, bsize = ARGV[2], ARGV[3], tonumber(ARGV[4])
local mode, uid, gid, size, atime, mtime = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local m = iget(ino, 'm')
if not m then fail('ENOENT') end
local f = { 'c', now }
local tail = -1
if size ~= '' then
  if fmt(m) == S_IFDIR then fail('EISDIR') end
  if fmt(m) ~= S_IFREG then fail('EINVAL') end
  local cur = imget(ino, 's', 'z')
  local old, new = tonumber(cur[1]), tonumber(size)
  if new > old then
    -- Neither bytes nor entries a shrink left past the old size may come back as data.
    if tail_dirty(ino, old, cur[2], bsize) then return 'CLEAR' end
    if not release_from(ino, blocks_of(old, bsize)) then return 'TRIM' end
  end
  if new ~= old then
    table.insert(f, 's'); table.insert(f, size)
    redis.call('HINCRBY', w(STATS), 'bytes', int(new - old))
    if new < old then
      if not release_from(ino, blocks_of(new, bsize)) then
        redis.call('SADD', w(GC), ino)
        queued = true
      end
      if new % bsize ~= 0 and redis.call('ZCOUNT', mkey(ino), math.floor(new / bsize), math.floor(new / bsize)) > 0 then
        tail = math.floor(new / bsize)
        table.insert(f, 'z'); table.insert(f, '1')
      end
    end
  end
  table.insert(f, 't'); table.insert(f, now)
end
if mode ~= '' then
  table.insert(f, 'm'); table.insert(f, tostring(bit.bor(fmt(m), bit.band(tonumber(mode), 4095))))
end
if uid ~= '' then table.insert(f, 'u'); table.insert(f, uid) end
if gid ~= '' then table.insert(f, 'g'); table.insert(f, gid) end
if atime ~= '' then table.insert(f, 'a'); table.insert(f, atime) end
if mtime ~= '' then table.insert(f, 't'); table.insert(f, mtime) end
iset(ino, unpack(f))
return { attrs(ino), work(), tail }
`;

/**
 * Puts blocks into a regular file's block map and, unless `end` is '', commits its new size and
 * times: the data and the size that exposes it in one step. ARGV: MP, ino, end, now, bsize,
 * inline ('1': this script stores the block values itself, a single server; '': they were
 * stored before the call, as a cluster must), then quadruples of block index, new block id,
 * value and mode:
 *   id ''           the block becomes a hole (all zeros): its entry is removed;
 *   value           the stored block (codec byte + payload) under the new id when inline, else '';
 *   mode ''         replace whatever the entry holds;
 *   mode '=<id>'    the same, only if the entry still holds <id> ('=' alone: no entry), as the
 *                   writer read it (compare-and-set of a read-modify-write);
 *   mode '@<n>'     (inline only) value is raw bytes to write at byte n of the block in place,
 *                   without the writer reading it: only into a raw block that no other map
 *                   shares and whose payload ends within the file's size (a gap before n reads
 *                   as zeros); when the entry is a hole, a new block under the given id.
 * → the new size ('' if no commit), with the replaced blocks released (followed by '+' when
 * that left blocks for the collector to delete); or, with nothing
 * changed: 'RETRY' when an entry changed since it was read; 'RMW' when a block cannot be
 * written in place (compressed, shared, or holding bytes past the end of the file): the writer
 * reads it and writes it whole, with a compare-and-set; 'TRIM' when growing the file must first
 * release more than one batch of entries a shrink left past the old size (call again); 'CLEAR'
 * when growing it would expose bytes a shrink left in its last block (inode field z) and this
 * script does not rewrite that block (rewrite it first). A script that rewrites the last block
 * (whole, or read-modify-written, which keeps bytes past the size out) clears z.
 * Either way two clients writing different bytes of one block both keep their bytes, and a
 * block another map shares is never changed.
 */
const WRITE_BLOCKS = `${LUA_COMMON}
local ino, now, bsize, inline = ARGV[2], ARGV[4], tonumber(ARGV[5]), ARGV[6] == '1'
local RAW = ${BLOCK_CODECS.raw}
local mk = mkey(ino)
local h = imget(ino, 'm', 's', 'z')
local m = h[1]
if not m then fail('ENOENT') end
if fmt(m) == S_IFDIR then fail('EISDIR') end
if fmt(m) ~= S_IFREG then fail('EINVAL') end
local s = tonumber(h[2])
local tail = h[3] and s % bsize ~= 0 and math.floor(s / bsize) or -1
local rewrites_tail = false
for i = 7, #ARGV, 4 do
  if tonumber(ARGV[i]) == tail then rewrites_tail = true end
end
local function entry(index)
  return redis.call('ZRANGEBYSCORE', mk, index, index, 'LIMIT', 0, 1)[1]
end
-- Checks first: nothing changes unless every block can be written.
local patch = {}
for i = 7, #ARGV, 4 do
  local want = ARGV[i + 3]
  local c = string.byte(want, 1)
  if c == 64 then
    if not inline then fail('EINVAL') end -- in place needs the block within reach of this script
    local cur = entry(ARGV[i])
    if cur then
      w(mk) -- a snapshot in progress shares the map's blocks first
      if redis.call('HEXISTS', RC, cur) == 1 then return 'RMW' end
      local b = redis.call('GET', bkey(cur))
      if not b or string.byte(b, 1) ~= RAW or #b - 1 > s - tonumber(ARGV[i]) * bsize then return 'RMW' end
      patch[i] = { cur, b }
    else
      patch[i] = { false, '' }
    end
  elseif c == 61 then
    if (entry(ARGV[i]) or '') ~= string.sub(want, 2) then return 'RETRY' end
  end
end
local e = ARGV[3] ~= '' and tonumber(ARGV[3]) or s
if e > s and not rewrites_tail and tail_dirty(ino, s, h[3], bsize) then return 'CLEAR' end
if e > s and not release_from(ino, blocks_of(s, bsize)) then return 'TRIM' end
w(mk)
-- The last block rewritten (an in-place patch passed the check that nothing lies past the size).
if rewrites_tail then iunset(ino, 'z') end
for i = 7, #ARGV, 4 do
  local index, id, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local p = patch[i]
  if p and p[1] then
    -- In place: the payload with value written at byte n: its head, zeros up to n, value, its tail.
    local cur = p[2]
    local n, len = tonumber(string.sub(ARGV[i + 3], 2)), math.max(#cur - 1, 0)
    local head = string.sub(cur, 2, 1 + math.min(n, len))
    local pad = n > len and string.rep('\\0', n - len) or ''
    redis.call('SET', bkey(p[1]), string.char(RAW) .. head .. pad .. value .. string.sub(cur, 2 + n + #value))
  else
    if p then
      local n = tonumber(string.sub(ARGV[i + 3], 2))
      value = string.char(RAW) .. string.rep('\\0', n) .. value
    end
    local old = entry(index)
    if old then
      release(old)
      redis.call('ZREM', mk, old)
    end
    if id ~= '' then
      if inline then redis.call('SET', bkey(id), value) end
      redis.call('ZADD', mk, index, id)
    end
  end
end
-- '+' after the reply: blocks were released for the collector.
local more = queued and '+' or ''
if ARGV[3] == '' then return more end
if e > s then
  iset(ino, 's', ARGV[3], 't', now, 'c', now)
  redis.call('HINCRBY', w(STATS), 'bytes', int(e - s))
  return ARGV[3] .. more
end
iset(ino, 't', now, 'c', now)
return int(s) .. more
`;

/**
 * Reads blocks of a regular file, on a single server (block keys lie outside the metadata
 * slot: a cluster reads the map first, then the blocks). Used for the one block a
 * read-modify-write needs: a window of many blocks is read with plain GETs (Lua would copy
 * every byte twice on the way). ARGV: MP, ino, first, last block index
 * → {size, index1, id1, block1, index2, …} for the blocks that exist (block '' when its key is
 * missing); 'ENOENT'.
 */
const READ_BLOCKS = `${LUA_COMMON}
local ino = ARGV[2]
local s = iget(ino, 's')
if not s then return 'ENOENT' end
local out = { s }
local map = redis.call('ZRANGEBYSCORE', mkey(ino), ARGV[3], ARGV[4], 'WITHSCORES')
for i = 1, #map, 2 do
  out[#out + 1] = map[i + 1]
  out[#out + 1] = map[i]
  out[#out + 1] = redis.call('GET', bkey(map[i])) or ''
end
return out
`;

/**
 * One batch of the collector's work on a GC member: releases up to RELEASE_BATCH entries of the
 * inode's block map (all of them when the inode is gone, else those at or past its size) and
 * removes the member when none is left. ARGV: MP, ino, bsize → 1 when done, else 0.
 */
const GC_STEP = `${LUA_COMMON}
local ino, bsize = ARGV[2], tonumber(ARGV[3])
local s = iget(ino, 's')
local from = s and blocks_of(s, bsize) or 0
if release_from(ino, from) then
  redis.call('SREM', w(GC), ino)
  return 1
end
return 0
`;

/**
 * One batch of the release of a deleted member of the family (a metadata key of that member,
 * named in full): a block map loses up to RELEASE_BATCH entries, any other key is deleted.
 * ARGV: MP (any member of the family), key → 1 when the key is gone, else 0.
 */
const RELEASE_KEY = `${LUA_COMMON}
local key = ARGV[2]
-- A metadata key of a member of this family ({F}:… or {F}@label:…), never a family key ({F}#…).
local after = string.sub(key, #FAM + 3, #FAM + 3)
if string.sub(key, 1, #FAM + 2) ~= '{' .. FAM .. '}' or (after ~= ':' and after ~= '@') then fail('EINVAL') end
-- A block map (MP m:<ino>) by its name: no TYPE, a command the mount's ACL line need not allow.
if not string.match(key, '^{[^}]*}[^:]*:m:%d+$') then
  redis.call('DEL', key)
  return 1
end
local ok, ids = pcall(redis.call, 'ZRANGE', key, 0, RELEASE_BATCH - 1)
if not ok then
  -- Named like a map but not one (corrupt): nothing to release, and it must not stop the rest.
  redis.call('DEL', key)
  return 1
end
for _, id in ipairs(ids) do release(id) end
if #ids > 0 then redis.call('ZREM', key, unpack(ids)) end
return redis.call('EXISTS', key) == 1 and 0 or 1
`;

/**
 * Deletes this member of its family: its superblock goes (it no longer mounts) and it is listed
 * in DEAD, whose keys are then released in batches (releaseKey, releaseDone).
 * ARGV: MP → 1 when a superblock existed, else 0.
 */
const FORGET = `${LUA_COMMON}
if redis.call('EXISTS', SNAP) == 1 or redis.call('EXISTS', snap_lock_of(PFX)) == 1 then fail('EBUSY') end
local existed = redis.call('DEL', SB)
redis.call('SADD', DEAD, PFX)
return existed
`;

/** Ends the release of this (deleted) member. ARGV: MP → 'OK'. */
const RELEASE_DONE = `${LUA_COMMON}
redis.call('SREM', DEAD, PFX)
return 'OK'
`;

/** ARGV: MP, ino, name, value, flag ('create' | 'replace' | ''), now. */
const SETXATTR = `${LUA_COMMON}
local ino, name, flag, now = ARGV[2], ARGV[3], ARGV[5], ARGV[6]
if iexists(ino) == 0 then fail('ENOENT') end
local exists = redis.call('HEXISTS', xkey(ino), name) == 1
if flag == 'create' and exists then fail('EEXIST') end
if flag == 'replace' and not exists then fail('ENODATA') end
redis.call('HSET', w(xkey(ino)), name, ARGV[4])
iset(ino, 'c', now)
return 'OK'
`;

/** ARGV: MP, ino, name, now. */
const REMOVEXATTR = `${LUA_COMMON}
local ino, name, now = ARGV[2], ARGV[3], ARGV[4]
if iexists(ino) == 0 then fail('ENOENT') end
if redis.call('HDEL', w(xkey(ino)), name) == 0 then fail('ENODATA') end
iset(ino, 'c', now)
return 'OK'
`;

/**
 * Creates the filesystem if the prefix holds none. ARGV: MP, now, uid, gid, then superblock
 * field/value pairs → 1 when created, 0 when a superblock already existed.
 */
const FORMAT = `${LUA_COMMON}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
-- A snapshot or restore is being written into this prefix: its superblock comes last.
if redis.call('EXISTS', snap_lock_of(PFX)) == 1 then fail('EBUSY') end
-- A deleted member whose keys are still being released.
if redis.call('SISMEMBER', DEAD, PFX) == 1 then fail('EBUSY') end
local now = ARGV[2]
local sb = {}
for i = 5, #ARGV do table.insert(sb, ARGV[i]) end
iset(1, 'm', '16877', 'u', ARGV[3], 'g', ARGV[4], 's', '0', 'n', '2',
  'a', now, 't', now, 'c', now, 'p', '1')
redis.call('SET', w(MP .. 'ino'), '1', 'NX')
redis.call('HSET', w(STATS), 'inodes', 1, 'bytes', 0)
redis.call('HSET', w(KEYS[1]), unpack(sb))
return 1
`;

/** Every script, by name. */
export const SCRIPTS = {
  resolve: RESOLVE,
  lookup: LOOKUP,
  lookups: LOOKUPS,
  getattrs: GETATTRS,
  create: CREATE,
  link: LINK,
  unlink: UNLINK,
  rmdir: RMDIR,
  rename: RENAME,
  setattr: SETATTR,
  writeBlocks: WRITE_BLOCKS,
  readBlocks: READ_BLOCKS,
  gcStep: GC_STEP,
  releaseKey: RELEASE_KEY,
  forget: FORGET,
  releaseDone: RELEASE_DONE,
  setxattr: SETXATTR,
  removexattr: REMOVEXATTR,
  format: FORMAT,
} as const;
