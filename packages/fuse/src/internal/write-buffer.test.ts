import { describe, expect, it } from 'vitest';
import { WriteBuffer } from './write-buffer.js';

/**
 * Polls `holds` until it is true, failing after `timeoutMs`. Every check runs in a timer callback,
 * after the microtasks queued before it: once `holds` is seen, the buffer's own continuations of
 * what made it true have run, and what the buffer has not done by then waits for a store answer
 * (the sinks below never answer on their own and WriteBuffer has no timers). So a "not yet" checked
 * right after this is made at a defined point: the event `holds` describes.
 */
async function until(what: string, holds: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await new Promise((r) => setTimeout(r, 1));
    if (holds()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  }
}

/** A sink that records what reached the store, optionally failing or pausing. */
function recordingSink() {
  const writes: { offset: number; data: string }[] = [];
  const sink = {
    writes,
    /** Store writes begun (handed to the sink), answered or not. */
    begun: 0,
    failNext: undefined as Error | undefined,
    gate: undefined as Promise<void> | undefined,
    async write(offset: number, data: Buffer) {
      sink.begun++;
      if (sink.gate) await sink.gate;
      if (sink.failNext) {
        const err = sink.failNext;
        sink.failNext = undefined;
        throw err;
      }
      writes.push({ offset, data: data.toString() });
    },
  };
  return sink;
}

const b = (s: string) => Buffer.from(s);

describe('WriteBuffer', () => {
  it('collects contiguous writes into one store write', async () => {
    const sink = recordingSink();
    const buf = new WriteBuffer(sink.write, { limit: 1024 });
    await buf.write(0, b('abc'));
    await buf.write(3, b('def'));
    await buf.write(6, b('g'));
    expect(sink.writes).toEqual([]);
    expect(buf.pendingBytes).toBe(7);
    expect(buf.pendingEnd).toBe(7);
    await buf.flush();
    expect(sink.writes).toEqual([{ offset: 0, data: 'abcdefg' }]);
    expect(buf.pendingEnd).toBe(-1);
  });

  it('stores the buffer before a non-contiguous write', async () => {
    const sink = recordingSink();
    const buf = new WriteBuffer(sink.write, { limit: 1024 });
    await buf.write(10, b('aa'));
    await buf.write(0, b('bb'));
    expect(sink.writes).toEqual([{ offset: 10, data: 'aa' }]);
    await buf.flush();
    expect(sink.writes).toEqual([
      { offset: 10, data: 'aa' },
      { offset: 0, data: 'bb' },
    ]);
  });

  it('stores a full buffer up to the last block boundary and keeps the tail', async () => {
    const sink = recordingSink();
    const buf = new WriteBuffer(sink.write, { limit: 8, blockSize: 4 });
    await buf.write(2, b('abcd')); // 2..6
    await buf.write(6, b('efgh')); // 2..10: full; boundary at 8
    expect(sink.writes).toEqual([{ offset: 2, data: 'abcdef' }]);
    expect(buf.pendingBytes).toBe(2);
    await buf.write(10, b('ij'));
    await buf.flush();
    expect(sink.writes[1]).toEqual({ offset: 8, data: 'ghij' });
  });

  it('rounds the limit up to a multiple of the block size', () => {
    expect(new WriteBuffer(async () => undefined, { limit: 5, blockSize: 4 }).limit).toBe(8);
    expect(new WriteBuffer(async () => undefined, { blockSize: 65536 }).limit).toBe(4 * 1024 * 1024);
  });

  it('reports data being stored in pendingEnd until the store answers', async () => {
    const sink = recordingSink();
    let open!: () => void;
    sink.gate = new Promise((r) => (open = r));
    const buf = new WriteBuffer(sink.write, { limit: 1024 });
    await buf.write(0, b('hello'));
    const flushing = buf.flush();
    await until('the store to be handed the data', () => sink.begun === 1); // and not to answer: gated
    expect(sink.writes).toEqual([]);
    expect(buf.pendingBytes).toBe(0);
    expect(buf.pendingEnd).toBe(5);
    open();
    await flushing;
    expect(buf.pendingEnd).toBe(-1);
  });

  it('remembers a failed store write: every flush (close) throws it until an fsync has, once', async () => {
    const sink = recordingSink();
    const buf = new WriteBuffer(sink.write, { limit: 1024 });
    await buf.write(0, b('lost'));
    sink.failNext = new Error('redis down');
    await buf.drain(); // the failure is kept for flush, not thrown
    expect(buf.hasFailure).toBe(true);
    await expect(buf.write(100, b('refused'))).rejects.toThrow('redis down'); // the next write learns it
    await buf.write(100, b('next'));
    // A forked child's close, then the owner's: both are told.
    await expect(buf.flush()).rejects.toThrow('redis down');
    await expect(buf.flush()).rejects.toThrow('redis down');
    expect(sink.writes).toEqual([{ offset: 100, data: 'next' }]);
    expect(buf.hasFailure).toBe(true);
    // fsync is told once, and then it is reported.
    await expect(buf.flush({ fsync: true })).rejects.toThrow('redis down');
    expect(buf.hasFailure).toBe(false);
    await expect(buf.flush({ fsync: true })).resolves.toBeUndefined();
    await expect(buf.flush()).resolves.toBeUndefined();
  });

  it('does not refuse a write for a failure flush already reported', async () => {
    const sink = recordingSink();
    const buf = new WriteBuffer(sink.write, { limit: 1024 });
    await buf.write(0, b('lost'));
    sink.failNext = new Error('redis down');
    await expect(buf.flush()).rejects.toThrow('redis down');
    await expect(buf.write(4, b('ok'))).resolves.toBeUndefined();
  });

  it('refuses the next write once storing a full buffer failed, and flush reports it too', async () => {
    const sink = recordingSink();
    const buf = new WriteBuffer(sink.write, { limit: 4 });
    await buf.write(0, b('ab'));
    sink.failNext = new Error('ETIMEDOUT');
    await buf.write(2, b('cd')); // full: storing starts, and the write does not wait for it
    await expect(buf.write(4, b('ef'))).rejects.toThrow('ETIMEDOUT');
    expect(buf.pendingBytes).toBe(0); // the refused write was not taken
    await expect(buf.write(4, b('ef'))).resolves.toBeUndefined(); // reported once to writes
    await expect(buf.flush()).rejects.toThrow('ETIMEDOUT');
    expect(sink.writes).toEqual([{ offset: 4, data: 'ef' }]);
  });

  it('drain stores without throwing; the failure waits for flush', async () => {
    const sink = recordingSink();
    const buf = new WriteBuffer(sink.write, { limit: 1024 });
    await buf.write(0, b('x'));
    sink.failNext = new Error('nope');
    await expect(buf.drain()).resolves.toBeUndefined();
    await expect(buf.flush()).rejects.toThrow('nope');
  });


  it('runs operations in call order even when not awaited', async () => {
    const sink = recordingSink();
    const buf = new WriteBuffer(sink.write, { limit: 1024 });
    const all = [buf.write(0, b('a')), buf.write(1, b('b')), buf.flush(), buf.write(5, b('c')), buf.flush()];
    await Promise.all(all);
    expect(sink.writes).toEqual([
      { offset: 0, data: 'ab' },
      { offset: 5, data: 'c' },
    ]);
  });

  it('ignores empty writes', async () => {
    const sink = recordingSink();
    const buf = new WriteBuffer(sink.write);
    await buf.write(7, Buffer.alloc(0));
    expect(buf.pendingEnd).toBe(-1);
  });
});

