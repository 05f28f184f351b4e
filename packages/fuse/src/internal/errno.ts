/**
 * The one place where errors become errno numbers (like go-fuse's ToErrno). Store failures are
 * FsError with a POSIX code name; the adapter's own refusals (EBADF, EROFS before touching the
 * store) are FuseOpError. Numbers come from os.constants.errno, so they are the platform's.
 */
import { constants } from 'node:os';
import { isFsError } from '@redisfs/store';

/** A POSIX error name known to this platform (ENOENT, EIO, ...). */
export type ErrnoName = keyof typeof constants.errno;

/** An error raised by the adapter itself, with the POSIX name of the errno to answer. */
export class FuseOpError extends Error {
  override readonly name = 'FuseOpError';
  readonly code: ErrnoName;

  constructor(code: ErrnoName, message?: string) {
    super(message ? `${code}: ${message}` : code);
    this.code = code;
  }
}

/** The positive errno number of a POSIX error name. */
export function errnoOf(code: ErrnoName): number {
  return constants.errno[code];
}

/** Whether `err` is one the filesystem expects to answer (FsError or FuseOpError). */
export function isExpectedError(err: unknown): err is { code: string } {
  return isFsError(err) || err instanceof FuseOpError;
}

/**
 * The NEGATIVE errno that answers `err` to FUSE. An FsError or FuseOpError maps its code;
 * anything else is a bug or an unforeseen failure: `onUnexpected` is told, and the answer is EIO.
 */
export function toErrno(err: unknown, onUnexpected?: (err: unknown) => void): number {
  if (isExpectedError(err)) {
    const n = (constants.errno as Record<string, number | undefined>)[err.code];
    if (n !== undefined && n > 0) return -n;
  }
  onUnexpected?.(err);
  return -constants.errno.EIO;
}
