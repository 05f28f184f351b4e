/**
 * A comparable description of a directory tree: what `diff -r` does not check (types, modes,
 * owners, nanosecond mtimes, symlink targets, which names share an inode) plus content hashes.
 * Two trees that should be the same must describe equal.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type RunResult, run } from './run.js';

export interface TreeEntry {
  /** Relative path, './'-prefixed like find(1). */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Permission bits (mode & 0o7777); omitted for symlinks, whose mode means nothing on Linux. */
  mode?: number;
  uid: number;
  gid: number;
  /** Files only: size, link count and sha256 of the content. */
  size?: number;
  nlink?: number;
  sha256?: string;
  /** Symlinks only. */
  target?: string;
  /** Nanoseconds since the epoch; omitted when `times: false`. */
  mtimeNs?: bigint;
}

export interface TreeDescription {
  entries: TreeEntry[];
  /** Groups of paths that share one inode (hard links), each sorted, groups sorted. */
  hardLinks: string[][];
}

export interface DescribeOptions {
  /** Include mtimes (default true). Dir mtimes are excluded from the root itself either way. */
  times?: boolean;
  /** Include symlink mtimes (default true); some copiers do not preserve them. */
  symlinkTimes?: boolean;
}

/** sha256 of a file's content, hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Walks `root` (not following symlinks) and describes every entry below it. */
export async function describeTree(root: string, options: DescribeOptions = {}): Promise<TreeDescription> {
  const times = options.times ?? true;
  const symlinkTimes = options.symlinkTimes ?? true;
  const entries: TreeEntry[] = [];
  const byIno = new Map<bigint, string[]>();

  async function visit(rel: string): Promise<void> {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const relPath = `${rel}/${name}`;
      const abs = join(root, relPath);
      const st = await lstat(abs, { bigint: true });
      const entry: TreeEntry = { path: relPath, type: 'other', uid: Number(st.uid), gid: Number(st.gid) };
      if (st.isSymbolicLink()) {
        entry.type = 'symlink';
        entry.target = await readlink(abs);
        if (times && symlinkTimes) entry.mtimeNs = st.mtimeNs;
      } else {
        entry.mode = Number(st.mode & 0o7777n);
        if (times) entry.mtimeNs = st.mtimeNs;
        if (st.isFile()) {
          entry.type = 'file';
          entry.size = Number(st.size);
          entry.nlink = Number(st.nlink);
          entry.sha256 = await sha256File(abs);
          if (st.nlink > 1n) byIno.set(st.ino, [...(byIno.get(st.ino) ?? []), relPath]);
        } else if (st.isDirectory()) {
          entry.type = 'dir';
        }
      }
      entries.push(entry);
      if (entry.type === 'dir') await visit(relPath);
    }
  }

  await visit('.');
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const hardLinks = [...byIno.values()].map((group) => group.sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
  return { entries, hardLinks };
}

/**
 * `diff -r --no-dereference a b`: contents of every file, and symlinks compared as links (plain
 * `diff -r` follows them and fails on a dangling one). Exit code 0 means equal.
 */
export function diffTrees(a: string, b: string): Promise<RunResult> {
  return run('diff', ['-r', '--no-dereference', a, b]);
}
