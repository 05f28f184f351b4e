import { describe, expect, it } from 'vitest';
import { LOOKAHEAD_MAX, Lookahead } from './lookahead.js';

/** A listing of n names in hash order (not sorted), their inode numbers in creation order. */
function listing(n: number): { name: string; ino: number }[] {
  const entries = Array.from({ length: n }, (_, i) => ({ name: `f${String(i).padStart(6, '0')}`, ino: 100 + i }));
  // A fixed shuffle, as a hash table lists them.
  for (let i = n - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1);
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }
  return entries;
}

/**
 * Plays a program that looks names up in `order`, with the caches holding what each plan
 * fetched: the names it misses, each with the plan it got.
 */
function play(l: Lookahead, order: readonly string[]): { misses: number; fetched: number; biggest: number } {
  const cached = new Set<string>();
  let misses = 0;
  let fetched = 0;
  let biggest = 0;
  for (const name of order) {
    if (cached.has(name)) continue;
    misses++;
    const plan = l.plan('/d', 2, name);
    expect(plan?.names[0]).toBe(name);
    for (const n of plan!.names) cached.add(n);
    fetched += plan!.names.length;
    biggest = Math.max(biggest, plan!.names.length);
  }
  return { misses, fetched, biggest };
}

describe('Lookahead', () => {
  const entries = listing(20_000);

  it('follows lookups in the listing order (ls -l): a few misses for thousands of names', () => {
    const l = new Lookahead();
    l.note('/d', 2, entries);
    const { misses, fetched, biggest } = play(l, entries.map((e) => e.name));
    expect(misses).toBeLessThan(20_000 / LOOKAHEAD_MAX + 20);
    expect(fetched).toBeLessThan(20_000 + 20 * 4);
    expect(biggest).toBe(LOOKAHEAD_MAX);
  });

  it('follows lookups in inode-number order (rm -rf, du: fts sorts big directories by inode)', () => {
    const l = new Lookahead();
    l.note('/d', 2, entries);
    const byIno = [...entries].sort((a, b) => a.ino - b.ino).map((e) => e.name);
    const { misses, biggest } = play(l, byIno);
    expect(misses).toBeLessThan(20_000 / LOOKAHEAD_MAX + 20);
    expect(biggest).toBe(LOOKAHEAD_MAX);
  });

  it('fetches only a few neighbours for lookups in no order', () => {
    const l = new Lookahead();
    l.note('/d', 2, entries);
    const picks = Array.from({ length: 500 }, (_, i) => entries[(i * 7877) % entries.length]!.name);
    const { misses, biggest } = play(l, picks);
    expect(misses).toBeGreaterThan(450);
    expect(biggest).toBeLessThanOrEqual(5);
  });

  it('keeps following an order when some names were answered elsewhere (skipped)', () => {
    const l = new Lookahead();
    l.note('/d', 2, entries);
    const names = entries.map((e) => e.name).filter((_, i) => i % 3 !== 1);
    expect(play(l, names).misses).toBeLessThan(20_000 / LOOKAHEAD_MAX + 40);
  });

  it('plans nothing for an unknown directory, another inode at that path, or a name not listed', () => {
    const l = new Lookahead();
    l.note('/d', 2, entries);
    expect(l.plan('/e', 2, entries[0]!.name)).toBeUndefined();
    expect(l.plan('/d', 3, entries[0]!.name)).toBeUndefined();
    expect(l.plan('/d', 2, 'new')).toBeUndefined();
    l.drop('/d');
    expect(l.plan('/d', 2, entries[0]!.name)).toBeUndefined();
  });

  it('keeps a bounded number of listings, the newest', () => {
    const l = new Lookahead();
    for (let i = 0; i < 40; i++) l.note(`/d${i}`, i + 10, entries.slice(0, 10));
    expect(l.plan('/d0', 10, entries[0]!.name)).toBeUndefined();
    expect(l.plan('/d39', 49, entries[0]!.name)?.names[0]).toBe(entries[0]!.name);
    // One listing past the bound of names in all pushes out the older ones.
    l.note('/huge', 1, listing(450_000));
    expect(l.plan('/d39', 49, entries[0]!.name)).toBeDefined();
    l.note('/huge2', 1, listing(100_000));
    expect(l.plan('/huge', 1, 'f000001')).toBeUndefined();
    expect(l.plan('/huge2', 1, 'f000001')).toBeDefined();
  });
});
