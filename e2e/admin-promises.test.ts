/**
 * What the README promises of the admin tools when things go wrong or run at once, checked
 * with the built CLIs as real processes, against a real Redis and real mounts:
 *  - a snapshot killed (kill -9) mid-copy: the source's mount keeps working; once the lease runs
 *    out, writers stop preserving into the half-made copy; `--force` removes it and makes a good
 *    snapshot (docs/architecture.md, "Snapshots": "If it dies, writers stop preserving when the lease runs out, and
 *    what it left in B (no superblock) is removed by the next `--force` run");
 *  - `redisfs fsck --repair` during a snapshot exits 8 ("`redisfs fsck`": "8 operational error
 *    (… `--repair` during a snapshot)");
 *  - `redisfs-snapshot delete --force` of a mounted filesystem is refused ("--force: also a
 *    filesystem that is not a snapshot (unmount it first)"; the store: EBUSY while open);
 *  - fsck of a filesystem being written: "safe but may report transient problems" (never an
 *    operational error), and clean once the writer stops.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, link, mkdir, readFile, readdir, rename, rm, rmdir, stat, truncate, writeFile } from 'node:fs/promises';
import { createClient } from '@redis/client';
import { isSessionKey, keysFor } from '@redisfs/schema';
import { openStore } from '@redisfs/store';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  OutputTail,
  SNAPSHOT_CLI,
  describeWithRedis,
  disposeWhenTestEnds,
  exited,
  expectFsckClean,
  isRunning,
  mountRedisfs,
  requireBuilt,
  run,
  runFsck,
  stopChild,
  uniquePrefix,
  waitFor,
  type RunResult,
  storedInode,
} from './helpers/index.js';

type Client = ReturnType<typeof createClient>;

/** Files in the source of a snapshot that is stopped mid-copy: ~1 key each (its block map; inodes share buckets of 64), 200 keys a batch. */
const MANY_FILES = 4000;
/** The lease a snapshot holds on its bookkeeping keys (README: "a 30 s lease"). */
const LEASE_MS = 30_000;
const OWNER = { uid: 0, gid: 0 };

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

