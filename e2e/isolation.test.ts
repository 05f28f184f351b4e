/**
 * Two filesystems (prefixes) on one Redis, mounted at once by two processes: neither sees,
 * changes or removes anything of the other, and their keys never overlap. A Redis ACL user given
 * the line from packages/schema/README.md can use its own filesystem and nothing else.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  appendFile,
  chmod,
  link,
  mkdir,
  readFile,
  readdir,
  readlink,
  rename,
  rm,
  stat,
  statfs,
  symlink,
  truncate,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { createClient } from '@redis/client';
import { ROOT_INO, keysFor, parseBlockKey } from '@redisfs/schema';
import { openStore } from '@redisfs/store';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  MOUNT_CLI,
  OutputTail,
  REPO_ROOT,
  SNAPSHOT_CLI,
  describeWithRedis,
  disposeWhenTestEnds,
  exited,
  findExecutable,
  findFusermount,
  forceUnmount,
  isMounted,
  isRunning,
  mountRedisfs,
  requireBuilt,
  run,
  runOk,
  stopChild,
  tempDir,
  uniquePrefix,
  waitFor,
} from './helpers/index.js';

type Client = ReturnType<typeof createClient>;

/** Every key on the server whose name contains `text`. */
async function keysContaining(client: Client, text: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: `*${text}*`, COUNT: 1000 })) keys.push(...batch);
  return keys.sort();
}

/** The family-wide keys of `prefix`'s family (`{F}#…`), which every member of the family shares. */
function familyKeysOf(prefix: string): string[] {
  const layout = keysFor(prefix);
  return [layout.refcounts, layout.freeBlocks, layout.blockCounter, layout.deadMembers];
}

/**
 * Whether `key` is one of the keys filesystem `prefix` depends on, as the layout defines them:
 * its own metadata, a key of its family, or a data block of its family.
 */
function belongsTo(prefix: string, key: string): boolean {
  const layout = keysFor(prefix);
  return key.startsWith(layout.metaPrefix) || familyKeysOf(prefix).includes(key) || parseBlockKey(layout, key) !== undefined;
}

await describeWithRedis('prefixes are separate filesystems', { fuse: true }, (redis) => {
  it('files in one prefix are not seen in another', async () => {
    const [prefixA, prefixB] = [uniquePrefix('iso-a'), uniquePrefix('iso-b')];
    await using a = await mountRedisfs({ redis, prefix: prefixA });
    await using b = await mountRedisfs({ redis, prefix: prefixB });

    await mkdir(a.path('only-in-a'));
    await writeFile(a.path('only-in-a/file'), 'A');
    await writeFile(a.path('same-name'), 'content of A');
    expect(await readdir(b.dir)).toEqual([]);
    await expect(stat(b.path('only-in-a'))).rejects.toMatchObject({ code: 'ENOENT' });

    await writeFile(b.path('same-name'), 'content of B');
    expect(await readFile(a.path('same-name'), 'utf8')).toBe('content of A');
    expect(await readFile(b.path('same-name'), 'utf8')).toBe('content of B');

    await runOk('rm', [b.path('same-name')]);
    expect(await readFile(a.path('same-name'), 'utf8')).toBe('content of A');
    expect((await readdir(a.dir)).sort()).toEqual(['only-in-a', 'same-name']);
  });

  it('a prefix keeps its files while another is used and unmounted', async () => {
    const [prefixA, prefixB] = [uniquePrefix('iso-keep-a'), uniquePrefix('iso-keep-b')];
    {
      await using a = await mountRedisfs({ redis, prefix: prefixA });
      await writeFile(a.path('mine'), 'A keeps this');
    }
    {
      await using b = await mountRedisfs({ redis, prefix: prefixB });
      expect(await readdir(b.dir)).toEqual([]);
      await writeFile(b.path('mine'), 'B has its own');
      await runOk('rm', ['-f', b.path('mine')]);
    }
    await using a = await mountRedisfs({ redis, prefix: prefixA });
    expect(await readFile(a.path('mine'), 'utf8')).toBe('A keeps this');
  });

  it('each key belongs to one prefix, even when one prefix name starts with the other', async () => {
    // `X` and `X.b` are two families (a member of X's family would be `X@label`).
    const prefixA = uniquePrefix('iso-keys');
    const prefixB = `${prefixA}.b`;
    const client: Client = createClient({ url: redis.url });
    await client.connect();
    await using _client = { [Symbol.asyncDispose]: () => client.close() };
    {
      await using a = await mountRedisfs({ redis, prefix: prefixA });
      await using b = await mountRedisfs({ redis, prefix: prefixB });
      for (const m of [a, b]) {
        await mkdir(m.path('d'));
        await writeFile(m.path('d/data'), randomBytes(150 * 1024));
      }
    }
    const keys = await keysContaining(client, prefixA);
    const owners = keys.map((key) => ({ key, owners: [prefixA, prefixB].filter((p) => belongsTo(p, key)) }));
    expect(owners.filter((k) => k.owners.length !== 1)).toEqual([]);
    const ofA = owners.filter((k) => k.owners[0] === prefixA).map((k) => k.key);
    const ofB = owners.filter((k) => k.owners[0] === prefixB).map((k) => k.key);
    // Both have blocks, metadata and family keys, and each prefix's SCAN patterns find exactly
    // its own keys.
    for (const [prefix, own] of [[prefixA, ofA], [prefixB, ofB]] as const) {
      const layout = keysFor(prefix);
      expect(own.some((k) => parseBlockKey(layout, k))).toBe(true);
      expect(own.some((k) => k.startsWith(layout.metaPrefix))).toBe(true);
      expect(own.some((k) => familyKeysOf(prefix).includes(k))).toBe(true);
      const scanned: string[] = [];
      for (const pattern of layout.scanPatterns) {
        for await (const batch of client.scanIterator({ MATCH: pattern, COUNT: 1000 })) scanned.push(...batch);
      }
      expect(scanned.sort()).toEqual(own);
    }
  });
});

