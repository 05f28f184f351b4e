/** Unmounting helpers for programs that manage mounts (the CLI, tests). */
import { resolve } from 'node:path';
import { lazyUnmount } from './internal/mountpoint.js';

/**
 * Detaches whatever FUSE filesystem is mounted on `mountpoint` (`fusermount -uz`), e.g. a mount
 * left dead by a crashed process. Throws a MountError (EBUSY) when fusermount fails.
 */
export function forceUnmount(mountpoint: string): Promise<void> {
  return lazyUnmount(resolve(mountpoint));
}
