/**
 * Write-behind buffer of one open file. The kernel sends writes of at most max_write (128 KiB);
 * storing each one would cost a Redis round trip and a read-modify-write of a partial block.
 * Contiguous writes are collected here and handed to the store in large pieces: when a write is
 * not contiguous, when the buffer is full (cut at a block boundary, so the next piece starts
 * aligned), and on flush / fsync / release, or before another operation needs the data stored.
 *
 * A failed store write is never silently lost: it is remembered and thrown by the next
 * {@link WriteBuffer.flush} (close(2) and fsync(2) report it, as with a kernel writeback error);
 * the write that filled the buffer fails with it too, so a writer stops early.
 */

/** Stores `data` at `offset` (the store's write). */
export type WriteSink = (offset: number, data: Buffer) => Promise<unknown>;

/** Default buffer size per open file. */
export const WRITE_BUFFER_BYTES = 4 * 1024 * 1024;

export interface WriteBufferOptions {
  /** Push to the store once this many bytes are buffered. */
  limit?: number;
  /** The store's block size: a full buffer is cut at a multiple of it. */
  blockSize?: number;
}

export class WriteBuffer {
  readonly limit: number;
  private readonly blockSize: number;
  private start = 0;
  private chunks: Buffer[] = [];
  private length = 0;
  /** End offset of data being stored right now (-1: none). */
  private inflightEnd = -1;
  private failed = false;
  private failure: unknown;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly sink: WriteSink,
    options: WriteBufferOptions = {},
  ) {
    this.blockSize = Math.max(1, options.blockSize ?? 1);
    const wanted = options.limit ?? WRITE_BUFFER_BYTES;
    this.limit = Math.max(this.blockSize, Math.ceil(wanted / this.blockSize) * this.blockSize);
  }

  /** Bytes accepted but not yet handed to the store. */
  get pendingBytes(): number {
    return this.length;
  }

  /**
   * The end offset of data accepted but not yet stored (buffered or being stored), or -1.
   * getattr reports at least this size, or the kernel would shrink its idea of the file.
   */
  get pendingEnd(): number {
    return Math.max(this.length > 0 ? this.start + this.length : -1, this.inflightEnd);
  }

  /** Whether a failed store write has not been reported by flush() yet. */
  get hasFailure(): boolean {
    return this.failed;
  }

  /** Accepts `data` (the caller's own copy) at `offset`. */
  write(offset: number, data: Buffer): Promise<void> {
    if (data.length === 0) return Promise.resolve();
    return this.serial(async () => {
      if (this.length > 0 && offset !== this.start + this.length) await this.push(false);
      if (this.length === 0) this.start = offset;
      this.chunks.push(data);
      this.length += data.length;
      if (this.length >= this.limit && !(await this.push(true))) throw this.failure;
    });
  }

  /** Stores everything buffered; a failure is remembered for flush(), not thrown. */
  drain(): Promise<void> {
    return this.serial(async () => {
      await this.push(false);
    });
  }

  /** Stores everything buffered, then throws (once) any store failure since the last flush. */
  flush(): Promise<void> {
    return this.serial(async () => {
      await this.push(false);
      if (this.failed) {
        const err = this.failure;
        this.failed = false;
        this.failure = undefined;
        throw err;
      }
    });
  }

  /** Runs buffer operations one at a time, in call order. */
  private serial(fn: () => Promise<void>): Promise<void> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Hands buffered data to the store. With `keepTail`, only up to the last block boundary is
   * stored and the rest stays buffered. Returns false if the store failed.
   */
  private async push(keepTail: boolean): Promise<boolean> {
    if (this.length === 0) return true;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length);
    const start = this.start;
    let cut = all.length;
    if (keepTail) {
      const alignedEnd = Math.floor((start + all.length) / this.blockSize) * this.blockSize;
      if (alignedEnd > start) cut = alignedEnd - start;
    }
    const data = cut === all.length ? all : all.subarray(0, cut);
    const tail = all.subarray(cut);
    this.chunks = tail.length > 0 ? [tail] : [];
    this.length = tail.length;
    this.start = start + cut;
    this.inflightEnd = start + cut;
    try {
      await this.sink(start, data);
      return true;
    } catch (err) {
      if (!this.failed) {
        this.failed = true;
        this.failure = err;
      }
      return false;
    } finally {
      this.inflightEnd = -1;
    }
  }
}
