/**
 * The eight workloads of `pnpm bench`, each timed in phases and verified (counts, checksums):
 * a fast wrong answer throws instead of scoring. They run with blocking syscalls from this
 * process or with ordinary tools (tar, ls, dd, rm) against a target's directory.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import {
  closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** Sizes of one run: the full bench, or the one-minute `--quick` smoke version. */
export interface Scale {
  smallFiles: number;
  smallDirs: number;
  smallFileBytes: number;
  seqBytes: number;
  randomWrites: number;
  randomSmallFile: number;
  randomLargeFile: number;
  churnFiles: number;
  bigDirEntries: number;
  bigDirLookups: number;
  /** Creates timed at the start and at the end of the big directory. */
  bigDirBatch: number;
  emptyFilesForMemory: number;
  bytesForMemory: number;
  /** open + close pairs of one existing file, per open mode (open-close.ts). */
  openClosePairs: number;
  /** Uncontended lock + unlock pairs, and hand-offs between two mounts, per lock kind (lock-latency.ts). */
  lockPairs: number;
  lockRounds: number;
}

const MiB = 2 ** 20;

export const FULL: Scale = {
  smallFiles: 2000, smallDirs: 20, smallFileBytes: 4096,
  seqBytes: 256 * MiB,
  randomWrites: 2000, randomSmallFile: 64 * MiB, randomLargeFile: 1024 * MiB,
  churnFiles: 5000,
  bigDirEntries: 100_000, bigDirLookups: 1000, bigDirBatch: 1000,
  emptyFilesForMemory: 10_000, bytesForMemory: 64 * MiB,
  openClosePairs: 2000, lockPairs: 1000, lockRounds: 50,
};

export const QUICK: Scale = {
  smallFiles: 400, smallDirs: 10, smallFileBytes: 4096,
  seqBytes: 32 * MiB,
  randomWrites: 300, randomSmallFile: 16 * MiB, randomLargeFile: 128 * MiB,
  churnFiles: 1000,
  bigDirEntries: 5000, bigDirLookups: 300, bigDirBatch: 500,
  emptyFilesForMemory: 2000, bytesForMemory: 16 * MiB,
  openClosePairs: 2000, lockPairs: 300, lockRounds: 50,
};

/** Source data shared by every target of a run, made once on tmpfs. */
export interface Fixtures {
  scale: Scale;
  /** A tarball of the small-file tree. */
  tarball: string;
  /** sha256 over the small files' relative paths and contents, sorted by path. */
  smallTreeHash: string;
  /** A file of `seqBytes` random bytes. */
  seqSource: string;
  seqSourceHash: string;
  /** 1 MiB of random bytes, to fill the random-write files. */
  fill: Buffer;
}

export function makeFixtures(scale: Scale, scratch: string): Fixtures {
  const tree = join(scratch, 'tree');
  const files: string[] = [];
  for (let d = 0; d < scale.smallDirs; d++) mkdirSync(join(tree, `dir${d}`), { recursive: true });
  for (let i = 0; i < scale.smallFiles; i++) {
    const rel = join(`dir${i % scale.smallDirs}`, `file${i}.txt`);
    // Hex text: compressible about 2:1, like source code or logs.
    writeFileSync(join(tree, rel), randomBytes(scale.smallFileBytes / 2).toString('hex'));
    files.push(rel);
  }
  const tarball = join(scratch, 'tree.tar');
  run('tar', ['-cf', tarball, '-C', tree, '.']);
  const seqSource = join(scratch, 'seq.bin');
  const chunk = randomBytes(MiB);
  const seqHash = createHash('sha256');
  const fd = openSync(seqSource, 'w');
  for (let off = 0; off < scale.seqBytes; off += MiB) {
    randomFill(chunk);
    writeSync(fd, chunk);
    seqHash.update(chunk);
  }
  closeSync(fd);
  return {
    scale,
    tarball,
    smallTreeHash: hashTree(tree, files),
    seqSource,
    seqSourceHash: seqHash.digest('hex'),
    fill: randomBytes(MiB),
  };
}

function randomFill(buf: Buffer): void {
  randomBytes(buf.length).copy(buf);
}

function hashTree(root: string, rels: string[]): string {
  const h = createHash('sha256');
  for (const rel of [...rels].sort()) {
    h.update(rel);
    h.update(readFileSync(join(root, rel)));
  }
  return h.digest('hex');
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1024 * MiB });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return r.stdout;
}

