/**
 * The Lua scripts of the upgrade from layout 1 (upgrade.ts has the protocol). Each is one short,
 * bounded step, and each can run again with the same effect, so an upgrade cut short anywhere
 * resumes by running it again. ARGV[1] is the metadata prefix `{P}:`; errors are `RFS:<CODE>`.
 *
 * The superblock field `upgrade` is `<SCAN cursor>@<run id>` while an upgrade runs: the cursor to
 * resume from, and the server process (INFO `run_id`) the cursor belongs to. A cursor is only
 * good on the server that gave it: another process (a restart, a failover) hashes keys with
 * another seed, so the scan must start over there.
 */
import { LUA_KEY_FUNCTIONS } from '@redisfs/schema';

const COMMON = `${LUA_KEY_FUNCTIONS}
local function fail(code) error({ err = 'RFS:' .. code }) end
-- A snapshot of this prefix, or a copy into it, reads or writes its keys without knowing layouts.
local function must_be_idle()
  if redis.call('EXISTS', SNAP) == 1 or redis.call('EXISTS', snap_lock_of(PFX)) == 1 then fail('EBUSY') end
end
-- The upgrade must still be running: layout 1, the field set (another run may have finished it).
local function must_be_running()
  local sb = redis.call('HMGET', SB, 'version', 'upgrade')
  if redis.call('EXISTS', SB) == 0 then fail('ENOENT') end
  if sb[1] ~= '1' or not sb[2] then fail('ESTALE') end
  must_be_idle()
end
`;

/**
 * Starts or resumes the upgrade. ARGV: MP, run id ('' when unknown: never resumes a cursor)
 * → {'current'} for layout 2 (removing a stray `upgrade` field, which would keep it from
 * mounting); {'version', v} for a version this code does not upgrade;
 * else {'run', cursor, how}: how is 'new' (started now), 'resume' (from the saved cursor) or
 * 'restart' (an upgrade cut short on another server process, or with an unknown run id: from 0).
 */
const UPGRADE_START = `${COMMON}
if redis.call('EXISTS', SB) == 0 then fail('ENOENT') end
local sb = redis.call('HMGET', SB, 'version', 'upgrade')
local version, saved = sb[1], sb[2]
if version == '2' then
  if saved then redis.call('HDEL', SB, 'upgrade') end
  return { 'current' }
end
if version ~= '1' then return { 'version', version or '' } end
must_be_idle()
local run = ARGV[2]
if saved then
  local at = string.find(saved, '@', 1, true)
  if at and run ~= '' and string.sub(saved, at + 1) == run then
    return { 'run', string.sub(saved, 1, at - 1), 'resume' }
  end
end
redis.call('HSET', SB, 'upgrade', '0@' .. run)
return { 'run', '0', saved and 'restart' or 'new' }
`;

/**
 * One batch of layout-1 blocks: each goes into its file's block map (member = its id
 * `<ino>:<index>`, score = index) when the inode is a regular file whose size reaches the block,
 * else (the file is gone, is no regular file, or is shorter: layout 1's pending deletions) its key
 * is deleted. An inode whose mode or size cannot be read keeps its blocks: the upgrade does not
 * judge a corrupt record, fsck does. Saves the SCAN cursor to resume from in the same step.
 * ARGV: MP, new value of the `upgrade` field ('' = leave it), then pairs of inode and index
 * → {blocks mapped (newly), block keys deleted}.
 */
const UPGRADE_BATCH = `${COMMON}
must_be_running()
local bsize = tonumber(redis.call('HGET', SB, 'bsize'))
if not bsize or bsize <= 0 then fail('EIO') end
local S_IFMT, S_IFREG = 61440, 32768
-- Blocks each inode keeps: its size in blocks; 0 when gone or not a regular file; all when corrupt.
local keep = {}
local function blocks_kept(ino)
  local n = keep[ino]
  if n then return n end
  local h = redis.call('HMGET', ikey(ino), 'm', 's')
  local m, s = tonumber(h[1]), tonumber(h[2])
  if not h[1] and not h[2] and redis.call('EXISTS', ikey(ino)) == 0 then
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
    -- it (z) so that a growth rewrites it first, as layout 2 does after a shrink.
    if s % bsize ~= 0 and redis.call('EXISTS', bkey(ino .. ':' .. math.floor(s / bsize))) == 1 then
      redis.call('HSET', ikey(ino), 'z', '1')
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
 * Ends the upgrade, once a full SCAN has been through every block: layout 1's pending-deletion
 * set goes (its blocks were deleted by the batches), the version becomes 2 and the field
 * `upgrade` goes, in one step. ARGV: MP → number of pending-deletion members dropped.
 */
const UPGRADE_FINISH = `${COMMON}
must_be_running()
-- Members of a layout-1 GC are \`<ino>:<from>:<to>\`; nothing writes layout 2's plain inode
-- numbers into the GC of a filesystem that still says version 1 (openStore refuses to open it).
local dropped = redis.call('SCARD', GC)
if dropped > 0 then redis.call('UNLINK', GC) end
redis.call('HSET', SB, 'version', '2')
redis.call('HDEL', SB, 'upgrade')
return dropped
`;

export const UPGRADE_SCRIPTS = {
  upgradeStart: UPGRADE_START,
  upgradeBatch: UPGRADE_BATCH,
  upgradeFinish: UPGRADE_FINISH,
} as const;
