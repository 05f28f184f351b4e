/**
 * How a running mount tells about itself: the SIGUSR2 stats line, the --metrics endpoint
 * (metrics.ts) and the runtime registry `redisfs status` reads (status.ts).
 *
 * The registry is a directory private to the user ($XDG_RUNTIME_DIR/redisfs, else /run/redisfs
 * for root, else /tmp/redisfs-<uid>; mode 0700). Each mount writes `<pid>.json` there, the facts
 * that do not change (mountpoint, prefix, server, start time), once it is mounted, and answers
 * live statistics on the unix socket `<pid>.sock`: the client sends one line, `stats`, and reads
 * one JSON line back. Both go at unmount; after a kill -9 they stay, and `redisfs status` removes
 * them (the pid is gone, or nothing listens on the socket).
 */
import { lstat, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { MountedFs, MountStats, OperationObserver } from '@redisfs/fuse';
import { describeTarget, type PendingWork, type Store } from '@redisfs/store';
import type { MountConfig } from './args.js';
import { createMountMetrics, metricsAddress, startMetricsServer, type StartedMetricsServer } from './metrics.js';
import type { Output } from './run.js';

/** Layout of the registry files; bumped when a field changes meaning. */
const REGISTRY_VERSION = 1;
/** How long a scrape or a status query waits for the pending work before leaving it out. */
const PENDING_TIMEOUT_MS = 500;
/** Longest request line the control socket reads. */
const MAX_REQUEST_BYTES = 256;

/** `<pid>.json`: what a mount registers (nothing secret: the server has no password). */
export interface RegistryEntry {
  version: number;
  pid: number;
  mountpoint: string;
  prefix: string;
  /** Where Redis is: a URL without password, or `unix:<socket>`. */
  server: string;
  readOnly: boolean;
  /** When the mount was made (ISO 8601). */
  mountedAt: string;
  /** The --metrics endpoint, if any (http://HOST:PORT/metrics). */
  metrics: string | null;
}

/** Counts since the mount (MountStats plus the store's round trips). */
export interface LiveStats extends MountStats {
  redisCommands: Record<string, number>;
}

/** What the control socket answers to `stats`. */
export interface LiveReport extends RegistryEntry {
  uptimeSeconds: number;
  stats: LiveStats;
  /** The collector's pending work; null when Redis did not say in time. */
  pending: PendingWork | null;
}

/**
 * The registry directories of this user, the one a mount registers in first. `redisfs status`
 * reads them all, so a mount started without XDG_RUNTIME_DIR (a service) is found from a shell
 * that has it.
 */
export function runtimeDirs(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string[] {
  const dirs: string[] = [];
  if (env.XDG_RUNTIME_DIR?.startsWith('/')) dirs.push(join(env.XDG_RUNTIME_DIR, 'redisfs'));
  if (uid === 0) dirs.push('/run/redisfs');
  dirs.push(`/tmp/redisfs-${uid}`);
  return [...new Set(dirs)];
}

/** Why `dir` cannot hold this user's registry (not a directory, someone else's, open to others), if so. */
export async function unsafeDirProblem(dir: string, uid = process.getuid?.() ?? 0): Promise<string | undefined> {
  const st = await lstat(dir);
  if (!st.isDirectory()) return `${dir} is not a directory`;
  if (st.uid !== uid) return `${dir} belongs to uid ${st.uid}`;
  if ((st.mode & 0o077) !== 0) return `${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)})`;
  return undefined;
}

/** Creates (0700) and checks the directory a mount registers in. */
async function ensureRuntimeDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const problem = await unsafeDirProblem(dir);
  if (problem) throw new Error(problem);
}

export function entryPath(dir: string, pid: number): string {
  return join(dir, `${pid}.json`);
}

export function socketPath(dir: string, pid: number): string {
  return join(dir, `${pid}.sock`);
}

/**
 * Asks the mount listening on `socket` for its live report. Rejects with the connection's error
 * (ENOENT, ECONNREFUSED: nobody listens) or ETIMEDOUT after `timeoutMs`.
 */
export function queryMount(socket: string, timeoutMs: number): Promise<LiveReport> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socket);
    let data = '';
    const fail = (err: Error) => {
      conn.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write('stats\n'));
    conn.on('data', (chunk: string) => (data += chunk));
    conn.on('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
    conn.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(data) as LiveReport);
      } catch {
        fail(Object.assign(new Error('an unreadable answer'), { code: 'EPROTO' }));
      }
    });
  });
}

/** What {@link MountReporter} reads from the mount as it comes up. */
export interface MountParts {
  store: Store | undefined;
  mounted: MountedFs | undefined;
}

/**
 * The mount's reporting: SIGUSR2's line, --metrics, and the registry entry with its control
 * socket. run.ts makes one at start (`parts` reads its store and mount as they appear), calls
 * startMetrics() before mounting, register() once mounted, and stop() at the end.
 */
export class MountReporter {
  private metricsServer: StartedMetricsServer | undefined;
  private observer: OperationObserver | undefined;
  private control: Server | undefined;
  private registered: { dir: string; entry: RegistryEntry } | undefined;
  private pendingRead: Promise<PendingWork | undefined> | undefined;
  private startedMs = Date.now();

  constructor(
    private readonly config: MountConfig,
    private readonly parts: () => MountParts,
    private readonly io: Output,
    /** Where to register (default: the first of runtimeDirs()). */
    private readonly dir: string | undefined = runtimeDirs()[0],
  ) {}

