/**
 * The private redis-server as a per-user service, with real redis-server and keeper processes in
 * temp data directories: started on demand, shared, one per directory however many commands ask
 * at once, kept while a client is connected, stopped when idle (with its data saved), and by
 * stopPrivateRedis only when nobody uses it.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { disposeWhenTestEnds, requireRedisTools, tempDir, waitFor } from '@redisfs/testing';
import { UsageError } from './errors.js';
import { isAlive } from './private-redis-layout.js';
import { RespConnection } from './private-redis-resp.js';
import { ensurePrivateRedis, privateRedisStatus, stopPrivateRedis, type PrivateRedisStatus } from './private-redis.js';

const ready = requireRedisTools();

/** A temp data directory whose keeper and server are stopped (SIGTERM, then SIGKILL) when the test ends. */
async function dataDirForTest(): Promise<{ dataDir: string } & AsyncDisposable> {
  const dir = await tempDir('private-redis');
  const dataDir = dir.join('redis');
  let disposed = false;
  const resource = {
    dataDir,
    async [Symbol.asyncDispose]() {
      if (disposed) return;
      disposed = true;
      const pids = await pidsOf(dataDir);
      for (const pid of pids) kill(pid, 'SIGTERM');
      await waitFor(() => pids.every((pid) => !isAlive(pid)), { timeoutMs: 20_000, what: `the processes of ${dataDir} to exit` }).catch(() => {
        for (const pid of pids) kill(pid, 'SIGKILL');
      });
      await dir.remove();
    },
  };
  disposeWhenTestEnds(resource);
  return resource;
}

/** The keeper and redis-server pids of `dataDir`, from their pid files and from /proc (whatever is left). */
async function pidsOf(dataDir: string): Promise<number[]> {
  const pids = new Set<number>();
  for (const file of ['keeper.pid', 'redis.pid']) {
    const pid = Number((await readFile(`${dataDir}/${file}`, 'utf8').catch(() => '')).trim());
    if (pid > 0) pids.add(pid);
  }
  for (const pid of await serverPidsOn(dataDir)) pids.add(pid);
  return [...pids];
}

/** redis-server processes working in `dataDir` (redis-server changes into its --dir, and rewrites its command line). */
async function serverPidsOn(dataDir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '');
    if (comm.trim() !== 'redis-server') continue;
    if ((await readlink(`/proc/${entry}/cwd`).catch(() => '')) === dataDir) pids.push(Number(entry));
  }
  return pids;
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

async function command(socket: string, args: string[]): Promise<unknown> {
  const conn = await RespConnection.open(socket);
  try {
    return await conn.command(args, 5_000);
  } finally {
    conn.close();
  }
}

function running(status: PrivateRedisStatus): Extract<PrivateRedisStatus, { running: true }> {
  if (!status.running) throw new Error('the private redis-server is not running');
  return status;
}

const stopped = async (dataDir: string) => {
  const status = await privateRedisStatus({ dataDir });
  return !status.running && status.keeper === undefined;
};

