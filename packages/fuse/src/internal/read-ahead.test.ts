import { constants as fsConstants } from 'node:fs';
import { FsError, type Attr, type AttrChanges } from '@redisfs/store';
import type Fuse from 'fuse-native';
import { describe, expect, it } from 'vitest';
import { FsState } from './fs-state.js';
import { makeOps } from './ops.js';
import { fakeStore } from './test-store.js';
import { ReadAhead, ReadAheadTable } from './read-ahead.js';

/** A file in memory behind a store read that records each call. */
function fakeFile(size: number) {
  const bytes = Buffer.from(Array.from({ length: size }, (_, i) => i % 251));
  const calls: string[] = [];
  let failNext: Error | undefined;
  const read = async (offset: number, length: number) => {
    calls.push(`${length}@${offset}`);
    if (failNext) {
      const err = failNext;
      failNext = undefined;
      throw err;
    }
    return Buffer.from(bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + length, bytes.length)));
  };
  return {
    bytes,
    calls,
    read,
    fail(err: Error) {
      failNext = err;
    },
  };
}

const W = 100; // window bytes in these tests
const opts = { windowBytes: W, nearBytes: 50 };

/** Reads [from, to) in `step`-byte reads, in order. */
async function readAll(ra: ReadAhead, from: number, to: number, step: number, gen: unknown = 0): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let off = from; off < to; off += step) parts.push(await ra.read(off, Math.min(step, to - off), gen));
  return Buffer.concat(parts);
}

describe('ReadAhead', () => {
  it('reads a first read and random reads from the store, without windows', async () => {
    const f = fakeFile(1000);
    const ra = new ReadAhead(f.read, opts);
    expect((await ra.read(0, 10, 0)).equals(f.bytes.subarray(0, 10))).toBe(true);
    expect((await ra.read(500, 10, 0)).equals(f.bytes.subarray(500, 510))).toBe(true);
    expect((await ra.read(200, 10, 0)).equals(f.bytes.subarray(200, 210))).toBe(true);
    expect((await ra.read(220, 10, 0)).equals(f.bytes.subarray(220, 230))).toBe(true); // one near read: chance
    expect(f.calls).toEqual(['10@0', '10@500', '10@200', '10@220']);
    expect(ra.windowCount).toBe(0);
  });

  it('answers sequential reads from aligned windows, each fetched once and dropped once read', async () => {
    const f = fakeFile(1000);
    const ra = new ReadAhead(f.read, opts);
    let most = 0;
    const parts: Buffer[] = [];
    for (let off = 0; off < 1000; off += 25) {
      parts.push(await ra.read(off, 25, 0));
      most = Math.max(most, ra.windowCount);
    }
    expect(Buffer.concat(parts).equals(f.bytes)).toBe(true);
    // Two reads alone, then one store read per window.
    expect(f.calls).toEqual(['25@0', '25@25', ...Array.from({ length: 10 }, (_, i) => `100@${i * 100}`)]);
    expect(most).toBeLessThanOrEqual(2); // window 0 is not all read through it: kept until passed
    expect(ra.windowCount).toBe(0);
  });

  it('counts reads answered from windows as hits, reads that fetched as misses', async () => {
    const f = fakeFile(1000);
    const counts = { hits: 0, misses: 0 };
    const ra = new ReadAhead(f.read, { ...opts, counts });
    await readAll(ra, 0, 400, 25);
    // 16 reads: two alone, then per window one that fetched it and three answered from it.
    expect(f.calls).toHaveLength(2 + 4);
    expect(counts).toEqual({ hits: 16 - 2 - 4, misses: 2 + 4 });
    await ra.read(900, 10, 0); // far away: straight to the store
    expect(counts.misses).toBe(7);
  });

  it('takes reads arriving slightly out of order as sequential', async () => {
    const f = fakeFile(1000);
    const ra = new ReadAhead(f.read, opts);
    const got = new Map<number, Buffer>();
    for (const off of [0, 50, 25, 100, 75, 150, 125, 175]) got.set(off, await ra.read(off, 25, 0));
    for (const [off, data] of got) expect(data.equals(f.bytes.subarray(off, off + 25))).toBe(true);
    expect(f.calls.slice(0, 3)).toEqual(['25@0', '25@50', '100@0']);
    expect(f.calls.filter((c) => c.startsWith('25@'))).toHaveLength(2);
  });

  it('serves a read spanning two windows', async () => {
    const f = fakeFile(1000);
    const ra = new ReadAhead(f.read, opts);
    await readAll(ra, 0, 60, 20);
    expect((await ra.read(60, 80, 0)).equals(f.bytes.subarray(60, 140))).toBe(true);
    expect(f.calls).toEqual(['20@0', '20@20', '100@0', '100@100']);
  });

  it('never answers past the end a window saw: such reads go to the store', async () => {
    const f = fakeFile(230);
    const ra = new ReadAhead(f.read, opts);
    await readAll(ra, 0, 200, 50);
    f.calls.length = 0;
    // Window 2 holds 30 bytes (the file ended at 230 when it was fetched).
    expect((await ra.read(200, 50, 0)).equals(f.bytes.subarray(200, 230))).toBe(true);
    expect(f.calls).toContain('50@200');
  });

  it('drops its windows when the generation moves (a change made through the mount)', async () => {
    const f = fakeFile(1000);
    const ra = new ReadAhead(f.read, opts);
    await readAll(ra, 0, 30, 10, 1); // window 0 held
    expect(ra.windowCount).toBe(1);
    f.bytes.fill(7, 0, 300); // the file changes; the mount's generation moves
    expect((await ra.read(30, 10, 2)).equals(Buffer.alloc(10, 7))).toBe(true);
    expect(f.calls.filter((c) => c === '100@0')).toHaveLength(2);
  });

  it('asks the store again when a window failed; the store reports its own error', async () => {
    const f = fakeFile(1000);
    const ra = new ReadAhead(f.read, opts);
    await readAll(ra, 0, 20, 10);
    f.fail(new Error('ETIMEDOUT')); // window 0 fails
    expect((await ra.read(20, 10, 0)).equals(f.bytes.subarray(20, 30))).toBe(true);
    const broken = new ReadAhead(async () => {
      throw new Error('EIO');
    }, opts);
    for (const off of [0, 10, 20, 30]) await expect(broken.read(off, 10, 0)).rejects.toThrow('EIO');
  });

  it('holds at most the windows a read spans and the one before', async () => {
    const f = fakeFile(10_000);
    const ra = new ReadAhead(f.read, opts);
    let most = 0;
    for (let off = 0; off < 5000; off += 60) {
      await ra.read(off, 60, 0); // reads across window boundaries
      most = Math.max(most, ra.windowCount);
    }
    expect(most).toBeLessThanOrEqual(3);
    const windows = f.calls.filter((c) => c.startsWith('100@'));
    expect(new Set(windows).size).toBe(windows.length);
  });

  it('a read of nothing goes to the store (it checks that the file exists)', async () => {
    const f = fakeFile(10);
    const ra = new ReadAhead(f.read, opts);
    expect((await ra.read(5, 0, 0)).length).toBe(0);
    expect(f.calls).toEqual(['0@5']);
  });
});

