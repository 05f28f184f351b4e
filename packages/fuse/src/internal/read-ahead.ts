/**
 * Read-ahead of one open file. The kernel reads at most 128 KiB at a time (a few requests in
 * parallel), and each read that reaches the store costs a Redis round trip. Once reads of a
 * handle are sequential, a read fetches the whole window of WINDOW_BYTES around it, aligned to a
 * multiple of WINDOW_BYTES (one round trip: the store reads a window's blocks together), and the
 * next reads are answered from it. Sequential means: inside a window held, or starting near where
 * the previous read ended (the kernel's parallel requests arrive slightly out of order); two such
 * reads in a row, so that random reads which happen to fall close together cost nothing extra.
 *
 * A window is dropped as soon as all its bytes have been answered (and whenever the reader moves
 * on past it). Windows are not fetched further ahead of the reader: a buffer held while other
 * reads run is promoted to V8's old generation, and the full collections that then reclaim such
 * buffers cost more CPU than the overlap saves (measured: GC time ×5, throughput down).
 *
 * What it may answer from memory, and what not:
 * - Windows belong to one handle and die with it: an open never sees another open's windows
 *   (close-to-open: a new open reads what other hosts wrote before it).
 * - Every window is stamped with a generation the caller passes in (the mount bumps it on any
 *   change it makes: writes stored, truncates, …); a read with another generation drops them all.
 * - Only bytes a window holds are answered; a read reaching past the end a window found (the
 *   end of the file at the time) goes to the store, so a short read never comes from memory.
 */

/** Reads `length` bytes at `offset` from the store (fewer at the end of the file). */
export type RangeRead = (offset: number, length: number) => Promise<Buffer>;

/** Bytes fetched per window: 16 blocks of the default 64 KiB. */
export const WINDOW_BYTES = 1024 * 1024;
/** A read starting at most this far from where the previous one ended is sequential. */
export const NEAR_BYTES = 512 * 1024;

interface Window {
  /** The bytes fetched: fewer than the window's size at the end of the file. */
  data: Promise<Buffer>;
  /** Bytes of it answered so far. */
  used: number;
}

export interface ReadAheadOptions {
  windowBytes?: number;
  nearBytes?: number;
  /**
   * Counts reads answered from windows already held or being fetched (hits) and reads that
   * needed a fetch: their own or a new window's (misses). Shared by a mount's handles.
   */
  counts?: { hits: number; misses: number };
}

export class ReadAhead {
  private readonly windowBytes: number;
  private readonly nearBytes: number;
  private readonly counts: { hits: number; misses: number } | undefined;
  /** Windows by index (window i holds bytes [i * windowBytes, (i + 1) * windowBytes)). */
  private readonly windows = new Map<number, Window>();
  private generation: unknown;
  /** Where the last read asked for ended (-1: no read yet). */
  private lastEnd = -1;
  /** Sequential reads in a row. */
  private streak = 0;

  constructor(
    private readonly fetch: RangeRead,
    options: ReadAheadOptions = {},
  ) {
    this.windowBytes = Math.max(1, options.windowBytes ?? WINDOW_BYTES);
    this.nearBytes = options.nearBytes ?? NEAR_BYTES;
    this.counts = options.counts;
  }

  /** Number of windows held (for tests). */
  get windowCount(): number {
    return this.windows.size;
  }

  /**
   * Reads `length` bytes at `offset`, from windows when they hold them, else from the store.
   * `generation` is the mount's change counter: windows of another generation are dropped.
   */
  async read(offset: number, length: number, generation: unknown): Promise<Buffer> {
    if (generation !== this.generation) {
      this.windows.clear();
      this.generation = generation;
    }
    const near = this.lastEnd >= 0 && Math.abs(offset - this.lastEnd) <= Math.max(this.nearBytes, length);
    const sequential = near || this.windows.has(this.indexOf(offset));
    this.lastEnd = offset + length;
    if (length === 0) return this.fetch(offset, length);
    if (!sequential) {
      this.streak = 0;
      this.windows.clear();
      return this.miss(offset, length);
    }
    if (++this.streak < 2 && this.windows.size === 0) return this.miss(offset, length);
    const first = this.indexOf(offset);
    const last = this.indexOf(offset + length - 1);
    for (const i of [...this.windows.keys()]) if (i < first - 1 || i > last + 1) this.windows.delete(i);
    let opened = false;
    for (let i = first; i <= last; i++) {
      if (this.windows.has(i)) continue;
      this.open(i);
      opened = true;
    }
    // Cut short (the file ended where a window was fetched, or its fetch failed): the store
    // answers, as it would without read-ahead, and reports its own error if it has one.
    const held = await this.fromWindows(offset, length, first, last);
    if (held === undefined) return this.miss(offset, length);
    if (this.counts) {
      if (opened) this.counts.misses++;
      else this.counts.hits++;
    }
    return held;
  }

  /** A read the store answers directly (counted a miss). */
  private miss(offset: number, length: number): Promise<Buffer> {
    if (this.counts) this.counts.misses++;
    return this.fetch(offset, length);
  }

  private indexOf(offset: number): number {
    return Math.floor(offset / this.windowBytes);
  }

  private open(index: number): void {
    const data = this.fetch(index * this.windowBytes, this.windowBytes);
    data.catch(() => undefined); // a failed window is only reported if a read needs it
    this.windows.set(index, { data, used: 0 });
  }

  /** The bytes at [offset, offset+length) if windows first..last hold them all, else undefined. */
  private async fromWindows(offset: number, length: number, first: number, last: number): Promise<Buffer | undefined> {
    const parts: Buffer[] = [];
    const end = offset + length;
    for (let i = first; i <= last; i++) {
      const window = this.windows.get(i);
      if (!window) return undefined;
      let data: Buffer;
      try {
        data = await window.data;
      } catch {
        if (this.windows.get(i) === window) this.windows.delete(i);
        return undefined;
      }
      const start = i * this.windowBytes;
      const from = Math.max(offset, start);
      const to = Math.min(end, start + this.windowBytes);
      if (start + data.length < to) return undefined; // past the end this window saw
      parts.push(data.subarray(from - start, to - start));
      window.used += to - from;
      if (window.used >= data.length && this.windows.get(i) === window) this.windows.delete(i);
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, length);
  }
}

/** Handles whose read-ahead is kept at once, by default (a window or two each). */
export const MAX_ACTIVE_HANDLES = 16;

/**
 * The read-ahead of each handle of a mount, for at most `maxActive` handles: the one read least
 * recently loses its windows (it starts over if read again), and handles closed meanwhile are
 * forgotten whenever a new one starts. Memory stays bounded whatever the kernel keeps open.
 */
export class ReadAheadTable<K> {
  private readonly byKey = new Map<K, ReadAhead>();

  constructor(private readonly maxActive = MAX_ACTIVE_HANDLES) {}

  get size(): number {
    return this.byKey.size;
  }

  /**
   * The read-ahead of `key`, made by `make` when it has none. `isOpen` tells whether a key is
   * still an open handle.
   */
  get(key: K, make: () => ReadAhead, isOpen: (key: K) => boolean): ReadAhead {
    const found = this.byKey.get(key);
    if (found) {
      this.byKey.delete(key); // most recently used last
      this.byKey.set(key, found);
      return found;
    }
    for (const k of [...this.byKey.keys()]) if (!isOpen(k)) this.byKey.delete(k);
    while (this.byKey.size >= this.maxActive) {
      const oldest = this.byKey.keys().next();
      if (oldest.done) break;
      this.byKey.delete(oldest.value);
    }
    const made = make();
    this.byKey.set(key, made);
    return made;
  }
}
