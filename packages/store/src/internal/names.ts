/** Checks of names and paths, before anything reaches Redis. */
import { NAME_MAX, SYMLINK_MAX } from '@redisfs/schema';
import { FsError } from '../errors.js';

/** A valid directory entry name: 1–255 bytes, no '/', no NUL, not '.' or '..'. */
export function checkName(name: string): void {
  if (name.length === 0) throw new FsError('ENOENT', 'empty name');
  if (Buffer.byteLength(name) > NAME_MAX) throw new FsError('ENAMETOOLONG', `name longer than ${NAME_MAX} bytes`);
  if (name.includes('/') || name.includes('\0')) throw new FsError('EINVAL', `name ${JSON.stringify(name)} holds '/' or NUL`);
  if (name === '.' || name === '..') throw new FsError('EINVAL', `name ${JSON.stringify(name)} is reserved`);
}

/**
 * Splits an absolute path into checked components ('/' → []). A path has no length limit of its
 * own, only its components (NAME_MAX): as on a local filesystem, a file may lie deeper than
 * PATH_MAX below the mount, reached step by step (a syscall's own path argument is limited by
 * the kernel, not here), and libfuse hands the whole path from the mount's root.
 */
export function splitPath(path: string): string[] {
  if (!path.startsWith('/')) throw new FsError('EINVAL', `path ${JSON.stringify(path)} is not absolute`);
  const parts = path.split('/').filter((p) => p.length > 0 && p !== '.');
  for (const p of parts) {
    if (p === '..') throw new FsError('EINVAL', 'paths with ".." are not resolved by the store');
    checkName(p);
  }
  return parts;
}

/** Splits a path into its parent's components and the last name. */
export function splitParent(path: string): { parent: string[]; name: string } {
  const parts = splitPath(path);
  const name = parts.pop();
  if (name === undefined) throw new FsError('EINVAL', 'the root has no parent');
  return { parent: parts, name };
}

export function checkSymlinkTarget(target: string): void {
  if (target.length === 0) throw new FsError('ENOENT', 'empty symlink target');
  if (Buffer.byteLength(target) > SYMLINK_MAX) throw new FsError('ENAMETOOLONG', 'symlink target too long');
  if (target.includes('\0')) throw new FsError('EINVAL', 'symlink target holds NUL');
}
