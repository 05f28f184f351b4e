/** Why a mount or unmount failed. */
export type MountErrorCode =
  /** The mountpoint does not exist. */
  | 'ENOENT'
  /** The mountpoint is not a directory. */
  | 'ENOTDIR'
  /** The mountpoint has entries (libfuse 2 refuses to hide them). */
  | 'ENOTEMPTY'
  /** Something is already mounted there, or it could not be unmounted. */
  | 'EBUSY'
  /** A dead FUSE mount is left there ("Transport endpoint is not connected"). */
  | 'ENOTCONN'
  /** No permission to use the mountpoint or /dev/fuse. */
  | 'EACCES'
  /** FUSE did not mount (no /dev/fuse, no fusermount, refused by fusermount). */
  | 'EIO'
  /** The kernel did not start the filesystem in time. */
  | 'ETIMEDOUT';

/** A failure of mountFs or unmount, with a message meant for a person. */
export class MountError extends Error {
  override readonly name = 'MountError';
  readonly code: MountErrorCode;
  readonly mountpoint: string;

  constructor(code: MountErrorCode, mountpoint: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.mountpoint = mountpoint;
  }
}