function now(): bigint {
  return process.hrtime.bigint();
}

function secondsSince(start: bigint): number {
  return Number(now() - start) / 1e9;
}

function timed(fn: () => void): number {
  const start = now();
  fn();
  return secondsSince(start);
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`verification failed: ${what}`);
}

/** One timed phase of a workload. */
export interface Phase {
  name: string;
  seconds: number;
  /** Operations in the phase (files, writes, bytes…), for per-op figures. */
  ops: number;
  unit: string;
}

export interface Workload {
  id: number;
  name: string;
  run(dir: string, fx: Fixtures): Phase[];
}

function phase(name: string, seconds: number, ops: number, unit: string): Phase {
  return { name, seconds, ops, unit };
}

function smallFilePaths(fx: Fixtures): string[] {
  const out: string[] = [];
  for (let i = 0; i < fx.scale.smallFiles; i++) out.push(join(`dir${i % fx.scale.smallDirs}`, `file${i}.txt`));
  return out;
}

/** Fills `path` with `size` bytes from the 1 MiB random buffer (untimed setup). */
function fillFile(path: string, size: number, fill: Buffer): void {
  const fd = openSync(path, 'w');
  for (let off = 0; off < size; off += fill.length) writeSync(fd, fill, 0, Math.min(fill.length, size - off), off);
  fsyncSync(fd);
  closeSync(fd);
}

/** 4 KiB writes at random 4 KiB-aligned offsets of `path`, then fsync; verified by reading back. */
function randomWrites(path: string, size: number, count: number): number {
  const slots = size / 4096;
  const expected = new Map<number, Buffer>();
  const writes: [number, Buffer][] = [];
  for (let i = 0; i < count; i++) {
    const off = randomInt(slots) * 4096;
    const data = randomBytes(4096);
    writes.push([off, data]);
    expected.set(off, data);
  }
  const fd = openSync(path, 'r+');
  const seconds = timed(() => {
    for (const [off, data] of writes) writeSync(fd, data, 0, 4096, off);
    fsyncSync(fd);
  });
  closeSync(fd);
  const rfd = openSync(path, 'r');
  const buf = Buffer.alloc(4096);
  for (const [off, data] of expected) {
    check(readSync(rfd, buf, 0, 4096, off) === 4096 && buf.equals(data), `4 KiB at ${off} of ${path} reads back as written`);
  }
  closeSync(rfd);
  check(statSync(path).size === size, `${path} keeps its size`);
  return seconds;
}

