/**
 * Handlers for extended attributes (Linux semantics: `position` is always 0 and ignored).
 * Names arrive as byte strings (latin1) and are stored as UTF-8 strings, as they always were
 * (xattrNameToStore): a name that is not valid UTF-8 is refused (setxattr: EINVAL) or cannot
 * exist (getxattr, removexattr: ENODATA).
 */
import { isFsError, type XattrFlags } from '@redisfs/store';
import type Fuse from 'fuse-native';
import { xattrNameFromStore, xattrNameToStore } from './byte-names.js';
import { FuseOpError } from './errno.js';
import type { FsState } from './fs-state.js';
import { valueReply, voidReply } from './run-op.js';

/**
 * Names this filesystem does not store, answered EOPNOTSUPP without a store call:
 * - POSIX ACLs. Without FUSE_POSIX_ACL (libfuse 2 cannot ask for it) the kernel passes these
 *   through as plain xattrs and expects the daemon to apply them. This filesystem has no ACLs:
 *   answering EOPNOTSUPP (like ext4 mounted noacl) makes tools fall back to chmod, e.g. `cp -a`
 *   sets the mode with acl_set_fd and only calls fchmod when that is unsupported.
 * - SELinux labels. A FUSE filesystem is labelled by policy (genfscon), never per file, so a
 *   stored label would mean nothing; `ls -l` asks for one per file and, told EOPNOTSUPP once,
 *   stops asking for the whole filesystem (one FUSE call per file less).
 */
const UNSUPPORTED_NAMES = new Set(['system.posix_acl_access', 'system.posix_acl_default', 'security.selinux']);

/**
 * The namespaces a name must start with, as Linux resolves them (fs/xattr.c): a name in none is
 * EOPNOTSUPP, a namespace with nothing after it (`user.`) is EINVAL. `system.` names are the
 * POSIX ACLs (and other filesystems' own), none of which this filesystem stores: EOPNOTSUPP,
 * as on tmpfs mounted without ACLs.
 */
const STORED_NAMESPACES = ['user.', 'trusted.', 'security.'] as const;

function refuseUnsupported(name: string): void {
  if (UNSUPPORTED_NAMES.has(name)) throw new FuseOpError('EOPNOTSUPP', `${name}: not supported by redisfs`);
  const namespace = STORED_NAMESPACES.find((ns) => name.startsWith(ns));
  if (namespace === undefined) throw new FuseOpError('EOPNOTSUPP', `${name}: not in the user, trusted or security namespace`);
  if (name.length === namespace.length) throw new FuseOpError('EINVAL', `${name}: no name after the namespace`);
}

/** What listxattr shows: stored names in a namespace, trusted.* only to root (CAP_SYS_ADMIN). */
function listable(name: string, callerUid: number): boolean {
  if (UNSUPPORTED_NAMES.has(name)) return false;
  if (name.startsWith('trusted.')) return callerUid === 0;
  return STORED_NAMESPACES.some((ns) => name.startsWith(ns) && name.length > ns.length);
}

/** setxattr(2) flags (linux/xattr.h). */
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

export function xattrFlags(flags: number): XattrFlags {
  const out: XattrFlags = {};
  if (flags & XATTR_CREATE) out.create = true;
  if (flags & XATTR_REPLACE) out.replace = true;
  return out;
}

export function xattrOps(s: FsState): Fuse.Ops {
  return {
    setxattr(path, name, value, _position, flags, cb) {
      s.run('setxattr', () => `${path} ${name}`, voidReply(cb), async () => {
        const copy = Buffer.from(value); // runs synchronously: value is detached once answered
        refuseUnsupported(name);
        const stored = xattrNameToStore(name);
        if (stored === undefined) throw new FuseOpError('EINVAL', 'xattr names must be valid UTF-8');
        s.assertWritable('setxattr');
        const { ino } = await s.resolve(path);
        try {
          await s.store.setxattr(ino, stored, copy, xattrFlags(flags));
        } finally {
          s.xattrMisses.forget(ino);
          s.cache.invalidateIno(ino); // ctime changed
        }
      });
    },

    getxattr(path, name, _position, cb) {
      s.run('getxattr', () => `${path} ${name}`, valueReply(cb), async () => {
        refuseUnsupported(name);
        const stored = xattrNameToStore(name);
        // The kernel asks for security.capability before each write(2): a file being written
        // has outdated cached attributes, but its name still leads to the same inode.
        const ino = s.cache.inoOf(path) ?? (await s.resolve(path)).ino;
        if (stored === undefined || s.xattrMisses.isMissing(ino, stored)) throw new FuseOpError('ENODATA', stored ?? 'not UTF-8');
        try {
          return await s.store.getxattr(ino, stored);
        } catch (err) {
          if (isFsError(err, 'ENODATA')) {
            s.xattrMisses.noteMissing(ino, stored);
            s.republish(path); // the binding may now answer this miss itself
          }
          throw err;
        }
      });
    },

    listxattr(path, cb) {
      s.run('listxattr', path, valueReply(cb), async () => {
        const { uid } = s.caller(); // before the first await: the request's context
        const names = await s.store.listxattr((await s.resolve(path)).ino);
        return names.filter((n) => listable(n, uid)).map(xattrNameFromStore);
      });
    },

    removexattr(path, name, cb) {
      s.run('removexattr', () => `${path} ${name}`, voidReply(cb), async () => {
        refuseUnsupported(name);
        s.assertWritable('removexattr');
        const stored = xattrNameToStore(name);
        const { ino } = await s.resolve(path);
        if (stored === undefined) throw new FuseOpError('ENODATA', 'not UTF-8');
        try {
          await s.store.removexattr(ino, stored);
        } finally {
          s.xattrMisses.forget(ino);
          s.cache.invalidateIno(ino);
        }
      });
    },
  };
}
