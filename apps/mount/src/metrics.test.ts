/**
 * The --metrics plumbing: the registry mirrors what the mount and the store count, the latency
 * histogram moves with each observed operation, and the endpoint serves the text format (or
 * fails with one line naming --metrics when the port is taken).
 */
import { createServer } from 'node:net';
import type { MountStats } from '@redisfs/fuse';
import type { PendingWork, StoreStats } from '@redisfs/store';
import { describe, expect, it } from 'vitest';
import { createMountMetrics, startMetricsServer, type MetricsSource } from './metrics.js';

function emptyStats(): MountStats {
  return { fuseCalls: {}, fuseErrors: {}, bytesRead: 0, bytesWritten: 0, cache: { attr: { hits: 0, misses: 0 }, readAhead: { hits: 0, misses: 0 } }, session: { id: undefined, openHandles: 0, posixLockOwners: 0 } };
}

/** A source whose counts the test sets. */
function source() {
  const state = { mount: emptyStats() as MountStats | undefined, store: { commands: {} } as StoreStats | undefined, pending: undefined as PendingWork | undefined };
  const src: MetricsSource = {
    mountStats: () => state.mount,
    storeStats: () => state.store,
    pendingWork: async () => state.pending,
  };
  return { state, src };
}

/** The value of one sample line, e.g. sample(text, 'redisfs_bytes_read_total'). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}

const LABELS = { prefix: 'skx', mountpoint: '/mnt/skx' };

describe('createMountMetrics', () => {
  it('mirrors operations, errors by errno, bytes, caches, round trips and pending work', async () => {
    const { state, src } = source();
    const metrics = await createMountMetrics(LABELS, src);
    state.mount = {
      fuseCalls: { lookup: 5, write: 2 },
      fuseErrors: { lookup: { ENOENT: 3 } },
      bytesRead: 100,
      bytesWritten: 2048,
      cache: { attr: { hits: 7, misses: 2 }, readAhead: { hits: 4, misses: 1 } },
      session: { id: 'a1b2c3d4e5f60718', openHandles: 2, posixLockOwners: 0 },
    };
    state.store = { commands: { 'EVALSHA create': 2, HGETALL: 1 } };
    state.pending = { gcInodes: 1, freeBlocks: 30, deadMembers: 0, deadSessions: 0 };
    const text = await metrics.text();
    expect(sample(text, 'redisfs_fuse_operations_total', { op: 'lookup', ...LABELS })).toBe(5);
    expect(sample(text, 'redisfs_fuse_errors_total', { op: 'lookup', errno: 'ENOENT' })).toBe(3);
    expect(sample(text, 'redisfs_bytes_read_total')).toBe(100);
    expect(sample(text, 'redisfs_bytes_written_total')).toBe(2048);
    expect(sample(text, 'redisfs_cache_hits_total', { cache: 'attr' })).toBe(7);
    expect(sample(text, 'redisfs_cache_misses_total', { cache: 'read_ahead' })).toBe(1);
    expect(sample(text, 'redisfs_redis_commands_total', { command: 'EVALSHA create' })).toBe(2);
    expect(sample(text, 'redisfs_background_pending', { kind: 'blocks_to_delete' })).toBe(30);
    expect(sample(text, 'redisfs_background_pending', { kind: 'files_to_release' })).toBe(1);
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);

    // Counts grow between scrapes; they are not added twice.
    state.mount.fuseCalls.lookup = 6;
    expect(sample(await metrics.text(), 'redisfs_fuse_operations_total', { op: 'lookup' })).toBe(6);
    // Pending work unknown (Redis slow): no sample rather than a stale one.
    state.pending = undefined;
    expect(sample(await metrics.text(), 'redisfs_background_pending', { kind: 'blocks_to_delete' })).toBeUndefined();
  });

  it('moves the latency histogram of the operation observed', async () => {
    const { src } = source();
    const metrics = await createMountMetrics(LABELS, src);
    metrics.onOperation('lookup', 0.0003, undefined);
    metrics.onOperation('lookup', 0.002, 'ENOENT');
    metrics.onOperation('read', 20, undefined);
    const text = await metrics.text();
    const h = 'redisfs_fuse_operation_duration_seconds';
    expect(sample(text, `${h}_count`, { op: 'lookup' })).toBe(2);
    expect(sample(text, `${h}_bucket`, { op: 'lookup', le: '0.0005' })).toBe(1);
    expect(sample(text, `${h}_bucket`, { op: 'lookup', le: '0.0025' })).toBe(2);
    expect(sample(text, `${h}_sum`, { op: 'lookup' })).toBeCloseTo(0.0023);
    expect(sample(text, `${h}_bucket`, { op: 'read', le: '10' })).toBe(0);
    expect(sample(text, `${h}_bucket`, { op: 'read', le: '+Inf' })).toBe(1);
  });
});

describe('startMetricsServer', () => {
  it('serves /metrics in the text format, 404 elsewhere', async () => {
    const { src } = source();
    const metrics = await createMountMetrics(LABELS, src);
    const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics);
    try {
      const res = await fetch(server.url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await res.text()).toMatch(/^# HELP redisfs_fuse_operations_total /m);
      expect((await fetch(server.url.replace('/metrics', '/'))).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it('fails with one line naming --metrics when the port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const address = taken.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const metrics = await createMountMetrics(LABELS, source().src);
      await expect(startMetricsServer({ host: '127.0.0.1', port }, metrics)).rejects.toThrow(
        `--metrics 127.0.0.1:${port}: the port is already in use; choose another one`,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