export const WORKLOADS: readonly Workload[] = [
  {
    id: 1,
    name: 'small files: extract tarball',
    run(dir, fx) {
      const seconds = timed(() => run('tar', ['-xf', fx.tarball, '-C', mkdirIn(dir, 'tree')]));
      return [phase('extract', seconds, fx.scale.smallFiles, 'files')];
    },
  },
  {
    id: 2,
    name: 'stat every file (ls -lR)',
    run(dir, fx) {
      let out = '';
      const seconds = timed(() => {
        out = run('ls', ['-lR', join(dir, 'tree')]);
      });
      const files = out.split('\n').filter((l) => l.startsWith('-')).length;
      check(files === fx.scale.smallFiles, `ls -lR lists ${fx.scale.smallFiles} files (got ${files})`);
      return [phase('ls -lR', seconds, fx.scale.smallFiles, 'files')];
    },
  },
  {
    id: 3,
    name: 'read every file',
    run(dir, fx) {
      const rels = smallFilePaths(fx).sort();
      const h = createHash('sha256');
      const seconds = timed(() => {
        for (const rel of rels) {
          h.update(rel);
          h.update(readFileSync(join(dir, 'tree', rel)));
        }
      });
      check(h.digest('hex') === fx.smallTreeHash, 'the small files read back as in the tarball');
      return [phase('read', seconds, fx.scale.smallFiles, 'files')];
    },
  },
  {
    id: 4,
    name: 'sequential write then read (dd bs=1M)',
    run(dir, fx) {
      const path = join(dir, 'seq.bin');
      const mib = fx.scale.seqBytes / MiB;
      const write = timed(() => run('dd', [`if=${fx.seqSource}`, `of=${path}`, 'bs=1M', `count=${mib}`, 'conv=fsync', 'status=none']));
      const read = timed(() => run('dd', [`if=${path}`, 'of=/dev/null', 'bs=1M', 'status=none']));
      check(sha256File(path) === fx.seqSourceHash, 'the sequential file reads back as written');
      return [phase('write', write, fx.scale.seqBytes, 'bytes'), phase('read', read, fx.scale.seqBytes, 'bytes')];
    },
  },
  {
    id: 5,
    name: 'random 4 KiB overwrites',
    run(dir, fx) {
      const small = join(dir, 'random-small.bin');
      const large = join(dir, 'random-large.bin');
      fillFile(small, fx.scale.randomSmallFile, fx.fill);
      const a = randomWrites(small, fx.scale.randomSmallFile, fx.scale.randomWrites);
      fillFile(large, fx.scale.randomLargeFile, fx.fill);
      const b = randomWrites(large, fx.scale.randomLargeFile, fx.scale.randomWrites);
      return [
        phase(`in ${fx.scale.randomSmallFile / MiB} MiB`, a, fx.scale.randomWrites, 'writes'),
        phase(`in ${fx.scale.randomLargeFile / MiB} MiB`, b, fx.scale.randomWrites, 'writes'),
      ];
    },
  },
  {
    id: 6,
    name: 'metadata churn: create, rename, unlink',
    run(dir, fx) {
      const d = mkdirIn(dir, 'churn');
      const n = fx.scale.churnFiles;
      const create = timed(() => {
        for (let i = 0; i < n; i++) closeSync(openSync(join(d, `a${i}`), 'wx'));
      });
      check(readdirSync(d).length === n, `${n} files created`);
      const rename = timed(() => {
        for (let i = 0; i < n; i++) renameSync(join(d, `a${i}`), join(d, `b${i}`));
      });
      const names = readdirSync(d);
      check(names.length === n && names.every((x) => x.startsWith('b')), `${n} files renamed`);
      const unlink = timed(() => {
        for (let i = 0; i < n; i++) unlinkSync(join(d, `b${i}`));
      });
      check(readdirSync(d).length === 0, 'every file unlinked');
      return [phase('create', create, n, 'files'), phase('rename', rename, n, 'files'), phase('unlink', unlink, n, 'files')];
    },
  },
  {
    id: 7,
    name: 'one huge directory',
    run(dir, fx) {
      const d = mkdirIn(dir, 'huge');
      const { bigDirEntries: n, bigDirBatch: batch, bigDirLookups: lookups } = fx.scale;
      const name = (i: number) => `entry-${i.toString().padStart(7, '0')}`;
      let first = 0;
      let last = 0;
      const create = timed(() => {
        for (let i = 0; i < n; i += batch) {
          const start = now();
          for (let j = i; j < i + batch && j < n; j++) closeSync(openSync(join(d, name(j)), 'wx'));
          const s = secondsSince(start);
          if (i === 0) first = s;
          if (i + batch >= n) last = s;
        }
      });
      const picks = Array.from({ length: lookups }, () => randomInt(n));
      const lookup = timed(() => {
        for (const i of picks) statSync(join(d, name(i)));
      });
      let listed = 0;
      const list = timed(() => {
        listed = readdirSync(d).length;
      });
      check(listed === n, `the directory lists ${n} entries (got ${listed})`);
      return [
        phase('create', create, n, 'files'),
        phase(`first ${batch} creates`, first, batch, 'files'),
        phase(`last ${batch} creates`, last, batch, 'files'),
        phase('lookup', lookup, lookups, 'names'),
        phase('list', list, n, 'entries'),
      ];
    },
  },
  {
    id: 8,
    name: 'rm -rf of all of it',
    run(dir) {
      const entries = readdirSync(dir).map((e) => join(dir, e));
      const seconds = timed(() => run('rm', ['-rf', ...entries]));
      check(readdirSync(dir).length === 0, 'rm -rf left nothing');
      return [phase('rm -rf', seconds, entries.length, 'trees')];
    },
  },
];

/** Phases that are parts of another phase (not added to the workload's time). */
export function isSubPhase(p: Phase): boolean {
  return p.name.startsWith('first ') || p.name.startsWith('last ');
}

function mkdirIn(dir: string, name: string): string {
  const d = join(dir, name);
  mkdirSync(d);
  return d;
}

export function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(4 * MiB);
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
  }
  closeSync(fd);
  return h.digest('hex');
}
