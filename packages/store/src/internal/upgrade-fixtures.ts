/**
 * Test-only: what the upgrade tests share: both manifests' shape, and the checks of an upgraded
 * prefix against a manifest: its keys, its tree through openStore, and what a mount says meanwhile.
 * (The fixtures' servers are @redisfs/testing's startLayout1Redis and startLayout2Redis.)
 */
import { createHash } from 'node:crypto';
import { createClient } from '@redis/client';
import { afterAll, beforeAll, expect } from 'vitest';
import { decodeInode, keysFor, parseInodeKey, type KeyLayout } from '@redisfs/schema';
import type { Layout2Prefix } from '@redisfs/testing';
import { openStore, upgradeFilesystem, type UpgradeProgress, type UpgradeResult } from '../index.js';

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
export const makeRaw = (url: string) => createClient({ url });
export type RawClient = ReturnType<typeof makeRaw>;

/** One prefix of a fixture's manifest (layout 1's or layout 2's: see their README.md). */
export type FixturePrefix = Layout2Prefix;

/** A server holding a fixture, started before the describe block's tests and stopped after. */
export function fixtureServer<R extends { stop(): Promise<void> }>(start: () => Promise<R>): () => R {
  let server: R | undefined;
  beforeAll(async () => {
    server = await start();
  });
  afterAll(async () => {
    await server?.stop();
  });
  return () => server!;
}

/** Every key of a prefix: its metadata keys and its family's blocks. */
export async function keysOf(raw: RawClient, layout: KeyLayout): Promise<string[]> {
  const out = new Set<string>();
  for (const match of [layout.metaPattern, layout.blockPattern]) {
    for await (const keys of raw.scanIterator({ MATCH: match, COUNT: 500 })) for (const k of keys) out.add(k);
  }
  return [...out].sort();
}

/** Regular files of a prefix by inode (hard links once), with their stored block indices. */
export function filesOf(m: FixturePrefix): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const p of Object.values(m.paths)) if (p.type === 'file') out.set(p.ino, p.storedBlocks ?? []);
  return out;
}

/** The inode hashes among a prefix's keys (layout 1 and 2 both have them). */
export function inodeHashesIn(prefix: string, keys: readonly string[]): number {
  const layout = keysFor(prefix);
  return keys.filter((k) => parseInodeKey(layout, k)?.kind === 'inode2').length;
}

/** Layout 3's keys for layout 2's: inode hash keys become bucket keys, and a symlink gets its target key. */
export function layout3Keys(prefix: string, keys: readonly string[], paths: FixturePrefix['paths']): string[] {
  const layout = keysFor(prefix);
  const out = new Set<string>();
  for (const key of keys) {
    const parsed = parseInodeKey(layout, key);
    out.add(parsed?.kind === 'inode2' ? layout.inodes(parsed.ino) : key);
  }
  for (const p of Object.values(paths)) if (p.type === 'symlink') out.add(layout.target(p.ino));
  return [...out].sort();
}

/** A stored record as the layout-2 hash `hash` must have become (the target is a key of its own). */
export function recordOf(hash: Record<string, string>) {
  return { ...decodeInode(hash), target: undefined, generation: 1, tailDirty: hash.z === '1' };
}

/**
 * Opens a prefix read-only and compares every path with the manifest: names, attributes, times
 * to the ns, symlink targets, data (files with a sha256), blocks stored, xattrs.
 */
