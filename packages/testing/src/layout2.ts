/**
 * Test-only: the layout-2 fixture (`packages/store/fixtures/layout2/`, see its README) loaded into
 * a redis-server of its own (fixture-redis.ts), and its manifest.
 *
 *   const redis = await startLayout2Redis();
 *   const manifest = await readLayout2Manifest();
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ManifestPath } from './layout1.js';
import { startFixtureRedis, type FixtureRedis } from './fixture-redis.js';

const FIXTURE_DIR = fileURLToPath(new URL('../../store/fixtures/layout2/', import.meta.url));

/** One prefix of the layout-2 manifest. */
export interface Layout2Prefix {
  superblock: Record<string, string>;
  stats: Record<string, string>;
  inoCounter: string;
  keys: string[];
  paths: Record<string, ManifestPath>;
  /** Every inode hash as HGETALL gave it. */
  inodes?: Record<string, Record<string, string>>;
}

/** The layout-2 fixture's manifest (its README.md says what each field holds). */
export interface Layout2Manifest {
  dbsize: number;
  blockSize: number;
  notableInodes: Record<string, number>;
  family: { keys: string[]; blockKeys: string[] };
  prefixes: Record<string, Layout2Prefix>;
}

export async function readLayout2Manifest(): Promise<Layout2Manifest> {
  return JSON.parse(await readFile(join(FIXTURE_DIR, 'manifest.json'), 'utf8')) as Layout2Manifest;
}

/** A redis-server holding a fresh copy of the fixture, and a client of it. */
export type Layout2Redis = FixtureRedis;

/** Starts a redis-server on a free port that loads a copy of the fixture's dump.rdb. */
export function startLayout2Redis(): Promise<Layout2Redis> {
  return startFixtureRedis(join(FIXTURE_DIR, 'dump.rdb'));
}
