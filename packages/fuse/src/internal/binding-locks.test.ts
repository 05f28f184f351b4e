/**
 * The binding's lock API (packages/fuse-native, see patches/README.md), checked with a real mount
 * of a tiny in-memory filesystem and real processes (python3's fcntl/os, through libc): create
 * gets its open flags, fcntl and flock locks reach ops.lock/ops.flock, F_GETLK's answer reaches
 * the caller, a signal to a process waiting in F_SETLKW shows in interrupted(), release says
 * which flock owner to drop, setPosixLocksHeld controls the close fast path, and with
 * hard_remove an unlinked open file is read with a null path.
 */
import { spawn, execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { findExecutable, missingPrerequisite, requireFuse, waitFor, type RunResult } from '@redisfs/testing';
import Fuse from 'fuse-native';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const { errno: E } = osConstants;
const O = fsConstants;
/** F_RDLCK / F_UNLCK as Linux defines them (node's os.constants has no fcntl lock types). */
const LOCK = { F_RDLCK: 0, F_WRLCK: 1, F_UNLCK: 2 } as const;

/** Runs a python3 script asynchronously (this process serves the mount: never block it). */
function python(script: string, args: string[], onSpawn?: (pid: number, kill: (sig: NodeJS.Signals) => void) => void): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    if (child.pid !== undefined) onSpawn?.(child.pid, (sig) => child.kill(sig));
  });
}

/** struct flock through ctypes, so fcntl's own errno (EINTR) is seen, without Python's retry. */
const PY_FLOCK = `
import ctypes, errno, fcntl, os, signal, sys
class Flock(ctypes.Structure):
    _fields_ = [('l_type', ctypes.c_short), ('l_whence', ctypes.c_short),
                ('l_start', ctypes.c_int64), ('l_len', ctypes.c_int64), ('l_pid', ctypes.c_int)]
libc = ctypes.CDLL(None, use_errno=True)
def fcntl_lock(fd, cmd, type_, start, length):
    fl = Flock(type_, os.SEEK_SET, start, length, 0)
    r = libc.fcntl(fd, cmd, ctypes.byref(fl))
    return (r, ctypes.get_errno(), fl)
`;

interface Node {
  data: Buffer;
  mode: number;
  ino: number;
}

type LockCall = {
  path: string | null;
  fd: number;
  cmd: Fuse.LockCmd;
  lock: Fuse.LockRequest;
  owner: string;
  interrupted: Fuse.Interrupted;
  cb: (err: number, lock?: Fuse.LockRequest) => void;
};

type Call =
  | { op: 'create'; path: string; flags: number; fd: number }
  | { op: 'read'; path: string | null; fd: number }
  | { op: 'fgetattr'; path: string | null; fd: number }
  | { op: 'release'; path: string | null; fd: number; flockOwner: string | null }
  | { op: 'flock'; path: string | null; fd: number; type: Fuse.LockType; wait: boolean; owner: string }
  | { op: 'lock'; path: string | null; fd: number; cmd: Fuse.LockCmd; lock: Fuse.LockRequest; owner: string };

/** Whether this machine can run the test; under CI=true a missing piece fails instead. */
const ready = requireFuse() && (findExecutable('python3') !== undefined || missingPrerequisite('python3', 'install it with `sudo apt-get install python3`'));

/** Polls `probe` every 10 ms until it returns a truthy value (10 s at most). */
const until = <T>(probe: () => T, what: string) => waitFor(probe, { timeoutMs: 10_000, intervalMs: 10, what });

