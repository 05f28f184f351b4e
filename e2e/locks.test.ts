/**
 * Locks across hosts: flock(2) and fcntl(2) locks are kept in Redis, so that two `redisfs`
 * processes mounting one prefix (two hosts) exclude each other as processes of one host do.
 * flock(1) serialises a read-modify-write counter; fcntl byte ranges conflict or not by range,
 * F_GETLK names the holder (its pid on its own host, 0 from another), F_SETLKW wakes once the
 * other host unlocks, and is interrupted by a signal (EINTR); a process's exit or close drops
 * its POSIX locks at once, a killed mount's locks go after its lease (--session-timeout); and
 * SQLite, which relies on all of this, keeps one database intact when written from both hosts.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { keysFor } from '@redisfs/schema';
import { expect, it } from 'vitest';
import {
  describeWithRedis,
  exists,
  exited,
  expectFsckClean,
  mountRedisfs,
  own,
  redisCommand,
  requireLockTools,
  run,
  runOk,
  runTogether,
  sessionOf,
  startLocker,
  uniquePrefix,
  waitFor,
  type Locker,
  type StartedMount,
} from './helpers/index.js';

/** The default --cache-timeout, in ms: other mounts' changes show within it. */
const CACHE_TIMEOUT_MS = 1000;
const MARGIN_MS = 1500;
/** --session-timeout of the tests that kill a mount: its lease runs out 2 s after its last renewal. */
const LEASE = ['--session-timeout', '2'];

const tools = requireLockTools();

/** Waits until B's mount shows a file A created. */
async function seenOn(mnt: StartedMount, name: string): Promise<void> {
  await waitFor(() => exists(mnt.path(name)), { timeoutMs: CACHE_TIMEOUT_MS + MARGIN_MS, what: `${mnt.dir} to show ${name}` });
}

/** Waits until a locker is blocked in a call on a file (F_SETLKW, flock): its request reached the mount. */
async function blocked(locker: Locker, what: string): Promise<void> {
  await waitFor(() => locker.blockedOnFile(), { timeoutMs: 10_000, intervalMs: 10, what: `${what} to block in the kernel` });
}

const REFUSED = ['EAGAIN', 'EACCES'];

/** argv: database, host tag, count. One transaction per insert, waiting up to 60 s for the lock. */
const SQLITE_WRITER = `
import json, sqlite3, sys, time
path, host, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = sqlite3.connect(path, timeout=60, isolation_level=None)
db.execute('PRAGMA journal_mode=DELETE')
sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.readline()
t0 = time.time()
for i in range(count):
    db.execute('BEGIN IMMEDIATE')
    db.execute('INSERT INTO t(host, i) VALUES (?, ?)', (host, i))
    db.execute('COMMIT')
db.close()
print(json.dumps({'seconds': time.time() - t0}))
`;

/** argv: database. Prints the rows per host, their distinct i, and integrity_check, as JSON. */
const SQLITE_CHECK = `
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=60)
rows = dict((h, [n, d]) for h, n, d in db.execute('SELECT host, count(*), count(DISTINCT i) FROM t GROUP BY host'))
total = db.execute('SELECT count(*) FROM t').fetchone()[0]
check = [r[0] for r in db.execute('PRAGMA integrity_check')]
print(json.dumps({'total': total, 'rows': rows, 'integrity': check}))
`;