describe('WriteBuffer, pieces in flight', () => {
  /** A sink whose stores stay unanswered until released, one by one. */
  function gatedSink() {
    const calls: { offset: number; data: string; release: () => void; fail: (e: Error) => void }[] = [];
    const write = (offset: number, data: Buffer) =>
      new Promise<void>((resolve, reject) => calls.push({ offset, data: data.toString(), release: resolve, fail: reject }));
    return { calls, write };
  }

  it('accepts writes while the previous piece is stored, and waits only when full again', async () => {
    const sink = gatedSink();
    const buf = new WriteBuffer(sink.write, { limit: 4 });
    await buf.write(0, b('abcd')); // full: storing starts, the write returns at once
    expect(sink.calls.map((c) => c.data)).toEqual(['abcd']);
    expect(buf.pendingEnd).toBe(4);
    await buf.write(4, b('ef'));
    let done = false;
    const full = buf.write(6, b('gh')).then(() => (done = true)); // full again: waits for 'abcd'
    // 'gh' taken in: the buffer is full, and in the same step either stores it or waits.
    await until("'gh' to be taken in", () => buf.pendingEnd === 8);
    expect(buf.pendingBytes).toBe(4); // still buffered: not handed to the store
    expect(sink.calls).toHaveLength(1);
    expect(done).toBe(false);
    sink.calls[0]!.release();
    await full;
    expect(sink.calls.map((c) => [c.offset, c.data])).toEqual([[0, 'abcd'], [4, 'efgh']]);
    sink.calls[1]!.release();
    await buf.flush();
    expect(buf.pendingEnd).toBe(-1);
  });

  it('hands small pieces to the store in order, without waiting for their answers', async () => {
    const sink = gatedSink();
    const buf = new WriteBuffer(sink.write, { limit: 1024 });
    await buf.write(0, b('aaaa'));
    await buf.write(2, b('BB')); // overlaps: 'aaaa' goes to the store, 'BB' is buffered
    await buf.write(100, b('c')); // 'BB' goes too, with 'aaaa' still unanswered
    expect(sink.calls.map((c) => [c.offset, c.data])).toEqual([[0, 'aaaa'], [2, 'BB']]);
    expect(buf.pendingEnd).toBe(101);
    const flushed = buf.flush();
    // Handed over while 'aaaa' and 'BB' are still unanswered (a flush that waited would time out).
    await until("'c' to be handed to the store", () => sink.calls.length === 3);
    expect(sink.calls.map((c) => c.data)).toEqual(['aaaa', 'BB', 'c']);
    for (const c of sink.calls) c.release();
    await flushed;
    expect(buf.pendingEnd).toBe(-1);
  });

  it('waits when the pieces in flight would hold more than the limit', async () => {
    const sink = gatedSink();
    const buf = new WriteBuffer(sink.write, { limit: 8 });
    await buf.write(0, b('1111'));
    await buf.write(10, b('2222')); // '1111' in flight
    let done = false;
    // Not awaited: the fourth write runs right after the third, with no store answer between.
    const third = buf.write(20, b('3333')); // '2222' in flight: 8 bytes
    const fourth = buf.write(30, b('4444')).then(() => (done = true)); // '3333' would make 12
    await third;
    // '2222' handed over; what follows up to the fourth write's decision needs no store answer.
    await until("'2222' to be handed to the store", () => sink.calls.length === 2);
    expect(buf.pendingBytes).toBe(4); // '3333' still buffered
    expect(sink.calls.map((c) => c.data)).toEqual(['1111', '2222']);
    expect(done).toBe(false);
    sink.calls[0]!.release();
    await fourth;
    expect(sink.calls.map((c) => c.data)).toEqual(['1111', '2222', '3333']);
    const flushed = buf.flush();
    for (const c of sink.calls) c.release();
    await until("'4444' to be handed to the store", () => sink.calls.length === 4);
    sink.calls[3]!.release();
    await flushed;
    expect(sink.calls.map((c) => c.data)).toEqual(['1111', '2222', '3333', '4444']);
  });

  it('drain waits for the piece in flight; its failure waits for flush', async () => {
    const sink = gatedSink();
    const buf = new WriteBuffer(sink.write, { limit: 8 });
    await buf.write(0, b('xy'));
    await buf.write(10, b('z')); // not contiguous: 'xy' goes to the store
    let drained = false;
    const draining = buf.drain().then(() => (drained = true));
    // drain hands 'z' over, then (with no store answer needed) waits for both pieces.
    await until("drain to hand 'z' to the store", () => sink.calls.length === 2);
    expect(drained).toBe(false);
    sink.calls[1]!.release();
    await until("'z' to be answered", () => buf.pendingEnd === 2);
    expect(drained).toBe(false); // 'xy' is still unanswered
    sink.calls[0]!.fail(new Error('boom'));
    await draining;
    expect(buf.hasFailure).toBe(true);
    await expect(buf.flush()).rejects.toThrow('boom');
  });

  it('holds at most about two buffers of data while the store is slow', async () => {
    const sink = gatedSink();
    const buf = new WriteBuffer(sink.write, { limit: 8, blockSize: 4 });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) writes.push(buf.write(i * 4, b('wxyz')));
    // Five pieces of 8 bytes. Each time the last piece handed over is answered, exactly one
    // more goes: seen when the 8 bytes after it are buffered (the buffer is full then, and
    // stores or waits in that same step), or, for the last piece, when it is handed over.
    for (let piece = 0; piece < 5; piece++) {
      const end = (piece + 2) * 8;
      await until(
        piece < 4 ? `bytes up to ${end} to be taken in` : 'the last piece to be handed to the store',
        () => (piece < 4 ? buf.pendingEnd === end : sink.calls.length === 5),
      );
      expect(sink.calls).toHaveLength(piece + 1); // one piece in flight, the next one full and waiting
      expect(sink.calls[piece]!.data).toBe('wxyzwxyz');
      expect(buf.pendingBytes).toBe(piece < 4 ? 8 : 0);
      sink.calls[piece]!.release();
    }
    await Promise.all(writes);
    expect(sink.calls.map((c) => c.offset)).toEqual([0, 8, 16, 24, 32]);
    expect(sink.calls.map((c) => c.data).join('')).toBe('wxyz'.repeat(10));
    await buf.flush();
  });
});
