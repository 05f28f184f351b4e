/**
 * `redisfs-snapshot`, run as its own process, within a family (layout 2): `--from F --to F@label`
 * snapshots F; `restore --from F@label --to F --force` rolls F back and `--to F@other` makes a
 * writable clone, each byte for byte and independent of its source; a copy into another family
 * is refused; an existing target is only replaced with --force. A snapshot copies metadata
 * only: the family's data blocks are shared, and deleting the snapshot frees only what it alone
 * referenced.
 */
import { randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { createClient } from '@redis/client';
import { keysFor, parseBlockKey, parseInodeKey } from '@redisfs/schema';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  SNAPSHOT_CLI,
  describeTree,
  describeWithRedis,
  diffTrees,
  makeSourceTree,
  mountRedisfs,
  requireBuilt,
  run,
  runOk,
  tempDir,
  uniquePrefix,
  waitFor,
  type RunResult,
} from './helpers/index.js';

type Client = ReturnType<typeof createClient>;

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Every key on the server whose name contains `text` (a prefix: no glob characters). */
async function keysContaining(client: Client, text: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: `*${text}*`, COUNT: 1000 })) keys.push(...batch);
  return keys.sort();
}

/** The data block keys of `family`'s family, sorted. */
async function blockKeys(client: Client, family: string): Promise<string[]> {
  const layout = keysFor(family);
  const keys: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: layout.blockPattern, COUNT: 1000 })) {
    keys.push(...batch.filter((key) => parseBlockKey(layout, key) !== undefined));
  }
  return keys.sort();
}

/** The block keys that the block maps of filesystem `prefix` (its files) reference, sorted. */
async function blocksReferencedBy(client: Client, prefix: string): Promise<string[]> {
  const layout = keysFor(prefix);
  const maps: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: layout.metaPattern, COUNT: 1000 })) {
    maps.push(...batch.filter((key) => parseInodeKey(layout, key)?.kind === 'map'));
  }
  const ids = new Set<string>();
  for (const map of maps) for (const id of await client.zRange(map, 0, -1)) ids.add(id);
  return [...ids].map((id) => layout.block(id)).sort();
}

/**
 * The exit code of a copy into another family. The command line alone shows the mistake, so
 * redisfs-snapshot refuses it as a usage error (2) before it connects; the store refuses it too
 * (EINVAL, which the CLI would report with 1), for callers of the library.
 */
const EXIT_OUTSIDE_FAMILY = 2;

/**
 * A copy into another family, refused: exit {@link EXIT_OUTSIDE_FAMILY} and one line (not a stack trace) that says how to
 * name the target, `<family of --from>@<label>`.
 */
function expectRefusedOutsideFamily(result: RunResult, family: string, what: string): void {
  expect({ what, code: result.code, lines: result.stderr.trim().split('\n').length }).toEqual({ what, code: EXIT_OUTSIDE_FAMILY, lines: 1 });
  expect(result.stderr).toContain(`${family}@<label>`);
  expect(result.stderr).not.toMatch(/^\s+at /m);
}

