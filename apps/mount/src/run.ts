/**
 * The mount's lifetime: open the store (on the Redis cli.ts resolved), mount, wait for a signal or
 * an outside unmount, then unmount and close the store, in that order. The private Redis is a
 * service of its own (@redisfs/cli-common's private-redis): a mount never starts or stops it.
 */
import { EXIT_OK } from '@redisfs/cli-common';
import type { MountedFs } from '@redisfs/fuse';
import { openStore, type Store } from '@redisfs/store';
import type { MountConfig } from './args.js';
import { reportToParent } from './daemon.js';
import { effectiveLevel, logDestinationOf, openMountLog, type MountLog } from './log.js';
import { MountReporter } from './control.js';

/** Where output goes; lines are scrubbed of secrets by the caller. */
export interface Output {
  out(line: string): void;
  err(line: string): void;
  /** Removes secrets from text written elsewhere (a log file, the system log). */
  scrub?(text: string): string;
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** Asks for one stats line on stderr (see README); does not stop the mount. */
const STATS_SIGNAL = 'SIGUSR2';

/**
 * Mounts and serves until unmounted. Returns the exit code; throws on a failure to mount.
 * `onServer` ends the `mounted …` line (` on the private redis-server (data in …)`).
 */
export async function runMount(config: MountConfig, io: Output, onServer = ''): Promise<number> {
  // First: a --syslog that cannot work is a usage error before anything starts (log.ts).
  const log = openMountLog({
    level: effectiveLevel(config),
    destination: logDestinationOf(config),
    stderr: (line) => io.err(line),
    scrub: io.scrub,
  });
  let store: Store | undefined;
  let mounted: MountedFs | undefined;
  // From the start: a Ctrl-C during startup must not kill the process halfway through a mount.
  const signals = new SignalLatch();
  // SIGUSR2's line, --metrics and `redisfs status` (control.ts).
  const reporter = new MountReporter(config, () => ({ store, mounted }), io);
  // Also from the start: SIGUSR2's default action would end the process.
  const printStats = (): void => {
    log.info(`stats ${JSON.stringify(reporter.stats())}`);
  };
  process.on(STATS_SIGNAL, printStats);
  try {
    await reporter.startMetrics(); // first: a --metrics port in use fails before anything starts
    // Told no address, cli.ts has resolved it already (127.0.0.1:6379 or the private server's socket).
    const { url, socket } = config;
    // Loaded late: the native FUSE addon is not needed to print help or a usage error.
    const { mountFs } = await import('@redisfs/fuse');
    store = await openStore({
      url,
      socket,
      prefix: config.prefix,
      readOnly: config.readOnly,
      writeSnapshot: config.readWrite,
      syncReplicas: config.syncReplicas,
      opTimeoutMs: config.timeoutMs,
      session: { mountpoint: config.mountpoint, leaseMs: config.sessionTimeoutMs },
      onWarning: (message, cause) => log.warn(withCause(message, cause)),
    });
    signals.throwIfSignalled();
    mounted = await mountFs({
      store,
      mountpoint: config.mountpoint,
      debug: log.enabled('debug'),
      allowOther: config.allowOther,
      readOnly: store.readOnly,
      cacheTimeoutMs: config.cacheTimeoutMs,
      onOperation: reporter.onOperation,
      log: (line, level) => log.write(level, line),
      fsname: config.source,
      mountFlags: config.mountFlags,
    });
    io.out(`mounted ${config.prefix} at ${config.mountpoint}${onServer}`);
    // On stderr, the line above says it already.
    if (log.destination.kind !== 'stderr') log.info(`mounted ${config.prefix} at ${config.mountpoint} (pid ${process.pid})`);
    await reporter.register({ url, socket });
    await reportToParent({ type: 'ready' });
    await serveUntilUnmounted(mounted, config.mountpoint, signals, log);
    log.info(`unmounted ${config.prefix} from ${config.mountpoint}`);
    return EXIT_OK;
  } catch (err) {
    // The CLI prints it on stderr; a log elsewhere must have it too (a daemon's only record).
    if (log.destination.kind !== 'stderr') log.error(messageOf(err));
    throw err;
  } finally {
    signals.dispose();
    process.off(STATS_SIGNAL, printStats);
    await reporter.stop();
    await store?.close();
    await log.close();
  }
}

/** A store warning with what caused it, when the message does not say it already. */
function withCause(message: string, cause: unknown): string {
  if (cause === undefined) return message;
  const why = messageOf(cause).split('\n')[0] ?? '';
  return why === '' || message.includes(why) ? message : `${message}: ${why}`;
}

/**
 * Resolves once the filesystem is unmounted: by a signal (we unmount) or from outside
 * (fusermount -u). An unmount that fails (busy) is reported and the mount keeps serving, so
 * the user can close what uses it and signal again.
 */
async function serveUntilUnmounted(mounted: MountedFs, mountpoint: string, signals: SignalLatch, log: MountLog): Promise<void> {
  let unmounting = false;
  await new Promise<void>((resolveDone) => {
    mounted.closed.then(resolveDone, (err: unknown) => {
      log.error(`the mount at ${mountpoint} ended: ${messageOf(err)}`);
      resolveDone();
    });
    signals.listen((signal) => {
      if (unmounting) return;
      unmounting = true;
      mounted.unmount().then(resolveDone, (err: unknown) => {
        unmounting = false;
        log.error(
          `${signal}: cannot unmount ${mountpoint}: ${messageOf(err)}; ` + 'close the files and shells using it, then try again',
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