// Each test starts keeper processes (through tsx, from source): slow on a busy machine.
describe.skipIf(!ready)('the private redis-server', { timeout: 60_000 }, () => {
  it('is started on demand, shared, and counts a held lease as a client', async () => {
    await using t = await dataDirForTest();
    const first = await ensurePrivateRedis({ dataDir: t.dataDir, idleSeconds: 0 });
    expect(first.started).toBe(true);
    expect(first.socket).toBe(`${t.dataDir}/redis.sock`);
    expect(await command(first.socket, ['SET', 'kept', 'yes'])).toBe('OK');
    first.release();

    await using second = await ensurePrivateRedis({ dataDir: t.dataDir, idleSeconds: 0 });
    expect(second.started).toBe(false);
    expect(second.serverPid).toBe(first.serverPid);
    expect(await command(second.socket, ['GET', 'kept'])).toBe('yes');
    const status = running(await privateRedisStatus({ dataDir: t.dataDir }));
    expect(status).toMatchObject({ serverPid: first.serverPid, aofEnabled: true, aofLastWriteStatus: 'ok', clients: 1 });
    expect(status.keeper).toMatchObject({ state: 'running', leases: 1, idleSeconds: 0, adopted: false });
  });

  it('is started once when two commands ask at the same time', async () => {
    await using t = await dataDirForTest();
    const both = await Promise.all([1, 2].map(() => ensurePrivateRedis({ dataDir: t.dataDir, idleSeconds: 0 })));
    for (const held of both) held.release();
    expect(both[0]?.serverPid).toBeGreaterThan(0);
    expect(both[1]?.serverPid).toBe(both[0]?.serverPid);
    expect(both.filter((held) => held.started)).toHaveLength(1);
    expect(await serverPidsOn(t.dataDir)).toEqual([both[0]?.serverPid]);
  });

  it('stops once idle, with its data saved, and starts again on demand', async () => {
    await using t = await dataDirForTest();
    const held = await ensurePrivateRedis({ dataDir: t.dataDir, idleSeconds: 1 });
    await command(held.socket, ['SET', 'kept', 'across restarts']);
    held.release();
    await waitFor(() => stopped(t.dataDir), { timeoutMs: 20_000, what: 'the idle server to stop' });
    expect(isAlive(held.serverPid)).toBe(false);

    await using again = await ensurePrivateRedis({ dataDir: t.dataDir, idleSeconds: 0 });
    expect(again.started).toBe(true);
    expect(await command(again.socket, ['GET', 'kept'])).toBe('across restarts');
  });

  it('is not stopped for idleness while a client is connected', async () => {
    await using t = await dataDirForTest();
    const held = await ensurePrivateRedis({ dataDir: t.dataDir, idleSeconds: 1 });
    const client = await RespConnection.open(held.socket);
    held.release();
    try {
      // The keeper has checked the clients well past the idle time since the lease went.
      const since = Date.now();
      const status = await waitFor(
        async () => {
          const s = await privateRedisStatus({ dataDir: t.dataDir });
          return s.running && (s.keeper?.checkedAt ?? 0) > since + 2_500 ? s : undefined;
        },
        { timeoutMs: 20_000, what: 'the keeper to check the clients past the idle time' },
      );
      expect(status).toMatchObject({ running: true, clients: 1, serverPid: held.serverPid });
      expect(status.keeper?.idleSince).toBeNull();
    } finally {
      client.close();
    }
    await waitFor(() => stopped(t.dataDir), { timeoutMs: 20_000, what: 'the server to stop once its client left' });
  });

  it('refuses to stop while a client is connected, and stops once it has left', async () => {
    await using t = await dataDirForTest();
    const held = await ensurePrivateRedis({ dataDir: t.dataDir, idleSeconds: 0 });
    const client = await RespConnection.open(held.socket);
    const clients = async () => running(await privateRedisStatus({ dataDir: t.dataDir })).clients;
    try {
      // The keeper's PING probes while it started may still be listed for a moment.
      await waitFor(async () => (await clients()) === 2, { timeoutMs: 5_000, what: 'the client and the lease, only' });
      expect(await stopPrivateRedis({ dataDir: t.dataDir })).toEqual({ outcome: 'refused', clients: 2 });
      held.release();
      await waitFor(async () => running(await privateRedisStatus({ dataDir: t.dataDir })).keeper?.leases === 0, {
        timeoutMs: 5_000,
        what: 'the keeper to see the lease released',
      });
      expect(await stopPrivateRedis({ dataDir: t.dataDir })).toEqual({ outcome: 'refused', clients: 1 });
    } finally {
      client.close();
    }
    await waitFor(async () => (await clients()) === 0, { timeoutMs: 5_000, what: 'redis-server to see its client gone' });
    expect(await stopPrivateRedis({ dataDir: t.dataDir })).toEqual({ outcome: 'stopped' });
    expect(isAlive(held.serverPid)).toBe(false);
    expect(await stopped(t.dataDir)).toBe(true);
    expect(await stopPrivateRedis({ dataDir: t.dataDir })).toEqual({ outcome: 'not-running' });
  });

  it('adopts a server whose keeper died instead of starting a second one', async () => {
    await using t = await dataDirForTest();
    const first = await ensurePrivateRedis({ dataDir: t.dataDir, idleSeconds: 0 });
    first.release();
    const keeperPid = running(await privateRedisStatus({ dataDir: t.dataDir })).keeper?.keeperPid ?? 0;
    process.kill(keeperPid, 'SIGKILL');
    await waitFor(async () => running(await privateRedisStatus({ dataDir: t.dataDir })).keeper === undefined, {
      timeoutMs: 10_000,
      what: 'the keeper to be gone',
    });

    const again = await ensurePrivateRedis({ dataDir: t.dataDir, idleSeconds: 0 });
    again.release();
    expect(again).toMatchObject({ started: false, serverPid: first.serverPid });
    expect(running(await privateRedisStatus({ dataDir: t.dataDir })).keeper).toMatchObject({ adopted: true, state: 'running' });
    expect(await serverPidsOn(t.dataDir)).toEqual([first.serverPid]);
    expect(await stopPrivateRedis({ dataDir: t.dataDir })).toEqual({ outcome: 'stopped' });
    expect(await stopped(t.dataDir)).toBe(true);
  });

  it('says what to install when there is no redis-server, and refuses a socket path too long', async () => {
    await using t = await dataDirForTest();
    await expect(ensurePrivateRedis({ dataDir: t.dataDir, env: { PATH: '/nonexistent' } })).rejects.toThrow(UsageError);
    await expect(ensurePrivateRedis({ dataDir: t.dataDir, env: { PATH: '/nonexistent' } })).rejects.toThrow(/install it/);
    await expect(ensurePrivateRedis({ dataDir: `${t.dataDir}/${'x'.repeat(120)}` })).rejects.toThrow(/too long for a unix socket/);
  });
});
