/**
 * flock(2) and fcntl(2) byte-range locks shared by every host that mounts the filesystem, kept
 * in Redis per inode (lua-locks.ts has the stored format and the scripts, lock-watch.ts the
 * release messages that wake F_SETLKW waiters).
 *
 * A lock belongs to (session, lock owner): the hash field `<sid>:<owner>`, so one kernel owner
 * on two hosts is two owners. flock and POSIX locks are independent of each other (as on
 * Linux). Locks go away when their owner releases them (funlock; releasePosix at close(2) by the
 * owner, as POSIX says: any close of the file by that owner drops all its byte-range locks), and
 * when the session dies (the session cleanup deletes the dead session's fields, listed in
 * sl:<sid>, and publishes on the lock channel). There is no deadlock detection (EDEADLK): two
 * F_SETLKW waiting for each other wait until interrupted.
 *
 * Every operation is one Lua script in the filesystem's hash slot. A store without a session
 * (read-only) cannot lock: EROFS. The store gives each operation its deadline and retries
 * through the constructor's `guard` (InodeStore.op): every operation here may safely run twice
 * (setting a lock one holds, or dropping one already gone, changes nothing).
 */
import { SESSION_ID_PATTERN } from '@redisfs/schema';
import { FsError } from '../errors.js';
import type { Ino } from '../types.js';
import type { StoreContext } from './context.js';
import { LockHub, type LockWatch } from './lock-watch.js';
import { MAX_LOCK_RANGES } from './lua-locks.js';
import { toFsError } from './redis-errors.js';
import type { ScriptName } from './scripts.js';

export type { LockWatch };

export type LockType = 'R' | 'W';

/** A byte range [start, end): end is exclusive, Infinity = to the end of the file (any size). */
export interface ByteRange {
  start: number;
  end: number;
}

/** A byte-range lock another owner holds (F_GETLK). */
export interface LockHolder {
  type: LockType;
  start: number;
  end: number;
  /** The process that set it, on its session's host. */
  pid: number;
  sessionId: string;
  owner: string;
}

/** What Locks needs of the store's context. */
export type LocksContext = Pick<StoreContext, 'client' | 'keys' | 'scripts' | 'warn'>;

/** Longest lock owner accepted (a kernel lock owner is a 64-bit number). */
const MAX_OWNER_LENGTH = 256;

export class Locks {
  private readonly hub: LockHub;

  constructor(
    private readonly ctx: LocksContext,
    /** This mount's session id; undefined for a store that does not lock (read-only). */
    private readonly sessionId: () => string | undefined,
    /**
     * Runs each operation (the store passes its `op`: deadline, retry after a dropped
     * connection, syncReplicas). Every operation here may safely run twice.
     */
    private readonly guard: <T>(what: string, fn: () => Promise<T>) => Promise<T> = (_what, fn) => fn(),
  ) {
    this.hub = new LockHub(ctx.client, ctx.keys.lockChannel, ctx.warn);
  }

  /**
   * flock(2) for `owner` on `ino`: true when granted (also a conversion R<->W of its own lock,
   * made atomically: a refused conversion keeps the lock it had), false when another owner's
   * lock conflicts.
   */
  async flock(ino: Ino, owner: string, type: LockType): Promise<boolean> {
    checkType(type, false);
    return (await this.run(`flock ${ino}`, 'flock', ino, owner, [type])) === 1;
  }

  /** Drops `owner`'s flock lock on `ino` (no-op when it has none, also when `ino` is gone). */
  async funlock(ino: Ino, owner: string): Promise<void> {
    await this.run(`funlock ${ino}`, 'funlock', ino, owner, []);
  }

