/** The full fuse-native operation table of one mount. */
import type Fuse from 'fuse-native';
import type { FsState } from './fs-state.js';
import { attrOps } from './ops-attr.js';
import { ioOps } from './ops-io.js';
import { nameOps } from './ops-names.js';
import { xattrOps } from './ops-xattr.js';

export function makeOps(state: FsState): Fuse.Ops {
  return { ...attrOps(state), ...nameOps(state), ...ioOps(state), ...xattrOps(state) };
}
