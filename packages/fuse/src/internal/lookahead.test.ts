import { describe, expect, it } from 'vitest';
import { LOOKAHEAD_MAX, Lookahead } from './lookahead.js';

/**
 * A listing of n names as a hash table lists them (a fixed shuffle), their inode numbers in
 * another order again (as files renamed after their creation would have).
 */
function listing(n: number): { name: string; ino: number }[] {
  const shuffle = <T>(xs: T[], step: number): T[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = (i * step) % (i + 1);
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  };
  const inos = shuffle(Array.from({ length: n }, (_, i) => 100 + i), 104_729);
  return shuffle(Array.from({ length: n }, (_, i) => ({ name: `f${String(i).padStart(6, '0')}`, ino: inos[i]! })), 7919);
}

/**
 * Plays a program that looks names up in `order`, with the caches holding what each plan
 * fetched: how many lookups missed, how many names were fetched, the biggest plan.
 */
function play(l: Lookahead, order: readonly string[]): { misses: number; fetched: number; biggest: number } {
  const cached = new Set<string>();
  let misses = 0;
  let fetched = 0;
  let biggest = 0;
  for (const name of order) {
    if (cached.has(name)) continue;
    misses++;
    const names = l.plan('/d', 2, name)?.names ?? [name];
    expect(names[0]).toBe(name);
    for (const n of names) cached.add(n);
    fetched += names.length;
    biggest = Math.max(biggest, names.length);
  }
  return { misses, fetched, biggest };
}

describe('Lookahead', () => {
  const entries = listing(20_000);
  const few = 20_000 / LOOKAHEAD_MAX + 20;

  it.each([
    ['the listing’s order (ls -l)', entries.map((e) => e.name)],
    ['inode order (rm -rf, du: fts sorts big directories by inode)', [...entries].sort((a, b) => a.ino - b.ino).map((e) => e.name)],
    ['name order (a shell glob)', entries.map((e) => e.name).sort()],
  ])('follows lookups in %s: a few misses for thousands of names', (_, order) => {
    const l = new Lookahead();
    l.note('/d', 2, entries);
    const { misses, fetched, biggest } = play(l, order);
    expect(misses).toBeLessThan(few);
    expect(fetched).toBe(20_000);
    expect(biggest).toBe(LOOKAHEAD_MAX);
  });

  it('fetches nothing more for lookups in no order', () => {
    const l = new Lookahead();
    l.note('/d', 2, entries);
    const picks = Array.from({ length: 500 }, (_, i) => entries[(i * 7877) % entries.length]!.name);
    expect(play(l, picks)).toEqual({ misses: 500, fetched: 500, biggest: 1 });
  });

  it('keeps following an order when some names were answered elsewhere (skipped)', () => {
    const l = new Lookahead();
    l.note('/d', 2, entries);
    const names = entries.map((e) => e.name).filter((_, i) => i % 3 !== 1);
    expect(play(l, names).misses).toBeLessThan(few + 20);
  });

  it('plans nothing for an unknown directory, another inode at that path, or a name not listed', () => {
    const l = new Lookahead();
    l.note('/d', 2, entries);
    const [a, b] = [entries[0]!.name, entries[1]!.name];
    expect(l.plan('/d', 2, a)).toBeUndefined(); // a first miss: no order yet
    expect(l.plan('/e', 2, b)).toBeUndefined();
    expect(l.plan('/d', 3, b)).toBeUndefined();
    expect(l.plan('/d', 2, 'new')).toBeUndefined();
    expect(l.plan('/d', 2, b)?.names.slice(0, 2)).toEqual([b, entries[2]!.name]);
    l.drop('/d');
    expect(l.plan('/d', 2, entries[3]!.name)).toBeUndefined();
  });

  it('keeps a bounded number of listings, the newest', () => {
    const l = new Lookahead();
    const first = entries.slice(0, 10);
    const inListing = (dir: string, ino: number) => {
      l.plan(dir, ino, first[0]!.name);
      return l.plan(dir, ino, first[1]!.name) !== undefined;
    };
    for (let i = 0; i < 300; i++) l.note(`/d${i}`, i + 10, first);
    expect(inListing('/d0', 10)).toBe(false);
    expect(inListing('/d299', 309)).toBe(true);
    // One listing past the bound of names in all pushes out the older ones.
    const huge = listing(450_000);
    l.note('/huge', 1, huge);
    expect(inListing('/d299', 309)).toBe(true);
    l.note('/huge2', 1, listing(100_000));
    expect(l.plan('/huge', 1, huge[0]!.name)).toBeUndefined();
    expect(l.plan('/huge', 1, huge[1]!.name)).toBeUndefined();
  });
});
