/**
 * Test data on the local disk: disposable temp dirs, unique prefixes, and the reference source
 * tree the e2e tests copy onto redisfs and compare against (the local filesystem is the oracle).
 */
import { randomBytes } from 'node:crypto';
import { chmod, link, lstat, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runOk } from './run.js';

/** A temp dir removed on dispose. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
  /** A path inside the dir. */
  join(...parts: string[]): string;
  remove(): Promise<void>;
}

/** Creates a fresh dir under os.tmpdir(). */
export async function tempDir(label = 'tmp'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), `redisfs-e2e-${label}-`));
  const remove = () => rm(path, { recursive: true, force: true });
  return { path, join: (...parts) => join(path, ...parts), remove, [Symbol.asyncDispose]: remove };
}

let prefixCounter = 0;

/** A prefix no other test (or earlier run against the same server) uses: `<label>-<pid>-<n>-<rand>`. */
export function uniquePrefix(label: string): string {
  const safe = label.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 32);
  return `${safe}-${process.pid}-${++prefixCounter}-${randomBytes(3).toString('hex')}`;
}

/** Sets atime and mtime (of the link itself for symlinks) with full nanosecond precision, via touch(1). */
export async function setMtime(path: string, isoOrEpoch: string): Promise<void> {
  await runOk('touch', ['-h', '-d', isoOrEpoch, path]);
}

/** Every path (relative, sorted as `find | sort` would print them) in {@link makeSourceTree}. */
export const SOURCE_TREE_PATHS = [
  '.',
  './README.txt',
  './a',
  './a/b',
  './a/b/c',
  './a/b/c/deep.txt',
  './a/b/sibling.txt',
  './a/hard-b.txt',
  './a/link-up',
  './big.bin',
  './dangling',
  './empty',
  './emptydir',
  './hard-a.txt',
  './link-to-readme',
  './name with spaces.txt',
  './script.sh',
  './secret.txt',
  './ünïcødé.txt',
].sort();

/**
 * Writes the reference tree into `root` (which must exist and be empty): nested dirs, an empty
 * dir, a 3 MiB random file, small and empty files, modes 0640 and 0755, relative and dangling
 * symlinks, a hard link pair, odd names, and mtimes with nanoseconds (set last, so creating
 * children does not bump them).
 */
export async function makeSourceTree(root: string): Promise<void> {
  const p = (...parts: string[]) => join(root, ...parts);
  await mkdir(p('a/b/c'), { recursive: true });
  await mkdir(p('emptydir'));
  await writeFile(p('README.txt'), 'redisfs e2e source tree\n');
  await writeFile(p('big.bin'), randomBytes(3 * 1024 * 1024));
  await writeFile(p('empty'), '');
  await writeFile(p('secret.txt'), 'not for everyone\n');
  await chmod(p('secret.txt'), 0o640);
  await writeFile(p('script.sh'), '#!/bin/sh\necho hi\n');
  await chmod(p('script.sh'), 0o755);
  await writeFile(p('a/b/c/deep.txt'), 'deep\n'.repeat(1000));
  await writeFile(p('a/b/sibling.txt'), 'sibling\n');
  await writeFile(p('hard-a.txt'), 'one inode, two names\n');
  await link(p('hard-a.txt'), p('a/hard-b.txt'));
  await symlink('README.txt', p('link-to-readme'));
  await symlink('../README.txt', p('a/link-up'));
  await symlink('does-not-exist', p('dangling'));
  await writeFile(p('name with spaces.txt'), 'spaces\n');
  await writeFile(p('ünïcødé.txt'), 'utf-8 name\n');

  await setMtime(p('README.txt'), '@1000000000.123456789');
  await setMtime(p('big.bin'), '2001-02-03 04:05:06.987654321');
  await setMtime(p('hard-a.txt'), '@1234567890.5');
  await setMtime(p('link-to-readme'), '@1100000000.000000001');
  for (const dir of ['a/b/c', 'a/b', 'a', 'emptydir']) await setMtime(p(dir), '@1200000000.25');
}

/** Whether `path` exists (lstat succeeds); other errors than ENOENT are thrown. */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
