/**
 * `redisfs status` without FUSE: a reporter registers in a temp runtime directory and answers on
 * its control socket; stale entries (dead pid, nobody listening) are dropped; the kernel's
 * fuse.redisfs lines are read; the table is formatted.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MountedFs, MountStats } from '@redisfs/fuse';
import type { Store } from '@redisfs/store';
import { afterEach, describe, expect, it } from 'vitest';
import type { MountConfig } from './args.js';
import { MountReporter, entryPath, runtimeDirs, type RegistryEntry } from './control.js';
import { formatPending, formatStatus, formatUptime, listMounts, redisfsMounts, type MountStatus } from './status.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function runtimeDir(): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'redisfs-status-test-'));
  cleanups.push(() => rm(base, { recursive: true, force: true }));
  return join(base, 'redisfs');
}

const STATS: MountStats = {
  fuseCalls: { lookup: 8, create: 2 },
  fuseErrors: { lookup: { ENOENT: 3 } },
  bytesRead: 10,
  bytesWritten: 20,
  cache: { attr: { hits: 3, misses: 1 }, readAhead: { hits: 0, misses: 0 } },
  session: { id: 'a1b2c3d4e5f60718', openHandles: 1, posixLockOwners: 0 },
};

function fakeMount(mountpoint: string): MountedFs {
  return { mountpoint, stats: () => STATS, unmount: async () => undefined, closed: new Promise(() => undefined) };
}

/** The store members the reporter uses; its pending work comes after a while, like Redis's answer. */
function slowStore(): Store {
  const pendingWork = () => new Promise((resolve) => setTimeout(() => resolve({ gcInodes: 0, freeBlocks: 4, deadMembers: 0, deadSessions: 0 }), 50));
  return { readOnly: false, stats: () => ({ commands: { 'EVALSHA create': 2 } }), pendingWork } as unknown as Store;
}

const config = { prefix: 'skx', mountpoint: '/mnt/skx', readOnly: false, metrics: undefined } as unknown as MountConfig;

