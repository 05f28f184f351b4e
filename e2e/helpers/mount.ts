/**
 * A real redisfs mount: the built `redisfs` CLI runs in the foreground as a separate process,
 * mounted on a fresh temp dir. Cleanup always releases the mount, even after a failed test or a
 * hung daemon: SIGTERM first (the clean path a user takes), then `fusermount -uz` and SIGKILL.
 *
 *   await using mnt = await mountRedisfs({ redis, prefix: 't1' });
 *   await writeFile(mnt.path('hello'), 'hi');
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, realpath, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ChildExit,
  OutputTail,
  type StartedRedis,
  disposeWhenTestEnds,
  exitedWithin,
  findFusermount,
  isRunning,
  own,
  run,
  stopChild,
  waitFor,
} from '@redisfs/testing';
import { isMounted } from './mountinfo.js';
import { MOUNT_CLI, requireBuilt } from './paths.js';

export interface MountOptions {
  redis: Pick<StartedRedis, 'url'>;
  /** The filesystem's key prefix in Redis; give every test its own. */
  prefix: string;
  readOnly?: boolean;
  /** More CLI flags, appended last. */
  extraArgs?: string[];
  /** How long to wait for the mount to appear; 30 s unless told. */
  timeoutMs?: number;
  /** The CLI script to run with node; the built `redisfs` unless told (tests of the harness). */
  cli?: string;
}

/** How a mount ended. `forced` is true when the daemon did not unmount by itself on SIGTERM. */
export interface UnmountResult {
  exit: ChildExit;
  forced: boolean;
}

/** A mounted redisfs. Release it with `unmount()` or let `await using` do it. */
export interface StartedMount extends AsyncDisposable {
  /** The mountpoint (absolute, symlinks resolved). */
  readonly dir: string;
  readonly prefix: string;
  /** The `redisfs` process. */
  readonly process: ChildProcess;
  /** A path inside the mount. */
  path(...parts: string[]): string;
  stdout(): string;
  stderr(): string;
  /** Stops the daemon and releases the mount, whatever state it is in. Idempotent. */
  unmount(): Promise<UnmountResult>;
}

const TERM_GRACE_MS = 10_000;
const UNMOUNT_TIMEOUT_MS = 10_000;

/** Detaches whatever is mounted at `dir` (lazy, so a busy or dead mount goes too). */
export async function forceUnmount(dir: string): Promise<void> {
  if (!(await isMounted(dir))) return;
  const fusermount = findFusermount();
  const result = fusermount ? await run(fusermount, ['-uz', dir]) : undefined;
  if (result?.code !== 0 && (await isMounted(dir))) {
    // Not a FUSE mount we may release as this user, or fusermount is missing: try umount(8).
    await run('umount', ['-l', dir]).catch(() => undefined);
  }
  await waitFor(async () => !(await isMounted(dir)), { timeoutMs: UNMOUNT_TIMEOUT_MS, what: `${dir} to be unmounted` });
}

/** Mounts not yet released, detached synchronously if the test process exits with them. */
const live = new Set<string>();
let exitHookInstalled = false;

function track(dir: string): void {
  live.add(dir);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const d of live) spawnSync(findFusermount() ?? 'fusermount', ['-uz', d], { stdio: 'ignore' });
  });
}

class RunningMount implements StartedMount {
  private readonly out = new OutputTail();
  private readonly err = new OutputTail();
  private releasing: Promise<UnmountResult> | undefined;

  constructor(
    readonly dir: string,
    readonly prefix: string,
    readonly process: ChildProcess,
  ) {
    this.out.follow(process.stdout);
    this.err.follow(process.stderr);
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  stdout(): string {
    return this.out.toString();
  }

  stderr(): string {
    return this.err.toString();
  }

  unmount(): Promise<UnmountResult> {
    this.releasing ??= this.release();
    return this.releasing;
  }

  private async release(): Promise<UnmountResult> {
    let forced = false;
    let exit: ChildExit | undefined;
    try {
      if (isRunning(this.process)) {
        this.process.kill('SIGTERM');
        exit = await exitedWithin(this.process, TERM_GRACE_MS);
      }
      if (!exit && isRunning(this.process)) {
        // A daemon that ignores SIGTERM: detach the mount so the kernel aborts its requests, then kill.
        forced = true;
        await forceUnmount(this.dir).catch(() => undefined);
        exit = await stopChild(this.process, 'SIGKILL', 0);
      }
      exit ??= { code: this.process.exitCode, signal: this.process.signalCode };
      if (await isMounted(this.dir)) {
        forced = true;
        await forceUnmount(this.dir);
      }
    } finally {
      // Whatever failed above, never leave a mount or a process behind.
      if (isRunning(this.process)) this.process.kill('SIGKILL');
      await forceUnmount(this.dir).catch(() => undefined);
      await rmdir(this.dir).catch(() => undefined);
      live.delete(this.dir);
    }
    return { exit, forced };
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.unmount().then(() => undefined);
  }
}

/** The argv the harness gives `redisfs` (after `node cli.js`). */
export function mountArgs(options: MountOptions, dir: string): string[] {
  return [
    '--url', options.redis.url,
    '--prefix', options.prefix,
    '--mount', dir,
    ...(options.readOnly ? ['--read-only'] : []),
    ...(options.extraArgs ?? []),
  ];
}

/**
 * Mounts `prefix` of `redis` on a new temp dir by running the real CLI, and resolves once the
 * kernel lists the mount. If the CLI exits first, rejects with its stderr.
 */
export async function mountRedisfs(options: MountOptions): Promise<StartedMount> {
  const cli = options.cli ?? requireBuilt(MOUNT_CLI);
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'redisfs-e2e-mnt-')));
  const child = own(spawn(process.execPath, [cli, ...mountArgs(options, dir)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const mount = new RunningMount(dir, options.prefix, child);
  track(dir);
  disposeWhenTestEnds(mount);
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    await waitFor(() => isMounted(dir), {
      timeoutMs: options.timeoutMs ?? 30_000,
      what: `redisfs to mount ${dir}`,
      bail: () =>
        isRunning(child)
          ? undefined
          : new Error(`redisfs exited (code ${child.exitCode}, signal ${child.signalCode}) before mounting ${dir}`),
    });
    return mount;
  } catch (err) {
    await mount.unmount();
    // Let the pipes drain so the message carries everything the CLI said.
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    throw new Error(`${(err as Error).message}\nredisfs ${mountArgs(options, dir).join(' ')}\nstderr:\n${mount.stderr()}`, {
      cause: err,
    });
  }
}

/** What a mount counted since it was mounted (the line SIGUSR2 writes to stderr). */
export interface MountStats {
  fuseCalls: Record<string, number>;
  redisCommands: Record<string, number>;
}

/** Every stats line a mount wrote to stderr so far, oldest first. */
export function statsLines(mount: Pick<StartedMount, 'stderr'>): MountStats[] {
  return [...mount.stderr().matchAll(/^redisfs: stats (\{.*\})$/gm)].map((m) => JSON.parse(m[1]!) as MountStats);
}

/** Asks a mount for its counts (SIGUSR2) and waits for the line it writes. */
export async function statsOf(mount: StartedMount): Promise<MountStats> {
  const seen = statsLines(mount).length;
  mount.process.kill('SIGUSR2');
  await waitFor(() => statsLines(mount).length > seen, { timeoutMs: 10_000, what: 'a stats line on stderr' });
  return statsLines(mount)[seen]!;
}