  /** The adapter's onOperation: feeds the latency histogram when --metrics is on. */
  readonly onOperation: OperationObserver = (op, seconds, errno) => this.observer?.(op, seconds, errno);

  /** Counts since the mount (empty before it). */
  stats(): LiveStats {
    const { store, mounted } = this.parts();
    const m = mounted?.stats();
    return {
      fuseCalls: m?.fuseCalls ?? {},
      fuseErrors: m?.fuseErrors ?? {},
      bytesRead: m?.bytesRead ?? 0,
      bytesWritten: m?.bytesWritten ?? 0,
      cache: m?.cache ?? { attr: { hits: 0, misses: 0 }, readAhead: { hits: 0, misses: 0 } },
      session: m?.session ?? { id: store?.sessionId, openHandles: 0, posixLockOwners: 0 },
      redisCommands: store?.stats().commands ?? {},
    };
  }

  /**
   * The collector's pending work, or undefined when there is no store yet or Redis does not say
   * within PENDING_TIMEOUT_MS. One read at a time: callers meanwhile share it.
   */
  pendingWork(): Promise<PendingWork | undefined> {
    const store = this.parts().store;
    if (!store) return Promise.resolve(undefined);
    this.pendingRead ??= store
      .pendingWork()
      .catch(() => undefined)
      .finally(() => (this.pendingRead = undefined));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), PENDING_TIMEOUT_MS)));
    return Promise.race([this.pendingRead, late]).finally(() => clearTimeout(timer));
  }

  /** Starts --metrics, if asked for: before mounting, so a port in use fails the mount first. */
  async startMetrics(): Promise<void> {
    const listen = this.config.metrics;
    if (!listen) return;
    const metrics = await createMountMetrics(
      { prefix: this.config.prefix, mountpoint: this.config.mountpoint },
      {
        mountStats: () => this.parts().mounted?.stats(),
        storeStats: () => this.parts().store?.stats(),
        pendingWork: () => this.pendingWork(),
      },
    );
    this.metricsServer = await startMetricsServer(listen, metrics);
    this.observer = metrics.onOperation;
  }

  /**
   * Registers the mount for `redisfs status`: the control socket first, then the entry, so an
   * entry always has a listener while the process lives. A failure is a warning: the mount works
   * without it.
   */
  async register(target: { url: string | undefined; socket: string | undefined }): Promise<void> {
    const mounted = this.parts().mounted;
    if (!mounted) return;
    this.startedMs = Date.now();
    const entry: RegistryEntry = {
      version: REGISTRY_VERSION,
      pid: process.pid,
      mountpoint: mounted.mountpoint,
      prefix: this.config.prefix,
      server: describeTarget(target),
      readOnly: this.config.readOnly || this.parts().store?.readOnly === true,
      mountedAt: new Date(this.startedMs).toISOString(),
      metrics: this.config.metrics ? `http://${metricsAddress(this.config.metrics)}/metrics` : null,
    };
    const dir = this.dir;
    if (!dir) return;
    try {
      await ensureRuntimeDir(dir);
      this.control = await this.listen(socketPath(dir, process.pid), entry);
      const path = entryPath(dir, process.pid);
      await writeFile(`${path}.tmp`, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
      await rename(`${path}.tmp`, path);
      this.registered = { dir, entry };
    } catch (err) {
      this.io.err(`redisfs: warning: redisfs status will not list this mount: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Unregisters and closes the metrics endpoint (idempotent). */
  async stop(): Promise<void> {
    const registered = this.registered;
    this.registered = undefined;
    if (registered) await rm(entryPath(registered.dir, process.pid), { force: true });
    const control = this.control;
    this.control = undefined;
    if (control) await new Promise<void>((resolve) => control.close(() => resolve()));
    if (registered) await rm(socketPath(registered.dir, process.pid), { force: true });
    const server = this.metricsServer;
    this.metricsServer = undefined;
    this.observer = undefined;
    await server?.close();
  }

  private async report(entry: RegistryEntry): Promise<LiveReport> {
    const pending = await this.pendingWork();
    return {
      ...entry,
      uptimeSeconds: Math.round((Date.now() - this.startedMs) / 1000),
      stats: this.stats(),
      pending: pending ?? null,
    };
  }

  /** Listens on the control socket (a stale one of a dead process with our pid is replaced). */
  private async listen(path: string, entry: RegistryEntry): Promise<Server> {
    await rm(path, { force: true });
    // allowHalfOpen: a client that sends its line and half-closes still gets the answer.
    const server = createServer({ allowHalfOpen: true }, (conn) => {
      let request = '';
      conn.setEncoding('utf8');
      conn.setTimeout(5000, () => conn.destroy());
      conn.on('error', () => undefined); // a client that went away
      conn.on('data', (chunk: string) => {
        request += chunk;
        if (request.length > MAX_REQUEST_BYTES) return conn.destroy();
        if (!request.includes('\n')) return;
        const command = request.slice(0, request.indexOf('\n')).trim();
        if (command !== 'stats') return void conn.end(`${JSON.stringify({ error: `unknown request ${JSON.stringify(command)}` })}\n`);
        this.report(entry).then(
          (report) => conn.end(`${JSON.stringify(report)}\n`),
          () => conn.destroy(),
        );
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.unref();
    return server;
  }
}