/** The line users copy from packages/schema/README.md, for user `fsuser` and filesystem `skx`. */
function documentedAclLine(): string[] {
  const readme = readFileSync(join(REPO_ROOT, 'packages/schema/README.md'), 'utf8');
  const lines = readme.split('\n').filter((line) => line.startsWith('ACL SETUSER fsuser '));
  if (lines.length !== 1) throw new Error(`packages/schema/README.md should hold one "ACL SETUSER fsuser …" line, found ${lines.length}`);
  return lines[0]!.trim().split(/\s+/);
}

/** A user of one filesystem, made with the documented line. */
interface FsUser {
  name: string;
  password: string;
  /** redis://name:password@host:port */
  url: string;
}

await describeWithRedis('a Redis ACL user limited to one filesystem', { fuse: true }, (redis) => {
  /** The default user: creates the ACL users and looks at the keys. */
  let admin: Client;

  beforeAll(async () => {
    admin = createClient({ url: redis.url });
    admin.on('error', () => {});
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.close();
  });

  /** Runs the README's ACL line for `prefix`, with a fresh user name and password. */
  async function createFsUser(prefix: string): Promise<FsUser> {
    const name = `fs-${randomBytes(4).toString('hex')}`;
    const password = `pw-${randomBytes(12).toString('hex')}`;
    const words = documentedAclLine().map((word) => {
      if (word === 'fsuser') return name;
      if (word === '>password') return `>${password}`;
      return /^(%?[RW]*~|&)/.test(word) ? word.replaceAll('skx', prefix) : word; // key patterns
    });
    await admin.sendCommand(words);
    const url = new URL(redis.url);
    url.username = name;
    url.password = password;
    return { name, password, url: url.toString().replace(/\/$/, '') };
  }

  /** What Redis refused this user, by command or key (ACL LOG). */
  async function refusedFor(user: FsUser): Promise<string[]> {
    const log = await admin.aclLog();
    return log.filter((entry) => entry.username === user.name).map((entry) => `${entry.reason} ${entry.object}`);
  }

  it('the root README gives the same line as packages/schema/README.md', () => {
    const line = documentedAclLine().join(' ');
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    expect(readme.includes(line), `README.md should hold the line of packages/schema/README.md:\n${line}`).toBe(true);
  });

  it('mounts its filesystem and does everyday work there', async () => {
    const prefix = uniquePrefix('acl-own');
    const user = await createFsUser(prefix);
    const data = randomBytes(300 * 1024);
    {
      await using m = await mountRedisfs({ redis: { url: user.url }, prefix });
      await writeFile(m.path('hello.txt'), 'hello\n');
      await appendFile(m.path('hello.txt'), 'again\n');
      expect(await readFile(m.path('hello.txt'), 'utf8')).toBe('hello\nagain\n');
      await mkdir(m.path('dir/sub'), { recursive: true });
      await rename(m.path('hello.txt'), m.path('dir/sub/hello.txt'));
      await writeFile(m.path('dir/data.bin'), data);
      expect((await readFile(m.path('dir/data.bin'))).equals(data)).toBe(true);
      await truncate(m.path('dir/data.bin'), 1000);
      expect((await readFile(m.path('dir/data.bin'))).equals(data.subarray(0, 1000))).toBe(true);
      await link(m.path('dir/sub/hello.txt'), m.path('hard'));
      await symlink('dir/sub/hello.txt', m.path('soft'));
      expect(await readlink(m.path('soft'))).toBe('dir/sub/hello.txt');
      await chmod(m.path('hard'), 0o600);
      await utimes(m.path('hard'), 1_000_000, 1_000_000);
      const st = await stat(m.path('dir/sub/hello.txt'));
      expect({ mode: st.mode & 0o777, nlink: st.nlink, mtimeMs: st.mtimeMs }).toEqual({ mode: 0o600, nlink: 2, mtimeMs: 1e9 });
      if (findExecutable('python3')) {
        // Node has no xattr calls; python3 makes the same system calls setfattr would.
        const script = [
          'import os, sys',
          'p = sys.argv[1]',
          "os.setxattr(p, 'user.origin', b'acl')",
          "print(os.getxattr(p, 'user.origin').decode(), os.listxattr(p))",
          "os.removexattr(p, 'user.origin')",
          'print(os.listxattr(p))',
        ].join('\n');
        const xattrs = await runOk('python3', ['-c', script, m.path('hard')]);
        expect(xattrs).toBe("acl ['user.origin']\n[]\n");
      } else {
        console.warn('[e2e] python3 is missing: xattrs under an ACL user are not checked');
      }
      expect((await statfs(m.dir)).bsize).toBeGreaterThan(0);
      expect(await runOk('df', [m.dir])).toContain(m.dir);
      expect((await readdir(m.dir)).sort()).toEqual(['dir', 'hard', 'soft']);
      await runOk('rm', ['-r', m.path('dir'), m.path('soft')]);
      expect(await readdir(m.dir)).toEqual(['hard']);
      expect(m.stdout() + m.stderr()).not.toContain(user.password);
    }
    // Opened again, by the same user: the file is there.
    await using again = await mountRedisfs({ redis: { url: user.url }, prefix });
    expect(await readFile(again.path('hard'), 'utf8')).toBe('hello\nagain\n');
    // The only thing Redis refused is CONFIG GET maxmemory, which statfs does without.
    expect((await refusedFor(user)).filter((r) => r !== 'command config|get')).toEqual([]);
  });

  it('with read-only key patterns (%R~), mounts --read-only and reads, and cannot write', async () => {
    const prefix = uniquePrefix('acl-ro');
    {
      await using m = await mountRedisfs({ redis, prefix });
      await mkdir(m.path('docs'));
      await writeFile(m.path('docs/notes.txt'), 'read me\n');
    }
    const user = await createFsUser(prefix);
    // The same line, but its key patterns (`~{skx}* ~skx:b:*`) grant reading only, as the README says.
    const readOnlyPatterns = documentedAclLine()
      .filter((word) => word.startsWith('~'))
      .map((word) => `%R${word.replaceAll('skx', prefix)}`);
    expect(readOnlyPatterns).toEqual([`%R~{${prefix}}*`, `%R~${prefix}:b:*`]);
    await admin.sendCommand(['ACL', 'SETUSER', user.name, 'resetkeys', ...readOnlyPatterns]);
    await using m = await mountRedisfs({ redis: { url: user.url }, prefix, readOnly: true });
    expect(await readFile(m.path('docs/notes.txt'), 'utf8')).toBe('read me\n');
    expect((await stat(m.path('docs'))).isDirectory()).toBe(true);
    expect(await readdir(m.path('docs'))).toEqual(['notes.txt']);
    await expect(writeFile(m.path('docs/new'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    expect((await refusedFor(user)).filter((r) => r !== 'command config|get')).toEqual([]);
  });

  it('cannot mount or read another filesystem', async () => {
    const mine = uniquePrefix('acl-mine');
    // Its name starts with the user's own prefix: the patterns must still keep it out.
    const other = `${mine}-other`;
    const user = await createFsUser(mine);
    {
      await using o = await mountRedisfs({ redis, prefix: other });
      await writeFile(o.path('secret'), 'not for this user\n'.repeat(5000));
    }
    const otherKeys = await keysContaining(admin, other);
    const fresh = `${mine}-new`;

    for (const [prefix, flags] of [[other, []], [other, ['--read-only']], [fresh, []]] as const) {
      await using dir = await tempDir('acl-mnt');
      // Disposed first: should the mount wrongly happen, it goes before the dir is removed.
      await using _unmount = { [Symbol.asyncDispose]: () => forceUnmount(dir.path) };
      const args = ['--url', user.url, '--prefix', prefix, '--mount', dir.path, ...flags];
      const result = await run(process.execPath, [requireBuilt(MOUNT_CLI), ...args], { timeoutMs: 20_000 });
      expect({ prefix, flags, code: result.code, stderr: result.stderr }).toMatchObject({
        code: 1,
        stderr: expect.stringMatching(/NOPERM|permission/i),
      });
      expect(result.stdout + result.stderr).not.toContain(user.password);
      expect(await isMounted(dir.path)).toBe(false);
    }
    expect(await keysContaining(admin, other)).toEqual(otherKeys);
    expect(await keysContaining(admin, fresh)).toEqual([]);

    const raw = createClient({ url: user.url });
    raw.on('error', () => {});
    await raw.connect();
    await using _raw = { [Symbol.asyncDispose]: () => raw.close() };
    const otherKeysOf = keysFor(other);
    const block = otherKeys.find((k) => parseBlockKey(otherKeysOf, k));
    expect(block).toBeDefined();
    const outcome = (p: Promise<unknown>) =>
      p.then(
        () => 'allowed',
        (err: Error) => err.message.split(' ')[0],
      );
    expect({
      'HGETALL superblock': await outcome(raw.hGetAll(otherKeysOf.superblock)),
      'HGETALL root inode': await outcome(raw.hGetAll(otherKeysOf.inodes(ROOT_INO))),
      'GET a block': await outcome(raw.get(block!)),
      'GET the block counter': await outcome(raw.get(otherKeysOf.blockCounter)),
      'HGETALL reference counts': await outcome(raw.hGetAll(otherKeysOf.refcounts)),
      'HSET an inode': await outcome(raw.hSet(otherKeysOf.inodes(ROOT_INO), String(ROOT_INO), 'x')),
      'UNLINK a block': await outcome(raw.unlink(block!)),
      'SCAN (lists every key name)': await outcome(raw.scan('0')),
      'KEYS': await outcome(raw.keys('*')),
    }).toEqual({
      'HGETALL superblock': 'NOPERM',
      'HGETALL root inode': 'NOPERM',
      'GET a block': 'NOPERM',
      'GET the block counter': 'NOPERM',
      'HGETALL reference counts': 'NOPERM',
      'HSET an inode': 'NOPERM',
      'UNLINK a block': 'NOPERM',
      'SCAN (lists every key name)': 'NOPERM',
      'KEYS': 'NOPERM',
    });
    // Nor from inside a script declared on its own keys.
    await expect(
      raw.eval("return redis.call('HGETALL', ARGV[1])", { keys: [keysFor(mine).superblock], arguments: [otherKeysOf.superblock] }),
    ).rejects.toThrow(/can't access|NOPERM/);
    expect(await keysContaining(admin, other)).toEqual(otherKeys);
  });

  it('keeps writing while an administrator snapshots its filesystem, and reads the snapshot', async () => {
    // README: "The same patterns cover the snapshots of skx (a mount's writes during a snapshot
    // copy keys into it, and blocks are shared), so this user can also read and change them."
    const prefix = uniquePrefix('acl-snap');
    const to = `${prefix}@snap`;
    const src = keysFor(prefix);
    const user = await createFsUser(prefix);
    await makeSnapshotSource(user.url, prefix);
    await using m = await mountRedisfs({ redis: { url: user.url }, prefix });
    const before = await readWorkFiles(m.dir);
    expect(before['over/o0']).toBe('original 0\n');

    const snapshot = spawn(process.execPath, [requireBuilt(SNAPSHOT_CLI), '--url', redis.url, '--from', prefix, '--to', to], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    disposeWhenTestEnds({ [Symbol.asyncDispose]: async () => void (await stopChild(snapshot, 'SIGKILL')) });
    const [out, err] = [new OutputTail().follow(snapshot.stdout), new OutputTail().follow(snapshot.stderr)];
    const ended = exited(snapshot);
    // Its point in time: `MP snap` appears (packages/schema/README.md); every write from here on is after it.
    const id = await waitFor(() => admin.hGet(src.snapshot, 'id'), {
      timeoutMs: 30_000,
      intervalMs: 1,
      what: `the snapshot of ${prefix} to start`,
      bail: () => (isRunning(snapshot) ? undefined : new Error(`redisfs-snapshot exited (${snapshot.exitCode}) before it was seen: ${err}`)),
    });

    // The user's mount changes files until the copy ends: each change first copies the keys it
    // changes into `to`, as this user. A write counts as during the copy when, once it returned,
    // the same snapshot still runs and the writers' preserved keys (`MP snap:done`) are there.
    const failed: string[] = [];
    let during = 0;
    for (let i = 0; isRunning(snapshot) && i < WORK_FILES * 4; i++) {
      const k = i >> 2;
      try {
        if (i % 4 === 0) await writeFile(m.path(`over/o${k}`), `rewritten ${k}\n`);
        else if (i % 4 === 1) await writeFile(m.path(`new/c${k}`), `created ${k}\n`);
        else if (i % 4 === 2) await rename(m.path(`ren/r${k}`), m.path(`ren/r${k}.moved`));
        else await rm(m.path(`gone/g${k}`));
      } catch (e) {
        failed.push(`change ${i}: ${(e as Error).message}`);
      }
      const preserved = await admin.sCard(src.snapshotDone);
      if (preserved > 0 && (await admin.hGet(src.snapshot, 'id')) === id) during++;
    }
    expect(await ended, err.toString()).toEqual({ code: 0, signal: null });
    expect(out.toString()).toContain(to);
    console.log(`[e2e] changes made by the ACL user's mount while the snapshot copied: ${during}`);
    expect(failed).toEqual([]);
    expect(during, 'no change of the mount landed while the snapshot was copying').toBeGreaterThan(0);
    expect(m.stderr()).not.toMatch(/NOPERM/);
    // The only thing Redis refused is CONFIG GET maxmemory, which statfs does without.
    expect((await refusedFor(user)).filter((r) => r !== 'command config|get')).toEqual([]);

    // The snapshot holds the files as they were when it began, and the user mounts and reads it.
    await using snap = await mountRedisfs({ redis: { url: user.url }, prefix: to, readOnly: true });
    expect(await readWorkFiles(snap.dir)).toEqual(before);
    expect((await readdir(snap.path('bulk'))).length).toBe(BULK_FILES);
    expect(await readFile(snap.path('bulk', `b${BULK_FILES - 1}`), 'utf8')).toBe(`bulk ${BULK_FILES - 1}\n`);
    expect(await readFile(m.path('over/o0'), 'utf8')).toBe('rewritten 0\n'); // while the source moved on
    expect((await refusedFor(user)).filter((r) => r !== 'command config|get')).toEqual([]);
  });

  it('its password shows neither in what the mount prints nor in ps', async () => {
    const prefix = uniquePrefix('acl-ps');
    const user = await createFsUser(prefix);
    await using work = await tempDir('acl-ps');
    const dir = work.join('mnt');
    await mkdir(dir);
    const logFile = work.join('redisfs.log');
    // --daemon: the long-running process gets the URL through its environment, not its argv.
    const daemon = { pid: 0 };
    const release = async () => {
      await forceUnmount(dir);
      if (daemon.pid && isAlive(daemon.pid)) process.kill(daemon.pid, 'SIGKILL');
    };
    const cleanup = { [Symbol.asyncDispose]: release };
    disposeWhenTestEnds(cleanup);
    await using _daemon = cleanup;

    const started = await run(process.execPath, [
      requireBuilt(MOUNT_CLI), '--url', user.url, '--prefix', prefix, '--mount', dir, '--daemon', '--log-file', logFile,
    ]);
    expect(started).toMatchObject({ code: 0, stdout: expect.stringMatching(/\(pid \d+\)/) });
    daemon.pid = Number(/\(pid (\d+)\)/.exec(started.stdout)![1]);
    await writeFile(join(dir, 'file'), 'written through the daemon\n');
    expect(await readFile(join(dir, 'file'), 'utf8')).toBe('written through the daemon\n');

    const ps = await runOk('ps', ['-eo', 'pid,args']);
    expect(ps).toMatch(new RegExp(`^\\s*${daemon.pid}\\s.*--mount`, 'm'));
    expect(ps).not.toContain(user.password);
    expect(readFileSync(`/proc/${daemon.pid}/cmdline`, 'utf8')).not.toContain(user.password);

    await runOk(findFusermount() ?? 'fusermount', ['-u', dir]);
    await waitFor(() => !isAlive(daemon.pid), { timeoutMs: 10_000, what: `the daemon (pid ${daemon.pid}) to exit after the unmount` });
    expect(started.stdout + started.stderr + readFileSync(logFile, 'utf8')).not.toContain(user.password);
  });
});

/** Files the copy of a snapshot chews on, ~1 key each (its block map; inodes share buckets of 64): the copier takes ~200 keys a batch. */
const BULK_FILES = 12_000;
/** Files of each kind the mount changes while the snapshot copies (overwritten, renamed, removed). */
const WORK_FILES = 250;
const WORK_DIRS = ['over', 'new', 'ren', 'gone'];

/**
 * Filesystem `prefix` with bulk/b0 … and over/o0, ren/r0, gone/g0 … (and an empty new/), written
 * through the store as the ACL user (much faster than through a mount).
 */
async function makeSnapshotSource(url: string, prefix: string): Promise<void> {
  const owner = { uid: 0, gid: 0 };
  const store = await openStore({ url, prefix });
  try {
    const make = async (dir: string, count: number, name: (i: number) => string, content: (i: number) => string) => {
      const parent = await store.mkdir(store.rootIno, dir, 0o755, owner);
      for (let i = 0; i < count; i += 200) {
        await Promise.all(
          Array.from({ length: Math.min(200, count - i) }, async (_, j) => {
            const f = await store.mknod(parent.ino, name(i + j), 0o644, owner);
            await store.write(f.ino, 0, Buffer.from(content(i + j)));
          }),
        );
      }
    };
    await make('bulk', BULK_FILES, (i) => `b${i}`, (i) => `bulk ${i}\n`);
    await make('over', WORK_FILES, (i) => `o${i}`, (i) => `original ${i}\n`);
    await make('ren', WORK_FILES, (i) => `r${i}`, (i) => `to rename ${i}\n`);
    await make('gone', WORK_FILES, (i) => `g${i}`, (i) => `to remove ${i}\n`);
    await make('new', 0, String, String);
  } finally {
    await store.close();
  }
}

/** path → content of every file in the directories the test changes. */
async function readWorkFiles(root: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const dir of WORK_DIRS) {
    for (const name of (await readdir(join(root, dir))).sort()) files[`${dir}/${name}`] = await readFile(join(root, dir, name), 'utf8');
  }
  return files;
}

/** Whether `pid` runs (a zombie, exited and waiting to be reaped, does not count). */
function isAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
