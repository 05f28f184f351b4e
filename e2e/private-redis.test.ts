/**
 * Told no Redis address while nothing answers on 127.0.0.1:6379, `redisfs` starts a private,
 * persistent redis-server in the user's data directory (as the README's first command does), and
 * `redisfs-snapshot` and `redisfs fsck`, also told nothing, find that server. The data directory
 * is a temporary XDG_DATA_HOME, so the test touches nothing of the user's. And when something
 * answers on 6379, that is the server used: no private one is started (tested with a server the
 * test starts there when the port is free, else with the one that answers, on a prefix of its own).
 */
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { createClient } from '@redis/client';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  MOUNT_CLI,
  SNAPSHOT_CLI,
  forceUnmount,
  isMounted,
  requireBuilt,
  requireFuse,
  requireRedis,
  run,
  startLocalRedis,
  tempDir,
  uniquePrefix,
  waitFor,
} from './helpers/index.js';

const ready = (await requireRedis()) && requireFuse();

/** Whether something listens on 127.0.0.1:6379 (then redisfs uses it, and this test cannot run). */
function defaultPortTaken(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(6379, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

const portTaken = await defaultPortTaken();
if (portTaken) console.warn('private-redis.test.ts: the private-server test is skipped, something listens on 127.0.0.1:6379');

describe.skipIf(!ready || portTaken)('the private Redis', () => {
  it('is started by a mount told no address, persists, and is found by redisfs-snapshot and fsck', async () => {
    await using data = await tempDir('xdg');
    await using dir = await tempDir('mnt');
    const mountpoint = dir.join('mnt');
    await mkdir(mountpoint);
    const env = { ...process.env, XDG_DATA_HOME: data.path };
    const node = (cli: string, args: string[]) => run(process.execPath, [requireBuilt(cli), ...args], { env, timeoutMs: 60_000 });
    const mount = async () => {
      const result = await node(MOUNT_CLI, ['--mount', mountpoint, '--daemon']);
      expect(result, result.stderr).toMatchObject({ code: 0 });
      return Number(/\(pid (\d+)\)/.exec(result.stdout)?.[1]);
    };
    const unmount = async () => {
      await run('fusermount', ['-u', mountpoint]);
      await waitFor(async () => !(await isMounted(mountpoint)), { timeoutMs: 15_000, what: 'the unmount' });
    };
    try {
      const pid = await mount();
      expect(pid).toBeGreaterThan(0);
      await writeFile(`${mountpoint}/kept`, 'in the private redis\n');

      // The other CLIs, told nothing either, find the same server while it runs.
      const list = await node(SNAPSHOT_CLI, ['list']);
      expect(list, list.stderr).toMatchObject({ code: 0 });
      expect(list.stdout).toMatch(/^skx\s/m);
      // A snapshot is named in its filesystem's family: skx@label.
      const snap = await node(SNAPSHOT_CLI, ['--from', 'skx', '--to', 'skx@before']);
      expect(snap, snap.stderr).toMatchObject({ code: 0 });
      const fsck = await node(MOUNT_CLI, ['fsck', '--prefix', 'skx']);
      expect(fsck, fsck.stdout + fsck.stderr).toMatchObject({ code: 0 });
      await unmount();
      // The private server stops with its mount, and keeps the data for the next one.
      await waitFor(() => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }, { timeoutMs: 15_000, what: `the mount's process ${pid} to exit` });
      const stopped = await node(SNAPSHOT_CLI, ['list']);
      expect(stopped.code).not.toBe(0); // nothing answers now: a clear failure, not a hang

      await mount();
      expect(await readFile(`${mountpoint}/kept`, 'utf8')).toBe('in the private redis\n');
      expect((await node(SNAPSHOT_CLI, ['list', '--of', 'skx'])).stdout).toMatch(/^skx@before\s/m);
      await unmount();
    } finally {
      await forceUnmount(mountpoint);
    }
  });
});

describe.skipIf(!ready)('a Redis answering on 127.0.0.1:6379', () => {
  it('is what a mount told no address uses: no private server is started', async () => {
    // The port is free (CI): a server of this test answers there. Taken: the one that answers.
    await using own = portTaken ? undefined : await startLocalRedis({ pickPort: async () => 6379 });
    await using data = await tempDir('xdg');
    await using dir = await tempDir('mnt');
    const mountpoint = dir.join('mnt');
    await mkdir(mountpoint);
    const prefix = uniquePrefix('default-port');
    const env = { ...process.env, XDG_DATA_HOME: data.path };
    const node = (cli: string, args: string[]) => run(process.execPath, [requireBuilt(cli), ...args], { env, timeoutMs: 60_000 });
    const redis = createClient({ url: 'redis://127.0.0.1:6379' });
    await redis.connect();
    try {
      const mounted = await node(MOUNT_CLI, ['--mount', mountpoint, '--prefix', prefix, '--daemon']);
      expect(mounted, mounted.stderr).toMatchObject({ code: 0 });
      expect(mounted.stdout + mounted.stderr).not.toMatch(/private redis-server/);
      await writeFile(`${mountpoint}/here`, 'on the server at 6379\n');
      await run('fusermount', ['-u', mountpoint]);
      await waitFor(async () => !(await isMounted(mountpoint)), { timeoutMs: 15_000, what: 'the unmount' });
      // The filesystem is on the server at 6379, and nothing was put in the data directory.
      expect(await redis.exists(`{${prefix}}:sb`)).toBe(1);
      expect(await readdir(data.path)).toEqual([]);
      const removed = await node(SNAPSHOT_CLI, ['delete', '--prefix', prefix, '--force']);
      expect(removed, removed.stderr).toMatchObject({ code: 0 });
      expect(await redis.exists(`{${prefix}}:sb`)).toBe(0);
    } finally {
      await forceUnmount(mountpoint);
      await redis.close();
    }
  });
});
