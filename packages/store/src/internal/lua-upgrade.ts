/**
 * The Lua scripts of the upgrade to layout 3 (upgrade.ts has the protocol). Each is one short,
 * bounded step, and each can run again with the same effect, so an upgrade cut short anywhere
 * resumes by running it again. ARGV[1] is the metadata prefix `{P}:`; errors are `RFS:<CODE>`.
 *
 * The superblock field `upgrade` is set while an upgrade runs; it names the pass, the SCAN cursor
 * to resume from, and the server process (INFO `run_id`) the cursor belongs to:
 *   `<cursor>@<run id>`    the block pass (version still 1: layout 1 only), as layout 2's redisfs
 *                          wrote it, so that an upgrade to layout 2 cut short resumes here;
 *   `i:<cursor>@<run id>`  the inode pass (version already 3).
 * A cursor is only good on the server that gave it: another process (a restart, a failover)
 * hashes keys with another seed, so the pass starts over there.
 */
import { LUA_INODE_CODEC, LUA_KEY_FUNCTIONS } from '@redisfs/schema';

const COMMON = `${LUA_KEY_FUNCTIONS}
local function fail(code) error({ err = 'RFS:' .. code }) end
-- A snapshot of this prefix, or a copy into it, reads or writes its keys without knowing layouts.
local function must_be_idle()
  if redis.call('EXISTS', SNAP) == 1 or redis.call('EXISTS', snap_lock_of(PFX)) == 1 then fail('EBUSY') end
end
-- The upgrade must still be in this pass ('b': version 1, 'i': version 3 with an \`i:\` field):
-- another run may have finished it meanwhile.
local function must_be_running(pass)
  if redis.call('EXISTS', SB) == 0 then fail('ENOENT') end
  local sb = redis.call('HMGET', SB, 'version', 'upgrade')
  if not sb[2] or sb[1] ~= (pass == 'i' and '3' or '1') then fail('ESTALE') end
  if (string.sub(sb[2], 1, 2) == 'i:') ~= (pass == 'i') then fail('ESTALE') end
  must_be_idle()
end
`;

/**
 * Starts or resumes the upgrade. ARGV: MP, run id ('' when unknown: never resumes a cursor)
 * → {'current'} for layout 3 with no upgrade under way; {'version', v} for a version this code
 * does not upgrade; else {'run', pass, cursor, how}: pass 'b' (blocks: layout 1) or 'i'
 * (inodes); how is 'new' (started now), 'resume' (from the saved cursor) or 'restart' (an upgrade
 * cut short on another server process, or with an unknown run id: that pass from 0).
 * Layout 2 becomes version 3 here, with the inode pass recorded: from then on neither this
 * redisfs (the field) nor an older one (the version) mounts it until the upgrade is done.
 */
const UPGRADE_START = `${COMMON}
if redis.call('EXISTS', SB) == 0 then fail('ENOENT') end
local sb = redis.call('HMGET', SB, 'version', 'upgrade')
local version, saved = sb[1], sb[2]
if version == '3' and not saved then return { 'current' } end
if version ~= '1' and version ~= '2' and version ~= '3' then return { 'version', version or '' } end
must_be_idle()
local run = ARGV[2]
local pass = version == '1' and 'b' or 'i'
if version == '2' then
  redis.call('HSET', SB, 'version', '3', 'upgrade', 'i:0@' .. run)
  return { 'run', 'i', '0', 'new' }
end
local head = pass == 'i' and 'i:' or ''
if saved then
  local cursor, from = string.match(saved, '^' .. head .. '(%d+)@(%x*)$')
  if cursor and run ~= '' and from == run then return { 'run', pass, cursor, 'resume' } end
end
redis.call('HSET', SB, 'upgrade', head .. '0@' .. run)
return { 'run', pass, '0', saved and 'restart' or 'new' }
`;

/**
 * One batch of layout-1 blocks: each goes into its file's block map (member = its id
 * `<ino>:<index>`, score = index) when the inode is a regular file whose size reaches the block,
 * else (the file is gone, is no regular file, or is shorter: layout 1's pending deletions) its key
 * is deleted. An inode whose mode or size cannot be read keeps its blocks: the upgrade does not
 * judge a corrupt record, fsck does. Inodes are still hashes (`i2key`) in this pass. Saves the
 * SCAN cursor to resume from in the same step.
 * ARGV: MP, new value of the `upgrade` field ('' = leave it), then pairs of inode and index
 * → {blocks mapped (newly), block keys deleted}.
 */
const UPGRADE_BATCH = `${COMMON}
must_be_running('b')
local bsize = tonumber(redis.call('HGET', SB, 'bsize'))
if not bsize or bsize <= 0 then fail('EIO') end
local S_IFMT, S_IFREG = 61440, 32768
-- Blocks each inode keeps: its size in blocks; 0 when gone or not a regular file; all when corrupt.
local keep = {}
local function blocks_kept(ino)
  local n = keep[ino]
  if n then return n end
  local h = redis.call('HMGET', i2key(ino), 'm', 's')
  local m, s = tonumber(h[1]), tonumber(h[2])
  if not h[1] and not h[2] and redis.call('EXISTS', i2key(ino)) == 0 then
    n = 0
  elseif not m then
    n = math.huge
  elseif bit.band(m, S_IFMT) ~= S_IFREG then
    n = 0
  elseif not s then
    n = math.huge
  else
    n = math.ceil(s / bsize)
    -- Layout 1 could leave bytes past the size in the last block (a truncate cut short): mark
    -- it (z) so that a growth rewrites it first, as layout 2 and 3 do after a shrink.
    if s % bsize ~= 0 and redis.call('EXISTS', bkey(ino .. ':' .. math.floor(s / bsize))) == 1 then
      redis.call('HSET', i2key(ino), 'z', '1')
    end
  end
  keep[ino] = n
  return n
end
local mapped, dropped = 0, 0
for i = 3, #ARGV - 1, 2 do
  local ino, index = ARGV[i], ARGV[i + 1]
  local id = ino .. ':' .. index
  if tonumber(index) < blocks_kept(ino) then
    -- A key SCAN returned twice, or a batch run again after a crash: ZADD changes nothing.
    if redis.call('EXISTS', bkey(id)) == 1 then mapped = mapped + redis.call('ZADD', mkey(ino), index, id) end
  else
    dropped = dropped + redis.call('UNLINK', bkey(id))
  end
end
if ARGV[2] ~= '' then redis.call('HSET', SB, 'upgrade', ARGV[2]) end
return { mapped, dropped }
`;

