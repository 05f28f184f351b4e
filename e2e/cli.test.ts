/**
 * The `redisfs` command line as a user meets it: bad input is one line and exit code 2, an
 * unreachable Redis is a clear failure that leaves no mount, a password is never printed,
 * --daemon returns once mounted, and SIGTERM unmounts cleanly.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  MOUNT_CLI,
  describeWithRedis,
  forceUnmount,
  freePort,
  isAlive,
  isMounted,
  mountRedisfs,
  requireBuilt,
  run,
  tempDir,
  uniquePrefix,
  waitFor,
  type RunResult,
} from './helpers/index.js';

/** Runs `node apps/mount/dist/cli.js ...args` to completion. */
function redisfs(args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return run(process.execPath, [requireBuilt(MOUNT_CLI), ...args], { timeoutMs });
}

/** The non-empty lines of a stream. */
const lines = (text: string) => text.split('\n').filter((line) => line.trim() !== '');


await describeWithRedis('redisfs command line', { fuse: true }, (redis) => {
  describe('usage errors: exit code 2 and one line on stderr', () => {
    it('a port out of range', async () => {
      await using dir = await tempDir('mnt');
      const result = await redisfs(['--port', '99999', '--mount', dir.path]);
      expect(result.code).toBe(2);
      expect(lines(result.stderr)).toHaveLength(1);
      expect(result.stderr).toContain('--port');
    });

    it('an unknown flag', async () => {
      await using dir = await tempDir('mnt');
      const result = await redisfs(['--mount', dir.path, '--frobnicate']);
      expect(result.code).toBe(2);
      expect(lines(result.stderr)).toHaveLength(1);
      expect(result.stderr).toContain('frobnicate');
    });

    it('a mountpoint that does not exist', async () => {
      await using dir = await tempDir('mnt');
      const result = await redisfs(['--url', redis.url, '--mount', dir.join('no/such/dir')]);
      expect(result.code).toBe(2);
      expect(lines(result.stderr)).toHaveLength(1);
      expect(result.stderr).toContain(dir.join('no/such/dir'));
    });

    it('no --mount at all', async () => {
      const result = await redisfs(['--url', redis.url]);
      expect(result.code).toBe(2);
      expect(lines(result.stderr)).toHaveLength(1);
      expect(result.stderr).toMatch(/\bmount\b/);
    });

    it('a mountpoint that is not empty', async () => {
      await using dir = await tempDir('mnt');
      await writeFile(dir.join('something'), 'x');
      const result = await redisfs(['--url', redis.url, '--prefix', uniquePrefix('nonempty'), '--mount', dir.path]);
      expect(result.code).toBe(2);
      expect(lines(result.stderr)).toHaveLength(1);
      expect(await isMounted(dir.path)).toBe(false);
    });
  });

  it('a busy mountpoint (already mounted): the mount fails with exit code 1, as the README says', async () => {
    await using mnt = await mountRedisfs({ redis, prefix: uniquePrefix('busy') });
    const result = await redisfs(['--url', redis.url, '--prefix', uniquePrefix('busy2'), '--mount', mnt.dir]);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([`redisfs: mountpoint ${mnt.dir} is already a mount point (unmount it first)`]);
    // The first mount is untouched.
    await writeFile(mnt.path('still-here'), 'x');
  });

  it('a reader that closes the output early (redisfs status | head -1) ends the command quietly, exit 0, no EPIPE trace', async () => {
    const child = spawn(process.execPath, [requireBuilt(MOUNT_CLI), 'status'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // closed before the command writes its table
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('--help exits 0 and describes the flags', async () => {
    const result = await redisfs(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--mount');
    expect(result.stdout).toContain('--read-only');
  });

  it('a Redis that is down: a clear failure and no mount left', async () => {
    await using dir = await tempDir('mnt');
    const port = await freePort();
    const started = Date.now();
    const result = await redisfs(['--url', `redis://127.0.0.1:${port}`, '--prefix', uniquePrefix('down'), '--mount', dir.path]);
    try {
      expect(result.code).not.toBe(0);
      expect(result.code).not.toBeNull();
      expect(result.stderr).toMatch(/redis/i);
      expect(result.stderr).toContain(String(port));
      expect(result.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(await isMounted(dir.path)).toBe(false);
    } finally {
      await forceUnmount(dir.path);
    }
  });

  it('never prints the password of a --url', async () => {
    await using dir = await tempDir('mnt');
    const port = await freePort();
    const result = await redisfs(['--url', `redis://user:s3cret@127.0.0.1:${port}`, '--prefix', uniquePrefix('pw'), '--mount', dir.path]);
    try {
      expect(result.code).not.toBe(0);
      expect(result.stderr).not.toBe('');
      expect(result.stdout + result.stderr).not.toContain('s3cret');
    } finally {
      await forceUnmount(dir.path);
    }
  });

  it('never prints the password when the URL itself is malformed', async () => {
    await using dir = await tempDir('mnt');
    const result = await redisfs(['--url', 'redis://user:s3cret@/nohost', '--mount', dir.path]);
    expect(result.code).toBe(2);
    expect(result.stdout + result.stderr).not.toContain('s3cret');
  });

  it('SIGTERM unmounts cleanly: exit code 0 and the mount is gone without help', async () => {
    const mnt = await mountRedisfs({ redis, prefix: uniquePrefix('sigterm') });
    await writeFile(mnt.path('f'), 'x');
    const { exit, forced } = await mnt.unmount();
    expect({ exit, forced, stderr: mnt.stderr() }).toMatchObject({ exit: { code: 0, signal: null }, forced: false });
    expect(await isMounted(mnt.dir)).toBe(false);
  });

  it('--daemon returns once mounted, and SIGTERM to its pid unmounts', async () => {
    await using dir = await tempDir('mnt');
    await mkdir(dir.join('mnt'));
    const mountpoint = dir.join('mnt');
    const prefix = uniquePrefix('daemon');
    let pid: number | undefined;
    try {
      const result = await redisfs(['--url', redis.url, '--prefix', prefix, '--mount', mountpoint, '--daemon']);
      expect(result, result.stderr).toMatchObject({ code: 0 });
      // Mounted by the time the command returns: no waiting here.
      expect(await isMounted(mountpoint)).toBe(true);
      await writeFile(`${mountpoint}/hello`, 'from the daemon mount');
      expect(await readFile(`${mountpoint}/hello`, 'utf8')).toBe('from the daemon mount');

      const said = result.stdout + result.stderr;
      const printed = /\bpid\b\D{0,3}(\d+)/i.exec(said)?.[1] ?? /^\s*(\d+)\s*$/m.exec(said)?.[1];
      pid = printed ? Number(printed) : undefined;
      expect(pid, `the daemon's pid on stdout/stderr:\n${result.stdout}${result.stderr}`).toBeDefined();
      expect(isAlive(pid!)).toBe(true);
      process.kill(pid!, 'SIGTERM');
      await waitFor(async () => !(await isMounted(mountpoint)), { timeoutMs: 15_000, what: `the daemon to unmount ${mountpoint}` });
      await waitFor(() => !isAlive(pid!), { timeoutMs: 15_000, what: `daemon pid ${pid} to exit` });
    } finally {
      if (pid !== undefined && isAlive(pid)) process.kill(pid, 'SIGKILL');
      await forceUnmount(mountpoint);
    }
  });
});
