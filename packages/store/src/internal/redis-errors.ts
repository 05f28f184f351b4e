/** Turns whatever node-redis throws into an FsError with a code from the closed list. */
import { FsError, isFsErrorCode } from '../errors.js';

const SCRIPT_CODE = /RFS:(E[A-Z0-9]+)/;

/** Maps a Redis or script error to an FsError; FsErrors pass through unchanged. */
export function toFsError(err: unknown, what: string): FsError {
  if (err instanceof FsError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const m = SCRIPT_CODE.exec(message);
  if (m && isFsErrorCode(m[1] ?? '')) return new FsError(m[1] as FsError['code'], what, { cause: err });
  if (/^READONLY\b/.test(message)) {
    return new FsError('EROFS', `${what}: the Redis server is a read-only replica`, { cause: err });
  }
  // Still refused when the operation's deadline came (internal/busy-wait.ts waited until then).
  if (/^LOADING\b/.test(message)) return new FsError('ETIMEDOUT', `${what}: Redis is still loading its data`, { cause: err });
  if (/^BUSY\b/.test(message)) return new FsError('ETIMEDOUT', `${what}: Redis is still busy running a script`, { cause: err });
  // maxmemory reached with noeviction: the filesystem is full.
  if (/^OOM\b/.test(message)) return new FsError('ENOSPC', `${what}: Redis is out of memory (maxmemory)`, { cause: err });
  // An ACL that does not cover this filesystem's keys or commands.
  // Inside a script, Redis 7.0 words the same refusal "The user executing the script can't …".
  if (/^(NOPERM|NOAUTH|WRONGPASS)\b|user executing the script can't/.test(message)) {
    return new FsError('EACCES', `${what}: ${message.split('\n')[0]}`, { cause: err });
  }
  return new FsError('EIO', `${what}: ${message.split('\n')[0]}`, { cause: err });
}
