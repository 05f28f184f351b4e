/**
 * A careful writer for failover tests: writes files of random bytes, each fsynced, and trusts a
 * file (records its checksum) only once its fsync returned.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Stops with `stop()`, or at the end of its scope (`await using`), also when a test fails. */
export interface Writer extends AsyncDisposable {
  /** name → sha256 of each file whose fsync returned. */
  readonly synced: Map<string, string>;
  /** One line per file whose open, write, fsync or close failed. */
  readonly errors: string[];
  /** How long each file took, in ms (a stall shows as a long one). */
  readonly durations: number[];
  count(): number;
  stop(): Promise<void>;
}

/**
 * Writes files of random bytes, each fsynced, until `stop()` says so; records a file's checksum
 * only once its fsync returned (what a careful program would trust), and how long each file took.
 */
export function startWriter(dir: string, label: string): Writer {
  const synced = new Map<string, string>();
  const errors: string[] = [];
  const durations: number[] = [];
  let stopped = false;
  let n = 0;
  const done = (async () => {
    while (!stopped) {
      const name = `${label}-${n++}`;
      const data = randomBytes(64 * 1024 + Math.floor(Math.random() * 200 * 1024));
      const t0 = performance.now();
      try {
        const fh = await open(join(dir, name), 'w');
        try {
          await fh.write(data);
          await fh.sync();
        } finally {
          await fh.close();
        }
        synced.set(name, sha256(data));
      } catch (err) {
        errors.push(`${name}: ${(err as Error).message}`);
      }
      durations.push(performance.now() - t0);
    }
  })();
  return {
    synced,
    errors,
    durations,
    count: () => synced.size,
    async stop() {
      stopped = true;
      await done;
    },
    async [Symbol.asyncDispose]() {
      stopped = true;
      await done;
    },
  };
}

