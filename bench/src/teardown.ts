/**
 * Everything a bench run starts (redis-servers, clusters, FUSE mounts, scratch dirs) is stopped
 * exactly once: by the run's own `finally` blocks, or, on SIGINT / SIGTERM / SIGHUP, by the signal
 * handler, which stops whatever is still running (newest first) and then exits. A second signal
 * exits at once. When the bench dies without either (the tsx CLI SIGKILLs it when it does not
 * acknowledge a signal within 30 ms, as it cannot inside a blocking workload; a crash), the
 * guardian process (guardian.ts) stops the processes, mounts and directories it was told of.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { REPO_ROOT } from '../../e2e/helpers/paths.js';

/** What a started thing leaves behind if the bench dies without stopping it. */
export interface Leftovers {
  pids?: readonly number[];
  /** FUSE mountpoints. */
  mounts?: readonly string[];
  /** Directories to remove (after the mounts are released). */
  dirs?: readonly string[];
}

interface Pending {
  what: string;
  stop: () => Promise<void>;
}

const pending = new Set<Pending>();
let installed = false;
let signalled = false;
let guardian: ChildProcess | undefined;
let nextId = 0;

function tellGuardian(message: object): void {
  if (!guardian) {
    guardian = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench/src/guardian.ts')], {
      detached: true,
      stdio: ['pipe', 'ignore', 'inherit'],
      cwd: REPO_ROOT,
    });
    guardian.unref();
    (guardian.stdin as Socket).unref();
    guardian.stdin!.on('error', () => undefined);
  }
  guardian.stdin!.write(`${JSON.stringify(message)}\n`);
}

/** Lets the guardian go (it exits once it has read everything): call after stopAll. */
export function releaseGuardian(): void {
  guardian?.stdin?.end();
}

/** Whether a signal has asked the run to stop (the run should start nothing new). */
export function isStopping(): boolean {
  return signalled;
}

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

/**
 * Registers `stop` to run at teardown and returns it made idempotent: call the returned function
 * where the run is done with the thing; a signal calls it too if the run has not yet. `leftovers`
 * go to the guardian, which releases them if the bench dies before `stop` has succeeded.
 */
export function atTeardown(what: string, stop: () => Promise<void>, leftovers?: Leftovers): () => Promise<void> {
  const id = String(nextId++);
  if (leftovers) tellGuardian({ add: id, what, ...leftovers });
  let stopping: Promise<void> | undefined;
  const entry: Pending = {
    what,
    stop: () =>
      (stopping ??= (async () => {
        try {
          await stop();
          if (leftovers) tellGuardian({ done: id });
        } finally {
          pending.delete(entry);
        }
      })()),
  };
  pending.add(entry);
  return entry.stop;
}

/**
 * Stops everything still registered, newest first, also what gets registered meanwhile; a failure
 * to stop one does not keep the others running.
 */
export async function stopAll(): Promise<void> {
  while (pending.size > 0) {
    for (const entry of [...pending].reverse()) {
      try {
        await entry.stop();
      } catch (err) {
        log(`stopping ${entry.what} failed: ${(err as Error).message}`);
      }
    }
  }
}

/** Installs the signal handlers (once). */
export function stopAllOnSignals(): void {
  if (installed) return;
  installed = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      const code = 128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const)[signal];
      if (signalled) process.exit(code);
      signalled = true;
      log(`${signal}: stopping ${pending.size} started thing(s) (${[...pending].map((p) => p.what).join(', ')}); again to exit at once`);
      void stopAll().finally(() => process.exit(code));
    });
  }
}
