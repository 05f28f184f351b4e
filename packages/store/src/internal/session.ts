/**
 * This store's session: one read-write mount of the filesystem, registered in Redis with a lease
 * it renews (lua-sessions.ts has the scripts, the schema README the lifecycle).
 *
 * - Leases are measured in Redis time (TIME inside the scripts), so that hosts whose clocks
 *   disagree still agree on who expired.
 * - Every beat (leaseMs / 4) renews the lease. A beat that finds the session declared dead (its
 *   host was cut off longer than the lease, and another mount cleaned it up) warns, registers a
 *   new session and holds again the inodes this store has open that still exist.
 * - Whoever notices an expired session ends it: each beat (and the registration) answers the
 *   expired sessions, which this store then ends in bounded steps, in the background.
 *
 * Holds: `opens` counts the opens of each inode this store has not released; `held` what Redis
 * holds for the current session id, as far as this store sent it. Commands of one connection
 * run in the order they are sent, so updating `held` when a command is sent (or, for an open,
 * when its reply says it held) keeps it equal to Redis's count. Anything uncertain (a failed
 * command) errs towards Redis holding more than needed, which only delays a free until the
 * session ends, never frees a file still open.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Ino } from '../types.js';
import type { StoreContext } from './context.js';
import type { ScriptName } from './scripts.js';

/** Default lease of a session (StoreOptions.session.leaseMs). */
export const DEFAULT_LEASE_MS = 60_000;
/** Inodes held again per script after a new registration. */
const HOLD_BATCH = 256;

/** What a session is registered with. */
export interface SessionOptions {
  mountpoint?: string | undefined;
  leaseMs?: number | undefined;
}

/** A new session id: 16 random lowercase hex digits. */
export function newSessionId(): string {
  return randomBytes(8).toString('hex');
}

let packageVersion: string | undefined;

/** This package's version (package.json of @redisfs/store), or 'dev' when it cannot be read. */
export function storeVersion(): string {
  if (packageVersion !== undefined) return packageVersion;
  packageVersion = 'dev';
  try {
    let dir = dirname(fileURLToPath(import.meta.url));
    for (let i = 0; i < 4; i++) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
        if (pkg.name === '@redisfs/store' && typeof pkg.version === 'string') {
          packageVersion = pkg.version;
          break;
        }
      } catch {
        // not here: one level up
      }
      dir = dirname(dir);
    }
  } catch {
    // no file URL (bundled elsewhere): 'dev'
  }
  return packageVersion;
}

export class Session {
  private sid: string;
  private readonly opens = new Map<Ino, number>();
  private readonly held = new Map<Ino, number>();
  private timer: NodeJS.Timeout | undefined;
  /** The beat (or resync) running, if any; another is wanted when `again` is set meanwhile. */
  private beating: Promise<void> | undefined;
  private again = false;
  private lost = false;
  private failing = false;
  private ending = false;
  /** Expired sessions being ended by this store. */
  private readonly cleaning = new Set<string>();

  private constructor(
    private readonly ctx: StoreContext,
    readonly leaseMs: number,
    private readonly mountpoint: string,
    sid: string,
  ) {
    this.sid = sid;
  }

  /** Registers a session (one round trip) and starts its heartbeat. */
  static async register(ctx: StoreContext, options: SessionOptions): Promise<Session> {
    const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    if (!Number.isInteger(leaseMs) || leaseMs < 100) throw new RangeError('session lease must be a whole number of ms, at least 100');
    const session = new Session(ctx, leaseMs, options.mountpoint ?? '', newSessionId());
    const expired = await session.registerAs(session.sid);
    session.timer = setInterval(() => session.kick(), Math.max(25, Math.floor(leaseMs / 4)));
    session.timer.unref();
    // Sessions others left expired: ended in the background, never delaying the open.
    void session.endExpired(expired);
    return session;
  }

  /** The current session id (a new one after the session was declared dead and registered anew). */
  get id(): string {
    return this.sid;
  }

  private run(name: ScriptName, args: string[]): Promise<unknown> {
    return this.ctx.scripts.run(name, this.ctx.keys.metaPrefix, args);
  }

  /** Registers `sid`; returns the expired sessions the script saw. */
  private async registerAs(sid: string): Promise<string[]> {
    const reply = (await this.run('registerSession', [
      sid, String(this.leaseMs), hostname(), String(process.pid), this.mountpoint, storeVersion(),
    ])) as string[];
    return reply.slice(1);
  }

  /**
   * Records the reply of an open sent with session id `sid`: '1' held, 'LOST' the session was
   * gone. Returns whether the open counts as a hold (to be released).
   */
  opened(ino: Ino, sid: string, reply: string): boolean {
    if (reply !== '1' && reply !== 'LOST') return false;
    this.opens.set(ino, (this.opens.get(ino) ?? 0) + 1);
    if (reply === '1' && sid === this.sid) this.held.set(ino, (this.held.get(ino) ?? 0) + 1);
    else {
      // Held under an id that is gone (or not at all): the next beat holds it again.
      if (reply === 'LOST') this.lost = true;
      this.kick();
    }
    return true;
  }

  /**
   * Takes one open of `ino` off the local counts. Returns the session id to release it under,
   * or undefined when Redis holds nothing of it for this session (never opened, or held under
   * an id that is gone: nothing to release there).
   */
  releasing(ino: Ino): string | undefined {
    const opens = this.opens.get(ino) ?? 0;
    if (opens === 0) return undefined;
    if (opens === 1) this.opens.delete(ino);
    else this.opens.set(ino, opens - 1);
    const held = this.held.get(ino) ?? 0;
    if (held === 0) return undefined;
    if (held === 1) this.held.delete(ino);
    else this.held.set(ino, held - 1);
    return this.sid;
  }

