/**
 * What a running mount tells about itself: `--metrics HOST:PORT` serves Prometheus metrics that
 * move as the filesystem is used, and `redisfs status [--json]` lists this host's mounts
 * (registered in the runtime directory, cleaned after a kill -9).
 *
 * The mounts and `redisfs status` run with XDG_RUNTIME_DIR set to this file's own temp dir, so
 * the registry they use is the test's. Other redisfs mounts on the host (other test files) may
 * still show (from /proc/self/mountinfo): the checks look at this test's mountpoints only.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  MOUNT_CLI,
  describeWithRedis,
  forceUnmount,
  freePort,
  isMounted,
  mountArgs,
  mountRedisfs,
  requireBuilt,
  run,
  stopChild,
  tempDir,
  uniquePrefix,
  type TempDir,
} from './helpers/index.js';

/** The samples of one metric in exposition text, summed over those whose labels include `labels`. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[3]);
  }
  return total;
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return res.text();
}

/** One mount as `redisfs status --json` lists it (the fields checked here). */
interface StatusEntry {
  mountpoint: string;
  state: string;
  prefix: string | null;
  server: string | null;
  pid: number | null;
  operations: number | null;
  errors: number | null;
  uptimeSeconds: number | null;
  session: string | null;
  openFiles: number | null;
}

