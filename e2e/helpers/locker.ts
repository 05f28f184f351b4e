/**
 * A process that holds files of a mount open and takes locks on them, one command at a time:
 * a small python3 server (a process of its own, as a program on that host would be) that reads
 * JSON commands on stdin and answers each with one JSON line. Its fds stay open between
 * commands, so a test can open a file, have another host remove it, then read on; or hold a
 * lock while another process waits for it. A command that blocks (F_SETLKW, flock without
 * LOCK_NB) answers when it returns; commands sent meanwhile wait behind it.
 *
 *   await using holder = await startLocker();
 *   const fd = await holder.open(mnt.path('f'), 'r+');
 *   expect(await holder.setlk(fd, 'W', 0, 100)).toMatchObject({ ok: true });
 *
 * Also the prerequisites of the lock tests (python3 with fcntl, ctypes and sqlite3; flock(1)),
 * and what Redis holds for the mounts of a prefix (its keys, a mount's session id).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { keysFor } from '@redisfs/schema';
import {
  type ChildExit,
  OutputTail,
  disposeWhenTestEnds,
  exited,
  findExecutable,
  isRunning,
  missingPrerequisite,
  own,
  redisCommand,
  stopChild,
  type RedisAddress,
} from '@redisfs/testing';
import type { StartedMount } from './mount.js';

/**
 * True when python3 (with its fcntl, ctypes and sqlite3 modules) and flock(1) are installed.
 * Otherwise throws under CI=true, else warns and returns false so that the suite can skip.
 */
