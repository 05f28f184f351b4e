/**
 * Store.stats: one count per round trip, checked against a real redis-server (a script call is
 * one, whatever it runs inside; the Buffer view and NOSCRIPT retries count too).
 */
import { describe, expect, it } from 'vitest';
import { CommandCounter } from './internal/stats.js';
import { TEST_OWNER as owner, countsOf, storeFixture } from './internal/test-fixture.js';

const t = storeFixture('stats');
const { fresh } = t;

describe('CommandCounter', () => {
  it('counts commands by name and script calls by script name', () => {
    const c = new CommandCounter();
    c.nameScript('lookup', 'abc123', 'return 1');
    c.countArgs(['HGETALL', 'k']);
    c.countArgs(['hgetall', 'k']);
    c.countArgs(['EVALSHA_RO', 'abc123', '1', 'k']);
    c.countArgs(['EVAL_RO', 'return 1', '1', 'k']);
    c.countArgs(['EVALSHA', 'unknown', '0']);
    c.add('MULTI');
    expect(c.snapshot()).toEqual({ HGETALL: 2, 'EVALSHA_RO lookup': 1, 'EVAL_RO lookup': 1, EVALSHA: 1, MULTI: 1 });
  });

  it('snapshots are copies, largest first', () => {
    const c = new CommandCounter();
    c.add('A');
    c.add('B', 3);
    const s = c.snapshot();
    c.add('A');
    expect(Object.keys(s)).toEqual(['B', 'A']);
    expect(s).toEqual({ B: 3, A: 1 });
  });
});

describe('Store.stats', () => {
  it('counts one round trip per script call and per plain command', async () => {
    const s = await fresh();
    const dir = await s.mkdir(s.rootIno, 'd', 0o755, owner);
    await s.mkdir(s.rootIno, 'e', 0o755, owner);
    // Once each first: a script the server has not run yet costs an EVAL after the EVALSHA.
    await s.lookup(s.rootIno, 'd');
    await s.resolve('/d');
    await s.rmdir(s.rootIno, 'e');
    expect(await countsOf(s, () => s.lookup(s.rootIno, 'd'))).toEqual({ 'EVALSHA_RO lookup': 1 });
    expect(await countsOf(s, () => s.resolve('/d'))).toEqual({ 'EVALSHA_RO resolve': 1 });
    expect(await countsOf(s, () => s.getattr(dir.ino))).toEqual({ HGETALL: 1 });
    expect(await countsOf(s, () => s.rmdir(s.rootIno, 'd'))).toEqual({ 'EVALSHA rmdir': 1 });
  });

  it('counts the commands of the Buffer view (data blocks) in the same counts', async () => {
    const s = await fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    await s.write(f.ino, 0, Buffer.from('hello'));
    const counts = await countsOf(s, () => s.read(f.ino, 0, 5));
    expect(counts.GET).toBe(1);
  });

  it('counts the EVAL retry after a SCRIPT FLUSH as a second round trip', async () => {
    const s = await fresh();
    await t.raw.scriptFlush();
    const counts = await countsOf(s, () => s.mkdir(s.rootIno, 'd', 0o755, owner));
    expect(counts).toMatchObject({ 'EVALSHA create': 1, 'EVAL create': 1 });
  });

  it('counts each store on its own', async () => {
    const a = await fresh();
    const b = await fresh();
    const before = b.stats().commands;
    await a.lookup(a.rootIno, '.').catch(() => undefined);
    await a.getattr(a.rootIno);
    expect(b.stats().commands).toEqual(before);
  });
});
