/**
 * Measurements beside the workloads: the raw Redis ceiling for the sequential bytes, Redis memory
 * per empty file and per stored byte, and stat latency while a big write runs (head-of-line
 * blocking).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync, statSync, writeSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, RESP_TYPES } from '@redis/client';
import { keysFor } from '@redisfs/schema';
import { usedMemory, usedMemoryOf } from './redis-stats.js';
import type { BenchRedis, Target } from './targets.js';
import type { Fixtures } from './workloads.js';

const MiB = 2 ** 20;
const VALUE = 64 * 1024;
const IN_FLIGHT = 16;

export interface Ceiling {
  via: 'tcp' | 'unix';
  writeMBps: number;
  readMBps: number;
}

/**
 * node-redis SET then GET of `bytes` in 64 KiB values (redisfs's block size), 16 in flight: the
 * most a Redis client in Node gets through for the same bytes.
 */
export async function rawCeiling(redis: BenchRedis, via: 'tcp' | 'unix', bytes: number): Promise<Ceiling> {
  const client = via === 'tcp' ? createClient({ url: redis.url }) : createClient({ socket: { path: redis.socket, tls: false } });
  await client.connect();
  try {
    const count = bytes / VALUE;
    const values = Array.from({ length: 16 }, () => randomBytes(VALUE));
    const key = (i: number) => `bench-raw:${via}:${i}`;
    const pump = async (fn: (i: number) => Promise<unknown>) => {
      let next = 0;
      const start = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next < count) await fn(next++);
        }),
      );
      return Number(process.hrtime.bigint() - start) / 1e9;
    };
    const w = await pump((i) => client.set(key(i), values[i % values.length]!));
    const buffers = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }) as unknown as {
      get(k: string): Promise<Buffer | null>;
    };
    let got = 0;
    const r = await pump(async (i) => {
      const value = await buffers.get(key(i));
      got += value?.length ?? 0;
    });
    if (got !== bytes) throw new Error(`raw Redis read ${got} of ${bytes} bytes`);
    for (let i = 0; i < count; i += 1000) {
      await client.del(Array.from({ length: Math.min(1000, count - i) }, (_, j) => key(i + j)));
    }
    return { via, writeMBps: bytes / MiB / w, readMBps: bytes / MiB / r };
  } finally {
    await client.quit();
  }
}

export interface MemoryUse {
  emptyFiles: number;
  bytesPerEmptyFile: number;
  storedBytes: number;
  /** Redis memory per byte written, for hex text (compresses about 2:1) and random bytes. */
  perByteCompressible: number;
  perByteIncompressible: number;
}

/**
 * INFO memory around 10,000 empty files and around files of compressible / random bytes. Empty
 * files are counted on the node holding the metadata (the master of the prefix's slot in a
 * cluster: what bounds the files of one filesystem); stored bytes on every master.
 */
export async function memoryUse(target: Target, fx: Fixtures): Promise<MemoryUse> {
  const client = target.redis!;
  const all = (target.masters ?? [{ client }]).map((m) => m.client);
  const dir = join(target.dir, 'memory');
  mkdirSync(dir);
  const n = fx.scale.emptyFilesForMemory;
  // Blocks of earlier workloads are deleted in the background: measure once that is done.
  await collectorIdle(client, target.prefix!);
  const before = await usedMemory(client);
  for (let i = 0; i < n; i++) closeSync(openSync(join(dir, `empty-${i}`), 'wx'));
  const afterEmpty = await usedMemory(client);
  const bytes = fx.scale.bytesForMemory;
  const perByte = async (name: string, chunk: () => Buffer) => {
    await collectorIdle(client, target.prefix!);
    const start = await usedMemoryOf(all);
    const fd = openSync(join(dir, name), 'w');
    for (let off = 0; off < bytes; off += MiB) writeSync(fd, chunk(), 0, MiB, off);
    fsyncSync(fd);
    closeSync(fd);
    if (statSync(join(dir, name)).size !== bytes) throw new Error(`${name} has the wrong size`);
    return ((await usedMemoryOf(all)) - start) / bytes;
  };
  const text = await perByte('text.txt', () => Buffer.from(randomBytes(MiB / 2).toString('hex')));
  const random = await perByte('random.bin', () => randomBytes(MiB));
  rmSync(dir, { recursive: true });
  return {
    emptyFiles: n,
    bytesPerEmptyFile: (afterEmpty - before) / n,
    storedBytes: bytes,
    perByteCompressible: text,
    perByteIncompressible: random,
  };
}

/** Waits (up to a minute) until the mount's collector has nothing left: `MP gc` and `{F}#free` empty. */
export async function collectorIdle(client: NonNullable<Target['redis']>, prefix: string): Promise<void> {
  const keys = keysFor(prefix);
  const deadline = Date.now() + 60_000;
  while ((await client.sCard(keys.gc)) + (await client.sCard(keys.freeBlocks)) > 0) {
    if (Date.now() > deadline) throw new Error(`the collector of '${prefix}' did not finish within a minute`);
    await sleep(50);
  }
}

export interface Latency {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

function summarise(ms: number[]): Latency {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { samples: s.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: s[s.length - 1] ?? 0 };
}

function statMs(path: string): number {
  const start = process.hrtime.bigint();
  statSync(path);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export interface HeadOfLine {
  idle: Latency;
  duringWrite: Latency;
  writeSeconds: number;
}

/** stat of one file every 5 ms, idle and while `dd` writes the sequential bytes to another. */
export async function headOfLine(target: Target, fx: Fixtures): Promise<HeadOfLine> {
  const dir = join(target.dir, 'hol');
  mkdirSync(dir);
  const probe = join(dir, 'probe');
  closeSync(openSync(probe, 'w'));
  const idle: number[] = [];
  for (let i = 0; i < 100; i++) {
    idle.push(statMs(probe));
    await sleep(5);
  }
  const busy: number[] = [];
  const start = process.hrtime.bigint();
  const dd = spawn('dd', [`if=${fx.seqSource}`, `of=${join(dir, 'big')}`, 'bs=1M', 'conv=fsync', 'status=none'], { stdio: 'ignore' });
  let done = false;
  const exited = new Promise<number | null>((resolve) => dd.once('exit', (code) => {
    done = true;
    resolve(code);
  }));
  while (!done) {
    busy.push(statMs(probe));
    await sleep(5);
  }
  const code = await exited;
  const writeSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (code !== 0) throw new Error(`dd exited with ${code} during the head-of-line test`);
  rmSync(dir, { recursive: true });
  return { idle: summarise(idle), duringWrite: summarise(busy), writeSeconds };
}