await describeWithRedis('redisfs-snapshot', { fuse: true }, (redis) => {
  /** Looks at the keys (never changes them). */
  let client: Client;
  beforeAll(async () => {
    client = createClient({ url: redis.url });
    client.on('error', () => {});
    await client.connect();
  });
  afterAll(async () => {
    await client?.close();
  });

  const snapshot = (...args: string[]): Promise<RunResult> =>
    run(process.execPath, [requireBuilt(SNAPSHOT_CLI), '--url', redis.url, ...args], { timeoutMs: 60_000 });

  it('refuses a copy into another family; restores and clones within the family byte for byte, replacing only with --force', async () => {
    const family = uniquePrefix('snap-from');
    const [snap, clone] = [`${family}@a`, `${family}@work`];
    const other = uniquePrefix('snap-other');
    await using src = await tempDir('src');
    await makeSourceTree(src.path);
    const want = await describeTree(src.path);
    {
      await using mnt = await mountRedisfs({ redis, prefix: family });
      await runOk('cp', ['-a', `${src.path}/.`, mnt.path('tree')]);
    }

    // Another family cannot share this family's blocks: refused, and nothing is written there.
    expectRefusedOutsideFamily(await snapshot('--from', family, '--to', other), family, 'snapshot into another family');
    expectRefusedOutsideFamily(await snapshot('--from', family, '--to', `${other}@a`), family, 'snapshot into a member of another family');

    const taken = await snapshot('--from', family, '--to', snap);
    expect(taken, taken.stderr).toMatchObject({ code: 0 });
    expectRefusedOutsideFamily(await snapshot('restore', '--from', snap, '--to', other), family, 'restore into another family');
    expect(await keysContaining(client, other)).toEqual([]);

    // The snapshot (read-only) and a clone of it (an ordinary, writable filesystem) hold the tree.
    {
      await using copy = await mountRedisfs({ redis, prefix: snap });
      expect(await diffTrees(src.path, copy.path('tree'))).toMatchObject({ code: 0, stdout: '' });
      expect(await describeTree(copy.path('tree'))).toEqual(want);
    }
    const cloned = await snapshot('restore', '--from', snap, '--to', clone);
    expect(cloned, cloned.stderr).toMatchObject({ code: 0 });
    {
      await using copy = await mountRedisfs({ redis, prefix: clone });
      expect(await diffTrees(src.path, copy.path('tree'))).toMatchObject({ code: 0, stdout: '' });
      expect(await describeTree(copy.path('tree'))).toEqual(want);
      // The clone is independent: change it, and the original and the snapshot stay as they were.
      await writeFile(copy.path('tree/README.txt'), 'changed in the clone\n');
      await writeFile(copy.path('only-in-clone'), 'x');
    }
    for (const prefix of [family, snap]) {
      await using original = await mountRedisfs({ redis, prefix });
      expect(await describeTree(original.path('tree'))).toEqual(want);
      expect(await readdir(original.dir)).toEqual(['tree']);
    }

    // An existing target is replaced only with --force.
    for (const args of [['--from', family, '--to', snap], ['restore', '--from', snap, '--to', clone]]) {
      const again = await snapshot(...args);
      expect(again.code, args.join(' ')).not.toBe(0);
      // The flag as the user types it, not the API's option name.
      expect(again.stderr).toMatch(new RegExp(`prefix '${escapeRegExp(args.at(-1)!)}' already holds keys .*: delete it first, or use --force to replace it$`, 'm'));
      expect(again.stderr).not.toMatch(/force: true/);
      expect(again.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
    }
    {
      await using copy = await mountRedisfs({ redis, prefix: clone });
      expect(await readFile(copy.path('tree/README.txt'), 'utf8')).toBe('changed in the clone\n');
    }
    const forced = await snapshot('restore', '--from', snap, '--to', clone, '--force');
    expect(forced, forced.stderr).toMatchObject({ code: 0 });
    {
      await using copy = await mountRedisfs({ redis, prefix: clone });
      expect(await readdir(copy.dir)).toEqual(['tree']);
      expect(await diffTrees(src.path, copy.path('tree'))).toMatchObject({ code: 0, stdout: '' });
      expect(await describeTree(copy.path('tree'))).toEqual(want);
    }

    // Rolling the filesystem itself back to the snapshot, after changing it.
    {
      await using mnt = await mountRedisfs({ redis, prefix: family });
      await writeFile(mnt.path('tree/big.bin'), 'overwritten after the snapshot\n');
      await runOk('rm', ['-r', mnt.path('tree/a')]);
    }
    const rolledBack = await snapshot('restore', '--from', snap, '--to', family, '--force');
    expect(rolledBack, rolledBack.stderr).toMatchObject({ code: 0 });
    await using mnt = await mountRedisfs({ redis, prefix: family });
    expect(await readdir(mnt.dir)).toEqual(['tree']);
    expect(await diffTrees(src.path, mnt.path('tree'))).toMatchObject({ code: 0, stdout: '' });
    expect(await describeTree(mnt.path('tree'))).toEqual(want);
  });

  it('manages snapshots: list, mount read-only (or --read-write), restore into a live prefix, delete', async () => {
    const live = uniquePrefix('managed');
    const monday = `${live}@monday`;
    {
      await using mnt = await mountRedisfs({ redis, prefix: live });
      await writeFile(mnt.path('notes.txt'), 'monday\n');
    }
    const taken = await snapshot('--from', live, '--to', monday);
    expect(taken, taken.stderr).toMatchObject({ code: 0 });
    expect(taken.stdout).toMatch(new RegExp(`snapshot of '${escapeRegExp(live)}' as '${escapeRegExp(monday)}' at \\d{4}-`));

    // Listed with its source, time, size and inode count.
    const listed = await snapshot('list', '--of', live);
    expect(listed, listed.stderr).toMatchObject({ code: 0 });
    const lines = listed.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+SNAPSHOT TIME\s+SIZE\s+INODES\s+SNAPSHOT OF$/);
    expect(lines.slice(1)).toHaveLength(1);
    expect(lines[1]!.split(/\s+/)).toEqual([monday, expect.stringMatching(/^\d{4}-\d\d-\d\dT/), '7', '2', live]);

    // Mounted directly: read-only unless asked otherwise.
    {
      await using snap = await mountRedisfs({ redis, prefix: monday });
      expect(await readFile(snap.path('notes.txt'), 'utf8')).toBe('monday\n');
      await expect(writeFile(snap.path('notes.txt'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
      expect(snap.stderr()).toMatch(/snapshot of .* opened read-only \(mount it with --read-write to change it\)/);
      expect(snap.stderr()).not.toMatch(/writeSnapshot/);
    }

    // Tuesday's change, then restore Monday into the live prefix (unmounted).
    {
      await using mnt = await mountRedisfs({ redis, prefix: live });
      await writeFile(mnt.path('notes.txt'), 'tuesday, with a mistake\n');
    }
    const refused = await snapshot('restore', '--from', monday, '--to', live);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/--force/);
    const restored = await snapshot('restore', '--from', monday, '--to', live, '--force');
    expect(restored, restored.stderr).toMatchObject({ code: 0 });
    {
      await using mnt = await mountRedisfs({ redis, prefix: live });
      expect(await readFile(mnt.path('notes.txt'), 'utf8')).toBe('monday\n');
      await writeFile(mnt.path('after-restore'), 'writable'); // an ordinary filesystem again
    }

    // delete removes a snapshot; a live filesystem only with --force.
    const refusedLive = await snapshot('delete', '--prefix', live);
    expect(refusedLive.code).not.toBe(0);
    expect(refusedLive.stderr).toMatch(/is a filesystem, not a snapshot: unmount it and use --force to delete it$/m);
    expect(refusedLive.stderr).not.toMatch(/onlySnapshot/);
    const deleted = await snapshot('delete', '--prefix', monday);
    expect(deleted, deleted.stderr).toMatchObject({ code: 0 });
    expect((await snapshot('list', '--of', live)).stdout.trim().split('\n')).toHaveLength(1);
    expect((await snapshot('list')).stdout).toContain(live);
  });

  it.skipIf(process.getuid?.() !== 0)('needs no root: an ordinary user snapshots, lists, restores and deletes', async () => {
    const live = uniquePrefix('user');
    const snap = `${live}@snap`;
    {
      await using mnt = await mountRedisfs({ redis, prefix: live });
      await writeFile(mnt.path('a'), 'as root\n');
    }
    const cli = requireBuilt(SNAPSHOT_CLI);
    const asUser = (...args: string[]) =>
      run('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', process.execPath, cli, '--url', redis.url, ...args]);
    expect(await asUser('--from', live, '--to', snap)).toMatchObject({ code: 0 });
    expect((await asUser('list', '--of', live)).stdout).toContain(snap);
    expect(await asUser('restore', '--from', snap, '--to', live, '--force')).toMatchObject({ code: 0 });
    expect(await asUser('delete', '--prefix', snap)).toMatchObject({ code: 0 });
    await using mnt = await mountRedisfs({ redis, prefix: live });
    expect(await readFile(mnt.path('a'), 'utf8')).toBe('as root\n');
  });

  it('names an unknown subcommand as such (exit 2), instead of asking for --from and --to', async () => {
    const result = await snapshot('bogus');
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe(
      "redisfs-snapshot: unknown command 'bogus': the commands are list, delete, restore, and --from A --to A@label takes a snapshot (see redisfs-snapshot --help)",
    );
  });

  it('fails when the source prefix holds no filesystem', async () => {
    const none = uniquePrefix('snap-none');
    const result = await snapshot('--from', none, '--to', `${none}@to`);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`'${none}'`);
    expect(result.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
  });

  it('shares data: a snapshot adds no blocks, keeps its copy through an overwrite, and its deletion frees only what it alone held', async () => {
    const family = uniquePrefix('shared');
    const snap = `${family}@a`;
    const [original, replacement] = [randomBytes(16 * 1024 * 1024), randomBytes(16 * 1024 * 1024)];
    // Mounted read-write throughout: its collector deletes blocks nothing references any more.
    await using live = await mountRedisfs({ redis, prefix: family });
    await writeFile(live.path('data.bin'), original);
    const blockSize = Number(await client.hGet(keysFor(family).superblock, 'bsize'));
    const blocksPerFile = Math.ceil(original.length / blockSize);
    const before = await blockKeys(client, family);
    expect(before).toHaveLength(blocksPerFile);

    // A snapshot copies metadata only: not one block key more.
    const taken = await snapshot('--from', family, '--to', snap);
    expect(taken, taken.stderr).toMatchObject({ code: 0 });
    expect(await blockKeys(client, family)).toEqual(before);

    // Overwriting the file writes new blocks; the snapshot keeps the old ones.
    await writeFile(live.path('data.bin'), replacement);
    {
      await using copy = await mountRedisfs({ redis, prefix: snap, readOnly: true });
      expect((await readFile(copy.path('data.bin'))).equals(original), `${snap}: data.bin changed`).toBe(true);
    }

    // Deleting the snapshot frees the blocks only it referenced, and nothing else.
    const deleted = await snapshot('delete', '--prefix', snap);
    expect(deleted, deleted.stderr).toMatchObject({ code: 0 });
    const old = new Set(before);
    const left = await waitFor(
      async () => {
        const [stored, referenced] = await Promise.all([blockKeys(client, family), blocksReferencedBy(client, family)]);
        const stale = stored.filter((key) => old.has(key)).length;
        const same = stored.length === referenced.length && stored.every((key, i) => key === referenced[i]);
        if (!same || stale > 0 || stored.length !== blocksPerFile) {
          throw new Error(
            `${stored.length} block keys stored, ${referenced.length} referenced by ${family}'s maps ` +
              `(${blocksPerFile} expected), ${stale} of them from before the overwrite`,
          );
        }
        return stored;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `exactly the new data.bin's ${blocksPerFile} blocks to remain in ${family}'s family` },
    );
    expect(left).toHaveLength(blocksPerFile);
    // And they hold the new contents (read through a fresh mount, not this one's page cache).
    await using reader = await mountRedisfs({ redis, prefix: family, readOnly: true });
    expect((await readFile(reader.path('data.bin'))).equals(replacement), `${family}: data.bin is not the new contents`).toBe(true);
  });
});