export function requireLockTools(): boolean {
  if (!findExecutable('flock')) return missingPrerequisite('flock', 'install util-linux (`sudo apt-get install util-linux`)');
  if (!findExecutable('python3')) return missingPrerequisite('python3', 'install it with `sudo apt-get install python3`');
  const probe = spawnSync('python3', ['-c', 'import fcntl, ctypes, sqlite3'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    return missingPrerequisite('python3 modules fcntl, ctypes or sqlite3', `\`python3 -c "import fcntl, ctypes, sqlite3"\` failed: ${probe.stderr.trim()}`);
  }
  return true;
}

/** A lock type as fcntl(2) names it: F_RDLCK, F_WRLCK, F_UNLCK. */
export type LockKind = 'R' | 'W' | 'U';

/** Every answer: `ok`, or the errno's name; `t0`/`t1` when the call started and returned (epoch ms, this host's clock). */
export interface LockerReply {
  ok: boolean;
  /** `EAGAIN`, `EINTR`, `ENOENT`…, when not ok. */
  errno?: string;
  message?: string;
  t0: number;
  t1: number;
}

/** What F_GETLK answered: `U` when nothing conflicts. */
export interface LockInfo {
  type: LockKind;
  start: number;
  len: number;
  pid: number;
}

/** A running locker. Stops with `exit()` (closes its files: a clean exit) or `kill()`, and when the test ends. */
export interface Locker extends AsyncDisposable {
  readonly pid: number;
  readonly process: ChildProcess;
  /** Sends any command (see SCRIPT) and resolves with its answer; rejects when none comes within `timeoutMs`. */
  call<T extends object = object>(command: Record<string, unknown>, timeoutMs?: number): Promise<LockerReply & Partial<T>>;
  /** os.open: `r`, `r+`, `w+` (create, truncate), `c+` (create, keep). Resolves with the fd; rejects on failure. */
  open(path: string, flags: 'r' | 'r+' | 'w+' | 'c+'): Promise<number>;
  /** Reads the whole file from offset 0 (pread to EOF): its size and sha256. */
  readAll(fd: number): Promise<{ size: number; sha256: string }>;
  pwrite(fd: number, offset: number, data: Buffer): Promise<void>;
  fsync(fd: number): Promise<void>;
  fstat(fd: number): Promise<{ size: number; ino: number; nlink: number }>;
  /** fcntl F_SETLK, or F_SETLKW with `wait`; `len` 0 is "to the end of the file, however long". */
  setlk(fd: number, type: LockKind, start: number, len: number, options?: { wait?: boolean; timeoutMs?: number }): Promise<LockerReply>;
  /** fcntl F_GETLK: the first lock that would conflict with (type, start, len), or type `U`. */
  getlk(fd: number, type: LockKind, start: number, len: number): Promise<LockInfo>;
  /**
   * F_SETLKW with SIGALRM due in `afterS` seconds (its handler installed with siginterrupt, so
   * the call is not restarted), through libc itself: the errno fcntl(2) returned, not Python's.
   */
  setlkwAlarm(fd: number, type: LockKind, start: number, len: number, afterS: number): Promise<LockerReply>;
  /** flock(2): `sh`, `ex` or `un`; `nb` for LOCK_NB. */
  flock(fd: number, how: 'sh' | 'ex' | 'un', options?: { nb?: boolean; timeoutMs?: number }): Promise<LockerReply>;
  close(fd: number): Promise<void>;
  unlink(path: string): Promise<void>;
  /**
   * Whether the process is blocked in a system call on one of its files (fd 3 or above, from
   * /proc/<pid>/syscall), e.g. waiting in fcntl(F_SETLKW) or flock(2), rather than reading its
   * next command on stdin (fd 0) or running.
   */
  blockedOnFile(): Promise<boolean>;
  stderr(): string;
  /** Ends stdin: the process closes its files and exits. Resolves with its exit. */
  exit(): Promise<ChildExit>;
  kill(): Promise<ChildExit>;
}

const SCRIPT = String.raw`
import base64, ctypes, errno, fcntl, hashlib, json, os, signal, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
TYPES = {'R': fcntl.F_RDLCK, 'W': fcntl.F_WRLCK, 'U': fcntl.F_UNLCK}
NAMES = {v: k for k, v in TYPES.items()}
FMT = 'hhqqi4x'  # struct flock on 64-bit Linux: l_type, l_whence, l_start, l_len, l_pid (32 bytes)
FLAGS = {'r': os.O_RDONLY, 'r+': os.O_RDWR, 'w+': os.O_RDWR | os.O_CREAT | os.O_TRUNC, 'c+': os.O_RDWR | os.O_CREAT}
FLOCK = {'sh': fcntl.LOCK_SH, 'ex': fcntl.LOCK_EX, 'un': fcntl.LOCK_UN}
signal.signal(signal.SIGALRM, lambda *a: None)
signal.siginterrupt(signal.SIGALRM, True)

def lk(r):
    return struct.pack(FMT, TYPES[r['type']], 0, r['start'], r['len'], 0)

def handle(r):
    op = r['op']
    if op == 'open':
        return {'fd': os.open(r['path'], FLAGS[r['flags']], 0o644)}
    if op == 'close':
        os.close(r['fd']); return {}
    if op == 'unlink':
        os.unlink(r['path']); return {}
    if op == 'fstat':
        st = os.fstat(r['fd']); return {'size': st.st_size, 'ino': st.st_ino, 'nlink': st.st_nlink}
    if op == 'read':
        h, off = hashlib.sha256(), 0
        while True:
            chunk = os.pread(r['fd'], 1 << 20, off)
            if not chunk: break
            h.update(chunk); off += len(chunk)
        return {'size': off, 'sha256': h.hexdigest()}
    if op == 'pwrite':
        data = base64.b64decode(r['data']); n = os.pwrite(r['fd'], data, r['offset'])
        if n != len(data): raise OSError(errno.EIO, 'short write %d of %d' % (n, len(data)))
        return {}
    if op == 'fsync':
        os.fsync(r['fd']); return {}
    if op == 'setlk':
        fcntl.fcntl(r['fd'], fcntl.F_SETLKW if r.get('wait') else fcntl.F_SETLK, lk(r)); return {}
    if op == 'getlk':
        t, _, s, l, pid = struct.unpack(FMT, fcntl.fcntl(r['fd'], fcntl.F_GETLK, lk(r)))
        return {'type': NAMES.get(t, str(t)), 'start': s, 'len': l, 'pid': pid}
    if op == 'setlkw_alarm':
        buf = ctypes.create_string_buffer(lk(r), 32)
        signal.setitimer(signal.ITIMER_REAL, r['after'])
        try:
            rc = libc.fcntl(r['fd'], fcntl.F_SETLKW, buf); err = ctypes.get_errno()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if rc == -1: raise OSError(err, os.strerror(err))
        return {}
    if op == 'flock':
        fcntl.flock(r['fd'], FLOCK[r['how']] | (fcntl.LOCK_NB if r.get('nb') else 0)); return {}
    raise ValueError('unknown op ' + op)

for line in sys.stdin:
    r = json.loads(line); t0 = time.time()
    try:
        out = handle(r); out['ok'] = True
    except OSError as e:
        out = {'ok': False, 'errno': errno.errorcode.get(e.errno, str(e.errno)), 'message': str(e)}
    out['t0'] = t0 * 1000; out['t1'] = time.time() * 1000
    sys.stdout.write(json.dumps(out) + '\n'); sys.stdout.flush()
`;

/** The deadline of a command that should not block. */
const CALL_TIMEOUT_MS = 20_000;

class RunningLocker implements Locker {
  private readonly err = new OutputTail();
  private readonly waiting: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  private gone: Error | undefined;

  constructor(readonly process: ChildProcess) {
    this.err.follow(process.stderr);
    createInterface({ input: process.stdout! }).on('line', (line) => this.waiting.shift()?.resolve(line));
    process.once('exit', (code, signal) => {
      this.gone = new Error(`the locker (pid ${process.pid}) exited (code ${code}, signal ${signal}):\n${this.err}`);
      for (const w of this.waiting.splice(0)) w.reject(this.gone);
    });
    process.stdin!.on('error', () => undefined); // a write to a killed locker: its exit reports it
  }

  get pid(): number {
    return this.process.pid!;
  }

  async call<T extends object = object>(command: Record<string, unknown>, timeoutMs = CALL_TIMEOUT_MS): Promise<LockerReply & Partial<T>> {
    if (this.gone) throw this.gone;
    const line = new Promise<string>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.process.stdin!.write(`${JSON.stringify(command)}\n`);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the locker (pid ${this.pid}) did not answer ${JSON.stringify(command).slice(0, 200)} within ${timeoutMs} ms:\n${this.err}`)),
        timeoutMs,
      );
    });
    try {
      return JSON.parse(await Promise.race([line, deadline])) as LockerReply & Partial<T>;
    } finally {
      clearTimeout(timer);
    }
  }

  private async must<T extends object>(command: Record<string, unknown>): Promise<LockerReply & T> {
    const reply = await this.call<T>(command);
    if (!reply.ok) throw new Error(`${String(command.op)} ${String(command.path ?? command.fd ?? '')} failed: ${reply.errno} ${reply.message}`);
    return reply as LockerReply & T;
  }

  async open(path: string, flags: 'r' | 'r+' | 'w+' | 'c+'): Promise<number> {
    return (await this.must<{ fd: number }>({ op: 'open', path, flags })).fd;
  }

  async readAll(fd: number): Promise<{ size: number; sha256: string }> {
    const { size, sha256 } = await this.must<{ size: number; sha256: string }>({ op: 'read', fd });
    return { size, sha256 };
  }

  async pwrite(fd: number, offset: number, data: Buffer): Promise<void> {
    await this.must({ op: 'pwrite', fd, offset, data: data.toString('base64') });
  }

  async fsync(fd: number): Promise<void> {
    await this.must({ op: 'fsync', fd });
  }

  async fstat(fd: number): Promise<{ size: number; ino: number; nlink: number }> {
    const { size, ino, nlink } = await this.must<{ size: number; ino: number; nlink: number }>({ op: 'fstat', fd });
    return { size, ino, nlink };
  }

  setlk(fd: number, type: LockKind, start: number, len: number, options: { wait?: boolean; timeoutMs?: number } = {}): Promise<LockerReply> {
    return this.call({ op: 'setlk', fd, type, start, len, wait: options.wait ?? false }, options.timeoutMs);
  }

  async getlk(fd: number, type: LockKind, start: number, len: number): Promise<LockInfo> {
    const r = await this.must<LockInfo>({ op: 'getlk', fd, type, start, len });
    return { type: r.type, start: r.start, len: r.len, pid: r.pid };
  }

  setlkwAlarm(fd: number, type: LockKind, start: number, len: number, afterS: number): Promise<LockerReply> {
    return this.call({ op: 'setlkw_alarm', fd, type, start, len, after: afterS });
  }

  flock(fd: number, how: 'sh' | 'ex' | 'un', options: { nb?: boolean; timeoutMs?: number } = {}): Promise<LockerReply> {
    return this.call({ op: 'flock', fd, how, nb: options.nb ?? false }, options.timeoutMs);
  }

  async close(fd: number): Promise<void> {
    await this.must({ op: 'close', fd });
  }

  async unlink(path: string): Promise<void> {
    await this.must({ op: 'unlink', path });
  }

  async blockedOnFile(): Promise<boolean> {
    // "<nr> <arg0> <arg1> …" while blocked in a call, "running" otherwise.
    const text = await readFile(`/proc/${this.pid}/syscall`, 'utf8');
    const arg0 = /^\d+ 0x([0-9a-f]+) /.exec(text)?.[1];
    return arg0 !== undefined && Number.parseInt(arg0, 16) >= 3;
  }

  stderr(): string {
    return this.err.toString();
  }

  async exit(): Promise<ChildExit> {
    this.process.stdin!.end();
    return exited(this.process);
  }

  kill(): Promise<ChildExit> {
    return stopChild(this.process, 'SIGKILL', 0);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (isRunning(this.process)) await this.kill();
  }
}

/** Starts a locker (python3), killed when the test ends if still running. */
export function startLocker(): Locker {
  const child = own(spawn('python3', ['-u', '-c', SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] }));
  const locker = new RunningLocker(child);
  disposeWhenTestEnds(locker);
  return locker;
}

// What Redis holds for the mounts of a prefix (key names from @redisfs/schema).

/** Every key of the prefix (metadata, family keys, blocks), by SCAN in batches, sorted. */
export async function prefixKeys(redis: RedisAddress, prefix: string): Promise<string[]> {
  const found = new Set<string>();
  for (const pattern of keysFor(prefix).scanPatterns) {
    let cursor = '0';
    do {
      const [next, batch] = (await redisCommand(redis, ['SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000])) as [string, string[]];
      cursor = next;
      for (const key of batch) found.add(key);
    } while (cursor !== '0');
  }
  return [...found].sort();
}

/** The session id of a mount: the one whose description names its mountpoint. */
export async function sessionOf(redis: RedisAddress, mnt: StartedMount): Promise<string> {
  const k = keysFor(mnt.prefix);
  const sids = (await redisCommand(redis, ['ZRANGE', k.sessions, 0, -1])) as string[];
  for (const sid of sids) {
    if ((await redisCommand(redis, ['HGET', k.session(sid), 'mnt'])) === mnt.dir) return sid;
  }
  throw new Error(`no session of ${mnt.prefix} names ${mnt.dir}; sessions: ${sids.join(' ') || 'none'}`);
}