await describeWithRedis('locks across hosts: flock, fcntl byte ranges, SQLite', { fuse: true, skipIf: !tools }, (redis) => {
  it('flock -x from both hosts: a counter incremented 500 times on each ends at exactly 1000', async () => {
    const prefix = uniquePrefix('counter');
    // The default --cache-timeout: `cat counter` opens the file after the lock is granted, and an
    // open sees the last close on any host (close-to-open); the name never changes inode.
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    await writeFile(a.path('counter'), '0\n');
    await writeFile(a.path('counter.lock'), '');
    await seenOn(b, 'counter');
    await seenOn(b, 'counter.lock');
    const EACH = 500;
    const loop = `for i in $(seq 1 ${EACH}); do flock -x counter.lock -c 'n=$(cat counter); echo $((n+1)) > counter' || exit 1; done`;
    const t0 = performance.now();
    const [ra, rb] = await Promise.all([
      run('sh', ['-c', loop], { cwd: a.dir, timeoutMs: 110_000 }),
      run('sh', ['-c', loop], { cwd: b.dir, timeoutMs: 110_000 }),
    ]);
    console.log(`flock counter: ${2 * EACH} increments in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect({ code: ra.code, stderr: ra.stderr }, 'the loop on A').toEqual({ code: 0, stderr: '' });
    expect({ code: rb.code, stderr: rb.stderr }, 'the loop on B').toEqual({ code: 0, stderr: '' });
    expect(await readFile(a.path('counter'), 'utf8')).toBe(`${2 * EACH}\n`);
    expect(await runOk('cat', [b.path('counter')])).toBe(`${2 * EACH}\n`);
    await a.unmount();
    await b.unmount();
    await expectFsckClean(redis, prefix);
  }, 120_000);

  it('fcntl byte ranges: disjoint granted, overlapping refused, F_GETLK names the holder, F_SETLKW wakes at the unlock, exit and close release', async () => {
    const prefix = uniquePrefix('ranges');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    await writeFile(a.path('ranges'), Buffer.alloc(1000));
    await seenOn(b, 'ranges');
    await using la = startLocker(); // on A
    await using la2 = startLocker(); // another process on A
    await using lb = startLocker(); // on B
    const fa = await la.open(a.path('ranges'), 'r+');
    const fa2 = await la2.open(a.path('ranges'), 'r+');
    const fb = await lb.open(b.path('ranges'), 'r+');

    // Disjoint write locks from both hosts: both granted.
    expect(await la.setlk(fa, 'W', 0, 100)).toMatchObject({ ok: true });
    expect(await lb.setlk(fb, 'W', 100, 100)).toMatchObject({ ok: true });
    // Overlapping ones: refused at once, either way.
    expect(REFUSED).toContain((await lb.setlk(fb, 'W', 50, 100)).errno);
    expect(REFUSED).toContain((await la2.setlk(fa2, 'R', 150, 10)).errno);
    // Read locks share across hosts, and keep writers out.
    expect(await la2.setlk(fa2, 'R', 300, 100)).toMatchObject({ ok: true });
    expect(await lb.setlk(fb, 'R', 350, 100)).toMatchObject({ ok: true });
    expect(REFUSED).toContain((await la.setlk(fa, 'W', 390, 1)).errno);
    expect(await la2.setlk(fa2, 'U', 300, 100)).toMatchObject({ ok: true });
    expect(await lb.setlk(fb, 'U', 350, 100)).toMatchObject({ ok: true });
    expect(await la.setlk(fa, 'W', 390, 1)).toMatchObject({ ok: true });
    expect(await la.setlk(fa, 'U', 390, 1)).toMatchObject({ ok: true });

    // F_GETLK: type and range; pid 0 for a holder on another host, the holder's pid on this one.
    expect(await lb.getlk(fb, 'W', 0, 1000)).toEqual({ type: 'W', start: 0, len: 100, pid: 0 });
    expect(await la2.getlk(fa2, 'R', 0, 100)).toEqual({ type: 'W', start: 0, len: 100, pid: la.pid });
    expect(await la2.getlk(fa2, 'R', 100, 100)).toEqual({ type: 'W', start: 100, len: 100, pid: 0 });
    expect((await la2.getlk(fa2, 'W', 500, 0)).type).toBe('U');

    // F_SETLKW from B over A's range waits, and is granted once A unlocks.
    let settled = false;
    const waiting = lb.setlk(fb, 'W', 50, 100, { wait: true, timeoutMs: 30_000 }).finally(() => (settled = true));
    await blocked(lb, 'B’s F_SETLKW');
    expect(await la2.getlk(fa2, 'R', 0, 10)).toEqual({ type: 'W', start: 0, len: 100, pid: la.pid });
    expect(settled, 'F_SETLKW granted while A still held the range').toBe(false);
    const unlock = await la.setlk(fa, 'U', 0, 100);
    expect(unlock.ok).toBe(true);
    const granted = await waiting;
    expect(granted, lb.stderr()).toMatchObject({ ok: true });
    expect(granted.t1).toBeGreaterThanOrEqual(unlock.t0);
    console.log(`F_SETLKW on B granted ${(granted.t1 - unlock.t1).toFixed(1)} ms after A's unlock returned`);
    // B's two write locks coalesced into [50, 200).
    expect(await la2.getlk(fa2, 'R', 0, 0)).toEqual({ type: 'W', start: 50, len: 150, pid: 0 });

    // A process's exit drops its POSIX locks: the next F_SETLK is granted at once, no waiting.
    expect((await lb.exit()).code).toBe(0);
    expect(await la2.setlk(fa2, 'W', 0, 0)).toMatchObject({ ok: true });
    await using lb2 = startLocker();
    const fb2 = await lb2.open(b.path('ranges'), 'r+');
    expect(await lb2.getlk(fb2, 'R', 0, 0)).toEqual({ type: 'W', start: 0, len: 0, pid: 0 });
    expect(REFUSED).toContain((await lb2.setlk(fb2, 'R', 999, 1)).errno);
    // So does any close of the file by the holder (POSIX: all of the process's locks on it).
    const other = await la2.open(a.path('ranges'), 'r');
    await la2.close(other);
    expect(await lb2.setlk(fb2, 'W', 0, 0)).toMatchObject({ ok: true });
    expect(await la.getlk(fa, 'R', 0, 0)).toEqual({ type: 'W', start: 0, len: 0, pid: 0 });
  });

  it('a mount killed -9 loses its fcntl and flock locks after its lease: the waiters on the other host are granted', async () => {
    const prefix = uniquePrefix('killed-locks');
    await using a = await mountRedisfs({ redis, prefix, extraArgs: LEASE });
    await using b = await mountRedisfs({ redis, prefix, extraArgs: LEASE });
    await writeFile(a.path('posix'), 'p\n');
    await writeFile(a.path('flocked'), 'f\n');
    await seenOn(b, 'posix');
    await seenOn(b, 'flocked');
    const sidB = await sessionOf(redis, b);

    await using holder = startLocker(); // on A
    const hp = await holder.open(a.path('posix'), 'r+');
    const hf = await holder.open(a.path('flocked'), 'r');
    expect(await holder.setlk(hp, 'W', 0, 0)).toMatchObject({ ok: true });
    expect(await holder.flock(hf, 'ex')).toMatchObject({ ok: true });

    await using wp = startLocker(); // on B, waits for the POSIX lock
    await using wf = startLocker(); // on B, waits for the flock
    const fp = await wp.open(b.path('posix'), 'r+');
    const ff = await wf.open(b.path('flocked'), 'r');
    expect(REFUSED).toContain((await wp.setlk(fp, 'W', 0, 0)).errno);
    expect((await wf.flock(ff, 'ex', { nb: true })).errno).toBe('EAGAIN'); // EWOULDBLOCK
    const posixGranted = wp.setlk(fp, 'W', 0, 0, { wait: true, timeoutMs: 30_000 });
    const flockGranted = wf.flock(ff, 'ex', { timeoutMs: 30_000 });
    await blocked(wp, 'the F_SETLKW on B');
    await blocked(wf, 'the flock on B');

    a.process.kill('SIGKILL');
    await exited(a.process);
    const killedAt = Date.now();
    await holder.kill();
    await a.unmount(); // detaches the dead mountpoint

    const [p, f] = await Promise.all([posixGranted, flockGranted]);
    expect(p, wp.stderr()).toMatchObject({ ok: true });
    expect(f, wf.stderr()).toMatchObject({ ok: true });
    console.log(`after the kill of A's mount: F_SETLKW granted in ${(p.t1 - killedAt).toFixed(0)} ms, flock in ${(f.t1 - killedAt).toFixed(0)} ms (lease 2 s)`);

    // In Redis, the only locks left on both files are B's.
    const k = keysFor(prefix);
    const [{ ino: posixIno }, { ino: flockIno }] = [await wp.fstat(fp), await wf.fstat(ff)];
    const holders = async (key: string) => ((await redisCommand(redis, ['HKEYS', key])) as string[]).map((field) => field.split(':')[0]);
    expect(await holders(k.posixLocks(posixIno))).toEqual([sidB]);
    expect(await holders(k.flocks(flockIno))).toEqual([sidB]);
    expect((await wp.exit()).code).toBe(0);
    expect((await wf.exit()).code).toBe(0);
    await b.unmount();
    await expectFsckClean(redis, prefix);
  }, 60_000);

  it('F_SETLKW interrupted by a signal returns EINTR, and the mount works on', async () => {
    const prefix = uniquePrefix('eintr');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    await writeFile(a.path('f'), 'locked\n');
    await seenOn(b, 'f');
    await using la = startLocker();
    await using lb = startLocker();
    const fa = await la.open(a.path('f'), 'r+');
    const fb = await lb.open(b.path('f'), 'r+');
    expect(await la.setlk(fa, 'W', 0, 0)).toMatchObject({ ok: true });

    const interrupted = await lb.setlkwAlarm(fb, 'W', 0, 0, 1);
    console.log(`F_SETLKW with SIGALRM after 1 s: ${interrupted.errno ?? 'granted'} after ${(interrupted.t1 - interrupted.t0).toFixed(0)} ms`);
    expect(interrupted).toMatchObject({ ok: false, errno: 'EINTR' });
    // Nothing of the interrupted request stayed behind: A still holds the file, B is refused.
    expect(REFUSED).toContain((await lb.setlk(fb, 'W', 0, 0)).errno);
    expect(await lb.getlk(fb, 'W', 0, 0)).toEqual({ type: 'W', start: 0, len: 0, pid: 0 });
    // The mount works on: reads, writes, names.
    expect(await lb.readAll(fb)).toMatchObject({ size: 7 });
    await writeFile(b.path('after'), 'written on B\n');
    await seenOn(a, 'after');
    expect(await readFile(a.path('after'), 'utf8')).toBe('written on B\n');
    // A new F_SETLKW waits and is granted at A's unlock; then A is the one refused.
    const waiting = lb.setlk(fb, 'W', 0, 0, { wait: true, timeoutMs: 30_000 });
    await blocked(lb, 'the second F_SETLKW');
    expect(await la.setlk(fa, 'U', 0, 0)).toMatchObject({ ok: true });
    expect(await waiting).toMatchObject({ ok: true });
    expect(REFUSED).toContain((await la.setlk(fa, 'W', 0, 0)).errno);
    expect((await lb.exit()).code).toBe(0);
    expect(await la.setlk(fa, 'W', 0, 0)).toMatchObject({ ok: true });
  });

  it('SQLite from both hosts: 1,000 inserts each, one transaction each, end with 2,000 rows and integrity_check ok on both', async () => {
    const prefix = uniquePrefix('sqlite');
    // The default --cache-timeout: SQLite checks for `db-journal` (a hot journal to roll back)
    // and creates it with O_CREAT right after the other host removed it, while this host may
    // still cache the name; the mount answers ESTALE for it and the kernel looks it up again
    // (sessions.test.ts checks that on its own).
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    const EACH = 1000;
    await runOk('python3', [
      '-c',
      `import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute('PRAGMA journal_mode=DELETE')
db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, host TEXT NOT NULL, i INTEGER NOT NULL, UNIQUE(host, i))')
db.commit(); db.close()`,
      a.path('db'),
    ]);
    await seenOn(b, 'db');

    const t0 = performance.now();
    const [ra, rb] = await runTogether([
      { command: 'python3', args: ['-u', '-c', SQLITE_WRITER, a.path('db'), 'a', String(EACH)] },
      { command: 'python3', args: ['-u', '-c', SQLITE_WRITER, b.path('db'), 'b', String(EACH)] },
    ]);
    console.log(`SQLite: ${2 * EACH} transactions from two hosts in ${((performance.now() - t0) / 1000).toFixed(1)} s; A ${ra.stdout.trim()}, B ${rb.stdout.trim()}`);
    expect(ra.code, `the writer on A:\n${ra.stderr}`).toBe(0);
    expect(rb.code, `the writer on B:\n${rb.stderr}`).toBe(0);

    for (const m of [a, b]) {
      const check = JSON.parse(await runOk('python3', ['-c', SQLITE_CHECK, m.path('db')])) as { total: number; rows: Record<string, number[]>; integrity: string[] };
      expect(check, `checked on ${m === a ? 'A' : 'B'}`).toEqual({ total: 2 * EACH, rows: { a: [EACH, EACH], b: [EACH, EACH] }, integrity: ['ok'] });
    }
    expect(await exists(a.path('db-journal'))).toBe(false);
    await a.unmount();
    await b.unmount();
    await expectFsckClean(redis, prefix);
  }, 120_000);
});
