/**
 * The mount's lifetime: find Redis (given, default, or a private one), open the store, mount,
 * wait for a signal or an outside unmount, then unmount, close the store and stop the private
 * Redis, in that order.
 */
import { EXIT_OK } from '@redisfs/cli-common';
import type { MountedFs } from '@redisfs/fuse';
import { openStore, type Store } from '@redisfs/store';
import type { MountConfig } from './args.js';
import { reportToParent } from './daemon.js';
import { DEFAULT_REDIS, pingRedis } from '@redisfs/cli-common';
import { startEmbeddedRedis, type StartedEmbeddedRedis } from './embedded-redis.js';

/** Where output goes; lines are scrubbed of secrets by the caller. */
export interface Output {
  out(line: string): void;
  err(line: string): void;
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** Asks for one stats line on stderr (see README); does not stop the mount. */
const STATS_SIGNAL = 'SIGUSR2';

/** Mounts and serves until unmounted. Returns the exit code; throws on a failure to mount. */
export async function runMount(config: MountConfig, io: Output): Promise<number> {
  let embedded: StartedEmbeddedRedis | undefined;
  let store: Store | undefined;
  let mounted: MountedFs | undefined;
  // From the start: a Ctrl-C during startup must not kill the process halfway through a mount.
  const signals = new SignalLatch();
  // Also from the start: SIGUSR2's default action would end the process.
  const printStats = (): void => {
    const stats = { fuseCalls: mounted?.stats().fuseCalls ?? {}, redisCommands: store?.stats().commands ?? {} };
    io.err(`redisfs: stats ${JSON.stringify(stats)}`);
  };
  process.on(STATS_SIGNAL, printStats);
  try {
    let { url, socket } = config;
    if (url === undefined && socket === undefined && (await pingRedis(DEFAULT_REDIS)) === 'none') {
      embedded = await startEmbeddedRedis();
      socket = embedded.socket;
      io.err(
        `redisfs: nothing answers on ${DEFAULT_REDIS.host}:${DEFAULT_REDIS.port}; ` +
          `${embedded.owned ? 'started' : 'using'} a private redis-server (data in ${embedded.dataDir})`,
      );
    }
    // Loaded late: the native FUSE addon is not needed to print help or a usage error.
    const { mountFs } = await import('@redisfs/fuse');
    store = await openStore({
      url,
      socket,
      prefix: config.prefix,
      readOnly: config.readOnly,
      writeSnapshot: config.readWrite,
      syncReplicas: config.syncReplicas,
      onWarning: (message) => io.err(`redisfs: warning: ${message}`),
    });
    signals.throwIfSignalled();
    mounted = await mountFs({
      store,
      mountpoint: config.mountpoint,
      debug: config.debug,
      allowOther: config.allowOther,
      readOnly: store.readOnly,
      cacheTimeoutMs: config.cacheTimeoutMs,
      log: (line) => io.err(line),
    });
    io.out(`mounted ${config.prefix} at ${config.mountpoint}`);
    await reportToParent({ type: 'ready' });
    await serveUntilUnmounted(mounted, config.mountpoint, signals, io);
    return EXIT_OK;
  } finally {
    signals.dispose();
    process.off(STATS_SIGNAL, printStats);
    await store?.close();
    await embedded?.stop();
  }
}

/**
 * Resolves once the filesystem is unmounted: by a signal (we unmount) or from outside
 * (fusermount -u). An unmount that fails (busy) is reported and the mount keeps serving, so
 * the user can close what uses it and signal again.
 */
async function serveUntilUnmounted(mounted: MountedFs, mountpoint: string, signals: SignalLatch, io: Output): Promise<void> {
  let unmounting = false;
  await new Promise<void>((resolveDone) => {
    mounted.closed.then(resolveDone, (err: unknown) => {
      io.err(`redisfs: the mount at ${mountpoint} ended: ${messageOf(err)}`);
      resolveDone();
    });
    signals.listen((signal) => {
      if (unmounting) return;
      unmounting = true;
      mounted.unmount().then(resolveDone, (err: unknown) => {
        unmounting = false;
        io.err(
          `redisfs: ${signal}: cannot unmount ${mountpoint}: ${messageOf(err)}; ` +
            'close the files and shells using it, then try again',
        );
      });
    });
  });
}

/** Catches the stop signals from construction on; one that comes before listen() is kept. */
class SignalLatch {
  private pending: NodeJS.Signals | undefined;
  private listener: ((signal: NodeJS.Signals) => void) | undefined;
  private readonly handler = (signal: NodeJS.Signals): void => {
    if (this.listener) this.listener(signal);
    else this.pending ??= signal;
  };

  constructor() {
    for (const s of STOP_SIGNALS) process.on(s, this.handler);
  }

  /** Throws when a signal came before the mount was ready. */
  throwIfSignalled(): void {
    if (this.pending) throw new Error(`stopped by ${this.pending} before the mount was ready`);
  }

  /** Calls `fn` for each signal from now on (at once for one already caught). */
  listen(fn: (signal: NodeJS.Signals) => void): void {
    this.listener = fn;
    const early = this.pending;
    this.pending = undefined;
    if (early) fn(early);
  }

  dispose(): void {
    for (const s of STOP_SIGNALS) process.off(s, this.handler);
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
