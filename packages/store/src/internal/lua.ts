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
import { BLOCK_CODECS, LINK_MAX, LUA_KEY_FUNCTIONS } from '@redisfs/schema';

const COMMON = `${LUA_KEY_FUNCTIONS}
local S_IFMT = 61440
local S_IFDIR = 16384
local S_IFREG = 32768
local TYPE_CHARS = { [32768]='f', [16384]='d', [40960]='l', [8192]='c', [24576]='b', [4096]='p', [49152]='s' }
-- Integers as decimal strings: Lua would print -0 or 1.1e+15, which Redis rejects or misreads.
local function int(n) return string.format('%d', n) end
local function fail(code) error({ err = 'RFS:' .. code }) end
-- Copy-on-write for a snapshot in progress (see snapshot.ts): before a key is first changed
-- while SNAP exists, its current value (or its absence) is preserved in the snapshot's prefix.
-- Every write below goes through w(key). nil: not looked up yet; false: no snapshot.
local snap_to = nil
local function w(key)
  if snap_to == nil then snap_to = redis.call('HGET', SNAP, 'to') end
  if not snap_to then return key end
  if redis.call('SADD', SNAP_DONE, key) == 1 then
    if redis.call('EXISTS', key) == 1 then redis.call('COPY', key, retarget(key, snap_to), 'REPLACE') end
    local ttl = redis.call('PTTL', SNAP)
    if ttl > 0 then redis.call('PEXPIRE', SNAP_DONE, ttl) end
  end
  return key
end
local function fmt(mode) return bit.band(tonumber(mode), S_IFMT) end
local function typechar(mode) return TYPE_CHARS[fmt(mode)] or 'f' end
local function must_dir(ino)
  local m = redis.call('HGET', ikey(ino), 'm')
  if not m then fail('ENOENT') end
  if fmt(m) ~= S_IFDIR then fail('ENOTDIR') end
end
local function touch(ino, now) redis.call('HSET', w(ikey(ino)), 't', now, 'c', now) end
local function blocks_of(size, bsize) return math.ceil(tonumber(size) / bsize) end
-- Drops one link of a non-directory inode; frees it at nlink 0. Returns the gc member or false.
local function drop_link(ino, tc, now, bsize)
  local k = ikey(ino)
  local n = redis.call('HINCRBY', w(k), 'n', -1)
  if n > 0 then
    redis.call('HSET', w(k), 'c', now)
    return false
  end
  local size = tonumber(redis.call('HGET', k, 's') or '0')
  redis.call('DEL', w(k), w(xkey(ino)))
  redis.call('HINCRBY', w(STATS), 'inodes', -1)
  if tc == 'f' then
    redis.call('HINCRBY', w(STATS), 'bytes', int(0 - size))
    local nb = blocks_of(size, bsize)
    if nb > 0 then
      local member = ino .. ':0:' .. int(nb)
      redis.call('SADD', w(GC), member)
      return member
    end
  end
  return false
end
`;

/** ARGV: MP, name1, name2, … → {ino, HGETALL} of the last component ('/' when none). */
const RESOLVE = `${COMMON}
local ino = '1'
local t = 'd'
for i = 2, #ARGV do
  if t ~= 'd' then return 'ENOTDIR' end
  local v = redis.call('HGET', dkey(ino), ARGV[i])
  if not v then return 'ENOENT' end
  t = string.sub(v, 1, 1)
  ino = string.sub(v, 2)
end
local h = redis.call('HGETALL', ikey(ino))
if #h == 0 then return 'ENOENT' end
return { ino, h }
`;

/** ARGV: MP, parent, name → {ino, HGETALL}, or 'ENOENT' (a reply, not an error: misses are common and cheap). */
const LOOKUP = `${COMMON}
local v = redis.call('HGET', dkey(ARGV[2]), ARGV[3])
if not v then return 'ENOENT' end
local ino = string.sub(v, 2)
local h = redis.call('HGETALL', ikey(ino))
if #h == 0 then return 'ENOENT' end
return { ino, h }
`;

/** ARGV: MP, ino1, ino2, … → {HGETALL of each} (empty for an inode that is gone). */
const GETATTRS = `${COMMON}
local out = {}
for i = 2, #ARGV do out[i - 1] = redis.call('HGETALL', ikey(ARGV[i])) end
return out
`;

