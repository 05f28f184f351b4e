/**
 * Lookups ahead of the kernel in a listed directory.
 *
 * After a program lists a directory, it usually looks its entries up one by one: `ls -l` and
 * `find -size` in the listing's order, and tools built on fts (`rm -rf`, `du`, `chmod -R`) in
 * inode-number order once a directory has more than 10,000 entries (gnulib sorts them so). Each
 * lookup the caches cannot answer costs a call into JS and a Redis round trip. This planner keeps
 * the last listings (names and inode numbers) and, at a lookup that misses, says which names to
 * look up together with it: the next ones in whichever of the two orders the lookups follow.
 * Lookups in no order (a random `stat`) fetch a few neighbours only.
 *
 * The names are looked up again in Redis (Store.lookupMany, one script) at that moment, so what
 * is cached is as fresh as a lookup of each, whatever happened since the listing; the listing
 * only predicts which names come next.
 */
import type { Ino } from '@redisfs/store';

/** Names of each order a lookup that follows no known order fetches besides its own. */
const PROBE = 2;
/** The most names one plan fetches (one script: about 5 µs of Redis time per name). */
export const LOOKAHEAD_MAX = 128;
/** Listings kept, and their names in all (about 150 bytes each). */
const MAX_LISTINGS = 16;
const MAX_NAMES = 500_000;

interface Listing {
  readonly dirIno: Ino;
  readonly names: readonly string[];
  readonly inos: readonly Ino[];
  readonly index: Map<string, number>;
  /** Listing positions in inode-number order, and each position's place in it (made when first needed). */
  byRank?: Int32Array;
  rank?: Int32Array;
  /** Where the next lookup lands if the lookups follow the listing's order, or inode order (-1: no guess). */
  nextAt: number;
  nextRank: number;
  /** How many names the last plan fetched in the order it followed. */
  run: number;
}

/** What to look up for a miss: names of directory `dirIno`, the missed name first. */
export interface LookaheadPlan {
  dirIno: Ino;
  names: string[];
}

export class Lookahead {
  private readonly listings = new Map<string, Listing>();
  private total = 0;

  /** Remembers the listing of `dirPath` (inode `dirIno`): its entries in the order given. */
  note(dirPath: string, dirIno: Ino, entries: readonly { name: string; ino: Ino }[]): void {
    this.drop(dirPath);
    if (entries.length < 2 || entries.length > MAX_NAMES) return;
    while (this.listings.size >= MAX_LISTINGS || (this.total + entries.length > MAX_NAMES && this.listings.size > 0)) {
      this.drop(this.listings.keys().next().value as string);
    }
    const index = new Map<string, number>();
    entries.forEach((e, i) => index.set(e.name, i));
    this.listings.set(dirPath, {
      dirIno,
      names: entries.map((e) => e.name),
      inos: entries.map((e) => e.ino),
      index,
      nextAt: -1,
      nextRank: -1,
      run: PROBE,
    });
    this.total += entries.length;
  }

  /** Forgets the listing of `dirPath` (if any). */
  drop(dirPath: string): void {
    const listing = this.listings.get(dirPath);
    if (!listing) return;
    this.listings.delete(dirPath);
    this.total -= listing.names.length;
  }

  /**
   * The names to look up with `name`, which the caches missed in the directory at `dirPath`
   * (listed as inode `dirIno`): undefined when that listing is not known or lacks the name.
   */
  plan(dirPath: string, dirIno: Ino, name: string): LookaheadPlan | undefined {
    const l = this.listings.get(dirPath);
    if (!l || l.dirIno !== dirIno) return undefined;
    const at = l.index.get(name);
    if (at === undefined) return undefined;
    const { byRank, rank } = ranksOf(l);
    const r = rank[at]!;
    const grown = Math.min(l.run * 2, LOOKAHEAD_MAX);
    // A lookup within the stretch after the last plan's names follows that plan's order (names
    // another program or the kernel's own caches answered may have been skipped).
    if (l.nextAt >= 0 && at >= l.nextAt && at < l.nextAt + l.run) {
      l.run = grown;
      l.nextAt = at + l.run;
      l.nextRank = -1;
      return { dirIno, names: l.names.slice(at, at + l.run) };
    }
    if (l.nextRank >= 0 && r >= l.nextRank && r < l.nextRank + l.run) {
      l.run = grown;
      l.nextRank = r + l.run;
      l.nextAt = -1;
      return { dirIno, names: Array.from(byRank.subarray(r, r + l.run), (i) => l.names[i]!) };
    }
    // No order known: the name and a few next ones in each order, to learn which it is.
    const picked = new Set<number>([at]);
    for (let i = 1; i <= PROBE && at + i < l.names.length; i++) picked.add(at + i);
    for (let i = 1; i <= PROBE && r + i < byRank.length; i++) picked.add(byRank[r + i]!);
    l.run = PROBE;
    l.nextAt = at + 1 + PROBE;
    l.nextRank = r + 1 + PROBE;
    return { dirIno, names: [...picked].map((i) => l.names[i]!) };
  }
}

function ranksOf(l: Listing): { byRank: Int32Array; rank: Int32Array } {
  if (!l.byRank || !l.rank) {
    const byRank = Int32Array.from(l.names.keys());
    byRank.sort((a, b) => l.inos[a]! - l.inos[b]!);
    const rank = new Int32Array(byRank.length);
    byRank.forEach((at, r) => (rank[at] = r));
    l.byRank = byRank;
    l.rank = rank;
  }
  return { byRank: l.byRank, rank: l.rank };
}
