/** Moved to @redisfs/testing; kept for the helpers that import it by path (fsync-writer.ts). */
export { disposeWhenTestEnds } from '@redisfs/testing';