/** ARGV: MP, parent, name, newIno, typeChar, mode, uid, gid, rdev, now, target → {ino, HGETALL, parent, its HGETALL}. */
const CREATE = `${COMMON}
local parent, name, ino, tc, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[10]
must_dir(parent)
if redis.call('HEXISTS', dkey(parent), name) == 1 then fail('EEXIST') end
local f = { 'm', ARGV[6], 'u', ARGV[7], 'g', ARGV[8], 's', '0', 'n', '1', 'a', now, 't', now, 'c', now, 'v', '1' }
if ARGV[9] ~= '0' then table.insert(f, 'r'); table.insert(f, ARGV[9]) end
if tc == 'd' then
  f[10] = '2'
  table.insert(f, 'p'); table.insert(f, parent)
  redis.call('HINCRBY', w(ikey(parent)), 'n', 1)
elseif tc == 'l' then
  f[8] = tostring(#ARGV[11])
  table.insert(f, 'l'); table.insert(f, ARGV[11])
end
redis.call('HSET', w(ikey(ino)), unpack(f))
redis.call('HSET', w(dkey(parent)), name, tc .. ino)
touch(parent, now)
redis.call('HINCRBY', w(STATS), 'inodes', 1)
return { ino, redis.call('HGETALL', ikey(ino)), parent, redis.call('HGETALL', ikey(parent)) }
`;

/** ARGV: MP, ino, newParent, newName, now → {ino, HGETALL, newParent, its HGETALL}. */
const LINK = `${COMMON}
local ino, parent, name, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local k = ikey(ino)
local m = redis.call('HGET', k, 'm')
if not m then fail('ENOENT') end
if fmt(m) == S_IFDIR then fail('EPERM') end
must_dir(parent)
if redis.call('HEXISTS', dkey(parent), name) == 1 then fail('EEXIST') end
if tonumber(redis.call('HGET', k, 'n')) >= ${LINK_MAX} then fail('EMLINK') end
redis.call('HINCRBY', w(k), 'n', 1)
redis.call('HSET', w(k), 'c', now)
redis.call('HSET', w(dkey(parent)), name, typechar(m) .. ino)
touch(parent, now)
return { ino, redis.call('HGETALL', k), parent, redis.call('HGETALL', ikey(parent)) }
`;

/** ARGV: MP, parent, name, now, bsize → {gc member ('' when nothing to free), parent, its HGETALL}. */
const UNLINK = `${COMMON}
local parent, name, now = ARGV[2], ARGV[3], ARGV[4]
local v = redis.call('HGET', dkey(parent), name)
if not v then fail('ENOENT') end
local tc = string.sub(v, 1, 1)
if tc == 'd' then fail('EISDIR') end
redis.call('HDEL', w(dkey(parent)), name)
touch(parent, now)
local gc = drop_link(string.sub(v, 2), tc, now, tonumber(ARGV[5])) or ''
return { gc, parent, redis.call('HGETALL', ikey(parent)) }
`;

/** ARGV: MP, parent, name, now → {'OK', parent, its HGETALL}. */
const RMDIR = `${COMMON}
local parent, name, now = ARGV[2], ARGV[3], ARGV[4]
local v = redis.call('HGET', dkey(parent), name)
if not v then fail('ENOENT') end
if string.sub(v, 1, 1) ~= 'd' then fail('ENOTDIR') end
local ino = string.sub(v, 2)
if redis.call('HLEN', dkey(ino)) > 0 then fail('ENOTEMPTY') end
redis.call('HDEL', w(dkey(parent)), name)
redis.call('DEL', w(ikey(ino)), w(dkey(ino)), w(xkey(ino)))
redis.call('HINCRBY', w(ikey(parent)), 'n', -1)
touch(parent, now)
redis.call('HINCRBY', w(STATS), 'inodes', -1)
return { 'OK', parent, redis.call('HGETALL', ikey(parent)) }
`;