describe('read handler with read-ahead', () => {
  /** One regular file, inode 2 at /f, in memory; every store read is recorded. */
  class OneFileStore {
    readonly prefix = 'ra';
    readonly readOnly = false;
    readonly blockSize = 4096;
    readonly rootIno = 1;
    readonly reads: string[] = [];
    data = Buffer.from(Array.from({ length: 3 * MiB_ }, (_, i) => i % 253));
    private attr(): Attr {
      return { ino: 2, type: 'file', mode: 0o100644, uid: 0, gid: 0, size: this.data.length, nlink: 1, rdev: 0,
        atimeNs: 1n, mtimeNs: 1n, ctimeNs: 1n, blocks: 0, generation: 0 };
    }
    /** No session: opens hold nothing, locks stay with the kernel. */
    readonly sessionId = undefined;
    readonly locks = undefined;
    /** The adapter passes paths as their bytes (a Buffer). */
    async resolve(path: string | Buffer): Promise<Attr> {
      if (path.toString() !== '/f') throw new FsError('ENOENT', path.toString());
      return this.attr();
    }
    open(path: string | Buffer): Promise<Attr> {
      return this.resolve(path);
    }
    async getattr(): Promise<Attr> {
      return this.attr();
    }
    /** No directory changes here to report. */
    watchParents(): void {}
    async read(_ino: number, offset: number, length: number): Promise<Buffer> {
      this.reads.push(`${length}@${offset}`);
      return Buffer.from(this.data.subarray(offset, offset + length));
    }
    async write(_ino: number, offset: number, data: Buffer): Promise<number> {
      const end = Math.max(this.data.length, offset + data.length);
      const out = Buffer.alloc(end);
      this.data.copy(out);
      data.copy(out, offset);
      this.data = out;
      return end;
    }
    async setattr(_ino: number, ch: AttrChanges): Promise<Attr> {
      if (ch.size !== undefined) this.data = Buffer.concat([this.data, Buffer.alloc(ch.size)]).subarray(0, ch.size);
      return this.attr();
    }
  }
  const MiB_ = 1024 * 1024;

  function setup() {
    const store = new OneFileStore();
    const state = new FsState({
      store: fakeStore(store),
      readOnly: false,
      cacheTimeoutMs: 1000,
      env: { debug: false, deadlineMs: 0, log: () => undefined },
      caller: () => ({ uid: 0, gid: 0, pid: 1 }),
    });
    return { store, ops: makeOps(state) as Required<Fuse.Ops> };
  }

  /** Calls a handler and resolves with its callback's arguments. */
  function call(handler: (...args: never[]) => void, ...args: unknown[]): Promise<unknown[]> {
    return new Promise((resolve) => (handler as (...a: unknown[]) => void)(...args, (...cbArgs: unknown[]) => resolve(cbArgs)));
  }
  async function readAt(ops: Required<Fuse.Ops>, fd: number, len: number, pos: number): Promise<Buffer> {
    const buf = Buffer.alloc(len);
    const [n] = await call(ops.read, '/f', fd, buf, len, pos);
    return buf.subarray(0, n as number);
  }

  it('answers sequential reads from windows, and no window outlives its open', async () => {
    const { store, ops } = setup();
    const [, fd] = (await call(ops.open, '/f', fsConstants.O_RDONLY)) as [number, number];
    for (let pos = 0; pos < MiB_; pos += 128 * 1024) {
      expect((await readAt(ops, fd, 128 * 1024, pos)).equals(store.data.subarray(pos, pos + 128 * 1024))).toBe(true);
    }
    expect(store.reads).toEqual(['131072@0', '131072@131072', '1048576@0']); // two reads alone, then the window
    await call(ops.release, '/f', fd, null);
    store.data.fill(9, 0, 2 * MiB_); // another host rewrites the file
    const [, again] = (await call(ops.open, '/f', fsConstants.O_RDONLY)) as [number, number];
    expect((await readAt(ops, again, 4096, 0)).equals(Buffer.alloc(4096, 9))).toBe(true);
    expect((await readAt(ops, again, 4096, 4096)).equals(Buffer.alloc(4096, 9))).toBe(true);
  });

  it('never answers with bytes older than a write or truncate made through the mount', async () => {
    const { store, ops } = setup();
    const [, r] = (await call(ops.open, '/f', fsConstants.O_RDONLY)) as [number, number];
    const [, w] = (await call(ops.open, '/f', fsConstants.O_RDWR)) as [number, number];
    for (const pos of [0, 4096, 8192]) await readAt(ops, r, 4096, pos); // window 0 held from the third on
    const fetched = store.reads.length;
    expect(await call(ops.write, '/f', w, Buffer.from('new bytes'), 9, 10_000)).toEqual([9]);
    // The read stores the buffered write first; the windows fetched before it are not used.
    expect((await readAt(ops, r, 4096, 8192)).subarray(10_000 - 8192, 10_009 - 8192).toString()).toBe('new bytes');
    expect(store.reads.length).toBeGreaterThan(fetched);
    await readAt(ops, r, 4096, 12_288);
    await call(ops.truncate, '/f', 100);
    await call(ops.truncate, '/f', 20_000);
    expect((await readAt(ops, r, 4096, 16_384)).equals(Buffer.alloc(20_000 - 16_384))).toBe(true);
    await call(ops.release, '/f', w, null);
    await call(ops.release, '/f', r, null);
  });
});

