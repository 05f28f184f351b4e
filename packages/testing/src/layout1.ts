/**
 * Test-only: the layout-1 fixture (`packages/store/fixtures/layout1/`, see its README) loaded into a
 * redis-server of its own (fixture-redis.ts), and its manifest.
 *
 *   await using redis = await startLayout1Redis();
 *   const manifest = await readLayout1Manifest();
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFixtureRedis, type FixtureRedis } from './fixture-redis.js';

const FIXTURE_DIR = fileURLToPath(new URL('../../store/fixtures/layout1/', import.meta.url));

/** One path of a prefix, as the manifest records it. */
export interface ManifestPath {
  ino: number;
  type: string;
  /** Octal, type bits included ("100644"). */
  mode: string;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  rdev: number;
  atimeNs: string;
  mtimeNs: string;
  ctimeNs: string;
  /** Regular files: null for the 1 TiB sparse file (see `sparse`). */
  sha256?: string | null;
  storedBlocks?: number[];
  sparse?: {
    extents: { offset: number; length: number; sha256: string }[];
    probes: { offset: number; length: number; sha256: string }[];
  };
  target?: string;
  /** name → base64 value. */
  xattrs?: Record<string, string>;
}

export interface ManifestPrefix {
  superblock: Record<string, string>;
  stats: Record<string, string>;
  inoCounter: string;
  gc: string[];
  keyCount: number;
  keys: string[];
  paths: Record<string, ManifestPath>;
}

export interface Layout1Manifest {
  dbsize: number;
  blockSize: number;
  notableInodes: Record<string, number>;
  crashLeftovers: { gcKey: string; gcMembers: string[]; blockKeys: string[] };
  prefixes: Record<string, ManifestPrefix>;
}

export async function readLayout1Manifest(): Promise<Layout1Manifest> {
  return JSON.parse(await readFile(join(FIXTURE_DIR, 'manifest.json'), 'utf8')) as Layout1Manifest;
}

/** A redis-server holding a fresh copy of the fixture, and a client of it. */
export type Layout1Redis = FixtureRedis;

/** Starts a redis-server on a free port that loads a copy of the fixture's dump.rdb. */
export function startLayout1Redis(): Promise<Layout1Redis> {
  return startFixtureRedis(join(FIXTURE_DIR, 'dump.rdb'));
}