/** ARGV: MP, srcParent, srcName, dstParent, dstName, now, bsize → {gc member or '', srcParent, its HGETALL, dstParent, its HGETALL}; '' when nothing changes. */
const RENAME = `${COMMON}
local sp, sn, dp, dn, now, bsize = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local sv = redis.call('HGET', dkey(sp), sn)
if not sv then fail('ENOENT') end
must_dir(dp)
local st, sino = string.sub(sv, 1, 1), string.sub(sv, 2)
if sp == dp and sn == dn then return '' end
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
if st == 'd' and sp ~= dp then
  -- A directory may not move into its own subtree: walk up from dp to the root.
  local cur, hops = dp, 0
  while cur and cur ~= '1' do
    if cur == sino then fail('EINVAL') end
    cur = redis.call('HGET', ikey(cur), 'p')
    hops = hops + 1
    if hops > 100000 then fail('ELOOP') end
  end
end
local gc = ''
if dv then
  if dt == 'd' then
    redis.call('DEL', w(ikey(dino)), w(dkey(dino)), w(xkey(dino)))
    redis.call('HINCRBY', w(ikey(dp)), 'n', -1)
    redis.call('HINCRBY', w(STATS), 'inodes', -1)
  else
    gc = drop_link(dino, dt, now, bsize) or ''
  end
end
redis.call('HDEL', w(dkey(sp)), sn)
redis.call('HSET', w(dkey(dp)), dn, sv)
if st == 'd' and sp ~= dp then
  redis.call('HINCRBY', w(ikey(sp)), 'n', -1)
  redis.call('HINCRBY', w(ikey(dp)), 'n', 1)
  redis.call('HSET', w(ikey(sino)), 'p', dp)
end
redis.call('HSET', w(ikey(sino)), 'c', now)
touch(sp, now)
if dp ~= sp then touch(dp, now) end
return { gc, sp, redis.call('HGETALL', ikey(sp)), dp, redis.call('HGETALL', ikey(dp)) }
`;

/**
 * ARGV: MP, ino, now, bsize, mode, uid, gid, size, atime, mtime ('' = leave alone)
 * → {HGETALL, gc member or '', index of a tail block to trim or -1}.
 */
const SETATTR = `${COMMON}
local ino, now, bsize = ARGV[2], ARGV[3], tonumber(ARGV[4])
local mode, uid, gid, size, atime, mtime = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local k = ikey(ino)
local m = redis.call('HGET', k, 'm')
if not m then fail('ENOENT') end
local f = { 'c', now }
local gc, tail = '', -1
if size ~= '' then
  if fmt(m) == S_IFDIR then fail('EISDIR') end
  if fmt(m) ~= S_IFREG then fail('EINVAL') end
  local old, new = tonumber(redis.call('HGET', k, 's')), tonumber(size)
  if new ~= old then
    table.insert(f, 's'); table.insert(f, size)
    redis.call('HINCRBY', w(STATS), 'bytes', int(new - old))
    if new < old then
      local from, to = blocks_of(new, bsize), blocks_of(old, bsize)
      if to > from then
        gc = ino .. ':' .. int(from) .. ':' .. int(to)
        redis.call('SADD', w(GC), gc)
      end
      if new % bsize ~= 0 then tail = math.floor(new / bsize) end
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
redis.call('HSET', w(k), unpack(f))
return { redis.call('HGETALL', k), gc, tail }
`;

/**
 * Stores data blocks of a regular file and, unless `end` is '', commits its new size and times:
 * data and the size that exposes it in one step. ARGV: MP, ino, end, now, bsize, then triples of
 * block index, value and mode:
 *   mode ''        value is the whole stored block ('' = an all-zero block: delete it, a hole);
 *   mode '-'/SHA-1 the same, stored only if the block is still as the writer read it ('-' =
 *                  absent; else the SHA-1 of its stored bytes);
 *   mode '@<n>'    value is raw bytes to write at byte n of the block's payload, in place,
 *                  without the writer reading the block: only into a raw block (or none) whose
 *                  payload ends within the file's size (a gap before n reads as zeros).
 * → new size ('' if no commit); 'RETRY' and no change when a block changed since it was read;
 * 'RMW' and no change when a block cannot be written in place (compressed, or holding bytes
 * past the end of the file): the writer reads it and writes it whole, with a compare-and-set.
 * Either way two clients writing different bytes of one block both keep their bytes. Only
 * commands of the documented ACL line are used (GET and SET, not SETRANGE).
 */
