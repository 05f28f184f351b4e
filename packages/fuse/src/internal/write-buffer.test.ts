import { describe, expect, it } from 'vitest';
import { WriteBuffer } from './write-buffer.js';

/** A sink that records what reached the store, optionally failing or pausing. */
function recordingSink() {
  const writes: { offset: number; data: string }[] = [];
  const sink = {
    writes,
    failNext: undefined as Error | undefined,
    gate: undefined as Promise<void> | undefined,
    async write(offset: number, data: Buffer) {
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
    await Promise.resolve();
    expect(buf.pendingBytes).toBe(0);
    expect(buf.pendingEnd).toBe(5);
    open();
    await flushing;
    expect(buf.pendingEnd).toBe(-1);
  });

  it('remembers a failed store write and throws it from the next flush, once', async () => {
    const sink = recordingSink();
    const buf = new WriteBuffer(sink.write, { limit: 1024 });
    await buf.write(0, b('lost'));
    sink.failNext = new Error('redis down');
    await buf.write(100, b('next')); // non-contiguous: stores 'lost', which fails; this write is kept
    expect(buf.hasFailure).toBe(true);
    await expect(buf.flush()).rejects.toThrow('redis down');
    expect(sink.writes).toEqual([{ offset: 100, data: 'next' }]);
    expect(buf.hasFailure).toBe(false);
    await expect(buf.flush()).resolves.toBeUndefined();
  });

  it('fails the write that fills the buffer when storing fails, and flush reports it too', async () => {
    const sink = recordingSink();
    const buf = new WriteBuffer(sink.write, { limit: 4 });
    await buf.write(0, b('ab'));
    sink.failNext = new Error('ETIMEDOUT');
    await expect(buf.write(2, b('cd'))).rejects.toThrow('ETIMEDOUT');
    await expect(buf.flush()).rejects.toThrow('ETIMEDOUT');
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