describe('ReadAheadTable', () => {
  const make = () => new ReadAhead(async () => Buffer.alloc(0));

  it('keeps one read-ahead per handle', () => {
    const table = new ReadAheadTable<string>(4);
    const a = table.get('a', make, () => true);
    expect(table.get('a', make, () => true)).toBe(a);
    expect(table.get('b', make, () => true)).not.toBe(a);
  });

  it('drops the least recently read handle beyond its bound, and keeps the recently read ones', () => {
    const table = new ReadAheadTable<string>(3);
    const open = () => true;
    const first = new Map<string, ReadAhead>();
    // Started in the order a, c, b; then a and b are read again. So c, neither the first nor the
    // last started, is the least recently read: dropping by start order (either end) keeps it.
    for (const key of ['a', 'c', 'b']) first.set(key, table.get(key, make, open));
    table.get('a', make, open);
    table.get('b', make, open); // b: the most recently read
    table.get('d', make, open); // beyond the bound: c goes
    expect(table.size).toBe(3);
    // Kept: the same read-ahead (with its windows) comes back; nothing is made anew.
    expect(table.get('b', make, open)).toBe(first.get('b'));
    expect(table.get('a', make, open)).toBe(first.get('a'));
    // Dropped: c starts over with a new read-ahead.
    expect(table.get('c', make, open)).not.toBe(first.get('c'));
  });

  it('forgets closed handles when another one starts', () => {
    const table = new ReadAheadTable<string>(8);
    const open = new Set(['a', 'b']);
    const isOpen = (k: string) => open.has(k);
    const a = table.get('a', make, isOpen);
    const b = table.get('b', make, isOpen);
    open.delete('a'); // a is closed
    expect(table.size).toBe(2); // not forgotten yet: that happens when another handle starts
    open.add('c');
    const c = table.get('c', make, isOpen);
    expect(table.size).toBe(2); // far below the bound (8): a went because it was closed
    expect(table.get('b', make, isOpen)).toBe(b);
    expect(table.get('c', make, isOpen)).toBe(c);
    open.add('a'); // the handle number is reused by a new open: it gets a new read-ahead, not a's
    expect(table.get('a', make, isOpen)).not.toBe(a);
  });
});