/** A pid that no process has any more. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

describe('runtimeDirs', () => {
  it('prefers $XDG_RUNTIME_DIR, then /run for root, then /tmp per uid', () => {
    expect(runtimeDirs({ XDG_RUNTIME_DIR: '/run/user/1000' }, 1000)).toEqual(['/run/user/1000/redisfs', '/tmp/redisfs-1000']);
    expect(runtimeDirs({}, 0)).toEqual(['/run/redisfs', '/tmp/redisfs-0']);
    expect(runtimeDirs({ XDG_RUNTIME_DIR: 'relative' }, 1000)).toEqual(['/tmp/redisfs-1000']);
  });
});

describe('registry and control socket', () => {
  it('lists a registered mount with its live counts, and nothing once it stops', async () => {
    const dir = await runtimeDir();
    const errs: string[] = [];
    const reporter = new MountReporter(config, () => ({ store: slowStore(), mounted: fakeMount('/mnt/skx') }), { out: () => undefined, err: (l) => errs.push(l) }, dir);
    cleanups.push(() => reporter.stop());
    await reporter.register({ url: 'redis://user:secret@127.0.0.1:6379/0', socket: undefined });
    expect(errs).toEqual([]);
    expect((await readdir(dir)).sort()).toEqual([`${process.pid}.json`, `${process.pid}.sock`]);

    const [m] = (await listMounts([dir])).filter((x) => x.pid === process.pid);
    expect(m).toMatchObject({ mountpoint: '/mnt/skx', prefix: 'skx', state: 'running', operations: 10, errors: 3, cacheHitRate: 0.75 });
    expect(m!.pending).toEqual({ gcInodes: 0, freeBlocks: 4, deadMembers: 0, deadSessions: 0 });
    expect(m!.stats?.redisCommands).toEqual({ 'EVALSHA create': 2 });
    expect(m!.server).toBe('redis://user:***@127.0.0.1:6379/0');
    expect(JSON.stringify(m)).not.toContain('secret');

    await reporter.stop();
    expect(await readdir(dir)).toEqual([]);
    expect((await listMounts([dir])).filter((x) => x.pid === process.pid)).toEqual([]);
  });

  it('drops the entries of a dead process and of a pid nobody listens for', async () => {
    const dir = await runtimeDir();
    const reporter = new MountReporter(config, () => ({ store: undefined, mounted: fakeMount('/mnt/a') }), { out: () => undefined, err: () => undefined }, dir);
    cleanups.push(() => reporter.stop());
    await reporter.register({ url: undefined, socket: '/run/redis.sock' }); // creates the dir
    const entry = (pid: number, mountpoint: string): RegistryEntry => ({
      version: 1, pid, mountpoint, prefix: 'old', server: 'unix:/x', readOnly: false, mountedAt: new Date().toISOString(), metrics: null,
    });
    const dead = await deadPid();
    await writeFile(entryPath(dir, dead), JSON.stringify(entry(dead, '/mnt/dead')));
    await writeFile(join(dir, `${dead}.sock`), ''); // a socket file left behind
    // A live pid (our parent) whose entry has no listener: the mount died, the pid was reused.
    await writeFile(entryPath(dir, process.ppid), JSON.stringify(entry(process.ppid, '/mnt/reused')));

    const listed = (await listMounts([dir])).map((m) => m.mountpoint);
    expect(listed).toContain('/mnt/a');
    expect(listed).not.toContain('/mnt/dead');
    expect(listed).not.toContain('/mnt/reused');
    expect((await readdir(dir)).sort()).toEqual([`${process.pid}.json`, `${process.pid}.sock`]);
  });
});

describe('redisfsMounts', () => {
  it('reads the fuse.redisfs lines of mountinfo, with their owner', () => {
    const text = [
      '36 25 0:32 / /tmp/mnt\\040a rw,nosuid,nodev,relatime shared:1 - fuse.redisfs redisfs rw,user_id=1000,group_id=1000,default_permissions',
      '37 25 0:33 / /home rw,relatime - ext4 /dev/sda2 rw',
      '38 25 0:34 / /mnt/b rw,relatime - fuse.sshfs host: rw,user_id=0,group_id=0',
      '',
    ].join('\n');
    expect(redisfsMounts(text)).toEqual([{ mountpoint: '/tmp/mnt a', uid: 1000 }]);
  });
});

describe('formatting', () => {
  it('uptime, pending work and the table', () => {
    expect([5, 65, 3725, 90_000].map(formatUptime)).toEqual(['5s', '1m05s', '1h02m', '1d01h']);
    expect(formatPending(null)).toBe('-');
    expect(formatPending({ gcInodes: 0, freeBlocks: 0, deadMembers: 0, deadSessions: 0 })).toBe('0');
    expect(formatPending({ gcInodes: 1, freeBlocks: 30, deadMembers: 0, deadSessions: 0 })).toBe('1 file, 30 blocks');
    const running: MountStatus = {
      mountpoint: '/mnt/a', state: 'running', prefix: 'skx', server: 'redis://127.0.0.1:6379', pid: 42, uid: null, readOnly: false,
      mountedAt: '', uptimeSeconds: 65, metrics: null, operations: 10, errors: 1, cacheHitRate: 0.5, stats: null,
      pending: { gcInodes: 0, freeBlocks: 0, deadMembers: 0, deadSessions: 1 }, session: '0123456789abcdef', openFiles: 3,
    };
    const other: MountStatus = { ...running, mountpoint: '/mnt/bb', state: 'unregistered', prefix: null, server: null, pid: null, uid: 1000,
      uptimeSeconds: null, operations: null, errors: null, cacheHitRate: null, pending: null, session: null, openFiles: null };
    expect(formatStatus([running, other])).toEqual([
      'MOUNTPOINT  PREFIX  SERVER                  PID  SESSION           UPTIME  OPS  ERRORS  CACHE HITS  OPEN  PENDING         STATE',
      '/mnt/a      skx     redis://127.0.0.1:6379  42   0123456789abcdef  1m05s   10   1       50%         3     1 dead session  running',
      '/mnt/bb     -       -                       -    -                 -       -    -       -           -     -               not registered (uid 1000)',
    ]);
  });
});
