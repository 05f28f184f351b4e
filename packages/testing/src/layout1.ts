/**
 * Test-only: the layout-1 fixture (`packages/store/fixtures/layout1/`, see its README) loaded into a
 * redis-server of its own, and its manifest. The dump is copied into a temporary directory first:
 * the server must never get a chance to write the committed file.
 *
 *   await using redis = await startLayout1Redis();
 *   const manifest = await readLayout1Manifest();
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '@redis/client';
import { OutputTail, isRunning, own, stopChild } from './child.js';
import { freePort } from './free-port.js';
import { findExecutable } from './prerequisites.js';
import { pingRedis } from './redis-server.js';
import { waitFor } from './wait-for.js';

const FIXTURE_DIR = fileURLToPath(new URL('../../store/fixtures/layout1/', import.meta.url));

const makeRaw = (url: string) => createClient({ url });
type RawClient = ReturnType<typeof makeRaw>;

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

/** A redis-server holding a fresh copy of the fixture. */
export interface Layout1Redis extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  /** A plain client of it, closed by stop(). */
  readonly raw: RawClient;
  logs(): string;
  /** Stops the server and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Starts a redis-server on a free port that loads a copy of the fixture's dump.rdb. */
export async function startLayout1Redis(): Promise<Layout1Redis> {
  const binary = findExecutable('redis-server');
  if (!binary) throw new Error('redis-server is not on PATH: install it with `sudo apt-get install redis-server`');
  let lastError: unknown;
  // The free port can be taken before redis-server binds it: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'redisfs-layout1-'));
    await copyFile(join(FIXTURE_DIR, 'dump.rdb'), join(dir, 'dump.rdb'));
    const port = await freePort();
    const child = own(
      spawn(
        binary,
        ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', ''],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    const output = new OutputTail().follow(child.stdout).follow(child.stderr);
    let raw: RawClient | undefined;
    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        await raw?.close().catch(() => raw?.destroy());
        await stopChild(child, 'SIGTERM', 10_000);
        await rm(dir, { recursive: true, force: true });
      })());
    try {
      await waitFor(() => pingRedis({ host: '127.0.0.1', port }), {
        timeoutMs: 20_000,
        what: `redis-server on port ${port} to load the layout-1 fixture`,
        bail: () => (isRunning(child) ? undefined : new Error(`redis-server exited (code ${child.exitCode}):\n${output}`)),
      });
      const url = `redis://127.0.0.1:${port}`;
      raw = makeRaw(url);
      await raw.connect();
      const client = raw;
      return { url, port, raw: client, logs: () => output.toString(), stop, [Symbol.asyncDispose]: stop };
    } catch (err) {
      lastError = err;
      await stop();
      if (!/Address already in use/i.test(output.toString())) break;
    }
  }
  throw lastError;
}
