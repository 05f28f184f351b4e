/**
 * Remembers, for the cache TTL, which extended attributes an inode does NOT have. The kernel asks
 * for security.capability before every write(2) (to drop file capabilities) and for
 * security.selinux / system.posix_acl_* on lookups; without this each would be a Redis round trip.
 * This mount's setxattr/removexattr forget the inode at once; other clients' changes show after
 * at most the TTL, like the attribute cache.
 */
import type { Ino } from '@redisfs/store';

/** Default bound on inodes remembered; the oldest are dropped first. */
export const XATTR_MISS_MAX_INODES = 10_000;

/** Stands for every name (noteEmpty); xattr names are never empty, so it cannot clash. */
const ALL = '';

export class XattrMissCache {
  private readonly misses = new Map<Ino, Map<string, number>>();

  constructor(
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    private readonly maxInodes = XATTR_MISS_MAX_INODES,
  ) {}

  /** Whether `name` was recently found missing on `ino`. */
  isMissing(ino: Ino, name: string): boolean {
    return this.missingForMs(ino, name) > 0;
  }

  /** How long `name` stays known missing on `ino`, in ms (0: not known missing). */
  missingForMs(ino: Ino, name: string): number {
    const names = this.misses.get(ino);
    if (!names) return 0;
    const now = this.now();
    const one = names.get(name) ?? 0;
    const all = names.get(ALL) ?? 0;
    const expires = Math.max(one, all);
    if (expires > now) return expires - now;
    if (one) names.delete(name);
    if (all) names.delete(ALL);
    if (names.size === 0) this.misses.delete(ino);
    return 0;
  }

  /** Records that `ino` has no extended attribute at all (it was just created by this mount). */
  noteEmpty(ino: Ino): void {
    this.noteMissing(ino, ALL);
  }

  /** Records that `ino` has no attribute `name`. */
  noteMissing(ino: Ino, name: string): void {
    if (this.ttlMs <= 0) return;
    let names = this.misses.get(ino);
    if (!names) {
      this.misses.set(ino, (names = new Map()));
      while (this.misses.size > this.maxInodes) {
        const oldest = this.misses.keys().next().value;
        if (oldest === undefined) break;
        this.misses.delete(oldest);
      }
    }
    names.set(name, this.now() + this.ttlMs);
  }

  /** Forgets everything about `ino` (its attributes changed). */
  forget(ino: Ino): void {
    this.misses.delete(ino);
  }
}
