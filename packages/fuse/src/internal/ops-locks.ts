/**
 * Handlers for locks: fcntl(2) byte-range locks (`lock`: F_GETLK, F_SETLK, F_SETLKW) and
 * flock(2) (`flock`), kept in Redis by the store (Store.locks) so that they hold across every
 * mount of the filesystem. Owners are the kernel's lock owners: a process (its files table) for
 * POSIX locks, an open file description for flock. The kernel's rules for their release:
 * - POSIX locks of an owner end at any close(2) of the file by that owner: libfuse sends an
 *   unlock of the whole file at every flush; while this mount holds no POSIX lock the binding
 *   answers it in C (FsState.notePosix).
 * - flock locks end at the last close of their open file description: release carries its owner.
 * - every lock of a mount ends with its session (unmount, or a lease that expired: crash).
 *
 * A request that waits (F_SETLKW, flock without LOCK_NB) has no deadline: it is retried each
 * time a lock of the inode is released on any host (pub/sub, Locks.watch), and answered EINTR
 * when the waiting process gets a signal (FUSE_INTERRUPT).
 */
import type Fuse from 'fuse-native';
import type { ByteRange, Ino, LockHolder, LockType } from '@redisfs/store';
import { FuseOpError } from './errno.js';
import type { FsState } from './fs-state.js';
import { voidReply } from './run-op.js';

/** How often a waiting request checks whether its caller was interrupted. */
const INTERRUPT_POLL_MS = 50;
/** Longest wait between two tries of a waiting request even without a release message (a lock of a session that expired is dropped without one reaching a mount that was cut off). */
const RETRY_MS = 2000;

function rangeOf(req: Fuse.LockRequest): ByteRange {
  return { start: req.start, end: req.len === 0 ? Infinity : req.start + req.len };
}

export function lockOps(s: FsState): Fuse.Ops {
  const locks = (): NonNullable<FsState['store']['locks']> => {
    const l = s.store.locks;
    if (!l) throw new FuseOpError('ENOLCK', 'locks need a read-write mount');
    return l;
  };

  /** Tries `attempt` until it succeeds, waking at each release of `ino`'s locks; EINTR when interrupted. */
  async function waitFor(ino: Ino, interrupted: () => boolean, attempt: () => Promise<boolean>): Promise<void> {
    const watch = await locks().watch(ino);
    const abort = new AbortController();
    const poll = setInterval(() => {
      if (interrupted()) abort.abort(new FuseOpError('EINTR', 'interrupted while waiting for a lock'));
    }, INTERRUPT_POLL_MS);
    try {
      while (!(await attempt())) {
        if (abort.signal.aborted) throw abort.signal.reason;
        await watch.next(RETRY_MS, abort.signal);
      }
    } finally {
      clearInterval(poll);
      await watch.close();
    }
  }

  return {
    lock(path, fd, cmd, req, owner, interrupted, cb) {
      s.run<Fuse.LockRequest | undefined>(
        'lock',
        () => `${path ?? '(removed)'} ${cmd} ${req.type} ${req.start}+${req.len} owner ${owner}`,
        (errno, value) => (errno === 0 ? cb(0, value) : cb(errno)),
        async () => {
          const { ino } = s.file(fd);
          const range = rangeOf(req);
          if (cmd === 'getlk') {
            if (req.type === 'U') return { type: 'U', start: 0, len: 0, pid: 0 };
            const holder = await locks().getLock(ino, owner, req.type, range);
            return holder ? lockReply(holder, s.store.sessionId) : { type: 'U', start: 0, len: 0, pid: 0 };
          }
          if (req.type === 'U') {
            // libfuse sends an unlock of the whole file at every close: cheap when this owner holds nothing.
            const whole = range.start === 0 && range.end === Infinity;
            if (!s.holdsPosix(ino, owner)) return undefined;
            if (whole) await locks().releasePosix(ino, owner);
            else await locks().setLock(ino, owner, 'U', range, req.pid);
            if (whole) s.notePosix(ino, owner, false);
            return undefined;
          }
          const type: LockType = req.type;
          // Noted before asking Redis: a close that races with the grant must still release it.
          s.notePosix(ino, owner, true);
          const attempt = () => locks().setLock(ino, owner, type, range, req.pid);
          if (cmd === 'setlkw') await waitFor(ino, interrupted, attempt);
          else if (!(await attempt())) throw new FuseOpError('EAGAIN', 'a conflicting lock is held');
          await s.revalidatePages(ino, path);
          return undefined;
        },
        { deadline: cmd !== 'setlkw' },
      );
    },

    flock(path, fd, op, owner, interrupted, cb) {
      s.run(
        'flock',
        () => `${path ?? '(removed)'} ${op.type}${op.wait ? '' : ' nb'} owner ${owner}`,
        voidReply(cb),
        async () => {
          const { ino } = s.file(fd);
          if (op.type === 'U') return locks().funlock(ino, owner);
          const type: LockType = op.type;
          const attempt = () => locks().flock(ino, owner, type);
          if (op.wait) await waitFor(ino, interrupted, attempt);
          else if (!(await attempt())) throw new FuseOpError('EWOULDBLOCK', 'a conflicting lock is held');
          await s.revalidatePages(ino, path);
        },
        { deadline: op.type === 'U' || !op.wait },
      );
    },
  };
}

/** F_GETLK's answer: the conflicting lock, with its pid where its holder is on this host (0 elsewhere). */
function lockReply(holder: LockHolder, sessionId: string | undefined): Fuse.LockRequest {
  return {
    type: holder.type,
    start: holder.start,
    len: holder.end === Infinity ? 0 : holder.end - holder.start,
    pid: holder.sessionId === sessionId ? holder.pid : 0,
  };
}

