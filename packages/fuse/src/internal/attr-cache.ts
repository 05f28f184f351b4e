/**
 * A small path → attributes cache (dentry + attr cache) with a TTL, so the kernel's bursts of
 * lookups for one path (lookup, getattr, access, open...) cost one Redis round trip. Every change
 * this mount makes invalidates or updates the entries it affects; changes made by other clients
 * show after at most the TTL, like the kernel's own attr_timeout / entry_timeout.
 */
import type { Attr, Ino } from '@redisfs/store';

interface Entry {
  attr: Attr;
  expires: number;
  /** The attributes are outdated (data was stored), the name → inode link is not. */
  stale?: boolean;
}

/**
 * A copy of some entries kept elsewhere (the binding's C cache, which answers getattr without
 * calling into JS). It is told synchronously about every entry dropped, so it never holds a
 * path this cache no longer vouches for.
 */
export interface AttrMirror {
  forget(path: string): void;
  /** The attributes of `path` are outdated; which inode it names is not (see staleIno). */
  stale(path: string): void;
  clear(): void;
}

/** Default bound on cached paths; the oldest are dropped first. */
export const ATTR_CACHE_MAX_ENTRIES = 10_000;

export class AttrCache {
  private readonly byPath = new Map<string, Entry>();
  private readonly byIno = new Map<Ino, Set<string>>();
  private changes = 0;
  /** How many cached paths lie below each path (so a subtree drop scans only when there are any). */
  private readonly below = new Map<string, number>();
  /** Told about every dropped path (see AttrMirror). */
  mirror: AttrMirror | undefined;

  /**
   * @param ttlMs how long an entry is trusted; 0 disables the cache
   * @param now the clock (injectable for tests)
   */
  constructor(
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    private readonly maxEntries = ATTR_CACHE_MAX_ENTRIES,
  ) {}

  /**
   * Increases on every invalidation. A lookup that started before a change may return stale
   * attributes, so {@link set} is given the epoch read when the lookup started and skips if it moved.
   */
  get epoch(): number {
    return this.changes;
  }

  get size(): number {
    return this.byPath.size;
  }

  /** The fresh attributes of `path`, if cached. */
  get(path: string): Attr | undefined {
    const entry = this.live(path);
    return entry && !entry.stale ? entry.attr : undefined;
  }

  /**
   * The inode `path` names, if cached, even when its attributes are outdated (staleIno): names
   * only change through namespace operations, which drop the entries they touch.
   */
  inoOf(path: string): Ino | undefined {
    return this.live(path)?.attr.ino;
  }

  /**
   * Marks the attributes of every path of `ino` outdated (its data or size changed) but keeps
   * which inode each path names (inoOf).
   */
  staleIno(ino: Ino): void {
    this.changes++;
    for (const path of this.byIno.get(ino) ?? []) {
      const entry = this.byPath.get(path);
      if (!entry || entry.stale) continue;
      this.mirror?.stale(path);
      entry.stale = true;
    }
  }

  /** The unexpired entry of `path`. */
  private live(path: string): Entry | undefined {
    const entry = this.byPath.get(path);
    if (!entry) return undefined;
    if (entry.expires <= this.now()) {
      this.drop(path);
      return undefined;
    }
    return entry;
  }

  /** How long the entry of `path` stays fresh, in ms (0 when not cached). */
  remainingMs(path: string): number {
    const entry = this.byPath.get(path);
    return entry ? Math.max(0, entry.expires - this.now()) : 0;
  }

  /** The cached names in directory `dir` that are not directories, with their entries' expiry (ms). */
  filesIn(dir: string): { path: string; remainingMs: number }[] {
    const prefix = dir === '/' ? '/' : `${dir}/`;
    const now = this.now();
    const found: { path: string; remainingMs: number }[] = [];
    for (const [path, entry] of this.byPath) {
      if (!path.startsWith(prefix) || path.includes('/', prefix.length) || path === prefix) continue;
      if (entry.attr.type !== 'dir' && entry.expires > now) found.push({ path, remainingMs: entry.expires - now });
    }
    return found;
  }

