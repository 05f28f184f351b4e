/**
 * Sessions across hosts: two `redisfs` processes mount one prefix, as two hosts would. A file
 * removed (on any host) while a process holds it open keeps working for that process, and is
 * freed at its last close: its keys leave Redis and `df` gives the space back. A mount killed
 * -9 loses what it held once its lease (--session-timeout) has run out: another mount frees
 * it, or, with no mount left, `redisfs fsck --repair` does. No `.fuse_hidden*` file ever shows
 * (the mounts use hard_remove). And open(O_CREAT) without O_EXCL of a name that the other host
 * has just created opens that file, where O_EXCL still lets exactly one host create it.
 */
import { randomBytes } from 'node:crypto';
import { readFile, readdir, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import { keysFor } from '@redisfs/schema';
import { expect, it } from 'vitest';
import {
  describeWithRedis,
  exists,
  exited,
  expectFsckClean,
  mountRedisfs,
  redisCommand,
  requireLockTools,
  run,
  prefixKeys,
  runFsck,
  sessionOf,
  sha256,
  startLocker,
  uniquePrefix,
  waitFor,
  type RedisAddress,
  type RunResult,
  type StartedMount,
  inodeStored,
  storedInodeEntries,
} from './helpers/index.js';

const MiB = 1024 * 1024;
/** The default --cache-timeout, in ms: other mounts' changes show within it. */
const CACHE_TIMEOUT_MS = 1000;
/** Slack on top of the cache timeout for a probe's own round trips on a busy machine. */
const MARGIN_MS = 1500;
/** --session-timeout of the tests that kill a mount: its lease runs out 2 s after its last renewal. */
const LEASE = ['--session-timeout', '2'];
/** How long another mount (or fsck) may take to free what an expired session held: lease, then its own sweep. */
const EXPIRY_DEADLINE_MS = 20_000;

const tools = requireLockTools();

/**
 * The keys of the prefix apart from the counters that only grow (inode and block numbers are
 * never reused), then the inodes its bucket keys hold (inodes share keys: a key list alone would
 * not show one left behind).
 */
async function contentKeys(redis: RedisAddress, prefix: string): Promise<string[]> {
  const k = keysFor(prefix);
  const keys = (await prefixKeys(redis, prefix)).filter((key) => key !== k.inoCounter && key !== k.blockCounter);
  return [...keys, ...(await storedInodeEntries(redis, prefix, keys))];
}

/** How contentKeys and inodeTraces name inode `ino`'s record: its bucket key and field. */
function inodeEntry(prefix: string, ino: number): string {
  return `${keysFor(prefix).inodes(ino)} ∋ ${ino}`;
}

/** What differs between two key lists, for a failure message. */
function keyDiff(want: string[], got: string[]): string {
  const extra = got.filter((key) => !want.includes(key));
  const lost = want.filter((key) => !got.includes(key));
  return `extra: ${extra.slice(0, 30).join(' ') || 'none'} (${extra.length}); missing: ${lost.slice(0, 30).join(' ') || 'none'}`;
}

/** Used bytes of a mount, as `df` shows them. */
async function dfUsed(mnt: StartedMount): Promise<number> {
  const out = await run('df', ['-B1', '--output=used', mnt.dir]);
  if (out.code !== 0) throw new Error(`df ${mnt.dir} exited ${out.code}: ${out.stderr}`);
  return Number(out.stdout.trim().split('\n')[1]);
}

/** What is left of inode `ino`: its record, the keys of its block map, openers and locks, and whether it is in the orphan set. */
async function inodeTraces(redis: RedisAddress, prefix: string, ino: number): Promise<string[]> {
  const k = keysFor(prefix);
  const traces: string[] = [];
  if (await inodeStored(redis, prefix, ino)) traces.push(inodeEntry(prefix, ino));
  for (const key of [k.map(ino), k.openBy(ino), k.flocks(ino), k.posixLocks(ino), k.xattr(ino)]) {
    if (Number(await redisCommand(redis, ['EXISTS', key])) === 1) traces.push(key);
  }
  if (Number(await redisCommand(redis, ['SISMEMBER', k.orphans, ino])) === 1) traces.push(`${k.orphans} ∋ ${ino}`);
  return traces;
}

/** Lists the mounts' top directories every 20 ms until stopped, and collects any `.fuse_hidden*` name seen. */
function watchForHiddenFiles(mounts: StartedMount[]): { stop(): Promise<string[]> } {
  const seen = new Set<string>();
  let stopped = false;
  const look = async () => {
    for (const m of mounts) {
      for (const name of await readdir(m.dir).catch(() => [] as string[])) if (name.startsWith('.fuse_hidden')) seen.add(m.path(name));
    }
  };
  // Sampled every 20 ms until the test stops the watch (the deadline only bounds a forgotten one).
  const loop = waitFor(
    async () => {
      await look();
      return stopped;
    },
    { timeoutMs: 10 * 60_000, intervalMs: 20, what: 'the test to stop watching for hidden files' },
  );
  return {
    async stop() {
      stopped = true;
      await loop;
      return [...seen];
    },
  };
}

/** Time between two opens of one host in OPEN_SCRIPT: longer than one create takes. */
const SLOT_MS = 5;

/**
 * For i < count and each flag of argv[3] (comma-separated: fs flags `a`, `w`, `wx`…, or `flock`),
 * opens `<dir>/<flag>-<i>` and closes it (`flock`: runs `flock -x <dir>/flock-<i> true`, which
 * opens its lock file with O_CREAT). The k-th open starts at argv[4] + k × argv[5] ms (a busy
 * wait): two hosts given the same start reach each name within a ms of each other, so that
 * both kernels find it absent and both send a create. Prints `{ won, errors }` as JSON.
 */
const OPEN_SCRIPT = `
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');
const [dir, countArg, flagsArg, startArg, slotArg] = process.argv.slice(1);
const out = { won: {}, errors: {}, messages: [] };
let k = 0;
for (let i = 0; i < Number(countArg); i++) {
  for (const flag of flagsArg.split(',')) {
    const at = Number(startArg) + k++ * Number(slotArg);
    while (Date.now() < at);
    const path = dir + '/' + flag + '-' + i;
    try {
      if (flag === 'flock') {
        const r = spawnSync('flock', ['-x', path, 'true'], { encoding: 'utf8' });
        if (r.status !== 0) throw Object.assign(new Error(r.stderr.trim()), { code: 'flock exit ' + r.status });
      } else {
        fs.closeSync(fs.openSync(path, flag));
      }
      (out.won[flag] ??= []).push(i);
    } catch (err) {
      out.errors[err.code] = (out.errors[err.code] || 0) + 1;
      if (out.messages.length < 5) out.messages.push(path + ': ' + err.message);
    }
  }
}
console.log(JSON.stringify(out));
`;

/** Runs OPEN_SCRIPT on both mounts, both starting in 1.5 s (by this host's clock). */
async function openFromBoth(dirs: [string, string], count: number, flags: string): Promise<[RunResult, RunResult]> {
  const startAt = String(Date.now() + 1500);
  const one = (dir: string) => run(process.execPath, ['-e', OPEN_SCRIPT, dir, String(count), flags, startAt, String(SLOT_MS)], { timeoutMs: 60_000 });
  const [ra, rb] = await Promise.all(dirs.map(one));
  return [ra!, rb!];
}

interface OpenCounts {
  won: Record<string, number[]>;
  errors: Record<string, number>;
  messages: string[];
}

function countsOf(result: RunResult, who: string): OpenCounts {
  expect(result.code, `${who} exited ${result.code}:\n${result.stderr}`).toBe(0);
  return JSON.parse(result.stdout) as OpenCounts;
}

await describeWithRedis('sessions: files open on one host, removed on another; mounts that die', { fuse: true, skipIf: !tools }, (redis) => {
  it('a file B removes while A holds it open stays readable and writable on A, and is freed at its last close', async () => {
    const prefix = uniquePrefix('held');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    const hidden = watchForHiddenFiles([a, b]);
    const baseline = await contentKeys(redis, prefix);
    const usedBefore = await dfUsed(a);

    const data = randomBytes(8 * MiB);
    await writeFile(a.path('big'), data);
    await waitFor(async () => (await dfUsed(b)) >= usedBefore + data.length, { timeoutMs: 10_000, what: 'df on B to count the 8 MiB file' });
    await using holder = startLocker();
    const fd = await holder.open(a.path('big'), 'r+');
    const { ino } = await holder.fstat(fd);
    await waitFor(() => exists(b.path('big')), { timeoutMs: CACHE_TIMEOUT_MS + MARGIN_MS, what: 'B to see the file' });

    await unlink(b.path('big'));
    expect((await run('ls', ['-a', b.dir])).stdout.split('\n')).not.toContain('big');
    await waitFor(async () => !(await exists(a.path('big'))) && !(await readdir(a.dir)).includes('big'), {
      timeoutMs: CACHE_TIMEOUT_MS + MARGIN_MS,
      what: 'A to stop showing the removed file',
    });

    // The holder reads it to the end, writes more (over its start and past its end), reads it back.
    expect(await holder.readAll(fd)).toEqual({ size: data.length, sha256: sha256(data) });
    const head = randomBytes(100_000);
    const tail = randomBytes(MiB + 1234);
    await holder.pwrite(fd, 0, head);
    await holder.pwrite(fd, data.length, tail);
    await holder.fsync(fd);
    const want = Buffer.concat([head, data.subarray(head.length), tail]);
    expect(await holder.readAll(fd)).toEqual({ size: want.length, sha256: sha256(want) });
    // Still held: its inode is still in Redis (the check below that it goes can fail).
    expect(await inodeTraces(redis, prefix, ino)).toContain(inodeEntry(prefix, ino));

    await holder.close(fd);
    expect((await holder.exit()).code).toBe(0);
    const t0 = performance.now();
    // Freed: the prefix holds the keys it held before the file existed, and df gives the space back.
    await waitFor(
      async () => {
        const now = await contentKeys(redis, prefix);
        if (now.join() !== baseline.join()) throw new Error(keyDiff(baseline, now));
        return true;
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'the prefix’s keys to be back to what they were before the file' },
    );
    console.log(`held file freed (keys back) ${(performance.now() - t0).toFixed(0)} ms after its last close`);
    // df's "used" is what Redis holds (INFO used_memory, the whole server's): back within 1 MiB
    // of before, where the held file took more than 9 MiB of it.
    for (const m of [a, b]) {
      await waitFor(async () => (await dfUsed(m)) < usedBefore + MiB, {
        timeoutMs: 10_000,
        what: `df on ${m === a ? 'A' : 'B'} to show the space back (used before the file: ${usedBefore})`,
      });
    }
    expect(await hidden.stop()).toEqual([]);

    await a.unmount();
    await b.unmount();
    await expectFsckClean(redis, prefix);
    // Unmounted cleanly: no session, open count, lock or orphan of either mount is left.
    const k = keysFor(prefix);
    const sessionKeys = (await prefixKeys(redis, prefix)).filter((key) =>
      [k.sessions, k.orphans].includes(key) || /:(s|so|sl|o|lf|lp):[^:]+$/.test(key),
    );
    expect(sessionKeys).toEqual([]);
  });

  it('a mount killed -9 while it holds a removed file: another mount frees the file once the lease has run out', async () => {
    const prefix = uniquePrefix('killed-held');
    await using a = await mountRedisfs({ redis, prefix, extraArgs: LEASE });
    await using b = await mountRedisfs({ redis, prefix, extraArgs: LEASE });
    const hidden = watchForHiddenFiles([a, b]);
    const sidA = await sessionOf(redis, a);
    const baseline = await contentKeys(redis, prefix);

    // A process on A creates a file, removes it and keeps it open: only A's session holds it.
    await using holder = startLocker();
    const fd = await holder.open(a.path('mine'), 'w+');
    const data = randomBytes(MiB);
    await holder.pwrite(fd, 0, data);
    await holder.fsync(fd); // its blocks are in Redis
    const { ino } = await holder.fstat(fd);
    await holder.unlink(a.path('mine'));
    expect(await holder.readAll(fd)).toEqual({ size: data.length, sha256: sha256(data) });
    expect(await inodeTraces(redis, prefix, ino)).toEqual(expect.arrayContaining([inodeEntry(prefix, ino), keysFor(prefix).map(ino)]));

    a.process.kill('SIGKILL');
    await exited(a.process);
    const killedAt = performance.now();
    await holder.kill();
    await a.unmount(); // detaches the dead mountpoint

    await waitFor(
      async () => {
        const traces = await inodeTraces(redis, prefix, ino);
        if (traces.length > 0) throw new Error(`still there: ${traces.join(' ')}`);
        return true;
      },
      { timeoutMs: EXPIRY_DEADLINE_MS, intervalMs: 100, what: `inode ${ino}, held by the killed mount, to be freed` },
    );
    console.log(`killed mount's removed file freed by the other mount ${(performance.now() - killedAt).toFixed(0)} ms after the kill`);
    // Everything of the file and of A's session is gone; B's session is what is left.
    const expected = baseline.filter((key) => !key.endsWith(`:${sidA}`));
    await waitFor(
      async () => {
        const now = await contentKeys(redis, prefix);
        if (now.join() !== expected.join()) throw new Error(keyDiff(expected, now));
        return true;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: 'the prefix to hold its keys of before, without the killed session’s' },
    );
    expect(await redisCommand(redis, ['ZSCORE', keysFor(prefix).sessions, sidA])).toBeNull();
    expect(await hidden.stop()).toEqual([]);
    expect((await redisCommand(redis, ['HKEYS', keysFor(prefix).dir(1)])) as string[]).toEqual([]);
    await writeFile(b.path('after'), 'B carries on\n');
    expect(await readdir(b.dir)).toEqual(['after']);

    await b.unmount();
    await expectFsckClean(redis, prefix);
  });

  it('a mount killed -9 while it holds a removed file, no mount left: `redisfs fsck --repair` frees it after the lease', async () => {
    const prefix = uniquePrefix('fsck-held');
    const k = keysFor(prefix);
    let sidA: string;
    let ino: number;
    {
      await using a = await mountRedisfs({ redis, prefix, extraArgs: LEASE });
      sidA = await sessionOf(redis, a);
      await using holder = startLocker();
      const fd = await holder.open(a.path('mine'), 'w+');
      await holder.pwrite(fd, 0, randomBytes(MiB));
      await holder.fsync(fd);
      ino = (await holder.fstat(fd)).ino;
      await holder.unlink(a.path('mine'));
      a.process.kill('SIGKILL');
      await exited(a.process);
      await holder.kill();
      await a.unmount();
    }
    // Nobody is left to free it: the inode waits in Redis.
    expect(await inodeTraces(redis, prefix, ino)).toContain(inodeEntry(prefix, ino));
    // Until the lease has run out (by Redis's clock), the session counts as alive.
    await waitFor(
      async () => {
        const expiry = await redisCommand(redis, ['ZSCORE', k.sessions, sidA]);
        const [s, us] = (await redisCommand(redis, ['TIME'])) as [string, string];
        return expiry === null || Number(expiry) < Number(s) * 1000 + Number(us) / 1000;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: 'the killed mount’s lease to run out' },
    );

    const repaired = await runFsck(redis, prefix, ['--repair']);
    console.log(`fsck --repair after the lease: exit ${repaired.code}\n${repaired.stdout}${repaired.stderr}`);
    expect(repaired.code, `${repaired.stdout}${repaired.stderr}`).toBeOneOf([0, 1]);
    expect(await inodeTraces(redis, prefix, ino)).toEqual([]);
    const left = (await prefixKeys(redis, prefix)).filter((key) => key.includes(sidA) || key === k.orphans);
    expect(left).toEqual([]);
    await expectFsckClean(redis, prefix);
    // The filesystem mounts and works afterwards.
    await using again = await mountRedisfs({ redis, prefix });
    expect(await readdir(again.dir)).toEqual([]);
    expect((await statfs(again.dir)).files - (await statfs(again.dir)).ffree).toBe(1);
  });

  // fstat(2) sends the kernel's GETATTR without the file handle, by path. libfuse 2.9 keeps a
  // hidden name (.fuse_hidden…) for a file removed on this host while open here, and the adapter
  // answers for it (FsState.hidden) without storing that name: nothing shows in any listing.
  // (A file removed on ANOTHER host still has its old name here: fstat of it by path answers
  // ENOENT once the cache timeout passed; reads and writes through the handle go on working.
  // The README says so.)
  it('fstat(2) of an open file removed on this host gives its attributes, nlink 0, and no hidden name shows anywhere', async () => {
    const prefix = uniquePrefix('fstat');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    await writeFile(a.path('here'), 'removed on A\n');
    await using holder = startLocker();
    const here = await holder.open(a.path('here'), 'r+');
    const st = await holder.fstat(here);
    await holder.unlink(a.path('here'));
    expect(await holder.call({ op: 'fstat', fd: here }), 'fstat after an unlink on A').toMatchObject({ ok: true, ino: st.ino, size: 13, nlink: 0 });
    expect(await readdir(a.dir)).toEqual([]);
    expect(await readdir(b.dir)).toEqual([]);
    expect((await prefixKeys(redis, prefix)).join(' ')).not.toMatch(/fuse_hidden/);
    // The name is free again on this host, while the removed file stays open.
    await writeFile(a.path('here'), 'new\n');
    expect(await readFile(a.path('here'), 'utf8')).toBe('new\n');
    expect(await holder.call({ op: 'read', fd: here })).toMatchObject({ ok: true, size: 13 });
    expect(await holder.call({ op: 'fstat', fd: here })).toMatchObject({ ok: true, ino: st.ino, nlink: 0 });
  });

  it('open(O_CREAT) of the same new names from both hosts at once never fails with EEXIST; with O_EXCL exactly one host creates each', async () => {
    const prefix = uniquePrefix('creat');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    await writeFile(a.path('seen'), '');
    await waitFor(() => exists(b.path('seen')), { timeoutMs: CACHE_TIMEOUT_MS + MARGIN_MS, what: 'B to see A’s files' });
    await unlink(a.path('seen'));
    const N = 200;

    // O_CREAT without O_EXCL ('a': O_APPEND, 'w': O_TRUNC; flock(1)), the same fresh names from both.
    const [ra, rb] = await openFromBoth([a.dir, b.dir], N, 'a,w,flock');
    for (const [r, who] of [[ra, 'A'], [rb, 'B']] as const) {
      const counts = countsOf(r, who);
      expect(counts.errors, `open(O_CREAT) errors on ${who}: ${counts.messages.join('; ')}`).toEqual({});
      for (const flag of ['a', 'w', 'flock']) expect(counts.won[flag]?.length, `${flag} opens on ${who}`).toBe(N);
    }

    // O_CREAT|O_EXCL: each name is created by exactly one host, the other gets EEXIST.
    const [xa, xb] = await openFromBoth([a.dir, b.dir], N, 'wx');
    const ca = countsOf(xa, 'A');
    const cb = countsOf(xb, 'B');
    const wonA = ca.won.wx ?? [];
    const wonB = cb.won.wx ?? [];
    console.log(`O_EXCL: A created ${wonA.length}, B ${wonB.length} of ${N}`);
    expect(Object.keys(ca.errors).filter((code) => code !== 'EEXIST'), ca.messages.join('; ')).toEqual([]);
    expect(Object.keys(cb.errors).filter((code) => code !== 'EEXIST'), cb.messages.join('; ')).toEqual([]);
    expect(wonA.filter((i) => wonB.includes(i)), 'names both hosts created with O_EXCL').toEqual([]);
    expect([...wonA, ...wonB].sort((x, y) => x - y)).toEqual([...Array(N).keys()]);
    expect((ca.errors.EEXIST ?? 0) + (cb.errors.EEXIST ?? 0)).toBe(N);

    // One inode per name, and no inode leaked by a create that lost its race.
    const names = [...Array(N).keys()].flatMap((i) => [`a-${i}`, `w-${i}`, `flock-${i}`, `wx-${i}`]);
    for (const m of [a, b]) {
      await waitFor(async () => (await readdir(m.dir)).sort().join() === [...names].sort().join(), {
        timeoutMs: CACHE_TIMEOUT_MS + MARGIN_MS,
        what: `${m === a ? 'A' : 'B'} to list every name once`,
      });
    }
    for (const name of ['a-0', 'w-17', `a-${N - 1}`, 'flock-50']) expect((await stat(b.path(name))).ino, name).toBe((await stat(a.path(name))).ino);
    const st = await statfs(a.dir);
    expect(st.files - st.ffree).toBe(names.length + 1);

    await a.unmount();
    await b.unmount();
    await expectFsckClean(redis, prefix);
  });
  // What SQLite does with `db-journal` (locks.test.ts): open(O_CREAT) right after the other host
  // removed the name, which this host's kernel still caches: it sends an open of the cached
  // file, without O_CREAT (FUSE strips it). Answering ENOENT would fail SQLite ("unable to open
  // database file", seen before the fix); ESTALE makes the kernel look the name up and create.
  // SQLite's case: a host takes a lock, then re-creates a journal the other host removed while
  // this host still cached its name (the kernel's dentry is stale: see FsState.staleOnce).
  it('under a lock, open(O_CREAT) of a name the other host has just removed creates it, though this host still caches the name', async () => {
    const prefix = uniquePrefix('creat-stale');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    const outcomes: Record<string, string> = {};
    const commands = { append: 'echo new >> j', truncate: 'echo new > j', read: 'cat j' };
    for (const [name, command] of Object.entries(commands)) {
      await writeFile(a.path('j'), 'old\n');
      await waitFor(() => exists(b.path('j')), { timeoutMs: CACHE_TIMEOUT_MS + MARGIN_MS, what: 'B to see the file' }); // cached on B now
      await unlink(a.path('j'));
      // At once, well within B's cache timeout: flock(1) takes the lock, then runs the command.
      const result = await run('flock', ['lock', 'sh', '-c', command], { cwd: b.dir });
      outcomes[name] = result.code === 0 ? 'ok' : result.stderr.includes('No such file') ? 'ENOENT' : result.stderr;
      await unlink(b.path('j')).catch(() => undefined);
      await waitFor(async () => !(await exists(b.path('j'))) && !(await exists(a.path('j'))), { timeoutMs: CACHE_TIMEOUT_MS + MARGIN_MS, what: 'j to be gone' });
    }
    // With O_CREAT the file is created; without (cat), the name is gone: ENOENT.
    expect(outcomes).toEqual({ append: 'ok', truncate: 'ok', read: 'ENOENT' });
  });
});