/**
 * Ends the block pass, once a full SCAN has been through every block: layout 1's pending-deletion
 * set goes (its blocks were deleted by the batches), the version becomes 3 and the field says
 * the inode pass, from its start, in one step. ARGV: MP, run id → pending-deletion members dropped.
 */
const UPGRADE_BLOCKS_DONE = `${COMMON}
must_be_running('b')
-- Members of a layout-1 GC are \`<ino>:<from>:<to>\`; nothing writes layout 2's plain inode
-- numbers into the GC of a filesystem that still says version 1 (openStore refuses to open it).
local dropped = redis.call('SCARD', GC)
if dropped > 0 then redis.call('UNLINK', GC) end
redis.call('HSET', SB, 'version', '3', 'upgrade', 'i:0@' .. ARGV[2])
return dropped
`;

/**
 * One batch of layout-2 inode hashes `MP i:<ino>`: each becomes field <ino> of its bucket
 * `MP in:<ino / 64>` (a packed record: LUA_INODE_CODEC), a symlink's target (field `l`) the
 * string `MP l:<ino>`, and the hash goes, in this one step. A hash already gone (converted by a
 * batch run before a crash, or returned twice by SCAN) is skipped, so a batch run twice changes
 * nothing. A hash that cannot be packed without losing something (a missing field, one that is
 * no decimal number or too large for the record, a field layout 2 never wrote, not a hash) stays
 * as it is: it is counted and listed, and fsck reports it. Saves the SCAN cursor in the same step.
 * ARGV: MP, new value of the `upgrade` field ('' = leave it), then inode numbers (decimal, as in
 * the keys) → {inodes converted, {inodes kept}}.
 */
const UPGRADE_INODES = `${COMMON}${LUA_INODE_CODEC}
must_be_running('i')
local S_IFMT, S_IFLNK = 61440, 40960
-- Largest value of each numeric field the record holds (inode-record.ts); times are checked by length.
local MAX = { m = 65535, u = 4294967295, g = 4294967295, n = 4294967295, r = 4294967295,
  s = 9007199254740991, p = 9007199254740991 }
local TIMES = { a = true, t = true, c = true }
local REQUIRED = { 'm', 'u', 'g', 's', 'n', 'a', 't', 'c' }
-- The record of a layout-2 hash (HGETALL's flat list), and its target; nil when the record would
-- lose something. Field v (the generation, always 1: inode numbers are never reused) goes.
local function record_of(h)
  local r, target = {}, nil
  for i = 1, #h, 2 do
    local f, v = h[i], h[i + 1]
    if f == 'l' then
      target = v
    elseif f == 'z' then
      if v ~= '1' then return nil end
      r.z = v
    elseif MAX[f] or TIMES[f] or f == 'v' then
      if not string.match(v, '^%d+$') then return nil end
      if MAX[f] and (#v > 16 or tonumber(v) > MAX[f]) then return nil end
      -- 20 digits of nanoseconds: under 10^11 s, well within the record's 5-byte seconds.
      if TIMES[f] and #v > 20 then return nil end
      if f ~= 'v' then r[f] = v end
    else
      return nil
    end
  end
  for _, f in ipairs(REQUIRED) do
    if not r[f] then return nil end
  end
  if target and bit.band(tonumber(r.m), S_IFMT) ~= S_IFLNK then return nil end
  return r, target
end
local converted, kept = 0, {}
for i = 3, #ARGV do
  local ino = ARGV[i]
  local key = i2key(ino)
  local kind = redis.call('TYPE', key).ok
  if kind == 'hash' then
    local r, target = record_of(redis.call('HGETALL', key))
    if r then
      redis.call('HSET', ibkey(ino), ino, iencode(r))
      if target then redis.call('SET', lkey(ino), target) end
      redis.call('DEL', key)
      converted = converted + 1
    else
      kept[#kept + 1] = ino
    end
  elseif kind ~= 'none' then
    kept[#kept + 1] = ino
  end
end
if ARGV[2] ~= '' then redis.call('HSET', SB, 'upgrade', ARGV[2]) end
return { converted, kept }
`;

/**
 * Ends the upgrade, once a full SCAN has been through every layout-2 inode hash: the field
 * `upgrade` goes (the version is 3 already), and the filesystem mounts again. ARGV: MP → 1.
 */
const UPGRADE_FINISH = `${COMMON}
must_be_running('i')
redis.call('HDEL', SB, 'upgrade')
return 1
`;

export const UPGRADE_SCRIPTS = {
  upgradeStart: UPGRADE_START,
  upgradeBatch: UPGRADE_BATCH,
  upgradeBlocksDone: UPGRADE_BLOCKS_DONE,
  upgradeInodes: UPGRADE_INODES,
  upgradeFinish: UPGRADE_FINISH,
} as const;