  /** The cached paths of inode `ino`. */
  pathsOf(ino: Ino): readonly string[] {
    return [...(this.byIno.get(ino) ?? [])];
  }

  /** Fresh attributes of inode `ino` under any cached path. */
  getByIno(ino: Ino): Attr | undefined {
    for (const path of this.byIno.get(ino) ?? []) {
      const attr = this.get(path);
      if (attr) return attr;
    }
    return undefined;
  }

  /** Caches `attr` for `path`, unless the cache changed since `epoch` (when given). */
  set(path: string, attr: Attr, epoch?: number): void {
    if (this.ttlMs <= 0 || (epoch !== undefined && epoch !== this.changes)) return;
    this.drop(path);
    this.byPath.set(path, { attr, expires: this.now() + this.ttlMs });
    this.countBelow(path, 1);
    let paths = this.byIno.get(attr.ino);
    if (!paths) this.byIno.set(attr.ino, (paths = new Set()));
    paths.add(path);
    while (this.byPath.size > this.maxEntries) {
      const oldest = this.byPath.keys().next().value;
      if (oldest === undefined) break;
      this.drop(oldest);
    }
  }

  /**
   * Caches `attr`, just read from the store for `path`, and gives it to every other cached path
   * of the same inode (close-to-open: none of them may keep an older size). When the cache
   * changed since `epoch`, `attr` may already be stale: the inode's paths are forgotten instead.
   */
  refresh(path: string, attr: Attr, epoch: number): void {
    if (epoch !== this.changes) {
      this.invalidateIno(attr.ino);
      return;
    }
    this.update(attr);
    this.set(path, attr);
  }

  /** Replaces the attributes of every cached path of `attr.ino` (after a setattr). */
  update(attr: Attr): void {
    this.changes++;
    for (const path of [...(this.byIno.get(attr.ino) ?? [])]) this.set(path, attr);
  }

  /** Forgets every path of inode `ino`. */
  invalidateIno(ino: Ino): void {
    this.changes++;
    for (const path of [...(this.byIno.get(ino) ?? [])]) this.drop(path);
  }

  /** Forgets `path` and every other path of the same inode (its nlink and ctime changed). */
  invalidatePath(path: string): void {
    this.changes++;
    const entry = this.byPath.get(path);
    this.drop(path);
    if (entry) this.invalidateIno(entry.attr.ino);
  }

  /** Forgets `path`, its inode's other paths, and every path below it (rmdir, rename of a directory). */
  invalidateTree(path: string): void {
    this.invalidatePath(path);
    if (path === '/') {
      this.clear();
      return;
    }
    if (!this.below.get(path)) return; // nothing cached below: no scan (renames of files stay O(1))
    const prefix = path + '/';
    for (const p of [...this.byPath.keys()]) if (p.startsWith(prefix)) this.drop(p);
  }

  clear(): void {
    this.changes++;
    this.byPath.clear();
    this.byIno.clear();
    this.below.clear();
    this.mirror?.clear();
  }

  /** Adds `delta` to the count of cached paths below each ancestor of `path`. */
  private countBelow(path: string, delta: number): void {
    for (let i = path.lastIndexOf('/'); i >= 0; i = path.lastIndexOf('/', i - 1)) {
      const ancestor = i === 0 ? '/' : path.slice(0, i);
      const n = (this.below.get(ancestor) ?? 0) + delta;
      if (n > 0) this.below.set(ancestor, n);
      else this.below.delete(ancestor);
      if (i === 0) break;
    }
  }

  private drop(path: string): void {
    const entry = this.byPath.get(path);
    if (!entry) return;
    this.mirror?.forget(path);
    this.byPath.delete(path);
    this.countBelow(path, -1);
    const paths = this.byIno.get(entry.attr.ino);
    paths?.delete(path);
    if (paths && paths.size === 0) this.byIno.delete(entry.attr.ino);
  }
}