describe.skipIf(!ready)('fuse-native lock, flock, create flags, release and null paths (real mount)', () => {
  const files = new Map<string, Node>();
  const handles = new Map<number, Node>();
  const calls: Call[] = [];
  let nextFd = 10;
  let nextIno = 2;
  /** What ops.lock does with a call (after recording it); answers 0 unless a test says otherwise. */
  let onLock: (call: LockCall) => void = (call) => call.cb(0);
  let root = '';
  let mnt = '';
  let fuse: Fuse | undefined;

  const now = BigInt(Date.now()) * 1_000_000n;
  const stat = (n: Node): Fuse.Stat => ({
    mode: n.mode,
    uid: 0,
    gid: 0,
    size: n.data.length,
    nlink: 1,
    rdev: 0,
    ino: n.ino,
    blocks: 1,
    blksize: 4096,
    atime: now,
    mtime: now,
    ctime: now,
  });
  const addFile = (path: string, content = ''): Node => {
    const node = { data: Buffer.from(content), mode: 0o100644, ino: nextIno++ };
    files.set(path, node);
    return node;
  };
  const openFd = (node: Node): number => {
    const fd = nextFd++;
    handles.set(fd, node);
    return fd;
  };

  const ops: Fuse.Ops = {
    init: (cb) => cb(0),
    getattr(path, cb) {
      if (path === '/') return cb(0, { ...stat({ data: Buffer.alloc(0), mode: 0o40755, ino: 1 }), nlink: 2 });
      const node = files.get(path);
      return node ? cb(0, stat(node)) : cb(-E.ENOENT);
    },
    fgetattr(path, fd, cb) {
      calls.push({ op: 'fgetattr', path, fd });
      const node = handles.get(fd);
      return node ? cb(0, stat(node)) : cb(-E.EBADF);
    },
    readdir: (path, cb) => cb(0, [...files.keys()].map((p) => p.slice(1))),
    create(path, mode, flags, cb) {
      const fd = openFd(addFile(path));
      calls.push({ op: 'create', path, flags, fd });
      cb(0, fd);
    },
    open(path, flags, cb) {
      const node = files.get(path);
      return node ? cb(0, openFd(node)) : cb(-E.ENOENT);
    },
    read(path, fd, buf, len, pos, cb) {
      calls.push({ op: 'read', path, fd });
      const node = handles.get(fd);
      if (!node) return cb(-E.EBADF);
      cb(node.data.copy(buf, 0, pos, Math.min(node.data.length, pos + len)));
    },
    write(path, fd, buf, len, pos, cb) {
      const node = handles.get(fd);
      if (!node) return cb(-E.EBADF);
      const data = Buffer.alloc(Math.max(node.data.length, pos + len));
      node.data.copy(data);
      buf.copy(data, pos, 0, len);
      node.data = data;
      cb(len);
    },
    unlink(path, cb) {
      return files.delete(path) ? cb(0) : cb(-E.ENOENT);
    },
    flush: (path, fd, cb) => cb(0),
    release(path, fd, flockOwner, cb) {
      calls.push({ op: 'release', path, fd, flockOwner });
      handles.delete(fd);
      cb(0);
    },
    lock(path, fd, cmd, lock, owner, interrupted, cb) {
      calls.push({ op: 'lock', path, fd, cmd, lock, owner });
      onLock({ path, fd, cmd, lock, owner, interrupted, cb });
    },
    flock(path, fd, op, owner, interrupted, cb) {
      calls.push({ op: 'flock', path, fd, type: op.type, wait: op.wait, owner });
      cb(0);
    },
  };

  const callsOf = <K extends Call['op']>(op: K, path?: string | null) =>
    calls.filter((c): c is Extract<Call, { op: K }> => c.op === op && (path === undefined || c.path === path));

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'redisfs-binding-locks-'));
    mnt = join(root, 'mnt');
    const mounted = new Fuse(mnt, ops, {
      timeout: false,
      mkdir: true,
      hardRemove: true,
      attrTimeout: 0,
      entryTimeout: 0,
      negativeTimeout: 0,
    });
    await new Promise<void>((resolve, reject) => mounted.mount((err) => (err ? reject(err) : resolve())));
    fuse = mounted;
  });

  afterAll(async () => {
    const mounted = fuse;
    fuse = undefined;
    if (mounted) {
      const failed = await new Promise<boolean>((resolve) => mounted.unmount((err) => resolve(err !== null)));
      if (failed) await new Promise<void>((resolve) => execFile('fusermount', ['-u', '-z', mnt], () => resolve()));
    }
    if (root) await rm(root, { recursive: true, force: true });
  });

  beforeEach(() => {
    onLock = (call) => call.cb(0);
    fuse?.setPosixLocksHeld(false);
  });

  it('create gets the open flags', async () => {
    const run = await python(
      `import os, sys
os.close(os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644))
os.close(os.open(sys.argv[2], os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644))`,
      [join(mnt, 'excl'), join(mnt, 'trunc')],
    );
    expect(run.stderr).toBe('');
    const [excl] = callsOf('create', '/excl');
    const [trunc] = callsOf('create', '/trunc');
    expect(excl && trunc).toBeTruthy();
    expect(excl!.flags & O.O_EXCL).toBe(O.O_EXCL);
    expect(excl!.flags & O.O_TRUNC).toBe(0);
    expect(excl!.flags & 3).toBe(O.O_RDWR);
    expect(trunc!.flags & O.O_TRUNC).toBe(O.O_TRUNC);
    expect(trunc!.flags & O.O_EXCL).toBe(0);
    expect(trunc!.flags & 3).toBe(O.O_WRONLY);
    // A close of a file without flock locks: release says there is nothing to drop.
    const release = await until(() => callsOf('release', '/excl')[0], 'release of /excl');
    expect(release.flockOwner).toBeNull();
  });

  it('fcntl F_SETLK reaches ops.lock with type, range, owner and pid; its errors reach the caller', async () => {
    addFile('/setlk', 'content');
    onLock = (call) => call.cb(call.lock.start === 1000 ? -E.EAGAIN : 0);
    const run = await python(
      `${PY_FLOCK}
fd = os.open(sys.argv[1], os.O_RDWR)
print(os.getpid())
print(fcntl_lock(fd, fcntl.F_SETLK, fcntl.F_WRLCK, 5, 10)[:2])
print(fcntl_lock(fd, fcntl.F_SETLK, fcntl.F_RDLCK, 0, 0)[:2])
print(fcntl_lock(fd, fcntl.F_SETLK, fcntl.F_WRLCK, 1000, 1)[:2])`,
      [join(mnt, 'setlk')],
    );
    expect(run.stderr).toBe('');
    const [pid, write, read, refused] = run.stdout.trim().split('\n');
    expect([write, read, refused]).toEqual(['(0, 0)', '(0, 0)', `(-1, ${E.EAGAIN})`]);
    const locks = callsOf('lock', '/setlk');
    expect(locks.map((c) => [c.cmd, c.lock.type, c.lock.start, c.lock.len])).toEqual([
      ['setlk', 'W', 5, 10],
      ['setlk', 'R', 0, 0],
      ['setlk', 'W', 1000, 1],
    ]);
    expect(locks[0]!.lock.pid).toBe(Number(pid));
    expect(locks[0]!.owner).toMatch(/^[0-9a-f]{16}$/);
    expect(locks[0]!.owner).not.toBe('0000000000000000');
    // One process (one files_struct): one POSIX lock owner.
    expect(new Set(locks.map((c) => c.owner)).size).toBe(1);
  });

  it("F_GETLK's answer fills the caller's struct flock", async () => {
    addFile('/getlk', 'content');
    let conflict = true;
    onLock = (call) => {
      if (call.cmd !== 'getlk') return call.cb(0);
      if (!conflict) return call.cb(0, { type: 'U', start: 0, len: 0, pid: 0 });
      call.cb(0, { type: 'R', start: 100, len: 50, pid: process.pid });
    };
    const script = `${PY_FLOCK}
fd = os.open(sys.argv[1], os.O_RDWR)
r, err, fl = fcntl_lock(fd, fcntl.F_GETLK, fcntl.F_WRLCK, 0, 0)
print(r, fl.l_type, fl.l_whence, fl.l_start, fl.l_len, fl.l_pid)`;
    const conflicting = await python(script, [join(mnt, 'getlk')]);
    expect(conflicting.stderr).toBe('');
    expect(conflicting.stdout.trim()).toBe(`0 ${LOCK.F_RDLCK} 0 100 50 ${process.pid}`);
    conflict = false;
    const free = await python(script, [join(mnt, 'getlk')]);
    expect(free.stdout.trim().split(' ').slice(0, 2)).toEqual(['0', String(LOCK.F_UNLCK)]);
    const getlk = callsOf('lock', '/getlk').filter((c) => c.cmd === 'getlk');
    expect(getlk.map((c) => [c.lock.type, c.lock.start, c.lock.len])).toEqual([
      ['W', 0, 0],
      ['W', 0, 0],
    ]);
  });

  it('flock(LOCK_EX | LOCK_NB) reaches ops.flock, and release of that file names its owner', async () => {
    addFile('/flock', 'content');
    const run = await python(
      `import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
fcntl.flock(fd, fcntl.LOCK_SH)
os.close(fd)`,
      [join(mnt, 'flock')],
    );
    expect(run.stderr).toBe('');
    const flocks = callsOf('flock', '/flock');
    expect(flocks.map((c) => [c.type, c.wait])).toEqual([
      ['W', false],
      ['R', true],
    ]);
    expect(flocks[0]!.owner).toMatch(/^[0-9a-f]{16}$/);
    const release = await until(() => callsOf('release', '/flock')[0], 'release of /flock');
    expect(release.flockOwner).toBe(flocks[0]!.owner);
  });

  it('close calls ops.lock (unlock) only while setPosixLocksHeld(true)', async () => {
    addFile('/held', 'content');
    const openClose = `import os, sys
os.close(os.open(sys.argv[1], os.O_RDWR))`;
    await python(openClose, [join(mnt, 'held')]);
    // Release comes after the flush whose unlock would have reached ops.lock.
    await until(() => callsOf('release', '/held').length === 1, 'first release of /held');
    expect(callsOf('lock', '/held')).toEqual([]);

    fuse!.setPosixLocksHeld(true);
    await python(openClose, [join(mnt, 'held')]);
    await until(() => callsOf('release', '/held').length === 2, 'second release of /held');
    const unlocks = callsOf('lock', '/held');
    expect(unlocks.map((c) => [c.cmd, c.lock.type, c.lock.start, c.lock.len])).toEqual([['setlk', 'U', 0, 0]]);
    expect(unlocks[0]!.owner).toMatch(/^[0-9a-f]{16}$/);
  });

  it('a signal to a process waiting in F_SETLKW shows in interrupted(); -EINTR reaches it', async () => {
    addFile('/wait', 'content');
    let waiting: { call: LockCall; before: boolean } | undefined;
    let answered: 'interrupted' | 'deadline' | undefined;
    onLock = (call) => {
      if (call.cmd !== 'setlkw') return call.cb(0);
      waiting = { call, before: call.interrupted() };
      // Another owner holds the lock: wait until the caller gives up (or 20 s, then fail).
      const deadline = Date.now() + 20_000;
      const timer = setInterval(() => {
        if (call.interrupted()) answered = 'interrupted';
        else if (Date.now() > deadline) answered = 'deadline';
        else return;
        clearInterval(timer);
        call.cb(answered === 'interrupted' ? -E.EINTR : -E.EAGAIN);
      }, 5);
    };
    let kill: ((sig: NodeJS.Signals) => void) | undefined;
    const done = python(
      `${PY_FLOCK}
signal.signal(signal.SIGUSR1, lambda signum, frame: None)
signal.siginterrupt(signal.SIGUSR1, True)
fd = os.open(sys.argv[1], os.O_RDWR)
r, err, fl = fcntl_lock(fd, fcntl.F_SETLKW, fcntl.F_WRLCK, 0, 0)
print(r, errno.errorcode.get(err, err))`,
      [join(mnt, 'wait')],
      (_pid, k) => (kill = k),
    );
    const seen = await until(() => waiting, 'the F_SETLKW call to reach ops.lock');
    expect(seen.before).toBe(false);
    expect(seen.call.lock).toMatchObject({ type: 'W', start: 0, len: 0 });
    kill!('SIGUSR1');
    const run = await done;
    expect(answered).toBe('interrupted');
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('-1 EINTR');
    // Answered: the request is gone, and so is its interruption.
    expect(seen.call.interrupted()).toBe(false);
  });

  it('with hard_remove, an unlinked open file is read through its fd with a null path', async () => {
    addFile('/gone', 'hello');
    const run = await python(
      `import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.unlink(sys.argv[1])
print(os.path.exists(sys.argv[1]), os.read(fd, 100).decode())
os.close(fd)`,
      [join(mnt, 'gone')],
    );
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('False hello');
    expect(callsOf('read', null).length).toBeGreaterThan(0);
    expect(callsOf('read', '/gone')).toEqual([]);
    const release = await until(() => callsOf('release', null)[0], 'release of the unlinked file');
    expect(release.flockOwner).toBeNull();
  });
});
