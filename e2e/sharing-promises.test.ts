/**
 * The promises of README.md, "Several hosts on one Redis", that e2e/sharing.test.ts leaves out,
 * checked with two mounts A and B of one prefix (two hosts). fsync(2) on A, with the file kept
 * open, makes A's data visible to a fresh open on B at once; so does having 4 MiB buffered. A
 * file removed on A while open on B stays B's to read and write to the end, and is freed at B's
 * close (sessions.test.ts checks more of it). A chmod, chown, touch or truncate on A shows on B within
 * --cache-timeout (measured), and at B's first stat with --cache-timeout 0.
 *
 * Close-to-open after close(2) (written and closed on A, opened on B at once) is not repeated
 * here: sharing.test.ts checks exactly that, over several sizes, after B primed its caches.
 */
import { randomBytes } from 'node:crypto';
import { type Stats } from 'node:fs';
import { chmod, open, readdir, readFile, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import { beforeAll, expect, it } from 'vitest';
import {
  describeWithRedis,
  isCi,
  mountRedisfs,
  runOk,
  uniquePrefix,
  waitFor,
  type StartedMount,
  exists,
} from './helpers/index.js';

const asRoot = process.getuid?.() === 0;

/** The --cache-timeout B is mounted with, in ms (the default, 1 s, given explicitly). */
const CACHE_TIMEOUT_MS = 1000;
/** Slack on top of the cache timeout for the probe's own round trips on a busy machine. */
const SLACK_MS = 1000;
/** What "has 4 MiB buffered" means: the write buffer of one open file (README). */
const MiB = 1024 * 1024;
/** Deadline for pieces handed to the store to arrive: a bound for a hung store, not a speed claim. */
const STORE_DEADLINE_MS = 10_000;

/** Live inodes of the filesystem, from statfs (f_files - f_ffree, as `df -i` shows "IUsed"). */
async function inodesInUse(mount: StartedMount): Promise<number> {
  const st = await statfs(mount.dir);
  return st.files - st.ffree;
}

/** stat twice: the second is answered from B's caches (kernel and binding) if anything is. */
async function warm(path: string): Promise<Stats> {
  await stat(path);
  return stat(path);
}

/**
 * One change A makes to `f` (a 1000-byte file of mode 0644 owned by root), and whether a stat
 * shows it. Each row uses the tool a user would.
 */
interface AttrChange {
  what: string;
  apply(path: string): Promise<unknown>;
  shows(st: Stats): boolean;
}

const MTIME_S = 1_500_000_000;
const ATTR_CHANGES: AttrChange[] = [
  { what: 'chmod 600', apply: (p) => chmod(p, 0o600), shows: (st) => (st.mode & 0o7777) === 0o600 },
  { what: 'chown 1234:5678', apply: (p) => runOk('chown', ['1234:5678', p]), shows: (st) => st.uid === 1234 && st.gid === 5678 },
  {
    what: `touch -m -d @${MTIME_S}.5`,
    apply: (p) => runOk('touch', ['-m', '-d', `@${MTIME_S}.5`, p]),
    shows: (st) => st.mtimeMs === MTIME_S * 1000 + 500,
  },
  { what: 'truncate -s 10', apply: (p) => runOk('truncate', ['-s', '10', p]), shows: (st) => st.size === 10 },
];

/** A fresh `f` on A as the changes expect it, already looked up and stat'ed by B. */
async function freshTarget(a: StartedMount, b: StartedMount, name: string): Promise<void> {
  await writeFile(a.path(name), Buffer.alloc(1000, 0x61), { mode: 0o644 });
  await chmod(a.path(name), 0o644); // whatever the umask
  await waitFor(() => exists(b.path(name)), { timeoutMs: CACHE_TIMEOUT_MS + SLACK_MS, what: `B to see ${name}` });
}

await describeWithRedis('several hosts on one Redis: what README promises', { fuse: true }, (redis) => {
  beforeAll(async () => {
    if (!asRoot && isCi()) throw new Error('the chown row needs root: run the e2e suite as root under CI');
  });

  it('fsync(2) on A, file kept open: a fresh open on B sees A’s size and bytes at once', async () => {
    const prefix = uniquePrefix('fsync');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    await writeFile(a.path('f'), 'version one\n');
    // B reads it first, priming its caches (name, attributes, pages).
    expect(await readFile(b.path('f'), 'utf8')).toBe('version one\n');

    const want = randomBytes(200_000); // several 64 KiB blocks, far below the 4 MiB buffer
    const fh = await open(a.path('f'), 'r+');
    try {
      await fh.write(want, 0, want.length, 0);
      await fh.sync();
      // No polling: each holds the moment A's fsync returned, while A keeps the file open. Only
      // a fresh open is promised (a bare stat on B may answer from its cache until the timeout).
      const onB = await open(b.path('f'), 'r');
      try {
        expect((await onB.stat()).size).toBe(want.length);
      } finally {
        await onB.close();
      }
      expect((await readFile(b.path('f'))).equals(want)).toBe(true);
      expect((await runOk('sha256sum', [b.path('f')])).split(' ')[0]).toBe(
        (await runOk('sha256sum', [a.path('f')])).split(' ')[0],
      );
    } finally {
      await fh.close();
    }
  });

  it('A writes 5 MiB without fsync or close: B opening the file sees at least the first 4 MiB', async () => {
    const prefix = uniquePrefix('buffer');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    const want = randomBytes(5 * MiB);
    const fh = await open(a.path('big'), 'w');
    try {
      await fh.write(want, 0, want.length, 0);
      // "Data reaches Redis when the writer ... has 4 MiB buffered": the first 4 MiB are on their
      // way once the write returned; each poll is a fresh open on B, as close-to-open asks.
      const seen = await waitFor(
        async () => {
          const got = await readFile(b.path('big'));
          return got.length >= 4 * MiB && got.equals(want.subarray(0, got.length)) ? got.length : 0;
        },
        { timeoutMs: STORE_DEADLINE_MS, intervalMs: 50, what: 'B to see the first 4 MiB A wrote' },
      );
      expect(seen).toBeGreaterThanOrEqual(4 * MiB);
    } finally {
      await fh.close();
    }
    // And once A closes, all of it, at once.
    expect((await readFile(b.path('big'))).equals(want)).toBe(true);
  });

  it('a file removed on A while open on B: B reads it to the end, past what it had read', async () => {
    const prefix = uniquePrefix('removed-read');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    const data = randomBytes(300_000);
    await writeFile(a.path('doomed'), data);
    const fh = await open(b.path('doomed'), 'r');
    try {
      const head = Buffer.alloc(1000);
      expect((await fh.read(head, 0, head.length, 0)).bytesRead).toBe(1000); // open and readable on B
      await unlink(a.path('doomed'));
      // Bytes B has not read yet, beyond the kernel's 128 KiB read-ahead: no cached page answers.
      const later = Buffer.alloc(4096);
      expect((await fh.read(later, 0, later.length, 250_000)).bytesRead).toBe(4096);
      expect(later.equals(data.subarray(250_000, 254_096))).toBe(true);
    } finally {
      await fh.close();
    }
    await waitFor(async () => !(await exists(b.path('doomed'))), {
      timeoutMs: CACHE_TIMEOUT_MS + SLACK_MS,
      what: 'B to drop the removed name',
    });
  });

  it('a file removed on A while open on B: B’s buffered writes are stored, close(2) succeeds, and the file is freed then', async () => {
    const prefix = uniquePrefix('removed-write');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix });
    const before = await inodesInUse(a);
    await writeFile(a.path('doomed'), 'original\n');
    const fh = await open(b.path('doomed'), 'r+');
    try {
      // Small writes stay in B's buffer (far below 4 MiB): accepted, not stored yet.
      await fh.write(Buffer.from('written on B, then read back\n'), 0, undefined, 0);
      await fh.write(Buffer.alloc(100_000, 0x62), 0, undefined, 28);
      await unlink(a.path('doomed'));
      await fh.sync(); // stored, though the file has no name any more
      const back = Buffer.alloc(28);
      expect((await fh.read(back, 0, back.length, 0)).bytesRead).toBe(28);
      expect(back.toString()).toBe('written on B, then read back');
    } finally {
      await fh.close();
    }
    // No name came back on either host, and the inode is freed at B's close.
    expect(await readdir(a.path())).toEqual([]);
    await waitFor(async () => (await inodesInUse(a)) === before, { timeoutMs: 10_000, what: 'the removed file to be freed at its last close' });
    await waitFor(async () => (await readdir(b.path())).length === 0 && !(await exists(b.path('doomed'))), {
      timeoutMs: CACHE_TIMEOUT_MS + SLACK_MS,
      what: 'B to show the directory empty',
    });
  });

  it(`chmod, chown, touch and truncate on A show on B within --cache-timeout 1 (+${SLACK_MS} ms slack)`, async () => {
    const prefix = uniquePrefix('attrs');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix, extraArgs: ['--cache-timeout', String(CACHE_TIMEOUT_MS / 1000)] });
    const took: string[] = [];
    for (const [i, change] of ATTR_CHANGES.entries()) {
      const name = `f${i}`;
      await freshTarget(a, b, name);
      expect(change.shows(await warm(b.path(name))), `${change.what} before it was made`).toBe(false);
      await change.apply(a.path(name));
      expect(change.shows(await stat(a.path(name))), `A sees its own ${change.what} at once`).toBe(true);
      const t0 = performance.now();
      await waitFor(async () => change.shows(await stat(b.path(name))), {
        timeoutMs: CACHE_TIMEOUT_MS + SLACK_MS,
        intervalMs: 10,
        what: `B to show A's ${change.what}`,
      });
      took.push(`${change.what}: ${Math.round(performance.now() - t0)} ms`);
    }
    // Every change showed within the deadline (waitFor would have thrown); the times, for the log.
    console.log(`B showed A's changes after: ${took.join(', ')}`);
    expect(took).toHaveLength(ATTR_CHANGES.length);
  });

  it('with --cache-timeout 0 on B, chmod, chown, touch and truncate on A show at B’s first stat', async () => {
    const prefix = uniquePrefix('attrs-strict');
    await using a = await mountRedisfs({ redis, prefix });
    await using b = await mountRedisfs({ redis, prefix, extraArgs: ['--cache-timeout', '0'] });
    for (const [i, change] of ATTR_CHANGES.entries()) {
      const name = `f${i}`;
      await writeFile(a.path(name), Buffer.alloc(1000, 0x61));
      await chmod(a.path(name), 0o644);
      expect(change.shows(await warm(b.path(name))), `${change.what} before it was made`).toBe(false);
      await change.apply(a.path(name));
      expect(change.shows(await stat(b.path(name))), `B's first stat after A's ${change.what}`).toBe(true);
    }
  });
});
