/**
 * Lock latency (issue 13: locks kept in Redis across mounts), measured with real processes
 * (lock-probe.py: python3's fcntl.flock / fcntl.lockf, as Node has neither):
 *   - uncontended: one process locks and unlocks a file over and over (µs per pair);
 *   - hand-off: a process on mount A holds the lock, one on mount B waits for it in a blocking
 *     call; A unlocks, and the time until B's call returns is one sample; then they swap roles.
 * For flock(LOCK_EX) and for fcntl F_SETLKW write locks of a byte range.
 *
 * On redisfs the two mounts are two `redisfs` processes on the same prefix and Redis (two hosts,
 * as far as the filesystem can tell: the waiter's mount learns of the unlock through Redis
 * pub/sub); on tmpfs both processes use the one path (the local kernel's hand-off, the floor).
 * memfs is left out: it has no lock handlers, so the kernel keeps its locks on its own.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { own } from '@redisfs/testing';
import { REPO_ROOT } from '../../e2e/helpers/paths.js';
import { diffCounts, total, type CommandCounts } from './redis-stats.js';
import type { Target } from './targets.js';
import { atTeardown } from './teardown.js';

export const LOCK_KINDS = ['flock', 'fcntl'] as const;
export type LockKind = (typeof LOCK_KINDS)[number];

const PROBE = join(REPO_ROOT, 'bench/src/lock-probe.py');
/** Pause between "the waiter is blocked in its lock call" and the unlock (see lock-probe.py). */
const SETTLE_MS = 20;
const PROBE_TIMEOUT_MS = 180_000;

export interface LockSizes {
  /** Lock + unlock pairs of the uncontended run. */
  pairs: number;
  /** Hand-offs between the two mounts (each direction half of them). */
  rounds: number;
}

export interface Spread {
  samples: number;
  p50Us: number;
  p95Us: number;
  minUs: number;
  maxUs: number;
}

export interface LockKindResult {
  kind: LockKind;
  uncontended: {
    pairs: number;
    usPerPair: number;
    /** Redis round trips per lock + unlock on the mount, and by command for all pairs (redisfs). */
    roundTripsPerPair?: number;
    roundTrips?: CommandCounts;
  };
  handoff: {
    /** From just before the holder's unlock call until the waiter's lock call returned. */
    latency: Spread;
    /** How long the holder's unlock call took. */
    unlock: Spread;
    /** Round trips both mounts made per hand-off (unlock, the waiter's tries, its watch), and by command for all (redisfs). */
    roundTripsPerHandoff?: number;
    roundTrips?: CommandCounts;
  };
}

export interface LockLatency {
  /** 2: two mounts of one filesystem (redisfs); 1: both sides on one path (tmpfs). */
  mounts: 1 | 2;
  kinds: LockKindResult[];
  /** Why the measurement failed (e.g. the two mounts do not share locks: a build without them). */
  error?: string;
}

function spread(ns: number[]): Spread {
  const s = ns.map((x) => x / 1e3).sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { samples: s.length, p50Us: at(0.5), p95Us: at(0.95), minUs: s[0] ?? 0, maxUs: s[s.length - 1] ?? 0 };
}

/** Runs lock-probe.py with `args` and returns what it printed as JSON. */
function probe<T>(args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    // own: killed if the bench exits first; its two parties then end with their input or their mount.
    const child = own(spawn('python3', [PROBE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
    // SIGTERM: the probe's parties see their input end and exit (and with it their lock calls).
    const timer = setTimeout(() => child.kill('SIGTERM'), PROBE_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`python3 could not be started (${e.message}): install python3 to measure locks`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(out) as T);
      else reject(new Error(err.trim() || `lock-probe.py ${args.join(' ')} ended with ${code ?? signal}`));
    });
  });
}

async function tripsOf(targets: readonly Target[]): Promise<CommandCounts[] | undefined> {
  if (targets.some((t) => !t.redisCalls)) return undefined;
  return Promise.all(targets.map((t) => t.redisCalls!()));
}

/** Sum of after − before over several mounts. */
function tripsDiff(before: CommandCounts[] | undefined, after: CommandCounts[] | undefined): CommandCounts | undefined {
  if (!before || !after) return undefined;
  const out: CommandCounts = {};
  before.forEach((b, i) => {
    for (const [cmd, n] of Object.entries(diffCounts(b, after[i]!))) out[cmd] = (out[cmd] ?? 0) + n;
  });
  return Object.fromEntries(Object.entries(out).sort((x, y) => y[1] - x[1]));
}

/** Both measurements of each kind with mount `a` and mount `b` (the same target for one mount), into `results`. */
async function measure(a: Target, b: Target, sizes: LockSizes, results: LockKindResult[]): Promise<void> {
  const dir = join(a.dir, 'locks');
  mkdirSync(dir);
  try {
    for (const kind of LOCK_KINDS) {
      const file = join(dir, `${kind}.lock`);
      writeFileSync(file, Buffer.alloc(4096));
      const pathB = join(b.dir, 'locks', `${kind}.lock`);
      const mounts = a === b ? [a] : [a, b];

      const t0 = await tripsOf([a]);
      const one = await probe<{ pairs: number; seconds: number }>(['uncontended', kind, file, String(sizes.pairs)]);
      const t1 = await tripsOf([a]);
      const lonely = tripsDiff(t0, t1);

      const h0 = await tripsOf(mounts);
      const two = await probe<{ handoffNs: number[]; unlockNs: number[] }>(['handoff', kind, file, pathB, String(sizes.rounds), String(SETTLE_MS)]);
      const h1 = await tripsOf(mounts);
      const handed = tripsDiff(h0, h1);

      results.push({
        kind,
        uncontended: {
          pairs: one.pairs,
          usPerPair: (one.seconds / one.pairs) * 1e6,
          // The probe's warm-up pair is in the counts too.
          ...(lonely ? { roundTripsPerPair: total(lonely) / (one.pairs + 1), roundTrips: lonely } : {}),
        },
        handoff: {
          latency: spread(two.handoffNs),
          unlock: spread(two.unlockNs),
          ...(handed ? { roundTripsPerHandoff: total(handed) / two.handoffNs.length, roundTrips: handed } : {}),
        },
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Lock latency on `target`: on a redisfs mount with a second mount of the same filesystem
 * (started here and stopped before returning), on tmpfs on the one directory; undefined for
 * targets without locks of their own (memfs). A failure is returned as `error`, not thrown.
 */
export async function lockLatency(target: Target, sizes: LockSizes): Promise<LockLatency | undefined> {
  const kinds: LockKindResult[] = [];
  if (target.name === 'tmpfs') {
    try {
      await measure(target, target, sizes, kinds);
      return { mounts: 1, kinds };
    } catch (err) {
      return { mounts: 1, kinds, error: (err as Error).message };
    }
  }
  if (!target.mountAgain) return undefined;
  let second: Target;
  try {
    second = await target.mountAgain();
  } catch (err) {
    return { mounts: 2, kinds: [], error: `second mount: ${(err as Error).message}` };
  }
  const stopSecond = atTeardown(`${target.name} second mount (${second.dir})`, () => second.stop(), second.leftovers);
  try {
    await measure(target, second, sizes, kinds);
    return { mounts: 2, kinds };
  } catch (err) {
    return { mounts: 2, kinds, error: (err as Error).message };
  } finally {
    await stopSecond();
  }
}
