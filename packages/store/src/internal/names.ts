/**
 * Checks of names and paths, before anything reaches Redis. Names are bytes (POSIX): any byte
 * but '/' and NUL, stored, compared and returned exactly (Redis hash fields are binary-safe).
 * A string stands for its UTF-8 bytes, a Buffer for itself; every check works on the bytes.
 */
import { isUtf8 } from 'node:buffer';
import { NAME_MAX, SYMLINK_MAX } from '@redisfs/schema';
import { FsError } from '../errors.js';
import type { Name } from '../types.js';

const SLASH = 0x2f;
const DOT = 0x2e;

/** The bytes a name stands for. */
export function nameBytes(name: Name): Buffer {
  return typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
}

/** Whether the bytes are `.` or `..` (names every directory has, never stored). */
export function isDotName(bytes: Buffer): '.' | '..' | undefined {
  if (bytes.length === 1 && bytes[0] === DOT) return '.';
  if (bytes.length === 2 && bytes[0] === DOT && bytes[1] === DOT) return '..';
  return undefined;
}

/**
 * A valid directory entry name: 1–255 bytes, no '/', no NUL, not '.' or '..'. Returns its
 * bytes, as the scripts take them.
 */
export function checkName(name: Name): Buffer {
  const bytes = nameBytes(name);
  if (bytes.length === 0) throw new FsError('ENOENT', 'empty name');
  if (bytes.length > NAME_MAX) throw new FsError('ENAMETOOLONG', `name longer than ${NAME_MAX} bytes`);
  if (bytes.includes(SLASH) || bytes.includes(0)) throw new FsError('EINVAL', `name '${showName(bytes)}' holds '/' or NUL`);
  if (isDotName(bytes)) throw new FsError('EINVAL', `name '${showName(bytes)}' is reserved`);
  return bytes;
}

/**
 * Splits an absolute path into checked components ('/' → []), on the byte '/'. A path has no
 * length limit of its own, only its components (NAME_MAX): as on a local filesystem, a file may
 * lie deeper than PATH_MAX below the mount, reached step by step (a syscall's own path argument
 * is limited by the kernel, not here), and libfuse hands the whole path from the mount's root.
 */
export function splitPath(path: Name): Buffer[] {
  const bytes = nameBytes(path);
  if (bytes[0] !== SLASH) throw new FsError('EINVAL', `path '${showName(bytes)}' is not absolute`);
  const parts: Buffer[] = [];
  for (let start = 1; start <= bytes.length; ) {
    let end = bytes.indexOf(SLASH, start);
    if (end < 0) end = bytes.length;
    const part = bytes.subarray(start, end);
    start = end + 1;
    if (part.length === 0) continue;
    const dots = isDotName(part);
    if (dots === '.') continue;
    if (dots === '..') throw new FsError('EINVAL', 'paths with ".." are not resolved by the store');
    parts.push(checkName(part));
  }
  return parts;
}

/** Splits a path into its parent's components and the last name. */
export function splitParent(path: Name): { parent: Buffer[]; name: Buffer } {
  const parts = splitPath(path);
  const name = parts.pop();
  if (name === undefined) throw new FsError('EINVAL', 'the root has no parent');
  return { parent: parts, name };
}

/** A valid symlink target: 1–SYMLINK_MAX bytes, no NUL. Returns its bytes. */
export function checkSymlinkTarget(target: Name): Buffer {
  const bytes = nameBytes(target);
  if (bytes.length === 0) throw new FsError('ENOENT', 'empty symlink target');
  if (bytes.length > SYMLINK_MAX) throw new FsError('ENAMETOOLONG', 'symlink target too long');
  if (bytes.includes(0)) throw new FsError('EINVAL', 'symlink target holds NUL');
  return bytes;
}

/**
 * A name (or path) for messages, on one line and unambiguous: valid UTF-8 as it is, except
 * that a byte that is not part of valid UTF-8, a control character (0x00–0x1F, 0x7F) and the
 * backslash are escaped as in JSON-ish strings (`\xff`, `\x0a`, `\\`). Not for storage: the
 * exact bytes are what the store keeps.
 */
export function showName(name: Name): string {
  const bytes = nameBytes(name);
  if (isUtf8(bytes) && !bytes.some(needsEscape)) return bytes.toString('utf8');
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    const n = sequenceLength(b);
    if (n > 1 && i + n <= bytes.length && isUtf8(bytes.subarray(i, i + n))) {
      out += bytes.toString('utf8', i, i + n);
      i += n;
      continue;
    }
    if (n === 1 && !needsEscape(b)) out += String.fromCharCode(b);
    else if (b === 0x5c) out += '\\\\';
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
    i++;
  }
  return out;
}

function needsEscape(b: number): boolean {
  return b < 0x20 || b === 0x7f || b === 0x5c;
}

/** The length of the UTF-8 sequence a lead byte starts (0: no valid sequence starts with it). */
function sequenceLength(b: number): number {
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

/**
 * A name's bytes as a string of one char per byte (latin1): a lossless Map key, which sorts in
 * byte order. {@link fromByteKey} gives the bytes back.
 */
export function byteKey(bytes: Buffer): string {
  return bytes.toString('latin1');
}

export function fromByteKey(key: string): Buffer {
  return Buffer.from(key, 'latin1');
}
