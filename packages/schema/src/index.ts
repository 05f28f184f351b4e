/**
 * @redisfs/schema: the Redis key layout of a redisfs filesystem and the zod schemas of its
 * records. No I/O: tools import it to read or write a filesystem's keys.
 */
export {
  LAYOUT_VERSION,
  NAME_MAX,
  PATH_MAX,
  DEFAULT_BLOCK_SIZE,
  MIN_BLOCK_SIZE,
  MAX_BLOCK_SIZE,
  MAX_FILE_SIZE,
  SYMLINK_MAX,
  XATTR_NAME_MAX,
  XATTR_SIZE_MAX,
  LINK_MAX,
  ROOT_INO,
  DEFAULT_PREFIX,
  PREFIX_PATTERN,
  FAMILY_PATTERN,
  UPGRADABLE_LAYOUTS,
  RELEASE_BATCH,
} from './limits.js';
export {
  keysFor, assertPrefix, familyOf, sameFamily, parseBlockKey, parseLayout1BlockKey, parseInodeKey, parseBucketKey, parseFamilyMapKey, BLOCK_ID_PATTERN, LUA_KEY_FUNCTIONS,
  SESSION_ID_PATTERN, isSessionKey, parseSessionKey,
  type KeyLayout, type SessionKey, type InodeKeyKind,
} from './layout.js';
export {
  INODE_FIELDS,
  FILE_TYPE_CODES,
  FILE_TYPE_MODES,
  S_IFMT,
  fileTypeOfMode,
  inodeRecordSchema,
  decodeInode,
  encodeInode,
  encodeDirEntry,
  decodeDirEntry,
  BLOCK_CODECS,
  superblockSchema,
  encodeSuperblock,
  isSupportedLayout,
  statsSchema,
  encodeGcEntry,
  decodeGcEntry,
  type FileType,
  type InodeRecord,
  type BlockCodec,
  type Superblock,
} from './records.js';
export {
  INODES_PER_BUCKET,
  INODE_RECORD_HEAD,
  LUA_INODE_CODEC,
  inodeBucket,
  encodeInodeRecord,
  decodeInodeRecord,
  inodeRecordFixed,
} from './inode-record.js';
export { splitBlock, joinBlock, blockIndex, blockCount } from './block.js';
