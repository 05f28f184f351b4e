/**
 * Told no Redis address while nothing answers on 127.0.0.1:6379, redisfs commands use a private,
 * persistent redis-server in the user's data directory: a per-user service that any of them starts
 * on demand (a mount, `redisfs fsck`, `redisfs-snapshot`), that all of them share, and that stops
 * only once no client has been connected for the idle time, or on `redisfs server stop` (refused
 * while mounted). The data directory is a temporary XDG_DATA_HOME, so the test touches nothing of
 * the user's; each test stops its private server at the end, also when it fails. And when
 * something answers on 6379, that is the server used: no private one is started (tested with a
 * server the test starts there when the port is free, else with the one that answers, on a
 * prefix of its own).
 */
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { createClient } from '@redis/client';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  MOUNT_CLI,
  SNAPSHOT_CLI,
  disposeWhenTestEnds,
  forceUnmount,
  isMounted,
  prerequisitesMet,
  requireBuilt,
  run,
  startLocalRedis,
  tempDir,
  uniquePrefix,
  waitFor,
  type RunResult,
} from './helpers/index.js';

const ready = await prerequisitesMet({ fuse: true });

/** Whether something listens on 127.0.0.1:6379 (then redisfs uses it, and this test cannot run). */
function defaultPortTaken(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(6379, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

const portTaken = await defaultPortTaken();
if (portTaken) console.warn('private-redis.test.ts: the private-server tests are skipped, something listens on 127.0.0.1:6379');

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A user's home for these tests: a temp XDG_DATA_HOME, the CLIs run with it (told no address),
 * mountpoints, and at the end every mount released and the private server stopped (SIGTERM to
 * its keeper and to redis-server, by their pid files), pass or fail.
 */
async function privateHome(extraEnv: NodeJS.ProcessEnv = {}) {
  const data = await tempDir('xdg');
  const dir = await tempDir('mnt');
  const dataDir = data.join('redisfs', 'redis');
  const env = { ...process.env, XDG_DATA_HOME: data.path, ...extraEnv };
  const mountpoints: string[] = [];
  const node = (cli: string, args: string[]): Promise<RunResult> => run(process.execPath, [requireBuilt(cli), ...args], { env, timeoutMs: 60_000 });
  const pidsOf = async () => {
    const pids: number[] = [];
    for (const file of ['keeper.pid', 'redis.pid']) {
      const pid = Number((await readFile(`${dataDir}/${file}`, 'utf8').catch(() => '')).trim());
      if (pid > 0) pids.push(pid);
    }
    return pids;
  };
  let released = false;
  const home = {
    dataDir,
    node,
    /** `redisfs --mount DIR --daemon [args]`: the mountpoint, the mount's pid and its line. */
    async mount(name: string, args: string[] = []) {
      const mountpoint = dir.join(name);
      await mkdir(mountpoint, { recursive: true });
      mountpoints.push(mountpoint);
      const result = await node(MOUNT_CLI, ['--mount', mountpoint, '--daemon', ...args]);
      expect(result, result.stderr).toMatchObject({ code: 0 });
      const pid = Number(/\(pid (\d+)\)/.exec(result.stdout)?.[1]);
      expect(pid).toBeGreaterThan(0);
      return { mountpoint, pid, line: result.stdout.trim() };
    },
    /** fusermount -u, then waits until the mount's process has exited (it has closed its connections). */
    async unmount(mount: { mountpoint: string; pid: number }) {
      await run('fusermount', ['-u', mount.mountpoint]);
      await waitFor(async () => !(await isMounted(mount.mountpoint)), { timeoutMs: 15_000, what: 'the unmount' });
      await waitFor(() => !isAlive(mount.pid), { timeoutMs: 15_000, what: `the mount's process ${mount.pid} to exit` });
    },
    async [Symbol.asyncDispose]() {
      if (released) return;
      released = true;
      for (const mountpoint of mountpoints) await forceUnmount(mountpoint).catch(() => undefined);
      const pids = await pidsOf();
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // gone already
        }
      }
      await waitFor(() => pids.every((pid) => !isAlive(pid)), { timeoutMs: 30_000, what: 'the private redis-server to stop' });
      await dir.remove();
      await data.remove();
    },
  };
  disposeWhenTestEnds(home);
  return home;
}

/** The exit code of `redisfs server status`: 0 running, 3 not running. */
async function serverStatus(home: Awaited<ReturnType<typeof privateHome>>): Promise<RunResult> {
  return home.node(MOUNT_CLI, ['server', 'status']);
}

