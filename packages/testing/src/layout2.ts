/**
 * Test-only: the layout-2 fixture (`packages/store/fixtures/layout2/`, see its README) loaded into
 * a redis-server of its own, and its manifest. The server loads a copy of the dump made in its own
 * directory, which goes with it: the committed file is never the server's.
 *
 *   const redis = await startLayout2Redis();
 *   const manifest = await readLayout2Manifest();
 */
import { copyFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ManifestPath } from './layout1.js';
import { startLocalRedis, type LocalRedis } from './redis-server.js';

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

/** Starts a redis-server on a free port that loads a copy of the fixture's dump.rdb. */
export function startLayout2Redis(): Promise<LocalRedis> {
  return startLocalRedis({
    // Called with the server's own dir before it starts.
    config: ({ dir }) => {
      copyFileSync(join(FIXTURE_DIR, 'dump.rdb'), join(dir, 'dump.rdb'));
      return '';
    },
  });
}
