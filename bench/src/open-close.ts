/**
 * What an open and a close of an existing file cost (issue 13: sessions): `openSync` +
 * `closeSync` of one file, read-only and read-write, timed on every target, with the Redis round
 * trips and FUSE calls each pair made where the target counts them (redisfs's own counters).
 *
 * On a FUSE mount close(2) waits for FLUSH only; the kernel sends RELEASE without waiting for its
 * answer, so the time per pair holds what the open costs plus what the next open waits for while
 * the mount still serves earlier releases. The counts are read once every release has reached the
 * mount, so they include each close's release.
 */
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '@redisfs/testing';
import { diffCounts, total, type CommandCounts } from './redis-stats.js';
import type { Target } from './targets.js';

/** Untimed pairs first: the name gets cached, and the mode measured first is not the slower for it. */
const WARM_UP = 100;

/** open(2) flags measured: read-only, and read-write without truncating. */
export const OPEN_FLAGS = ['r', 'r+'] as const;
export type OpenFlags = (typeof OPEN_FLAGS)[number];

export interface OpenCloseResult {
  flags: OpenFlags;
  pairs: number;
  seconds: number;
  usPerPair: number;
  /** Redis round trips per open+close, and by command for all pairs (redisfs). */
  roundTripsPerPair?: number;
  roundTrips?: CommandCounts;
  /** FUSE calls that reached the server, for all pairs (memfs, redisfs). */
  fuseCalls?: CommandCounts;
}

interface Counters {
  fuse: CommandCounts;
  trips?: CommandCounts;
}

async function countersOf(target: Target): Promise<Counters | undefined> {
  if (!target.fuseCalls) return undefined;
  // One SIGUSR2 answers both for redisfs (the probe shares a pending request).
  const [fuse, trips] = await Promise.all([target.fuseCalls(), target.redisCalls?.()]);
  return { fuse, trips };
}

/** The counters once `releases` more RELEASE calls than in `from` have reached the FUSE server. */
async function afterReleases(target: Target, from: Counters | undefined, releases: number): Promise<Counters | undefined> {
  if (!from) return undefined;
  return waitFor(
    async () => {
      const now = await countersOf(target);
      return now && (now.fuse.release ?? 0) - (from.fuse.release ?? 0) >= releases ? now : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 20, what: `${target.name} to receive ${releases} release calls` },
  );
}

/** `pairs` × open(file, flags) + close, for each of OPEN_FLAGS, on a 4 KiB file in `target`. */
export async function openClose(target: Target, pairs: number): Promise<OpenCloseResult[]> {
  const dir = join(target.dir, 'open-close');
  mkdirSync(dir);
  const file = join(dir, 'file');
  writeFileSync(file, Buffer.alloc(4096, 'x'));
  const out: OpenCloseResult[] = [];
  try {
    for (const flags of OPEN_FLAGS) {
      const base = await countersOf(target);
      for (let i = 0; i < WARM_UP; i++) closeSync(openSync(file, flags));
      const before = await afterReleases(target, base, WARM_UP);
      const start = process.hrtime.bigint();
      for (let i = 0; i < pairs; i++) closeSync(openSync(file, flags));
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const after = await afterReleases(target, before, pairs);
      const roundTrips = before?.trips && after?.trips ? diffCounts(before.trips, after.trips) : undefined;
      out.push({
        flags,
        pairs,
        seconds,
        usPerPair: (seconds / pairs) * 1e6,
        ...(roundTrips ? { roundTrips, roundTripsPerPair: total(roundTrips) / pairs } : {}),
        ...(before && after ? { fuseCalls: diffCounts(before.fuse, after.fuse) } : {}),
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
