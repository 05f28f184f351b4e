/**
 * Mountpoint checks done before mounting, so that a bad directory is a one-line usage error
 * instead of a failure deep inside FUSE. Linux only (reads /proc/self/mountinfo).
 */
import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';

const MOUNTINFO = '/proc/self/mountinfo';

/** Mount points listed in mountinfo (field 5), with octal escapes (`\040` for space) decoded. */
export function listMountPoints(mountinfo: string = readFileSync(MOUNTINFO, 'utf8')): Set<string> {
  const out = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (field) out.add(field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))));
  }
  return out;
}

/** Whether `dir` is currently a mount point of this process's mount namespace. */
export function isMountPoint(dir: string): boolean {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    real = resolve(dir);
  }
  return listMountPoints().has(real);
}

/** Why a directory cannot be mounted on, and whether the user's command line is at fault. */
export interface MountpointProblem {
  message: string;
  /**
   * true: a usage error (exit 2: missing, not a directory, not empty); false: the directory is
   * busy (already a mount point, or a dead FUSE mount): the mount fails (exit 1).
   */
  usage: boolean;
}

/**
 * Why `dir` cannot be mounted on, or undefined when it can: it must exist, be a directory,
 * be empty and not already be a mount point.
 */
export function mountpointProblem(dir: string): MountpointProblem | undefined {
  const usage = (message: string): MountpointProblem => ({ message, usage: true });
  const busy = (message: string): MountpointProblem => ({ message, usage: false });
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return usage(`mountpoint ${dir} does not exist (create it with mkdir -p)`);
    // A FUSE mount whose process died answers every call with ENOTCONN.
    if (code === 'ENOTCONN') return busy(`mountpoint ${dir} is a dead FUSE mount: run 'fusermount -u ${dir}' first`);
    return usage(`mountpoint ${dir}: ${(err as Error).message}`);
  }
  if (!isDir) return usage(`mountpoint ${dir} is not a directory`);
  if (isMountPoint(dir)) return busy(`mountpoint ${dir} is already a mount point (unmount it first)`);
  try {
    if (readdirSync(dir).length > 0) return usage(`mountpoint ${dir} is not empty`);
  } catch (err) {
    return usage(`mountpoint ${dir}: ${(err as Error).message}`);
  }
  return undefined;
}
