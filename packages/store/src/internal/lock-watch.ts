/**
 * Waking F_SETLKW waiters when a lock is released on any host. Every lock script that releases,
 * downgrades or shrinks a lock PUBLISHes the inode number on the filesystem's lock channel
 * (lua-locks.ts); one subscriber connection per Locks, opened at the first watch(), hands each
 * message to the watches of that inode. A waiter retries its lock after each wake-up, so a
 * spurious wake-up costs one script call, and a lost message costs the waiter's `ms` at most.
 *
 * Topologies (node-redis 5's own clients):
 * - one server: a duplicate of the store's connection, reconnecting by itself; after a
 *   reconnection every watch wakes (messages sent while it was away are lost).
 * - Redis Cluster: RedisCluster.subscribe (one pub/sub connection to some node: a PUBLISH, also
 *   from a script, reaches the subscribers of every node). node-redis moves it when the
 *   topology changes; messages lost meanwhile are covered by the waiter's timeout only.
 * - Sentinel: RedisSentinel.subscribe, whose pub/sub connection follows the master.
 * Where subscribing fails (an ACL without pub/sub, a node down), watches fall back to waiting
 * for their timeout only (the caller polls); this is logged once through ctx.warn and tried
 * again at a later watch().
 */
import { FsError } from '../errors.js';
import type { Ino } from '../types.js';
import type { RedisClient } from './connect.js';
import { topologyOf } from './topology.js';

/** Waits for releases of one inode's locks. */
export interface LockWatch {
  /**
   * Resolves at the next release message for the watched inode since the previous next() (or
   * since the watch began), or after `ms`, or when `signal` aborts (then rejects with its reason).
   */
  next(ms: number, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

interface Subscription {
  close(): Promise<void>;
}

/** How long after a failed subscription watches keep polling before trying to subscribe again. */
const RESUBSCRIBE_AFTER_MS = 10_000;
/** setTimeout's largest delay; longer waits have no timer (only a message or the signal ends them). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The subscriber of one Locks and the watches it feeds. */
export class LockHub {
  private readonly watches = new Map<string, Set<Watch>>();
  private subscription: Promise<Subscription | undefined> | undefined;
  private failedAt = -Infinity;
  private warned = false;
  private closed = false;

  constructor(
    private readonly client: RedisClient,
    private readonly channel: string,
    private readonly warn: (message: string, cause?: unknown) => void,
  ) {}

  /** A watch of `ino`, registered before the subscription is confirmed: no later release is missed. */
  async watch(ino: Ino): Promise<LockWatch> {
    if (this.closed) throw new FsError('EIO', 'lock watch: the store is closed');
    const key = String(ino);
    const w = new Watch(() => this.forget(key, w));
    let set = this.watches.get(key);
    if (!set) this.watches.set(key, (set = new Set()));
    set.add(w);
    await this.subscribed();
    return w;
  }

  /** Closes the subscriber; waiting next() calls resolve (their callers retry and see the store closed). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeAll();
    this.watches.clear();
    const sub = await this.subscription;
    await sub?.close();
  }

  private forget(key: string, w: Watch): void {
    const set = this.watches.get(key);
    set?.delete(w);
    if (set?.size === 0) this.watches.delete(key);
  }

  private deliver(message: string): void {
    for (const w of this.watches.get(message) ?? []) w.wake();
  }

  private wakeAll(): void {
    for (const set of this.watches.values()) for (const w of set) w.wake();
  }

  /** Subscribes once; on failure, watches poll and a later watch() tries again. */
  private async subscribed(): Promise<void> {
    if (this.subscription === undefined && Date.now() - this.failedAt >= RESUBSCRIBE_AFTER_MS) {
      this.subscription = this.subscribe().catch((err: unknown) => {
        this.failedAt = Date.now();
        this.subscription = undefined;
        if (!this.warned) {
          this.warned = true;
          this.warn('lock waits cannot subscribe to release messages: they poll instead', err);
        }
        return undefined;
      });
    }
    const sub = await this.subscription;
    // Closed while subscribing: close() may have missed it.
    if (this.closed) await sub?.close();
  }

  private async subscribe(): Promise<Subscription> {
    const sub = await this.open();
    let closing: Promise<void> | undefined;
    return { close: () => (closing ??= sub.close()) };
  }

  private async open(): Promise<Subscription> {
    const listener = (message: string | Buffer) => this.deliver(String(message));
    const t = topologyOf(this.client);
    if (t.kind === 'cluster' || t.kind === 'sentinel') {
      const target = t.kind === 'cluster' ? t.cluster : t.sentinel;
      await target.subscribe(this.channel, listener);
      return {
        close: async () => {
          await target.unsubscribe(this.channel, listener).catch(() => undefined);
        },
      };
    }
    return this.subscribeSingle(listener);
  }

  /** A connection of our own to the one server, reconnecting until closed. */
  private async subscribeSingle(listener: (message: string | Buffer) => void): Promise<Subscription> {
    let connected = false;
    let down = false;
    const socket = (this.client.options?.socket ?? {}) as Record<string, unknown>;
    const sub = this.client.duplicate({
      socket: {
        ...socket,
        // Before the first connection: give up (the watch polls). After: back off, up to 1 s.
        reconnectStrategy: (retries: number) => (connected && !this.closed ? Math.min(50 * 2 ** retries, 1000) : false),
      },
    } as Parameters<RedisClient['duplicate']>[0]);
    sub.on('error', (err: unknown) => {
      if (down || this.closed) return;
      down = true;
      this.warn('lock release subscriber lost its connection: reconnecting', err);
    });
    sub.on('ready', () => {
      // After a reconnection (the client subscribed again before 'ready'): messages sent while
      // it was away are lost, so every waiter retries.
      if (connected) this.wakeAll();
      down = false;
    });
    try {
      await sub.connect();
      await sub.subscribe(this.channel, listener);
    } catch (err) {
      sub.destroy();
      throw err;
    }
    connected = true;
    return {
      close: async () => {
        sub.destroy();
      },
    };
  }
}

class Watch implements LockWatch {
  private pending = false;
  private waiter: (() => void) | undefined;
  private closed = false;

  constructor(private readonly onClose: () => void) {}

  wake(): void {
    const waiter = this.waiter;
    if (waiter) waiter();
    else this.pending = true;
  }

  next(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new FsError('EINVAL', 'lock watch: next() after close()'));
    if (this.waiter) return Promise.reject(new FsError('EINVAL', 'lock watch: one next() at a time'));
    if (!(ms >= 0)) return Promise.reject(new FsError('EINVAL', `lock watch: invalid wait ${ms} ms`));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const timer = ms <= MAX_TIMER_MS ? setTimeout(() => settle(true), ms) : undefined;
      const onAbort = () => settle(false);
      const settle = (ok: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiter = undefined;
        if (ok) resolve();
        else reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiter = () => settle(true);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    this.waiter?.();
  }
}
