/**
 * Lookups ahead of the kernel in a listed directory.
 *
 * After a program lists a directory, it often looks its entries up one by one, in one of three
 * orders: the listing's (`ls -l`, `find -size`), inode numbers' (tools built on fts: `rm -rf`,
 * `du`, `chmod -R` sort a directory of more than 10,000 entries so), or names' (a shell glob,
 * `sorted(os.listdir())`). Each lookup the caches cannot answer costs a call into JS and a Redis
 * round trip. This planner keeps the last listings (names and inode numbers); when two lookups
 * that missed are neighbours in one of those orders, it says which names to look up with the
 * second: the next ones in that order, twice as many at each miss that keeps to it, up to
 * LOOKAHEAD_MAX. A lookup in no order costs nothing more than before.
 *
 * The names are looked up again in Redis (Store.lookupMany, one script) at that moment, so what
 * is cached is as fresh as a lookup of each, whatever happened since the listing; the listing
 * only predicts which names come next.
 */
import type { Ino } from '@redisfs/store';

/** The most names one plan fetches (one script: a few µs of Redis time per name). */
export const LOOKAHEAD_MAX = 128;
/** Names the first plan of a run fetches. */
const FIRST_RUN = 4;
/** Two misses are neighbours when the second comes at most this far after the first in an order. */
const NEAR = 3;
/** Listings kept, and their names in all (about 150 bytes each). */
const MAX_LISTINGS = 256;
const MAX_NAMES = 500_000;

/** An order of a listing's entries: listing positions by place, and each position's place. */
interface Order {
  byPlace: Int32Array;
  place: Int32Array;
}

interface Listing {
  readonly dirIno: Ino;
  readonly names: readonly string[];
  readonly inos: readonly Ino[];
  readonly index: Map<string, number>;
  /** The listing's own order, inode order and name order (made when first needed). */
  orders?: Order[];
  /** The places of the last miss, in each order. */
  last?: number[];
  /** The run being followed: its order, where its next miss should land, its size. */
  run?: { order: number; next: number; size: number };
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
    this.listings.set(dirPath, { dirIno, names: entries.map((e) => e.name), inos: entries.map((e) => e.ino), index });
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
   * (listed as inode `dirIno`): undefined when no listing predicts anything (look up `name` alone).
   */
  plan(dirPath: string, dirIno: Ino, name: string): LookaheadPlan | undefined {
    const l = this.listings.get(dirPath);
    if (!l || l.dirIno !== dirIno) return undefined;
    const at = l.index.get(name);
    if (at === undefined) return undefined;
    const orders = ordersOf(l);
    const places = orders.map((o) => o.place[at]!);
    const run = l.run;
    const last = l.last;
    l.last = places;
    // A miss within the stretch after the run's last names keeps to its order (names another
    // program or the kernel's own caches answered may have been skipped).
    if (run && places[run.order]! >= run.next && places[run.order]! < run.next + run.size) {
      run.size = Math.min(run.size * 2, LOOKAHEAD_MAX);
      return this.fetch(l, orders[run.order]!, places[run.order]!, run);
    }
    l.run = undefined;
    const order = last ? places.findIndex((p, k) => p > last[k]! && p - last[k]! <= NEAR) : -1;
    if (order < 0) return undefined;
    const started = { order, next: 0, size: FIRST_RUN };
    l.run = started;
    return this.fetch(l, orders[order]!, places[order]!, started);
  }

  /** The run's next names from place `from` of `order`, the missed name first. */
  private fetch(l: Listing, order: Order, from: number, run: { next: number; size: number }): LookaheadPlan {
    const positions = order.byPlace.subarray(from, from + run.size);
    run.next = from + positions.length;
    return { dirIno: l.dirIno, names: Array.from(positions, (i) => l.names[i]!) };
  }
}

/** A listing's three orders: its own, by inode number, by name (bytes: the names are latin1 byte strings). */
function ordersOf(l: Listing): Order[] {
  if (!l.orders) {
    const n = l.names.length;
    const sorted = (compare: (a: number, b: number) => number): Order => {
      const byPlace = Int32Array.from({ length: n }, (_, i) => i).sort(compare);
      const place = new Int32Array(n);
      byPlace.forEach((at, p) => (place[at] = p));
      return { byPlace, place };
    };
    const own = Int32Array.from({ length: n }, (_, i) => i);
    l.orders = [
      { byPlace: own, place: own },
      sorted((a, b) => l.inos[a]! - l.inos[b]!),
      sorted((a, b) => (l.names[a]! < l.names[b]! ? -1 : l.names[a]! > l.names[b]! ? 1 : 0)),
    ];
  }
  return l.orders;
}