  /**
   * F_SETLK: sets `type` over `range` for `owner` (replacing, splitting and merging its own
   * ranges as POSIX says), or with 'U' unlocks that range. True when done; false when another
   * owner's lock conflicts (nothing changed).
   */
  async setLock(ino: Ino, owner: string, type: LockType | 'U', range: ByteRange, pid: number): Promise<boolean> {
    checkType(type, true);
    if (!Number.isSafeInteger(pid) || pid < 0) throw new FsError('EINVAL', `setlk ${ino}: invalid pid ${pid}`);
    const reply = await this.run(`setlk ${ino}`, 'setLock', ino, owner, [type, ...rangeArgs(range), String(pid)]);
    if (reply === 'ENOLCK') {
      throw new FsError('ENOLCK', `setlk ${ino}: owner would hold more than ${MAX_LOCK_RANGES} lock ranges`);
    }
    return reply === 1;
  }

  /** F_GETLK: the first lock of ANOTHER owner (any session) that conflicts with `type` over `range`, else undefined. */
  async getLock(ino: Ino, owner: string, type: LockType, range: ByteRange): Promise<LockHolder | undefined> {
    checkType(type, false);
    const reply = await this.run(`getlk ${ino}`, 'getLock', ino, owner, [type, ...rangeArgs(range)]);
    if (!Array.isArray(reply)) return undefined;
    const [field, t, start, end, pid] = reply.map(String) as [string, LockType, string, string, string];
    return {
      type: t,
      start: Number(start),
      end: end === 'inf' ? Infinity : Number(end),
      pid: Number(pid),
      sessionId: field.slice(0, 16),
      owner: field.slice(17),
    };
  }

  /** Drops every POSIX lock `owner` holds on `ino` (close(2) by that owner; no-op when none, also when `ino` is gone). */
  async releasePosix(ino: Ino, owner: string): Promise<void> {
    await this.run(`release locks ${ino}`, 'releasePosix', ino, owner, []);
  }

  /**
   * Starts watching releases of `ino`'s locks (subscribed when it resolves, so no release after
   * it is missed). F_SETLKW: watch, then try setLock, and while refused await next(ms, signal).
   */
  async watch(ino: Ino): Promise<LockWatch> {
    this.sid(`watch ${ino}`);
    checkIno(ino, `watch ${ino}`);
    return this.hub.watch(ino);
  }

  /** Closes the subscriber connection, if any (store close); waiting next() calls resolve. */
  close(): Promise<void> {
    return this.hub.close();
  }

  private sid(what: string): string {
    const sid = this.sessionId();
    if (sid === undefined) throw new FsError('EROFS', `${what}: read-only filesystem (no session to hold locks)`);
    if (!SESSION_ID_PATTERN.test(sid)) throw new FsError('EINVAL', `${what}: invalid session id`);
    return sid;
  }

  private async run(what: string, script: ScriptName, ino: Ino, owner: string, args: string[]): Promise<unknown> {
    const sid = this.sid(what);
    checkIno(ino, what);
    if (typeof owner !== 'string' || owner.length === 0 || owner.length > MAX_OWNER_LENGTH) {
      throw new FsError('EINVAL', `${what}: invalid lock owner`);
    }
    try {
      return await this.guard(what, () => this.ctx.scripts.run(script, this.ctx.keys.metaPrefix, [sid, String(ino), owner, ...args]));
    } catch (err) {
      throw toFsError(err, what);
    }
  }
}

function checkIno(ino: Ino, what: string): void {
  if (!Number.isSafeInteger(ino) || ino < 1) throw new FsError('EINVAL', `${what}: invalid inode number`);
}

function checkType(type: string, unlock: boolean): void {
  if (type !== 'R' && type !== 'W' && !(unlock && type === 'U')) throw new FsError('EINVAL', `invalid lock type ${JSON.stringify(type)}`);
}

/** [start, end) as script arguments: exact decimal integers, 'inf' for Infinity. */
function rangeArgs(range: ByteRange): [string, string] {
  const { start, end } = range;
  const endOk = end === Infinity || (Number.isSafeInteger(end) && end > start);
  if (!Number.isSafeInteger(start) || start < 0 || !endOk) {
    throw new FsError('EINVAL', `invalid lock range [${start}, ${end})`);
  }
  return [String(start), end === Infinity ? 'inf' : String(end)];
}