describe.skipIf(!ready || portTaken)('the private Redis', () => {
  it('is a service: after the unmount, fsck, list, snapshot and restore work on it, told no address', async () => {
    await using home = await privateHome();
    const first = await home.mount('mnt');
    expect(first.line).toContain(`(pid ${first.pid}) on the private redis-server (data in ${home.dataDir})`);
    await writeFile(`${first.mountpoint}/kept`, 'monday\n');

    // While mounted: running, with the mount among its clients; `server stop` refuses.
    const status = await serverStatus(home);
    expect(status, status.stderr).toMatchObject({ code: 0 });
    expect(status.stdout).toMatch(/^private redis-server: running \(pid \d+; keeper pid \d+\)$/m);
    expect(status.stdout).toContain(`socket:      ${home.dataDir}/redis.sock`);
    expect(status.stdout).toMatch(/^persistence: AOF on, last write ok;/m);
    expect(status.stdout).toMatch(/^clients: +[1-9]\d* connected$/m);
    expect(status.stdout).toMatch(/^idle rule: +stops after 10 minutes with no client$/m);
    const refused = await home.node(MOUNT_CLI, ['server', 'stop']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^redisfs server: not stopped: \d+ clients? uses? the private redis-server \(mounts or commands\)/);
    expect((await serverStatus(home)).code).toBe(0);
    await home.unmount(first);

    // Unmounted: check, list, snapshot, change, roll back, as the README says to.
    const fsck = await home.node(MOUNT_CLI, ['fsck', '--prefix', 'skx']);
    expect(fsck, fsck.stdout + fsck.stderr).toMatchObject({ code: 0 });
    expect(fsck.stdout).toMatch(/^skx on .*redis\.sock.*: clean$/m);
    const list = await home.node(SNAPSHOT_CLI, ['list']);
    expect(list, list.stderr).toMatchObject({ code: 0 });
    expect(list.stdout).toMatch(/^skx\s/m);
    const snap = await home.node(SNAPSHOT_CLI, ['--from', 'skx', '--to', 'skx@monday']);
    expect(snap, snap.stderr).toMatchObject({ code: 0 });
    const second = await home.mount('mnt');
    await writeFile(`${second.mountpoint}/kept`, 'tuesday\n');
    await home.unmount(second);
    const restored = await home.node(SNAPSHOT_CLI, ['restore', '--from', 'skx@monday', '--to', 'skx', '--force']);
    expect(restored, restored.stderr).toMatchObject({ code: 0 });
    const third = await home.mount('mnt');
    expect(await readFile(`${third.mountpoint}/kept`, 'utf8')).toBe('monday\n');
    await home.unmount(third);

    // Nothing uses it now: `server stop` stops it; its data stays.
    const stop = await home.node(MOUNT_CLI, ['server', 'stop']);
    expect(stop, stop.stderr).toMatchObject({ code: 0 });
    expect(stop.stdout.trim()).toBe(`stopped the private redis-server (data kept in ${home.dataDir})`);
    const after = await serverStatus(home);
    expect(after.code).toBe(3);
    expect(after.stdout).toMatch(/^private redis-server: not running$/m);
    const again = await home.node(MOUNT_CLI, ['server', 'stop']);
    expect(again).toMatchObject({ code: 0, stdout: 'the private redis-server is not running\n' });
  });

  it('keeps serving a second mount when the first is unmounted', async () => {
    await using home = await privateHome();
    const first = await home.mount('one');
    const second = await home.mount('two', ['--prefix', 'other']);
    await writeFile(`${second.mountpoint}/before`, 'written before\n');
    await home.unmount(first);

    // At once, not after a 10 s "Connection timed out": a shell bounded well below that.
    const io = await run('sh', ['-c', 'echo written after > after && cat before after && ls'], {
      cwd: second.mountpoint,
      timeoutMs: 8_000,
    });
    expect(io, io.stderr).toMatchObject({ code: 0, stdout: 'written before\nwritten after\nafter\nbefore\n' });
    expect((await serverStatus(home)).code).toBe(0);
    await home.unmount(second);
  });

  it('stops once idle for REDISFS_SERVER_IDLE_SECONDS, keeps its data, and the next command starts it again', async () => {
    await using home = await privateHome({ REDISFS_SERVER_IDLE_SECONDS: '2' });
    const mount = await home.mount('mnt');
    await writeFile(`${mount.mountpoint}/kept`, 'in the private redis\n');
    const status = await serverStatus(home);
    expect(status.stdout).toMatch(/^idle rule: +stops after 2 seconds with no client$/m);
    await home.unmount(mount);
    await waitFor(async () => (await serverStatus(home)).code === 3, { timeoutMs: 30_000, what: 'the idle server to stop' });
    expect(await readFile(`${home.dataDir}/redis.log`, 'utf8')).toMatch(/stopping redis-server: no client for 2 seconds/);

    // Told nothing, redisfs-snapshot starts it again, and finds the filesystem.
    const list = await home.node(SNAPSHOT_CLI, ['list']);
    expect(list, list.stderr).toMatchObject({ code: 0 });
    expect(list.stdout).toMatch(/^skx\s/m);
    const remount = await home.mount('mnt');
    expect(await readFile(`${remount.mountpoint}/kept`, 'utf8')).toBe('in the private redis\n');
    await home.unmount(remount);
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
