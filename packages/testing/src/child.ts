/**
 * Child processes the harness owns (redis-server, the mount CLI): their captured output, their
 * exit, and stopping them for sure. Any child still alive when the test process exits is killed,
 * so a crashed test run leaves no server or FUSE daemon behind.
 */
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';

/** How a child ended. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The tail of a stream's output, kept in memory (the last `limit` characters). */
export class OutputTail {
  private text = '';

  constructor(private readonly limit = 64 * 1024) {}

  /** Starts collecting everything `stream` emits. */
  follow(stream: Readable | null): this {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      this.text = (this.text + chunk).slice(-this.limit);
    });
    return this;
  }

  toString(): string {
    return this.text;
  }
}

const owned = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Registers a child to be killed if the test process exits while it still runs. */
export function own(child: ChildProcess): ChildProcess {
  owned.add(child);
  child.once('exit', () => owned.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of owned) c.kill('SIGKILL');
    });
  }
  return child;
}

/** Whether process `pid` exists (one of another user's counts: EPERM). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Resolves when the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<ChildExit> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** Whether the child has not exited yet. */
export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves with the child's exit, or undefined if it is still running after `ms`. */
export async function exitedWithin(child: ChildProcess, ms: number): Promise<ChildExit | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([exited(child), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sends `signal` and waits up to `graceMs` for the child to exit, then SIGKILLs it and waits
 * for that. Returns how the child ended; safe to call on a child that already exited.
 */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<ChildExit> {
  if (!isRunning(child)) return exited(child);
  child.kill(signal);
  const graceful = await exitedWithin(child, graceMs);
  if (graceful) return graceful;
  child.kill('SIGKILL');
  return exited(child);
}
