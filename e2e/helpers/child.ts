/** Moved to @redisfs/testing; kept for the helpers that import it by path (fsync-writer.ts). */
export { own, exited, exitedWithin, stopChild, isRunning, OutputTail, type ChildExit } from '@redisfs/testing';