const WRITE_BLOCKS = `${COMMON}
local ino, now, bsize = ARGV[2], ARGV[4], tonumber(ARGV[5])
local RAW = ${BLOCK_CODECS.raw}
local k = ikey(ino)
local h = redis.call('HMGET', k, 'm', 's')
local m = h[1]
if not m then fail('ENOENT') end
if fmt(m) == S_IFDIR then fail('EISDIR') end
if fmt(m) ~= S_IFREG then fail('EINVAL') end
local s = tonumber(h[2])
local current = {}
for i = 6, #ARGV, 3 do
  local want = ARGV[i + 2]
  if string.byte(want, 1) == 64 then
    local cur = redis.call('GET', bkey(ino, ARGV[i]))
    if cur and (string.byte(cur, 1) ~= RAW or #cur - 1 > s - tonumber(ARGV[i]) * bsize) then return 'RMW' end
    current[i] = cur or ''
  elseif want ~= '' then
    local cur = redis.call('GET', bkey(ino, ARGV[i]))
    if (cur and redis.sha1hex(cur) or '-') ~= want then return 'RETRY' end
  end
end
for i = 6, #ARGV, 3 do
  local key = w(bkey(ino, ARGV[i]))
  local value = ARGV[i + 1]
  local cur = current[i]
  if cur then
    -- The payload with value written at byte n: its head, zeros up to n, value, its tail.
    local n, len = tonumber(string.sub(ARGV[i + 2], 2)), math.max(#cur - 1, 0)
    local head = string.sub(cur, 2, 1 + math.min(n, len))
    local pad = n > len and string.rep('\\0', n - len) or ''
    redis.call('SET', key, string.char(RAW) .. head .. pad .. value .. string.sub(cur, 2 + n + #value))
  elseif #value == 0 then
    redis.call('UNLINK', key)
  else
    redis.call('SET', key, value)
  end
end
if ARGV[3] == '' then return '' end
local e = tonumber(ARGV[3])
if e > s then
  redis.call('HSET', w(k), 's', ARGV[3], 't', now, 'c', now)
  redis.call('HINCRBY', w(STATS), 'bytes', int(e - s))
  return ARGV[3]
end
redis.call('HSET', w(k), 't', now, 'c', now)
return int(s)
`;

/**
 * Deletes blocks [from, to) of an inode, sparing those below its current size (it may have
 * grown again since the truncate or unlink that listed them). ARGV: MP, ino, from, to, bsize,
 * gc member to remove from GC when done ('' = none) → number of block keys deleted.
 */
const DROP_BLOCKS = `${COMMON}
local ino, from, to, bsize = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local size = redis.call('HGET', ikey(ino), 's')
if size then from = math.max(from, blocks_of(size, bsize)) end
local n = 0
for i = from, to - 1 do
  n = n + redis.call('UNLINK', w(bkey(ino, int(i))))
end
if ARGV[6] ~= '' then redis.call('SREM', w(GC), ARGV[6]) end
return n
`;

/** ARGV: MP, ino, name, value, flag ('create' | 'replace' | ''), now. */
const SETXATTR = `${COMMON}
local ino, name, flag, now = ARGV[2], ARGV[3], ARGV[5], ARGV[6]
if redis.call('EXISTS', ikey(ino)) == 0 then fail('ENOENT') end
local exists = redis.call('HEXISTS', xkey(ino), name) == 1
if flag == 'create' and exists then fail('EEXIST') end
if flag == 'replace' and not exists then fail('ENODATA') end
redis.call('HSET', w(xkey(ino)), name, ARGV[4])
redis.call('HSET', w(ikey(ino)), 'c', now)
return 'OK'
`;

/** ARGV: MP, ino, name, now. */
const REMOVEXATTR = `${COMMON}
local ino, name, now = ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', ikey(ino)) == 0 then fail('ENOENT') end
if redis.call('HDEL', w(xkey(ino)), name) == 0 then fail('ENODATA') end
redis.call('HSET', w(ikey(ino)), 'c', now)
return 'OK'
`;

/**
 * Creates the filesystem if the prefix holds none. ARGV: MP, now, uid, gid, then superblock
 * field/value pairs → 1 when created, 0 when a superblock already existed.
 */
const FORMAT = `${COMMON}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
-- A snapshot or restore is being written into this prefix: its superblock comes last.
if redis.call('EXISTS', snap_lock_of(PFX)) == 1 then fail('EBUSY') end
local now = ARGV[2]
local sb = {}
for i = 5, #ARGV do table.insert(sb, ARGV[i]) end
redis.call('HSET', w(ikey(1)), 'm', '16877', 'u', ARGV[3], 'g', ARGV[4], 's', '0', 'n', '2',
  'a', now, 't', now, 'c', now, 'v', '1', 'p', '1')
redis.call('SET', w(MP .. 'ino'), '1', 'NX')
redis.call('HSET', w(STATS), 'inodes', 1, 'bytes', 0)
redis.call('HSET', w(KEYS[1]), unpack(sb))
return 1
`;

/** Every script, by name. */
export const SCRIPTS = {
  resolve: RESOLVE,
  lookup: LOOKUP,
  getattrs: GETATTRS,
  create: CREATE,
  link: LINK,
  unlink: UNLINK,
  rmdir: RMDIR,
  rename: RENAME,
  setattr: SETATTR,
  writeBlocks: WRITE_BLOCKS,
  dropBlocks: DROP_BLOCKS,
  setxattr: SETXATTR,
  removexattr: REMOVEXATTR,
  format: FORMAT,
} as const;
