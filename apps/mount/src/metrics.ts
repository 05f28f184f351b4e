/**
 * `--metrics HOST:PORT`: the mount's statistics in the Prometheus text format, on
 * http://HOST:PORT/metrics (prom-client). Counters mirror what the adapter and the store count
 * anyway (MountedFs.stats, Store.stats), read at scrape time; only the latency histogram is fed
 * per operation (MountFsOptions.onOperation). A scrape costs Redis one bounded read at most (the
 * pending background work: three set sizes), none while the mount is still starting.
 *
 * prom-client is loaded only when --metrics is given.
 */
import { createServer, type Server } from 'node:http';
import type { MountStats, OperationObserver } from '@redisfs/fuse';
import type { PendingWork, StoreStats } from '@redisfs/store';
import type { Histogram, Registry } from 'prom-client';

/** What the metrics are read from; each undefined until the mount has it. */
export interface MetricsSource {
  mountStats(): MountStats | undefined;
  storeStats(): StoreStats | undefined;
  /** The pending background work, or undefined when unknown (no store yet, Redis slow or down). */
  pendingWork(): Promise<PendingWork | undefined>;
}

/** Labels every metric of the mount carries. */
export interface MountLabels {
  prefix: string;
  mountpoint: string;
}

/** Upper bounds of the latency buckets, in seconds: from a cached answer (~50 µs) to a stuck Redis. */
export const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** `kind` label of redisfs_background_pending, by PendingWork field. */
export const PENDING_KINDS: Record<keyof PendingWork, string> = {
  gcInodes: 'files_to_release',
  freeBlocks: 'blocks_to_delete',
  deadMembers: 'filesystems_to_delete',
  deadSessions: 'sessions_to_end',
};

/** The registry of one mount, and the observer that feeds its latency histogram. */
export interface MountMetrics {
  readonly registry: Registry;
  /** Give to mountFs as onOperation. */
  readonly onOperation: OperationObserver;
  /** The current exposition text. */
  text(): Promise<string>;
}

/** Builds the registry of one mount (prom-client's default process metrics included). */
export async function createMountMetrics(labels: MountLabels, source: MetricsSource): Promise<MountMetrics> {
  const prom = await import('prom-client');
  const registry = new prom.Registry();
  registry.setDefaultLabels({ prefix: labels.prefix, mountpoint: labels.mountpoint });
  prom.collectDefaultMetrics({ register: registry });
  const registers = [registry];

  /** A counter whose values are copied from a cumulative count at each scrape. */
  const mirrored = <L extends string>(name: string, help: string, labelNames: L[], read: () => [Partial<Record<L, string>>, number][]) =>
    new prom.Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const [values, n] of read()) this.inc(values, n);
      },
    });

  mirrored('redisfs_fuse_operations_total', 'FUSE calls that reached the adapter, by operation', ['op'], () =>
    Object.entries(source.mountStats()?.fuseCalls ?? {}).map(([op, n]) => [{ op }, n]),
  );
  mirrored('redisfs_fuse_errors_total', 'FUSE calls answered with an error, by operation and errno', ['op', 'errno'], () =>
    Object.entries(source.mountStats()?.fuseErrors ?? {}).flatMap(([op, byErrno]) =>
      Object.entries(byErrno).map(([errno, n]): [Partial<Record<'op' | 'errno', string>>, number] => [{ op, errno }, n]),
    ),
  );
  mirrored('redisfs_redis_commands_total', 'Redis round trips, by command (a script call or a MULTI counts once)', ['command'], () =>
    Object.entries(source.storeStats()?.commands ?? {}).map(([command, n]) => [{ command }, n]),
  );
  mirrored('redisfs_bytes_read_total', 'Bytes answered to reads that reached the adapter', [], () => [[{}, source.mountStats()?.bytesRead ?? 0]]);
  mirrored('redisfs_bytes_written_total', 'Bytes accepted from writes', [], () => [[{}, source.mountStats()?.bytesWritten ?? 0]]);
  const cacheCounts = (field: 'hits' | 'misses') => (): [Partial<Record<'cache', string>>, number][] => {
    const cache = source.mountStats()?.cache;
    return cache ? [[{ cache: 'attr' }, cache.attr[field]], [{ cache: 'read_ahead' }, cache.readAhead[field]]] : [];
  };
  mirrored('redisfs_cache_hits_total', 'Lookups answered from a cache: attr (attributes and entries), read_ahead', ['cache'], cacheCounts('hits'));
  mirrored('redisfs_cache_misses_total', 'Lookups a cache could not answer: attr, read_ahead', ['cache'], cacheCounts('misses'));

  new prom.Gauge({
    name: 'redisfs_background_pending',
    help: 'Work the background collector has still to do (files_to_release, blocks_to_delete, filesystems_to_delete)',
    labelNames: ['kind'],
    registers,
    async collect() {
      this.reset();
      const pending = await source.pendingWork();
      if (!pending) return;
      for (const [field, kind] of Object.entries(PENDING_KINDS) as [keyof PendingWork, string][]) this.set({ kind }, pending[field]);
    },
  });

  const durations: Histogram<'op'> = new prom.Histogram({
    name: 'redisfs_fuse_operation_duration_seconds',
    help: 'Time from a FUSE call reaching the adapter to its answer, by operation',
    labelNames: ['op'],
    buckets: DURATION_BUCKETS,
    registers,
  });
  // One child per operation name, so an observation costs no label hashing.
  const byOp = new Map<string, Histogram.Internal<'op'>>();
  const onOperation: OperationObserver = (op, seconds) => {
    let child = byOp.get(op);
    if (!child) byOp.set(op, (child = durations.labels({ op })));
    child.observe(seconds);
  };

  return { registry, onOperation, text: () => registry.metrics() };
}

/** A running metrics endpoint. */
export interface StartedMetricsServer {
  /** http://HOST:PORT/metrics */
  readonly url: string;
  close(): Promise<void>;
}

/** How --metrics is written back in messages ([v6]:port). */
export function metricsAddress(listen: { host: string; port: number }): string {
  return `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
}

/** Why listening on --metrics failed, in one line. */
function listenProblem(err: NodeJS.ErrnoException, address: string): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return `--metrics ${address}: the port is already in use; choose another one`;
    case 'EACCES':
      return `--metrics ${address}: permission denied (ports below 1024 need root)`;
    case 'EADDRNOTAVAIL':
      return `--metrics ${address}: this host has no such address`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `--metrics ${address}: cannot resolve the host name`;
    default:
      return `--metrics ${address}: cannot listen: ${err.message}`;
  }
}

/**
 * Serves `metrics` on GET /metrics at `listen`. Fails with one line naming --metrics when it
 * cannot listen (port in use, no such address).
 */
export async function startMetricsServer(listen: { host: string; port: number }, metrics: MountMetrics): Promise<StartedMetricsServer> {
  const address = metricsAddress(listen);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(req.method === 'HEAD' ? undefined : body),
      (err: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(listenProblem(err, address), { cause: err })));
    server.listen(listen.port, listen.host, () => resolve());
  });
  // Not what keeps the process alive: the mount does.
  server.unref();
  const bound = server.address();
  const port = typeof bound === 'object' && bound ? bound.port : listen.port;
  return {
    url: `http://${metricsAddress({ host: listen.host, port })}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
