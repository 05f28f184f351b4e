/** Layout version written in the superblock. Bump on any change to the key layout or encodings. */
export const LAYOUT_VERSION = 3;
/** Layout versions `redisfs upgrade` converts from. */
export const UPGRADABLE_LAYOUTS: readonly number[] = [1, 2];

/** POSIX NAME_MAX: longest directory entry name, in bytes (any byte but '/' and NUL). */
export const NAME_MAX = 255;
/** Linux PATH_MAX: the longest path one system call takes, in bytes (the store itself takes paths of any length). */
export const PATH_MAX = 4096;
/** Default size of a data block, in bytes (recorded per filesystem in the superblock). */
export const DEFAULT_BLOCK_SIZE = 64 * 1024;
/** Smallest and largest block sizes a superblock may record. */
export const MIN_BLOCK_SIZE = 4 * 1024;
export const MAX_BLOCK_SIZE = 4 * 1024 * 1024;
/**
 * Largest file size: 2^50 bytes (1 PiB). Sizes and offsets travel through Lua as doubles,
 * exact up to 2^53; 2^50 leaves room for offset + length arithmetic. Larger → EFBIG.
 */
export const MAX_FILE_SIZE = 2 ** 50;
/** Longest symlink target, in bytes (Linux PATH_MAX). */
export const SYMLINK_MAX = 4096;
/** Linux XATTR_NAME_MAX and XATTR_SIZE_MAX. */
export const XATTR_NAME_MAX = 255;
export const XATTR_SIZE_MAX = 64 * 1024;
/** Largest link count of one inode (like ext4's EXT4_LINK_MAX). More → EMLINK. */
export const LINK_MAX = 65000;
/** Inode number of the root directory. */
export const ROOT_INO = 1;
/** Default filesystem prefix, as in redisfs 0.9. */
export const DEFAULT_PREFIX = 'skx';
/**
 * A prefix: a family name of 1–64 letters, digits, '_', '-', '.', optionally followed by
 * `@label` (same characters): `skx`, `skx@mon`. Members of one family (a filesystem and its
 * snapshots and clones, as ZFS names `pool/fs@snap`) share one hash tag `{skx}` and their data
 * blocks. No ':', '#' or braces, so patterns of different prefixes never overlap.
 */
export const PREFIX_PATTERN = /^[A-Za-z0-9_.-]{1,64}(@[A-Za-z0-9_.-]{1,64})?$/;
/** A family name alone (no `@label`). */
export const FAMILY_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** Block map entries a script releases at once; beyond that the rest is left to the collector. */
export const RELEASE_BATCH = 256;