await describeWithRedis('mount statistics', { fuse: true }, (redis) => {
  let runtime: TempDir;
  const savedXdg = process.env.XDG_RUNTIME_DIR;
  beforeAll(async () => {
    runtime = await tempDir('runtime');
    process.env.XDG_RUNTIME_DIR = runtime.path;
  });
  afterAll(async () => {
    if (savedXdg === undefined) delete process.env.XDG_RUNTIME_DIR;
    else process.env.XDG_RUNTIME_DIR = savedXdg;
    await runtime?.remove();
  });

  /** `redisfs status [args]`, which must succeed. */
  async function status(...args: string[]): Promise<{ stdout: string; stderr: string }> {
    const result = await run(process.execPath, [requireBuilt(MOUNT_CLI), 'status', ...args]);
    expect(result.code, result.stderr).toBe(0);
    return result;
  }
  async function statusJson(): Promise<StatusEntry[]> {
    return JSON.parse((await status('--json')).stdout) as StatusEntry[];
  }
  /** The registry files of this test's runtime directory. */
  const registryFiles = () => readdir(join(runtime.path, 'redisfs')).catch(() => [] as string[]);

  it('--metrics serves counters, bytes, round trips and latencies that move with use', async () => {
    const port = await freePort();
    const prefix = uniquePrefix('metrics');
    await using mnt = await mountRedisfs({ redis, prefix, extraArgs: ['--metrics', `127.0.0.1:${port}`] });
    const url = `http://127.0.0.1:${port}/metrics`;
    const before = await scrape(url);
    // Every metric of this mount carries its prefix and mountpoint.
    expect(before).toContain(`prefix="${prefix}"`);
    expect(before).toContain(`mountpoint="${mnt.dir}"`);
    expect(before).toMatch(/^process_cpu_user_seconds_total\{/m);

    const data = randomBytes(300 * 1024);
    await writeFile(mnt.path('a.bin'), data);
    await writeFile(mnt.path('b.txt'), 'hello');
    expect((await readFile(mnt.path('a.bin'))).equals(data)).toBe(true);
    await expect(stat(mnt.path('no-such-file'))).rejects.toMatchObject({ code: 'ENOENT' });

    const after = await scrape(url);
    const moved = (name: string, labels: Record<string, string> = {}) => metric(after, name, labels) - metric(before, name, labels);
    expect(moved('redisfs_fuse_operations_total', { op: 'create' })).toBe(2);
    expect(moved('redisfs_fuse_operations_total', { op: 'write' })).toBeGreaterThanOrEqual(1);
    expect(moved('redisfs_fuse_operations_total', { op: 'read' })).toBeGreaterThanOrEqual(1);
    expect(moved('redisfs_bytes_written_total')).toBe(data.length + 'hello'.length);
    expect(moved('redisfs_bytes_read_total')).toBeGreaterThanOrEqual(data.length);
    expect(moved('redisfs_redis_commands_total', { command: 'EVALSHA createOpen' })).toBeGreaterThanOrEqual(2);
    expect(moved('redisfs_fuse_operation_duration_seconds_count', { op: 'create' })).toBe(2);
    expect(moved('redisfs_fuse_operation_duration_seconds_bucket', { op: 'create', le: '+Inf' })).toBe(2);
    // The lookup of a missing name (libfuse 2 asks getattr) answered ENOENT.
    expect(moved('redisfs_fuse_errors_total', { op: 'getattr', errno: 'ENOENT' })).toBeGreaterThanOrEqual(1);
    expect(moved('redisfs_cache_misses_total', { cache: 'attr' })).toBeGreaterThanOrEqual(1);
    expect(after).toMatch(/^redisfs_background_pending\{[^}]*kind="blocks_to_delete"[^}]*\} \d+$/m);

    // The endpoint closes with the mount.
    await mnt.unmount();
    await expect(fetch(url)).rejects.toThrow();
  });

  it('a --metrics port already in use fails the mount with exit 1, naming --metrics', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    await using dir = await tempDir('mnt');
    try {
      const address = taken.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const args = mountArgs({ redis, prefix: uniquePrefix('taken'), extraArgs: ['--metrics', `127.0.0.1:${port}`] }, dir.path);
      const result = await run(process.execPath, [requireBuilt(MOUNT_CLI), ...args], { timeoutMs: 30_000 });
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toBe(`redisfs: --metrics 127.0.0.1:${port}: the port is already in use; choose another one`);
      expect(await isMounted(dir.path)).toBe(false);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('redisfs status lists the mounts, forgets an unmounted one and cleans up after a kill -9', async () => {
    const [pa, pb] = [uniquePrefix('status-a'), uniquePrefix('status-b')];
    await using a = await mountRedisfs({ redis, prefix: pa });
    await using b = await mountRedisfs({ redis, prefix: pb });
    await writeFile(a.path('f'), 'x');
    await expect(stat(a.path('missing'))).rejects.toMatchObject({ code: 'ENOENT' });

    // The human table: a header, then one row per mount with its prefix and pid.
    const table = (await status()).stdout.split('\n');
    expect(table[0]).toMatch(/^MOUNTPOINT\s+PREFIX\s+SERVER\s+PID\s+SESSION\s+UPTIME\s+OPS\s+ERRORS\s+CACHE HITS\s+OPEN\s+PENDING\s+STATE$/);
    const rowOf = (dir: string) => table.find((line) => line.startsWith(`${dir} `));
    expect(rowOf(a.dir)).toMatch(new RegExp(`^${a.dir}\\s+${pa}\\s+redis://127\\.0\\.0\\.1:${redis.port}\\s+${a.process.pid}\\s.*running$`));
    expect(rowOf(b.dir)).toMatch(new RegExp(`^${b.dir}\\s+${pb}\\s+\\S+\\s+${b.process.pid}\\s.*running$`));

    const listed = await statusJson();
    const entryA = listed.find((m) => m.mountpoint === a.dir);
    expect(entryA).toMatchObject({ prefix: pa, pid: a.process.pid, state: 'running', server: `redis://127.0.0.1:${redis.port}` });
    expect(entryA!.operations).toBeGreaterThan(0);
    expect(entryA!.errors).toBeGreaterThanOrEqual(1); // the ENOENT
    expect(listed.find((m) => m.mountpoint === b.dir)).toMatchObject({ prefix: pb, pid: b.process.pid, state: 'running' });
    // Each read-write mount has its session in Redis; a file held open counts.
    expect(entryA!.session).toMatch(/^[0-9a-f]{16}$/);
    {
      await using held = await open(a.path('f'), 'r');
      const entry = (await statusJson()).find((m) => m.mountpoint === a.dir);
      expect(entry!.openFiles).toBe(1);
      expect(entry!.session).toBe(entryA!.session);
      expect(held.fd).toBeGreaterThan(0);
    }

    // Unmounted: gone from the list and from the registry.
    const { exit } = await a.unmount();
    expect(exit.code).toBe(0);
    const ours = (list: StatusEntry[]) => list.filter((m) => m.mountpoint === a.dir || m.mountpoint === b.dir);
    expect(ours(await statusJson()).map((m) => m.prefix)).toEqual([pb]);
    expect((await registryFiles()).sort()).toEqual([`${b.process.pid}.json`, `${b.process.pid}.sock`]);

    // kill -9: the kernel still lists the mount, its process is gone.
    await stopChild(b.process, 'SIGKILL');
    const dead = (await statusJson()).find((m) => m.mountpoint === b.dir);
    expect(dead).toMatchObject({ state: 'disconnected', prefix: null, pid: null });
    // The stale entry is cleaned by that status run, without a word about it.
    expect(await registryFiles()).toEqual([]);
    await forceUnmount(b.dir);
    const final = await status();
    expect(final.stdout).not.toContain(b.dir);
    expect(final.stderr).toBe('');
    expect(`${final.stdout}${final.stderr}`).not.toMatch(/stale/i);
    expect(ours(await statusJson())).toEqual([]);
  });

  it('redisfs status with no mounts answers in one line, exit 0', async () => {
    const result = await status();
    // Other test files' mounts (on this host, not in this registry) may be listed from mountinfo.
    if ((await statusJson()).length === 0) expect(result.stdout).toBe('no redisfs mounts on this host\n');
    else expect(result.stdout.split('\n')[0]).toMatch(/^MOUNTPOINT/);
    expect(await registryFiles()).toEqual([]);
  });
});