export async function checkContents(url: string, prefix: string, m: FixturePrefix, blockSize: number): Promise<void> {
  const store = await openStore({ url, prefix, readOnly: true, onWarning: () => {} });
  try {
    // The tree holds exactly the manifest's paths.
    const seen: string[] = ['/'];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await store.list(dir)) {
        const path = `${dir === '/' ? '' : dir}/${e.name}`;
        seen.push(path);
        if (e.type === 'dir') await walk(path);
      }
    };
    await walk('/');
    expect(seen.sort()).toEqual(Object.keys(m.paths).sort());
    for (const [path, want] of Object.entries(m.paths)) {
      const attr = await store.stat(path);
      expect(
        { ino: attr.ino, type: attr.type, mode: attr.mode.toString(8), uid: attr.uid, gid: attr.gid, size: attr.size, nlink: attr.nlink, rdev: attr.rdev },
        path,
      ).toEqual({ ino: want.ino, type: want.type, mode: want.mode, uid: want.uid, gid: want.gid, size: want.size, nlink: want.nlink, rdev: want.rdev });
      expect([attr.atimeNs, attr.mtimeNs, attr.ctimeNs].map(String), path).toEqual([want.atimeNs, want.mtimeNs, want.ctimeNs]);
      if (want.type === 'symlink') expect(await store.readlink(attr.ino), path).toBe(want.target);
      if (want.type === 'file' && typeof want.sha256 === 'string') {
        expect(sha256(await store.readFile(path)), path).toBe(want.sha256);
        expect(attr.blocks, path).toBe(Math.ceil(Math.min(want.size, (want.storedBlocks?.length ?? 0) * blockSize) / 512));
      }
      const names = (await store.listxattr(attr.ino)).sort();
      expect(names, path).toEqual(Object.keys(want.xattrs ?? {}).sort());
      for (const name of names) expect((await store.getxattr(attr.ino, name)).toString('base64'), `${path} ${name}`).toBe(want.xattrs![name]);
    }
  } finally {
    await store.close();
  }
}

/** What openStore says of a prefix: 'opened', or its error message. */
export function openOutcome(url: string, prefix: string): Promise<string> {
  return openStore({ url, prefix, readOnly: true, onWarning: () => {} }).then(
    async (s) => (await s.close(), 'opened'),
    (e: unknown) => (e as Error).message,
  );
}

/**
 * Runs upgrades that stop at their `stopAt`-th progress call (1, 2, …) until one completes; after
 * each stop, openStore must refuse the prefix in one line naming the command. Returns the stops,
 * the result of the run that completed, and the passes the stops fell in.
 */
export async function upgradeWithKills(url: string, prefix: string): Promise<{ kills: number; result: UpgradeResult; phases: Set<string> }> {
  let kills = 0;
  const phases = new Set<string>();
  for (let stopAt = 1; stopAt < 200; stopAt++) {
    let calls = 0;
    const onProgress = (p: UpgradeProgress) => {
      if (++calls === stopAt) {
        phases.add(p.phase);
        throw new Error('killed');
      }
    };
    try {
      const result = await upgradeFilesystem({ url, prefix, onProgress });
      return { kills, result, phases };
    } catch (err) {
      expect((err as Error).message).toMatch(/killed/);
      const message = await openOutcome(url, prefix);
      expect(message).toMatch(`\`redisfs upgrade --prefix ${prefix}\``);
      expect(message.split('\n')).toHaveLength(1);
      kills++;
    }
  }
  throw new Error('the upgrade never completed');
}

/** The estimates of a pass's progress: bounded pages, ending exact, close once a tenth is scanned. */
export function checkEstimates(progress: UpgradeProgress[], phase: UpgradeProgress['phase']): void {
  const mine = progress.filter((p) => p.phase === phase);
  expect(mine.length, phase).toBeGreaterThan(1); // bounded batches, not one sweep
  const scanned = mine.at(-1)!.scanned;
  expect(mine.at(-1)!.total).toBe(scanned);
  expect(mine.map((p) => p.scanned)).toEqual(mine.map((p) => p.scanned).sort((a, b) => a - b));
  // Keys are spread evenly in SCAN order: once a tenth is scanned, estimates are close.
  for (const p of mine.filter((q) => q.scanned >= scanned / 10)) {
    expect(p.total, JSON.stringify(p)).toBeGreaterThan(scanned / 2);
    expect(p.total, JSON.stringify(p)).toBeLessThan(scanned * 2);
  }
}
