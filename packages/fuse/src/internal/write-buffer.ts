/**
 * Write-behind buffer of one open file. The kernel sends writes of at most max_write (128 KiB);
 * storing each one would cost a Redis round trip and a read-modify-write of a partial block.
 * Contiguous writes are collected here and handed to the store in large pieces: when a write is
 * not contiguous, when the buffer is full (cut at a block boundary, so the next piece starts
 * aligned), and on flush / fsync / release, or before another operation needs the data stored.
 *
 * Pieces are stored while the next fills: a write waits only when the pieces in flight (handed
 * to the store, not answered yet) would hold more than the limit with the next one, or are
 * MAX_PIECES_IN_FLIGHT already. So a writer and the store work side by side (a full piece is
 * stored while the next one fills; small random writes do not wait for each other's round
 * trips), and memory stays bounded: about twice the limit per open file. Pieces are handed to
 * the store in order, and the store applies the writes of one inode in call order, so a later
 * write never lands before an earlier one it overlaps.
 *
 * A failed store write is never silently lost: it is remembered and thrown by every
 * {@link WriteBuffer.flush} until an fsync(2) has reported it (`flush({ fsync: true })`), and by
 * the next write once it is known (that write is refused), so a writer stops early. Every
 * close(2) reports it, not only the first: a forked child's close of its copy of the descriptor
 * (at exec, say) is a flush of the same handle, and must not take the error away from the
 * owner's fsync or close (as an NFS close reports an error without consuming fsync's).
 */

/** Stores `data` at `offset` (the store's write). */
export type WriteSink = (offset: number, data: Buffer) => Promise<unknown>;

/** Default buffer size per open file. */
export const WRITE_BUFFER_BYTES = 4 * 1024 * 1024;
/** Pieces handed to the store and not answered yet, at most. */
export const MAX_PIECES_IN_FLIGHT = 64;

/** A piece handed to the store. */
interface InFlight {
  end: number;
  bytes: number;
  /** Settles once the store answered (never rejects). */
  done: Promise<void>;
}

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
  /** Pieces being stored. */
  private readonly inflight = new Set<InFlight>();
  private inflightBytes = 0;
  /** A store failure no fsync has reported yet. */
  private failed = false;
  private failure: unknown;
  /** Whether that failure is yet to be thrown by a write. */
  private unreportedToWrite = false;
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
    let end = this.length > 0 ? this.start + this.length : -1;
    for (const piece of this.inflight) end = Math.max(end, piece.end);
    return end;
  }

  /** Whether a failed store write has not been reported to an fsync yet. */
  get hasFailure(): boolean {
    return this.failed;
  }

  /**
   * Accepts `data` (the caller's own copy) at `offset`. Refused with the failure of an earlier
   * store write not yet reported to a write.
   */
  write(offset: number, data: Buffer): Promise<void> {
    if (data.length === 0) return Promise.resolve();
    return this.serial(async () => {
      if (this.length > 0 && offset !== this.start + this.length) await this.startPush(false);
      if (this.unreportedToWrite) {
        this.unreportedToWrite = false;
        throw this.failure;
      }
      if (this.length === 0) this.start = offset;
      this.chunks.push(data);
      this.length += data.length;
      if (this.length >= this.limit) await this.startPush(true);
    });
  }

  /** Stores everything buffered; a failure is remembered for flush(), not thrown. */
  drain(): Promise<void> {
    return this.serial(() => this.storeAll());
  }

  /**
   * Stores everything buffered, then throws any store failure no fsync has reported yet: each
   * close(2) gets it; `fsync: true` (fsync(2), an O_SYNC write) reports it once and forgets it.
   */
  flush(options: { fsync?: boolean } = {}): Promise<void> {
    return this.serial(async () => {
      await this.storeAll();
      if (this.failed) {
        const err = this.failure;
        this.unreportedToWrite = false;
        if (options.fsync) {
          this.failed = false;
          this.failure = undefined;
        }
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

  private async storeAll(): Promise<void> {
    await this.startPush(false);
    await Promise.all([...this.inflight].map((piece) => piece.done));
  }

  /**
   * Starts storing what is buffered, without waiting for the store, once there is room in
   * flight for it. With `keepTail`, only up to the last block boundary is stored and the rest
   * stays buffered.
   */
  private async startPush(keepTail: boolean): Promise<void> {
    if (this.length === 0) return;
    while (this.inflight.size > 0 && (this.inflightBytes + this.length > this.limit || this.inflight.size >= MAX_PIECES_IN_FLIGHT)) {
      await Promise.race([...this.inflight].map((piece) => piece.done));
    }
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
    let stored: Promise<unknown>;
    try {
      stored = this.sink(start, data);
    } catch (err) {
      stored = Promise.reject(err);
    }
    const piece: InFlight = {
      end: start + cut,
      bytes: cut,
      done: stored.then(
        () => this.settle(piece),
        (err: unknown) => {
          if (!this.failed) {
            this.failed = true;
            this.failure = err;
          }
          this.unreportedToWrite = true;
          this.settle(piece);
        },
      ),
    };
    this.inflight.add(piece);
    this.inflightBytes += cut;
  }

  private settle(piece: InFlight): void {
    this.inflight.delete(piece);
    this.inflightBytes -= piece.bytes;
  }
}
