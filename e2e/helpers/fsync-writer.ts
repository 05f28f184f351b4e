/**
 * A careful writer in a process of its own: it writes files of random bytes into a dir, fsyncs
 * each, and trusts a file (reports its checksum) only once its fsync returned. Unlike the
 * in-process `startWriter`, its open files are not the test process's: killing the mount does
 * not strand the test, and a test that spawns processes meanwhile (a fork's child closes its
 * copies of every open fd, each a FUSE flush) does not touch the writer's files.
 *
 *   await using writer = startFsyncWriter(mnt.dir, { minBytes: 3 * MiB, maxBytes: 7 * MiB });
 *   await waitFor(() => writer.count() >= 3, …);
 *   await writer.stop();
 *   for (const [name, hash] of writer.synced) …
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type ChildExit, OutputTail, exited, own, stopChild } from './child.js';
import { disposeWhenTestEnds } from './lifecycle.js';

export interface FsyncWriterOptions {
  /** File names are `<label>-<n>`; 'f' unless told. */
  label?: string;
  /** Each file's size is drawn between these, in bytes. */
  minBytes: number;
  maxBytes: number;
  /** Exit (code 1) at the first failed call, e.g. once the mount is gone; else note it and go on. */
  stopOnError?: boolean;
  /** Called with a file's name just before its fsync(2) is called. */
  onFsync?: (name: string) => void;
}

/** A running writer process. Stops with `stop()`, or at the end of its scope, also when a test fails. */
export interface FsyncWriter extends AsyncDisposable {
  readonly process: ChildProcess;
  /** name → sha256 of each file whose fsync returned. */
  readonly synced: Map<string, string>;
  /** One `name: message` line per file whose open, write, fsync or close failed. */
  readonly errors: string[];
  count(): number;
  /** What the process wrote to stderr. */
  stderr(): string;
  /** Resolves when the process exits by itself. */
  exited(): Promise<ChildExit>;
  /** Asks it to finish the file it is writing and exit (SIGTERM), then waits; SIGKILL if it hangs. */
  stop(): Promise<ChildExit>;
}

/** The writer's program (CommonJS, for `node -e`): argv dir, label, min, max, stopOnError. */
const PROGRAM = `
const { open } = require('node:fs/promises');
const { createHash, randomBytes } = require('node:crypto');
const [dir, label, min, max, stopOnError] = process.argv.slice(1);
let stopping = false;
process.on('SIGTERM', () => { stopping = true; });
const say = (line) => process.stdout.write(line + '\\n');
(async () => {
  for (let i = 0; !stopping; i++) {
    const name = label + '-' + i;
    const data = randomBytes(Number(min) + Math.floor(Math.random() * (Number(max) - Number(min) + 1)));
    let fh;
    try {
      fh = await open(dir + '/' + name, 'w');
      await fh.write(data);
      say('fsync ' + name);
      await fh.sync();
      say('synced ' + name + ' ' + createHash('sha256').update(data).digest('hex'));
      await fh.close();
    } catch (err) {
      say('error ' + name + ' ' + err.message);
      if (fh) await fh.close().catch(() => undefined);
      if (stopOnError === 'yes') process.exit(1);
    }
  }
})();
`;

/** Starts a writer process on `dir` (usually a mount). */
export function startFsyncWriter(dir: string, options: FsyncWriterOptions): FsyncWriter {
  const args = [dir, options.label ?? 'f', String(options.minBytes), String(options.maxBytes), options.stopOnError ? 'yes' : 'no'];
  const child = own(spawn(process.execPath, ['-e', PROGRAM, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const stderr = new OutputTail().follow(child.stderr);
  // 'close' comes after the last output was read ('exit' may come before it).
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const synced = new Map<string, string>();
  const errors: string[] = [];
  let pending = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const [what = '', name = '', ...rest] = line.split(' ');
      if (what === 'fsync') options.onFsync?.(name);
      else if (what === 'synced') synced.set(name, rest[0] ?? '');
      else if (what === 'error') errors.push(`${name}: ${rest.join(' ')}`);
    }
  });
  const stop = async () => {
    const exit = await stopChild(child, 'SIGTERM', 30_000);
    await closed;
    return exit;
  };
  const writer: FsyncWriter = {
    process: child,
    synced,
    errors,
    count: () => synced.size,
    stderr: () => stderr.toString(),
    exited: async () => {
      const exit = await exited(child);
      await closed;
      return exit;
    },
    stop,
    [Symbol.asyncDispose]: async () => {
      await stop();
    },
  };
  disposeWhenTestEnds(writer);
  return writer;
}