await describeWithRedis('admin promises', { fuse: true }, (redis) => {
  /** Looks at keys; changes only their TTLs and pauses clients, where a test says so. */
  let client: Client;
  beforeAll(async () => {
    client = createClient({ url: redis.url });
    client.on('error', () => {});
    await client.connect();
  });
  afterAll(async () => {
    await client?.sendCommand(['CLIENT', 'UNPAUSE']).catch(() => undefined);
    await client?.close();
  });

  const snapshotCli = (...args: string[]): Promise<RunResult> =>
    run(process.execPath, [requireBuilt(SNAPSHOT_CLI), '--url', redis.url, ...args], { timeoutMs: 60_000 });

  /** `redisfs-snapshot --from from --to to` as a child process the test can kill. */
  function startSnapshot(from: string, to: string): { child: ChildProcess; stderr: OutputTail } {
    const child = spawn(process.execPath, [requireBuilt(SNAPSHOT_CLI), '--url', redis.url, '--from', from, '--to', to], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    disposeWhenTestEnds({ [Symbol.asyncDispose]: async () => void (await stopChild(child, 'SIGKILL')) });
    return { child, stderr: new OutputTail().follow(child.stderr) };
  }

  /** A filesystem with /many/f0 … f<n-1>, each holding one small block: written through the store (fast). */
  async function makeManyFiles(prefix: string, n = MANY_FILES): Promise<void> {
    const store = await openStore({ url: redis.url, prefix });
    try {
      const dir = await store.mkdir(store.rootIno, 'many', 0o755, OWNER);
      for (let i = 0; i < n; i += 200) {
        await Promise.all(
          Array.from({ length: Math.min(200, n - i) }, async (_, j) => {
            const f = await store.mknod(dir.ino, `f${i + j}`, 0o644, OWNER);
            await store.write(f.ino, 0, Buffer.from(`file ${i + j}\n`));
          }),
        );
      }
    } finally {
      await store.close();
    }
  }

  /**
   * Waits until a snapshot from `from` into `to` is visibly copying (its lease key exists and
   * at least two batches of keys have appeared), then stalls it with CLIENT PAUSE WRITE (its
   * next script waits) and checks it has not finished: the copier is caught mid-copy.
   */
  async function catchMidCopy(from: string, to: string, child: ChildProcess, keysBefore: number): Promise<void> {
    const src = keysFor(from);
    await waitFor(async () => (await client.exists(src.snapshot)) === 1 && (await client.dbSize()) >= keysBefore + 400, {
      timeoutMs: 30_000,
      intervalMs: 2,
      what: `the snapshot of ${from} to be copying`,
      bail: () => (isRunning(child) ? undefined : new Error(`redisfs-snapshot exited (${child.exitCode}) before it was seen copying`)),
    });
    await client.sendCommand(['CLIENT', 'PAUSE', '20000', 'WRITE']);
    expect({ copying: await client.exists(src.snapshot), superblock: await client.exists(keysFor(to).superblock) }).toEqual({
      copying: 1,
      superblock: 0,
    });
  }

  it('a snapshot killed mid-copy: the mount goes on, preserving stops when the lease ends, --force makes a good one', async () => {
    const family = uniquePrefix('killed');
    const to = `${family}@x`;
    const [src, dst] = [keysFor(family), keysFor(to)];
    await makeManyFiles(family);
    await using mnt = await mountRedisfs({ redis, prefix: family });
    const inoOf = async (name: string) => (await stat(mnt.path('many', name))).ino;

    const keysBefore = await client.dbSize();
    const { child } = startSnapshot(family, to);
    try {
      await catchMidCopy(family, to, child, keysBefore);
      child.kill('SIGKILL');
      expect(await exited(child)).toEqual({ code: null, signal: 'SIGKILL' });
    } finally {
      await client.sendCommand(['CLIENT', 'UNPAUSE']);
    }

    // Half made: some of the source's keys copied, no superblock (so it is not listed as a filesystem).
    // A file counts as copied when its inode (a field of a bucket shared by 64 inodes) or its block
    // map is in the copy, as not copied when neither is. A change preserves the inode's whole
    // bucket: the files changed after the lease are taken from other buckets than the one changed
    // during it, so that nothing but the lease decides whether they reach the copy.
    const inCopy = async (ino: number) => (await storedInode(client, to, ino)) !== undefined || (await client.exists(dst.map(ino))) === 1;
    const copied: number[] = [];
    const notCopied: { i: number; bucket: string }[] = [];
    const otherBuckets = () => notCopied.filter((f) => f.bucket !== notCopied[0]!.bucket);
    for (let i = 0; i < MANY_FILES && (copied.length < 2 || notCopied.length === 0 || otherBuckets().length < 2); i++) {
      const ino = await inoOf(`f${i}`);
      if (await inCopy(ino)) copied.push(i);
      else notCopied.push({ i, bucket: dst.inodes(ino) });
    }
    expect({ copied: copied.length >= 2, notCopied: notCopied.length >= 1, otherBuckets: otherBuckets().length >= 2 }).toEqual({
      copied: true,
      notCopied: true,
      otherBuckets: true,
    });
    expect(await client.exists(dst.superblock)).toBe(0);
    expect((await snapshotCli('list')).stdout).not.toContain(to);

    // The lease: the snapshot's keys expire by themselves, within 30 s.
    const leaseKeys = [src.snapshot, dst.snapshotLock];
    for (const key of leaseKeys) expect(await client.pTTL(key), key).toSatisfy((ms: number) => ms > 0 && ms <= LEASE_MS);

    // The mount keeps working, and while the lease lasts, a change still preserves the old value into the copy.
    const [beforeExpiry, afterExpiry, alsoAfter] = [notCopied[0]!, ...otherBuckets()].map((f) => `f${f.i}`);
    await chmod(mnt.path('many', beforeExpiry!), 0o600);
    await writeFile(mnt.path('during-lease'), 'written after the kill\n');
    expect(await readFile(mnt.path('during-lease'), 'utf8')).toBe('written after the kill\n');
    const preserved = await storedInode(client, to, await inoOf(beforeExpiry!));
    expect(preserved!.mode & 0o7777).toBe(0o644);

    // The lease runs out. Waiting 30 s is too long for this suite (LEASE_MS is a constant of the
    // store, not configurable): the test makes Redis expire the lease keys now, as it would at 30 s.
    for (const key of [...leaseKeys, src.snapshotDone]) await client.pExpire(key, 1);
    await waitFor(async () => (await client.exists([...leaseKeys, src.snapshotDone])) === 0, {
      timeoutMs: 5000,
      what: 'the lease keys to expire',
    });

    // Writers stop preserving: changes to the source no longer reach the half-made copy.
    await chmod(mnt.path('many', afterExpiry!), 0o600);
    await writeFile(mnt.path('many', alsoAfter!), 'rewritten after the lease\n');
    const deleted = `f${copied[0]}`;
    const deletedIno = await inoOf(deleted);
    await rm(mnt.path('many', deleted));
    for (const name of [afterExpiry!, alsoAfter!]) expect(await inCopy(await inoOf(name)), name).toBe(false);
    expect(await client.exists(dst.superblock)).toBe(0);

    // The next run refuses what is left there without --force, and with it removes the rest and makes a good snapshot.
    const refused = await snapshotCli('--from', family, '--to', to);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toMatch(/--force/);
    const forced = await snapshotCli('--from', family, '--to', to, '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(new RegExp(`snapshot of '${escapeRegExp(family)}' as '${escapeRegExp(to)}' .*after deleting \\d+ keys`));
    // The deleted file's inode or map, copied before the kill, is gone from the new snapshot.
    expect(await inCopy(deletedIno)).toBe(false);
    await expectFsckClean(redis, to);
    await expectFsckClean(redis, family);

    // Its content is the source's at the new point in time.
    await using snap = await mountRedisfs({ redis, prefix: to });
    const names = (await readdir(snap.path('many'))).sort();
    expect(names).toEqual((await readdir(mnt.path('many'))).sort());
    expect(names).toHaveLength(MANY_FILES - 1);
    expect(names).not.toContain(deleted);
    expect(await readFile(snap.path('during-lease'), 'utf8')).toBe('written after the kill\n');
    expect(await readFile(snap.path('many', alsoAfter!), 'utf8')).toBe('rewritten after the lease\n');
    for (const name of [beforeExpiry!, afterExpiry!]) expect((await stat(snap.path('many', name))).mode & 0o7777, name).toBe(0o600);
    for (const i of [0, 1, 1234, MANY_FILES - 1]) {
      if (`f${i}` === deleted || `f${i}` === alsoAfter) continue;
      expect(await readFile(snap.path('many', `f${i}`), 'utf8')).toBe(`file ${i}\n`);
    }
  });

  /**
   * Runs `redisfs fsck --prefix family <args>` for each of `runs`, in turn, while a real
   * snapshot of `family` is caught mid-copy (stalled, alive); then lets the snapshot finish and
   * checks it ended well.
   */
  async function fsckDuringSnapshot(family: string, runs: string[][]): Promise<RunResult[]> {
    const to = `${family}@x`;
    const keysBefore = await client.dbSize();
    const { child, stderr } = startSnapshot(family, to);
    const results: RunResult[] = [];
    try {
      await catchMidCopy(family, to, child, keysBefore);
      for (const args of runs) results.push(await runFsck(redis, family, args));
      // Still in progress when fsck ended: the copier is alive, its next script waiting. (Soft:
      // an fsck that wrote would have waited for the pause to end; its exit code says more.)
      expect.soft({ copying: await client.exists(keysFor(family).snapshot), alive: isRunning(child) }).toEqual({ copying: 1, alive: true });
    } finally {
      await client.sendCommand(['CLIENT', 'UNPAUSE']);
    }
    expect(await exited(child), stderr.toString()).toEqual({ code: 0, signal: null });
    return results;
  }

  /** fsck --repair refused because a snapshot runs: exit 8 and one line that says so. */
  function expectRefusedDuringSnapshot(result: RunResult, family: string): void {
    expect({ code: result.code, stderrLines: result.stderr.trim().split('\n').length }, result.stdout + result.stderr).toEqual({
      code: 8,
      stderrLines: 1,
    });
    expect(result.stderr).toMatch(
      new RegExp(`^redisfs fsck: (EBUSY: )?a snapshot is being taken from or into '${escapeRegExp(family)}' .*: not repairing; retry once it is done$`, 'm'),
    );
  }

  it('fsck --repair while a snapshot of the filesystem is being taken exits 8, saying so, and repairs nothing', async () => {
    const family = uniquePrefix('busyfsck');
    const k = keysFor(family);
    await makeManyFiles(family, MANY_FILES);
    await client.hSet(k.dir(1), 'ghost', 'f4000000'); // something to repair: an entry naming no inode
    const [readOnly, during] = await fsckDuringSnapshot(family, [[], ['--repair']]);
    // A check alone runs during a snapshot (it reports the problem: exit 4); a repair is refused.
    expect(readOnly!.code, readOnly!.stderr).toBe(4);
    expect(readOnly!.stdout).toMatch(/^entry-dangling: entry 'ghost'/m);
    expectRefusedDuringSnapshot(during!, family);
    expect(await client.hGet(k.dir(1), 'ghost')).toBe('f4000000'); // nothing repaired
    // Once the snapshot is done, the same repair runs.
    const after = await runFsck(redis, family, ['--repair']);
    expect(after.code, after.stdout + after.stderr).toBe(1);
    expect(after.stdout).toMatch(/^fixed: removed entry 'ghost'/m);
  });

  // A clean filesystem too: the answer to --repair must not depend on what the check found.
  it('fsck --repair during a snapshot exits 8 also when the filesystem is clean', async () => {
    const family = uniquePrefix('busyclean');
    await makeManyFiles(family, MANY_FILES);
    const [during] = await fsckDuringSnapshot(family, [['--repair']]);
    expectRefusedDuringSnapshot(during!, family);
  });

  it('delete --force of a mounted filesystem is refused (unmount it first), and the filesystem stays whole', async () => {
    const family = uniquePrefix('livedel');
    const k = keysFor(family);
    await using mnt = await mountRedisfs({ redis, prefix: family });
    await writeFile(mnt.path('kept'), 'still here\n');
    // The filesystem's keys, not the mount's session keys (a hold ends a moment after close(2)).
    const contentKeys = async () => {
      const keys: string[] = [];
      for await (const batch of client.scanIterator({ MATCH: `*${family}*`, COUNT: 1000 })) keys.push(...batch);
      return keys.filter((key) => !isSessionKey(k, key)).sort();
    };
    const keysBefore = await contentKeys();
    expect(keysBefore).toContain(k.superblock);

    const refused = await snapshotCli('delete', '--force', '--prefix', family);
    expect({ code: refused.code, stderrLines: refused.stderr.trim().split('\n').length }, refused.stderr).toEqual({ code: 1, stderrLines: 1 });
    expect(refused.stderr).toMatch(new RegExp(`^redisfs-snapshot: .*'${escapeRegExp(family)}' is in use .*; unmount it first$`, 'm'));
    // Nothing was deleted: the superblock, every key, and the mount's files.
    expect(await client.exists(k.superblock)).toBe(1);
    expect(await contentKeys()).toEqual(keysBefore);
    expect(await readFile(mnt.path('kept'), 'utf8')).toBe('still here\n');
    await writeFile(mnt.path('after'), 'the mount goes on\n');
    expect((await readdir(mnt.dir)).sort()).toEqual(['after', 'kept']);

    // Unmounted, the same command deletes it.
    await mnt.unmount();
    const deleted = await snapshotCli('delete', '--force', '--prefix', family);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(await client.exists(k.superblock)).toBe(0);
  });

  it('fsck of a filesystem being written exits 0 or reports problems (never 8); once the writer stops, it is clean', async () => {
    const family = uniquePrefix('busywrite');
    await using mnt = await mountRedisfs({ redis, prefix: family });
    const writer = startChurn(mnt.dir);
    disposeWhenTestEnds({ [Symbol.asyncDispose]: () => writer.stop() });
    await waitFor(() => writer.ops() >= 50, { timeoutMs: 30_000, what: 'the writer to get going', bail: writer.failure });

    const during: { code: number | null; stderr: string; problems: string[]; opsMeanwhile: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const before = writer.ops();
      const result = await runFsck(redis, family);
      during.push({
        code: result.code,
        stderr: result.stderr,
        problems: result.stdout.split('\n').filter((line) => /^[a-z-]+: /.test(line) && !line.startsWith('pending: ')),
        opsMeanwhile: writer.ops() - before,
      });
    }
    await writer.stop();
    expect(writer.errors).toEqual([]);
    for (const run of during) {
      // 0 clean, or 4 "problems left" (transient ones); never 8, an operational error.
      expect([0, 4], JSON.stringify(during)).toContain(run.code);
      expect(run.stderr, JSON.stringify(during)).toBe('');
      expect(run.problems.length > 0, JSON.stringify(during)).toBe(run.code === 4);
      // The check did run while the filesystem was being written.
      expect(run.opsMeanwhile, JSON.stringify(during)).toBeGreaterThan(0);
    }
    // The writer stopped (the mount idle): clean.
    await expectFsckClean(redis, family);
  });
});

/** A writer working through a mount: creates, writes, renames, links, truncates, unlinks, mkdir and rmdir, until stopped. */
interface Churn {
  ops(): number;
  /** Each operation that failed. */
  readonly errors: string[];
  /** The first failure as an Error (for waitFor's bail), or undefined. */
  failure(): Error | undefined;
  stop(): Promise<void>;
}

function startChurn(dir: string): Churn {
  const errors: string[] = [];
  let ops = 0;
  let stopped = false;
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      ops++;
    } catch (err) {
      errors.push(`${what}: ${(err as Error).message}`);
    }
  };
  const done = (async () => {
    await step('mkdir', () => mkdir(`${dir}/moved`));
    for (let i = 0; !stopped; i++) {
      await step('write', () => writeFile(`${dir}/w${i}`, Buffer.alloc(20_000 + (i % 7) * 30_000, i % 251)));
      await step('rename', () => rename(`${dir}/w${i}`, `${dir}/moved/r${i}`));
      await step('link', () => link(`${dir}/moved/r${i}`, `${dir}/l${i}`));
      await step('truncate', () => truncate(`${dir}/l${i}`, 1000));
      await step('mkdir', () => mkdir(`${dir}/d${i}`));
      if (i >= 3) {
        await step('unlink', () => rm(`${dir}/moved/r${i - 3}`));
        await step('unlink', () => rm(`${dir}/l${i - 3}`));
        await step('rmdir', () => rmdir(`${dir}/d${i - 3}`));
      }
    }
  })();
  return {
    ops: () => ops,
    errors,
    failure: () => (errors.length > 0 ? new Error(`the writer failed: ${errors[0]}`) : undefined),
    async stop() {
      stopped = true;
      await done;
    },
  };
}
