/**
 * The open-file table: the file handles (fh) this mount gave the kernel, each with its inode and,
 * when opened for writing, its write buffer. Operations on an fd use the inode, not the path, so
 * they keep working after a rename, and after an unlink on any host, for as long as the store
 * holds the inode open (Store.open / Store.release).
 */
import type { Ino } from '@redisfs/store';
import type { WriteBuffer } from './write-buffer.js';

export interface OpenFile {
  readonly fd: number;
  readonly ino: Ino;
  /** The path it was opened by (for log lines only). */
  readonly path: string;
  readonly flags: number;
  /** Present when the file was opened for writing. */
  readonly buffer: WriteBuffer | undefined;
  /** Whether the store holds the inode open for this handle (Store.open): release must end it. */
  readonly held: boolean;
}

/** Largest handle number before numbering wraps (fuse-native passes handles as int32). */
const MAX_FD = 0x7fffffff;

export class OpenFiles {
  private readonly files = new Map<number, OpenFile>();
  private next = 1;

  get size(): number {
    return this.files.size;
  }

  /** Registers an open file and returns it with its new handle (never 0: fuse-native ignores 0). */
  add(file: Omit<OpenFile, 'fd'>): OpenFile {
    while (this.files.has(this.next)) this.advance();
    const fd = this.next;
    this.advance();
    const entry: OpenFile = { ...file, fd };
    this.files.set(fd, entry);
    return entry;
  }

  get(fd: number): OpenFile | undefined {
    return this.files.get(fd);
  }

  remove(fd: number): OpenFile | undefined {
    const file = this.files.get(fd);
    this.files.delete(fd);
    return file;
  }

  /** Every open file of inode `ino`. */
  ofIno(ino: Ino): OpenFile[] {
    const found: OpenFile[] = [];
    for (const file of this.files.values()) if (file.ino === ino) found.push(file);
    return found;
  }

  all(): OpenFile[] {
    return [...this.files.values()];
  }

  /** The end of data written to `ino` through this mount but not yet stored, or -1. */
  pendingEnd(ino: Ino): number {
    let end = -1;
    for (const file of this.files.values()) {
      if (file.ino === ino && file.buffer) end = Math.max(end, file.buffer.pendingEnd);
    }
    return end;
  }

  /** Stores every buffered write to `ino` (failures stay with their file for its close). */
  async drainIno(ino: Ino): Promise<void> {
    await Promise.all(this.ofIno(ino).map((f) => f.buffer?.drain()));
  }

  private advance(): void {
    this.next = this.next >= MAX_FD ? 1 : this.next + 1;
  }
}
