/** The full fuse-native operation table of one mount. */
import type Fuse from 'fuse-native';
import type { FsState } from './fs-state.js';
import { attrOps } from './ops-attr.js';
import { ioOps } from './ops-io.js';
import { lockOps } from './ops-locks.js';
import { nameOps } from './ops-names.js';
import { xattrOps } from './ops-xattr.js';

export function makeOps(state: FsState): Fuse.Ops {
  const ops = { ...attrOps(state), ...nameOps(state), ...ioOps(state), ...xattrOps(state) };
  // Locks go to Redis only where the store can keep them (a read-write store has a session);
  // otherwise the kernel keeps them, for this host only.
  return state.store.locks ? { ...ops, ...lockOps(state) } : ops;
}
