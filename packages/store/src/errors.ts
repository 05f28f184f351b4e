/**
 * Typed store errors. Every failure the store reports is an FsError whose `code` comes from a
 * closed list of POSIX error names; the FUSE adapter turns codes into errno numbers.
 */

/** The closed list of error codes the store reports. */
export const FS_ERROR_CODES = [
  'ENOENT',
  'EEXIST',
  'ENOTDIR',
  'EISDIR',
  'ENOTEMPTY',
  'EINVAL',
  'ENAMETOOLONG',
  'EFBIG',
  'EROFS',
  'EIO',
  'ENODATA',
  'EPERM',
  'EMLINK',
  'ERANGE',
  'E2BIG',
  'ELOOP',
  'ETIMEDOUT',
  'ENOSPC',
  'EACCES',
  'EBUSY',
  'ESTALE',
  'ENOLCK',
] as const;
export type FsErrorCode = (typeof FS_ERROR_CODES)[number];

const CODE_SET = new Set<string>(FS_ERROR_CODES);

/** Whether a string is one of {@link FS_ERROR_CODES}. */
export function isFsErrorCode(code: string): code is FsErrorCode {
  return CODE_SET.has(code);
}

/** A filesystem error with a POSIX code, an optional syscall/path context and a cause. */
export class FsError extends Error {
  override readonly name = 'FsError';
  readonly code: FsErrorCode;

  constructor(code: FsErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ? `${code}: ${message}` : code, options);
    this.code = code;
  }
}

/** Whether `err` is an FsError, optionally with the given code. */
export function isFsError(err: unknown, code?: FsErrorCode): err is FsError {
  return err instanceof FsError && (code === undefined || err.code === code);
}
