#!/usr/bin/env python3
"""Lock latency probes for `pnpm bench` (run by lock-latency.ts; python3, standard library only).

flock(2) and fcntl(2) locks need real processes (Node has neither), and fcntl locks belong to a
process: each party of a hand-off is a process of its own.

  lock-probe.py uncontended KIND PATH PAIRS
      PAIRS lock + unlock pairs on PATH by one process, nobody else asking; prints
      {"pairs": n, "seconds": s}.
  lock-probe.py handoff KIND PATH_A PATH_B ROUNDS SETTLE_MS
      Two processes, A on PATH_A and B on PATH_B (the same file through two mounts, or twice
      the same path), hand the lock to each other ROUNDS times: the holder unlocks while the
      other waits in a blocking lock. Prints {"handoffNs": [...], "unlockNs": [...]}: from just
      before the holder's unlock call to the moment the waiter's lock call returned, and how long
      the unlock call took. CLOCK_MONOTONIC (time.monotonic_ns) is one clock for every process
      of the machine, so the two processes' timestamps are comparable.
  lock-probe.py party KIND PATH
      (internal) one side of a hand-off: reads `lock` / `unlock` lines on stdin, answers
      `locked T` / `unlocked T0 T1` on stdout; exits at the end of its input.

KIND is `flock` (flock(LOCK_EX), LOCK_UN) or `fcntl` (F_SETLKW write lock of bytes 0-99,
F_SETLK unlock of them). Exits 1 with a message on stderr when something is wrong, among others
when the waiter gets the lock while the holder still has it: the two paths do not share locks.
"""
import fcntl
import json
import os
import platform
import select
import subprocess
import sys
import time

# Syscall numbers, to see in /proc/PID/syscall that the waiter is blocked in its lock call.
SYSCALLS = {
    'x86_64': {'flock': 73, 'fcntl': 72},
    'aarch64': {'flock': 32, 'fcntl': 25},
}
RANGE_LEN, RANGE_START = 100, 0
STEP_TIMEOUT_S = 30.0


def fail(message):
    sys.stderr.write(f'lock-probe: {message}\n')
    sys.exit(1)


def lock(fd, kind):
    if kind == 'flock':
        fcntl.flock(fd, fcntl.LOCK_EX)
    else:
        fcntl.lockf(fd, fcntl.LOCK_EX, RANGE_LEN, RANGE_START)  # F_SETLKW


def unlock(fd, kind):
    if kind == 'flock':
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, RANGE_LEN, RANGE_START)


def uncontended(kind, path, pairs):
    fd = os.open(path, os.O_RDWR)
    lock(fd, kind)  # warm: the first call may look the file up
    unlock(fd, kind)
    start = time.monotonic_ns()
    for _ in range(pairs):
        lock(fd, kind)
        unlock(fd, kind)
    seconds = (time.monotonic_ns() - start) / 1e9
    os.close(fd)
    print(json.dumps({'pairs': pairs, 'seconds': seconds}))


def party(kind, path):
    fd = os.open(path, os.O_RDWR)
    out = sys.stdout
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        cmd = line.strip()
        if cmd == 'lock':
            lock(fd, kind)
            out.write(f'locked {time.monotonic_ns()}\n')
        elif cmd == 'unlock':
            t0 = time.monotonic_ns()
            unlock(fd, kind)
            out.write(f'unlocked {t0} {time.monotonic_ns()}\n')
        else:
            fail(f'party: unknown command {cmd!r}')
        out.flush()
    os.close(fd)


class Party:
    def __init__(self, name, kind, path):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, 'party', kind, path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )

    def send(self, cmd):
        self.proc.stdin.write(f'{cmd}\n')
        self.proc.stdin.flush()

    def answered(self):
        """Whether a line is waiting to be read (the process answered)."""
        return bool(select.select([self.proc.stdout], [], [], 0)[0])

    def expect(self, word):
        ready = select.select([self.proc.stdout], [], [], STEP_TIMEOUT_S)[0]
        if not ready:
            raise RuntimeError(f'{self.name} did not answer {word} within {STEP_TIMEOUT_S:.0f} s')
        line = self.proc.stdout.readline().split()
        if not line or line[0] != word:
            raise RuntimeError(f'{self.name} answered {line!r}, expected {word} (exit code {self.proc.poll()})')
        return [int(x) for x in line[1:]]

    def blocked_in(self, nr):
        """Whether the process sits in syscall `nr` (/proc/PID/syscall: its number, then its arguments)."""
        try:
            with open(f'/proc/{self.proc.pid}/syscall') as f:
                first = f.read().split(' ', 1)[0]
        except OSError:
            return False
        return first == str(nr)

    def stop(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_blocked(waiter, holder, nr):
    """Returns once `waiter` is blocked in its lock call; fails if it got the lock instead."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not waiter.blocked_in(nr):
        if waiter.answered():
            raise RuntimeError(
                f'{waiter.name} got the lock while {holder.name} held it: the two paths do not share locks'
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f'{waiter.name} was not seen waiting in its lock call within {STEP_TIMEOUT_S:.0f} s')
        time.sleep(0.0002)


def handoff(kind, path_a, path_b, rounds, settle_ms):
    nr = SYSCALLS.get(platform.machine(), {}).get(kind)
    if nr is None:
        fail(f'no syscall number of {kind} known for {platform.machine()}')
    a = Party('A', kind, path_a)
    b = Party('B', kind, path_b)
    handoffs, unlocks = [], []
    try:
        a.send('lock')
        a.expect('locked')
        holder, waiter = a, b
        for _ in range(rounds):
            waiter.send('lock')
            wait_blocked(waiter, holder, nr)
            # Blocked in the syscall means the request reached the filesystem; give its server the
            # time to register the wait (a FUSE server: subscribe, try once and fail) so that what
            # follows is a real hand-off, not a lock taken before it was asked for.
            time.sleep(settle_ms / 1000)
            if waiter.answered():
                raise RuntimeError(
                    f'{waiter.name} got the lock while {holder.name} held it: the two paths do not share locks'
                )
            holder.send('unlock')
            t0, t1 = holder.expect('unlocked')
            (got,) = waiter.expect('locked')
            if got < t0:
                raise RuntimeError(f'{waiter.name} got the lock before {holder.name} unlocked it')
            handoffs.append(got - t0)
            unlocks.append(t1 - t0)
            holder, waiter = waiter, holder
        holder.send('unlock')
        holder.expect('unlocked')
    except RuntimeError as err:
        for p in (a, b):
            p.proc.kill()
            p.proc.wait()
        fail(str(err))
    finally:
        a.stop()
        b.stop()
    print(json.dumps({'handoffNs': handoffs, 'unlockNs': unlocks}))


def main(argv):
    if len(argv) < 3 or argv[1] not in ('flock', 'fcntl'):
        fail(__doc__)
    mode, kind = argv[0], argv[1]
    if mode == 'uncontended' and len(argv) == 4:
        uncontended(kind, argv[2], int(argv[3]))
    elif mode == 'handoff' and len(argv) == 6:
        handoff(kind, argv[2], argv[3], int(argv[4]), float(argv[5]))
    elif mode == 'party' and len(argv) == 3:
        party(kind, argv[2])
    else:
        fail(__doc__)


if __name__ == '__main__':
    main(sys.argv[1:])