  /** Opens (open, createOpen) sent and not answered yet: their holds are not counted yet. */
  private inflight = 0;
  /** Inodes whose release failed: Redis may hold them once more than `held` says. */
  private readonly owed = new Set<Ino>();

  /** Runs an open's script, counted as in flight until `fn` (which records its hold) returns. */
  async opening<T>(fn: () => Promise<T>): Promise<T> {
    this.inflight++;
    try {
      return await fn();
    } finally {
      this.inflight--;
    }
  }

  /**
   * A release of `ino` that failed (a lost connection: it may or may not have run). Its holds
   * are set to what this store knows at a later beat, when no open is in flight (so that the
   * count sent is exact: commands of one connection run in the order they are sent).
   */
  owe(ino: Ino): void {
    this.owed.add(ino);
  }

  private async settleOwed(): Promise<void> {
    if (this.owed.size === 0 || this.inflight > 0) return;
    const inos = [...this.owed].slice(0, HOLD_BATCH);
    const reply = await this.run('setHolds', [this.sid, ...inos.flatMap((ino) => [String(ino), String(this.held.get(ino) ?? 0)])]);
    if (reply === 'LOST') return; // registered anew at the next beat, which holds what is open
    for (const ino of inos) this.owed.delete(ino);
    if ((reply as string[])[0] === '1') this.ctx.collect();
    if (this.owed.size > 0) this.again = true;
  }

  /** Asks for a beat now (in the background); one runs at a time. */
  private kick(): void {
    if (this.ending) return;
    if (this.beating) {
      this.again = true;
      return;
    }
    this.beating = this.beat()
      .catch((err: unknown) => {
        // Redis down or failing: the next beat tries again.
        if (!this.failing && !this.ending) this.ctx.warn(`session ${this.sid}: heartbeat failed (retried at the next beat)`, err);
        this.failing = true;
      })
      .finally(() => {
        this.beating = undefined;
        if (this.again && !this.ending) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async beat(): Promise<void> {
    const reply = (await this.run('heartbeat', [this.sid, String(this.leaseMs)])) as string[];
    this.failing = false;
    if (reply[0] !== 'OK' || this.lost) await this.registerAgain(reply[0] !== 'OK');
    else await this.holdMissing();
    await this.settleOwed();
    await this.endExpired(reply.slice(1));
  }

  /** After the session was declared dead: a new id, and the open inodes held again. */
  private async registerAgain(expired: boolean): Promise<void> {
    const old = this.sid;
    if (expired) {
      this.ctx.warn(
        `session ${old} expired while this mount was cut off from Redis: files it held open may have been removed, its locks were lost`,
      );
      const sid = newSessionId();
      await this.registerAs(sid);
      this.sid = sid;
      this.held.clear();
      this.owed.clear(); // the old id's holds went with it
    }
    this.lost = false;
    await this.holdMissing();
  }

  /** Holds, under the current id, the opens Redis does not hold for it yet (in batches). */
  private async holdMissing(): Promise<void> {
    const missing: [Ino, number][] = [];
    for (const [ino, n] of this.opens) {
      const d = n - (this.held.get(ino) ?? 0);
      if (d > 0) missing.push([ino, d]);
    }
    for (let i = 0; i < missing.length; i += HOLD_BATCH) {
      const batch = missing.slice(i, i + HOLD_BATCH);
      const sid = this.sid;
      for (const [ino, d] of batch) this.held.set(ino, (this.held.get(ino) ?? 0) + d);
      let reply: unknown;
      try {
        reply = await this.run('holdMany', [sid, ...batch.flatMap(([ino, d]) => [String(ino), String(d)])]);
      } catch (err) {
        this.unheld(sid, batch);
        throw err;
      }
      if (reply === 'LOST') {
        this.unheld(sid, batch);
        this.lost = true;
        this.again = true;
        return;
      }
    }
  }

  /** Takes back what a hold that failed counted (unless the id changed since: then held was cleared). */
  private unheld(sid: string, batch: [Ino, number][]): void {
    if (sid !== this.sid) return;
    for (const [ino, d] of batch) {
      const left = (this.held.get(ino) ?? 0) - d;
      if (left > 0) this.held.set(ino, left);
      else this.held.delete(ino);
    }
  }

  /** Ends expired sessions (not this one), each in bounded steps, one at a time. */
  private async endExpired(sids: readonly string[]): Promise<void> {
    for (const sid of sids) {
      if (sid === this.sid || this.cleaning.has(sid) || this.ending) continue;
      this.cleaning.add(sid);
      try {
        await this.endSession(sid, false);
      } catch (err) {
        if (!this.ending) this.ctx.warn(`ending expired session ${sid} (it resumes later)`, err);
      } finally {
        this.cleaning.delete(sid);
      }
    }
  }

  /** Runs endSession steps until done (or the session turns out alive). */
  private async endSession(sid: string, force: boolean): Promise<void> {
    for (;;) {
      if (!force && this.ending) return;
      const [state, work] = (await this.run('endSession', [sid, force ? '1' : ''])) as [string, string];
      if (work === '1') this.ctx.collect();
      if (state !== 'MORE') return;
    }
  }

  /**
   * Ends this session (close): stops the heartbeat, then releases every hold (inodes removed
   * while open that only it held are freed) and lock, and deletes its keys, in bounded steps.
   * Failures are reported, not thrown: the lease then expires and another mount finishes.
   */
  async end(): Promise<void> {
    if (this.ending) return;
    this.ending = true;
    clearInterval(this.timer);
    await this.beating;
    try {
      await this.endSession(this.sid, true);
    } catch (err) {
      this.ctx.warn(`ending session ${this.sid} (its lease expires and another mount finishes it)`, err);
    }
    this.opens.clear();
    this.held.clear();
  }
}
