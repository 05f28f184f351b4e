/**
 * Mountpoint checks before mounting (clear errors instead of libfuse's "fuse failed"), the list
 * of mounts from /proc/self/mountinfo, and the lazy unmount with fusermount.
 */
import { execFile } from 'node:child_process';
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MountError } from '../errors.js';

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Undoes mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points listed in mountinfo text (5th field of each line). */
export function parseMountinfo(text: string): Set<string> {
  const points = new Set<string>();
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field) points.add(unescapeMountPath(field));
  }
  return points;
}

/** The mount points this process sees, or undefined without /proc. */
export async function listMountpoints(): Promise<Set<string> | undefined> {
  try {
    return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
  } catch {
    return undefined;
  }
}

/** Whether something is mounted on `dir` (an absolute, real path). */
export async function isMountpoint(dir: string): Promise<boolean> {
  const points = await listMountpoints();
  if (points) return points.has(dir);
  // No /proc: a mount point sits on another device than its parent.
  const [self, parent] = await Promise.all([stat(dir), stat(dirname(dir))]);
  return self.dev !== parent.dev || self.ino === parent.ino;
}

/**
 * Checks that `mountpoint` (absolute) can be mounted on: an existing, empty directory with
 * nothing mounted on it. Returns its real path. Throws MountError with a clear message.
 */
export async function checkMountpoint(mountpoint: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(mountpoint);
    const st = await stat(real);
    if (!st.isDirectory()) throw new MountError('ENOTDIR', mountpoint, `mountpoint ${mountpoint} is not a directory`);
  } catch (err) {
    if (err instanceof MountError) throw err;
    switch (errCode(err)) {
      case 'ENOENT':
        throw new MountError('ENOENT', mountpoint, `mountpoint ${mountpoint} does not exist`, { cause: err });
      case 'ENOTDIR':
        throw new MountError('ENOTDIR', mountpoint, `mountpoint ${mountpoint} is not a directory`, { cause: err });
      case 'ENOTCONN':
        throw new MountError(
          'ENOTCONN',
          mountpoint,
          `mountpoint ${mountpoint} is a dead FUSE mount (transport endpoint is not connected); ` +
            `unmount it first: fusermount -uz ${mountpoint}`,
          { cause: err },
        );
      case 'EACCES':
      case 'EPERM':
        throw new MountError('EACCES', mountpoint, `mountpoint ${mountpoint}: permission denied`, { cause: err });
      default:
        throw new MountError('EIO', mountpoint, `mountpoint ${mountpoint}: ${String(err)}`, { cause: err });
    }
  }
  if (await isMountpoint(real)) {
    throw new MountError('EBUSY', mountpoint, `mountpoint ${mountpoint} is already mounted (busy); unmount it first`);
  }
  let entries: string[];
  try {
    entries = await readdir(real);
  } catch (err) {
    throw new MountError('EACCES', mountpoint, `mountpoint ${mountpoint} cannot be listed: ${String(err)}`, { cause: err });
  }
  if (entries.length > 0) throw new MountError('ENOTEMPTY', mountpoint, `mountpoint ${mountpoint} is not empty`);
  return real;
}

/** Runs `fusermount -uz` (lazy unmount: detaches now, even while files are open). */
export function lazyUnmount(mountpoint: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('fusermount', ['-uz', mountpoint], (err, _stdout, stderr) => {
      if (!err) return resolve();
      const detail = String(stderr).trim() || err.message;
      reject(new MountError('EBUSY', mountpoint, `could not unmount ${mountpoint}: ${detail}`, { cause: err }));
    });
  });
}

/**
 * Calls `onGone` once `mountpoint` disappears from the mount table (unmounted from outside, e.g.
 * `fusermount -u`). Polls /proc/self/mountinfo; the timer does not keep the process alive.
 * Returns a function that stops watching.
 */
export function watchMount(mountpoint: string, onGone: () => void, intervalMs = 1000): () => void {
  let stopped = false;
  let busy = false;
  const timer = setInterval(() => {
    if (busy || stopped) return;
    busy = true;
    void listMountpoints()
      .then((points) => {
        if (!stopped && points && !points.has(mountpoint)) {
          stopped = true;
          clearInterval(timer);
          onGone();
        }
      })
      .finally(() => {
        busy = false;
      });
  }, intervalMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
