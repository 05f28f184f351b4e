/**
 * File data: reads and writes at any offset over fixed-size compressed blocks, found through
 * each file's block map (`m:<ino>`: block index → block id). A block, once another map shares
 * it (a snapshot, a clone), is never changed: a write stores new blocks under new ids and swaps
 * the map entries in one script, with the new size and times (lua.ts, writeBlocks). The blocks
 * it replaces are released: deleted by the collector once no map references them.
 *
 * A write's scripts carry at most SCRIPT_BYTES each: a script is in Redis whole or not at all, it
 * commits the size only up to its own last byte, and the scripts of one write land in file order,
 * so a write cut short (crash, lost connection) leaves a prefix of itself, never a size that
 * exposes bytes not stored. A large write is pipelined: the blocks of the next script are
 * compressed while the previous one runs, and no single script holds Redis (and every other
 * client's request) up for long.
 *
 * On a single server (ctx.inlineBlocks) the write script stores the block values itself: one
 * round trip, and nothing is left behind by a crash. Otherwise (a cluster, where blocks live on
 * other nodes than the metadata) the values are stored first under their new ids, then the
 * script swaps the map entries; a crash in between leaves only blocks no map references (fsck
 * finds and removes them), never a visible half-write, and a refused script deletes its blocks.
 *
 * A partial block is not read first when it can be helped (single server): the script writes
 * its bytes into the stored block itself when that block is raw and no other map shares it.
 * Otherwise the block is read, modified and stored under a new id only if the map entry still
 * holds the id read (compare-and-set), else read again. Either way, two clients writing
 * different bytes of one block both keep their bytes. All-zero blocks are holes (no entry).
 */
import { fetchInode, readInode } from './inode-read.js';
import { BLOCK_CODECS, MAX_FILE_SIZE } from '@redisfs/schema';
import { FsError } from '../errors.js';
import type { Ino } from '../types.js';
import { decodeBlock, encodeBlock, isAllZero } from './codec.js';
import type { StoreContext } from './context.js';
import { nowNs } from './attr.js';

/** Block bytes per write script: small enough that Redis is not held up for long by one. */
const SCRIPT_BYTES = 1024 * 1024;
/** Write scripts of one write sent and not yet answered, at most. */
const SCRIPTS_IN_FLIGHT = 2;
/** Block ids one INCRBY of `{F}#bid` reserves. Unused ids are simply skipped. */
const ID_BATCH = 256;

/** Hands out block ids, reserved from the family's counter in batches. */
export class BlockIds {
  private next = 0;
  private last = -1;
  private refill: Promise<void> | undefined;

  constructor(private readonly ctx: Pick<StoreContext, 'client' | 'keys'>) {}

  async take(n: number): Promise<string[]> {
    const out: string[] = [];
    while (out.length < n) {
      if (this.next > this.last) {
        this.refill ??= (async () => {
          const want = Math.max(ID_BATCH, n - out.length);
          const last = await this.ctx.client.incrBy(this.ctx.keys.blockCounter, want);
          this.next = last - want + 1;
          this.last = last;
        })().finally(() => {
          this.refill = undefined;
        });
        await this.refill;
        continue;
      }
      out.push(String(this.next++));
    }
    return out;
  }
}

/** A block as read for a read-modify-write: its payload and the map entry the write must find. */
interface ReadBlock {
  payload: Buffer | undefined;
  /** The block id the map held ('' for a hole). */
  id: string;
  /** Whether it is stored raw (could be written in place). */
  raw: boolean;
}

/** One stored block of a window: its index, id and stored bytes (undefined when its key is missing). */
interface StoredBlock {
  index: number;
  id: string;
  stored: Buffer | undefined;
}

/**
 * Block ids a read learned from a file's map, for the span read ahead, valid while the inode's
 * ctime (`c`) is what it was read with: every change of the map entries within the size (a
 * write, a truncate) sets `c`, and a block replaced otherwise (the last block rewritten after a
 * shrink, same bytes) is released, so a GET of its id finds nothing and the map is read again.
 */
interface IdSpan {
  ctime: string;
  from: number;
  to: number;
  ids: Map<number, string>;
}

/** Map entries read at once, from the first block asked for (the rest is read ahead). */
const ID_SPAN = 256;
/** Files whose ids are remembered, per store (the oldest is forgotten first). */
const MAX_ID_SPANS = 1024;
const idSpans = new WeakMap<StoreContext, Map<Ino, IdSpan>>();

function idSpansOf(ctx: StoreContext): Map<Ino, IdSpan> {
  let spans = idSpans.get(ctx);
  if (!spans) idSpans.set(ctx, (spans = new Map()));
  return spans;
}

/**
 * The file's size and the blocks that exist in [first, last]. A sequential reader pays one round
 * trip per window: the inode's size and ctime with the blocks whose ids an earlier read of the
 * map gave (ctime unchanged: still right). Otherwise two: the map, for the window and ahead,
 * then the blocks. (One script that read the map and returned the blocks would make one round
 * trip always, but Lua copies every byte twice on the way: sequential reads ran 40% slower.)
 * A block that is gone by the time it is read was replaced meanwhile: the map is read again.
 */
/** Tries of a window read that raced with writes before it reads what it got (see readWindow). */
const MAX_READ_ATTEMPTS = 8;

async function readWindow(ctx: StoreContext, ino: Ino, first: number, last: number): Promise<{ size: number; blocks: StoredBlock[] }> {
  const spans = idSpansOf(ctx);
  for (let attempt = 1; ; attempt++) {
    const span = spans.get(ino);
    if (span && span.from <= first && last <= span.to) {
      const ids = [...span.ids].filter(([index]) => index >= first && index <= last);
      // The inode is read AFTER the blocks (one connection runs commands in the order they are
      // sent): an unchanged ctime then says no write landed before the blocks were read, even one
      // that patched a block in place under the same id.
      const gets = ids.map(([, id]) => ctx.bin.get(ctx.keys.block(id)));
      const [rec, stored] = await Promise.all([readInode(ctx, ino), Promise.all(gets)]);
      if (rec.ctimeNs.toString() === span.ctime && stored.every((b) => b != null)) {
        return { size: rec.size, blocks: ids.map(([index, id], k) => ({ index, id, stored: stored[k]! })) };
      }
      spans.delete(ino);
    }
    const to = Math.max(last, first + ID_SPAN - 1);
    const [rec, map] = await Promise.all([
      readInode(ctx, ino),
      ctx.client.zRangeByScoreWithScores(ctx.keys.map(ino), first, to),
    ]);
    const ctime = rec.ctimeNs.toString();
    const entries = map.filter((e) => e.score <= last);
    const gets = entries.map((e) => ctx.bin.get(ctx.keys.block(String(e.value))));
    // The ctime again, sent after the block reads: a write that landed between the map and the
    // blocks (it may patch a block in place, or replace others whose old copies still exist)
    // would give a read the file never held; it changes the ctime, so the window is read again.
    const [after, stored] = await Promise.all([fetchInode(ctx, ino), Promise.all(gets)]);
    if (after?.ctimeNs.toString() !== ctime && attempt < MAX_READ_ATTEMPTS) continue;
    // A block gone meanwhile was replaced (and collected) under this read: read the map again.
    if (stored.some((b) => b == null) && attempt < MAX_READ_ATTEMPTS) continue;
    if (spans.size >= MAX_ID_SPANS) spans.delete(spans.keys().next().value!);
    spans.set(ino, { ctime, from: first, to, ids: new Map(map.map((e) => [e.score, String(e.value)])) });
    return {
      size: rec.size,
      blocks: entries.map((e, k) => ({ index: e.score, id: String(e.value), stored: stored[k] ?? undefined })),
    };
  }
}

/** The file's size and block `index` in one read-only script (single server). */
async function readOneBlock(ctx: StoreContext, ino: Ino, index: number): Promise<{ size: number; blocks: StoredBlock[] }> {
  const reply = await ctx.scripts.runBinary('readBlocks', ctx.keys.metaPrefix, [String(ino), String(index), String(index)]);
  if (!Array.isArray(reply)) throw new FsError('ENOENT', `inode ${ino}`);
  const blocks: StoredBlock[] = [];
  for (let i = 1; i + 2 < reply.length; i += 3) {
    const stored = reply[i + 2] as Buffer;
    blocks.push({ index: Number(String(reply[i])), id: String(reply[i + 1]), stored: stored.length > 0 ? stored : undefined });
  }
  return { size: Number(String(reply[0])), blocks };
}

async function decodeStored(ctx: StoreContext, ino: Ino, b: StoredBlock): Promise<Buffer> {
  if (!b.stored) {
    ctx.warn(`block ${b.index} of inode ${ino} (id ${b.id}) is missing`);
    throw new FsError('EIO', `block ${b.index} of inode ${ino} is missing`);
  }
  try {
    return await decodeBlock(b.stored);
  } catch (err) {
    ctx.warn(`corrupt block ${b.index} of inode ${ino}`, err);
    throw new FsError('EIO', `corrupt block ${b.index} of inode ${ino}`, { cause: err });
  }
}

/** A block payload as stored; empty for an all-zero payload, which becomes a hole. */
async function encodeForStore(ctx: StoreContext, payload: Buffer): Promise<Buffer> {
  return isAllZero(payload) ? EMPTY : await encodeBlock(payload, ctx.codec);
}
const EMPTY = Buffer.alloc(0);
const RAW_BYTE = BLOCK_CODECS.raw;

/** One block of a write script: its ARGV quadruple (see lua.ts, writeBlocks, for the modes). */
interface BlockOp {
  index: number;
  /** New block id; '' for a hole. */
  id: string;
  value: Buffer;
  /** '' whole block; '=<id>': whole block, compare-and-set; '@<n>': raw bytes at n, in place. */
  mode: string;
}

/** How many times a piece of a write is redone when other clients keep changing its blocks. */
const MAX_TRIES = 50;

/** Script replies that change nothing and ask for another try. */
type Redo = 'RETRY' | 'RMW' | 'TRIM' | 'CLEAR';
function isRedo(reply: string): reply is Redo {
  return reply === 'RETRY' || reply === 'RMW' || reply === 'TRIM' || reply === 'CLEAR';
}

/**
 * Sends one write script; resolves to its reply: a size, '', or a Redo. Without inline blocks,
 * stores the values first and deletes them again when the script did not take them.
 */
async function sendOps(ctx: StoreContext, ino: Ino, ops: BlockOp[], end: number | undefined): Promise<string> {
  const inline = ctx.inlineBlocks;
  const args: (string | Buffer)[] = [String(ino), end === undefined ? '' : String(end), nowNs(), String(ctx.blockSize), inline ? '1' : ''];
  const stored = inline ? [] : ops.filter((op) => op.id !== '' && !op.mode.startsWith('@'));
  if (stored.length > 0) await Promise.all(stored.map((op) => ctx.bin.set(ctx.keys.block(op.id), op.value)));
  for (const op of ops) args.push(String(op.index), op.id, inline || op.mode.startsWith('@') ? op.value : EMPTY, op.mode);
  let reply: string;
  try {
    reply = String(await ctx.scripts.run('writeBlocks', ctx.keys.metaPrefix, args));
  } catch (err) {
    // Only a refusal by the script itself (it changes nothing before it fails) proves that no
    // map took these blocks; after a lost connection they may be referenced: fsck judges.
    if (stored.length > 0 && isScriptRefusal(err)) await dropUnreferenced(ctx, stored.map((op) => op.id));
    throw err;
  }
  if (stored.length > 0 && isRedo(reply)) await dropUnreferenced(ctx, stored.map((op) => op.id));
  if (reply.endsWith('+')) {
    ctx.collect(); // replaced blocks wait in {F}#free
    reply = reply.slice(0, -1);
  }
  return reply;
}

/** Whether a script failed with one of its own `RFS:<CODE>` errors (raised before any change). */
function isScriptRefusal(err: unknown): boolean {
  return err instanceof Error && /(^|\W)RFS:[A-Z]+/.test(err.message);
}

/** Deletes blocks this client stored and no map took (best effort: fsck finds what is left). */
async function dropUnreferenced(ctx: StoreContext, ids: string[]): Promise<void> {
  await Promise.all(ids.map((id) => ctx.client.unlink(ctx.keys.block(id)))).catch(() => undefined);
}

/**
 * Stores the blocks `build` makes (with `end`, also commits the size; returns the size). When a
 * block read for a read-modify-write changed before the store (another client wrote it), builds
 * and tries again, so that concurrent writes to different bytes of one block both stay.
 */
async function storeBlocks(ctx: StoreContext, ino: Ino, build: () => Promise<BlockOp[]>, end?: number): Promise<number> {
  for (let attempt = 1; ; ) {
    const ops = await build();
    if (ops.length === 0 && end === undefined) return 0; // nothing to store or commit
    const reply = await sendOps(ctx, ino, ops, end);
    if (!isRedo(reply)) return Number(reply);
    // Out of a script's reach (a cluster), a partial block is first tried as if it were a hole:
    // it was not; read this file's partial blocks first from now on.
    if (reply === 'RETRY' && !ctx.inlineBlocks) rememberRmw(ctx, ino);
    attempt = await beforeRetry(ctx, ino, reply, attempt);
  }
}

/**
 * Gets ready to send again after a reply that changed nothing, and returns the attempt number
 * to go on with: TRIM released a batch of stale entries (progress, not contention: not
 * counted); CLEAR has the last block rewritten first; RMW means read the block next time.
 * Throws EIO after MAX_TRIES counted attempts.
 */
async function beforeRetry(ctx: StoreContext, ino: Ino, reply: Redo, attempt: number): Promise<number> {
  if (reply === 'TRIM') return attempt;
  if (reply === 'CLEAR') await cleanTail(ctx, ino); // a shrink left bytes past the end that this write would expose
  if (reply === 'RMW') rememberRmw(ctx, ino);
  if (attempt >= MAX_TRIES) {
    throw new FsError('EIO', `inode ${ino}: its blocks kept changing under ${MAX_TRIES} attempts to write them`);
  }
  return attempt + 1;
}

/** Reads up to `length` bytes at `offset` of a regular file (see readWindow for its round trips). */
export async function readData(ctx: StoreContext, ino: Ino, offset: number, length: number): Promise<Buffer> {
  if (offset < 0 || length < 0) throw new FsError('EINVAL', 'negative offset or length');
  const bs = ctx.blockSize;
  const first = Math.floor(offset / bs);
  const last = length > 0 ? Math.floor((offset + length - 1) / bs) : first - 1;
  const { size, blocks: stored } = await readWindow(ctx, ino, first, Math.max(first, last));
  const end = Math.min(offset + length, size);
  if (end <= offset) return Buffer.alloc(0);
  const blocks = new Map<number, Buffer>();
  await Promise.all(
    stored
      .filter((b) => b.index * bs < end)
      .map(async (b) => blocks.set(b.index, await decodeStored(ctx, ino, b))),
  );
  // Filled block by block; only what no payload covers (holes, short blocks) is zeroed.
  const out = Buffer.allocUnsafe(end - offset);
  let filled = offset;
  for (let index = first; index * bs < end; index++) {
    const payload = blocks.get(index);
    const blockStart = index * bs;
    const from = Math.max(offset, blockStart);
    const to = Math.min(end, blockStart + (payload?.length ?? 0));
    if (!payload || to <= from) continue;
    if (from > filled) out.fill(0, filled - offset, from - offset);
    payload.copy(out, from - offset, from - blockStart, to - blockStart);
    filled = to;
  }
  if (filled < end) out.fill(0, filled - offset);
  return out;
}

/** Writes `data` at `offset`; returns the file's new size. */
export async function writeData(ctx: StoreContext, ino: Ino, offset: number, data: Buffer): Promise<number> {
  if (offset < 0) throw new FsError('EINVAL', 'negative offset');
  const end = offset + data.length;
  if (end > MAX_FILE_SIZE) throw new FsError('EFBIG', `files are limited to ${MAX_FILE_SIZE} bytes`);
  if (data.length === 0) return storeBlocks(ctx, ino, async () => [], end);
  const pieces = splitPieces(ctx.blockSize, offset, data);
  let size = 0;
  const inFlight: Promise<number>[] = [];
  let next = stagePiece(ctx, ino, pieces[0]!);
  try {
    for (let k = 0; k < pieces.length; k++) {
      const staged = await next;
      // Compress the next piece while this one is stored.
      if (k + 1 < pieces.length) next = quiet(stagePiece(ctx, ino, pieces[k + 1]!));
      // Scripts must land in file order: everything sent before a piece that may need to be sent
      // again (one with partial blocks) is answered first, and that piece too before the next.
      const room = staged.mayRetry ? 0 : SCRIPTS_IN_FLIGHT - 1;
      while (inFlight.length > room) size = Math.max(size, await inFlight.shift()!);
      inFlight.push(quiet(commitPiece(ctx, ino, staged)));
      if (staged.mayRetry) size = Math.max(size, await inFlight.shift()!);
    }
    for (const p of inFlight) size = Math.max(size, await p);
    return size;
  } catch (err) {
    await Promise.allSettled([next, ...inFlight]); // nothing of this write runs on after it failed
    throw err;
  }
}

/** `p`, marked as handled: it may reject while the caller awaits something else first. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** A run of the written bytes covering at most SCRIPT_BYTES of blocks. */
interface Piece {
  offset: number;
  data: Buffer;
}

/** Cuts a write into pieces at multiples of SCRIPT_BYTES (whole blocks; at least one). */
function splitPieces(bs: number, offset: number, data: Buffer): Piece[] {
  const span = Math.max(1, Math.floor(SCRIPT_BYTES / bs)) * bs;
  const end = offset + data.length;
  const pieces: Piece[] = [];
  for (let from = offset; from < end; ) {
    const to = Math.min(end, (Math.floor(from / span) + 1) * span);
    pieces.push({ offset: from, data: data.subarray(from - offset, to - offset) });
    from = to;
  }
  return pieces;
}

/** A piece ready to send: its whole blocks encoded; partial blocks as in-place writes. */
interface StagedPiece {
  piece: Piece;
  whole: BlockOp[];
  partial: BlockOp[];
  /** Whether the script may answer RETRY or RMW (it has partial blocks). */
  mayRetry: boolean;
}

async function stagePiece(ctx: StoreContext, ino: Ino, piece: Piece): Promise<StagedPiece> {
  const bs = ctx.blockSize;
  const end = piece.offset + piece.data.length;
  const wholeIdx: number[] = [];
  const partialIdx: number[] = [];
  for (let i = Math.floor(piece.offset / bs); i * bs < end; i++) {
    (i * bs >= piece.offset && (i + 1) * bs <= end ? wholeIdx : partialIdx).push(i);
  }
  // Compressed side by side: zlib runs on the libuv thread pool.
  const [values, ids] = await Promise.all([
    Promise.all(wholeIdx.map((index) => encodeForStore(ctx, sliceOf(bs, piece, index).slice))),
    ctx.blockIds.take(wholeIdx.length),
  ]);
  const whole = wholeIdx.map((index, k) => ({ index, id: values[k]!.length > 0 ? ids[k]! : '', value: values[k]!, mode: '' }));
  const partial = partialIdx.length > 0 ? await partialOps(ctx, ino, piece, partialIdx, !rmwHint(ctx).has(ino)) : [];
  return { piece, whole, partial, mayRetry: partialIdx.length > 0 };
}

/** Sends a staged piece, redoing its partial blocks as read-modify-writes when needed. */
async function commitPiece(ctx: StoreContext, ino: Ino, staged: StagedPiece): Promise<number> {
  const { piece, whole } = staged;
  const end = piece.offset + piece.data.length;
  let partial = staged.partial;
  const partialIdx = partial.map((op) => op.index);
  for (let attempt = 1; ; ) {
    const reply = await sendOps(ctx, ino, [...whole, ...partial], end);
    if (!isRedo(reply)) return Number(reply);
    // Out of a script's reach (a cluster), a partial block is first tried as if it were a hole:
    // it was not; read this file's partial blocks first from now on.
    if (reply === 'RETRY' && !ctx.inlineBlocks) rememberRmw(ctx, ino);
    attempt = await beforeRetry(ctx, ino, reply, attempt);
    // A partial block changed under this write, or cannot be written in place: read it again.
    if (reply === 'RETRY' || reply === 'RMW') partial = await partialOps(ctx, ino, piece, partialIdx, false);
  }
}

/** The bytes of `piece` that fall in block `index`, and where they go in it. */
function sliceOf(bs: number, piece: Piece, index: number): { slice: Buffer; at: number } {
  const blockStart = index * bs;
  const from = Math.max(piece.offset, blockStart);
  const to = Math.min(piece.offset + piece.data.length, blockStart + bs);
  return { slice: piece.data.subarray(from - piece.offset, to - piece.offset), at: from - blockStart };
}

/**
 * Ops for the partial blocks of a piece, when `guess` (no hint says otherwise): on a single
 * server, written in place by the script (and the bytes are not all zeros, which must be able
 * to make a hole); out of a script's reach (a cluster), written as if the block were a hole (a
 * new file, an extension), stored only if its map entry is indeed absent. Else, and when the
 * guess fails, read-modify-write with compare-and-set.
 */
async function partialOps(ctx: StoreContext, ino: Ino, piece: Piece, indexes: number[], guess: boolean): Promise<BlockOp[]> {
  const bs = ctx.blockSize;
  const ids = await ctx.blockIds.take(indexes.length);
  return Promise.all(
    indexes.map(async (index, k) => {
      const { slice, at } = sliceOf(bs, piece, index);
      if (guess && ctx.inlineBlocks && !isAllZero(slice)) return { index, id: ids[k]!, value: slice, mode: `@${at}` };
      if (guess && !ctx.inlineBlocks) {
        const payload = Buffer.alloc(at + slice.length);
        slice.copy(payload, at);
        const value = await encodeForStore(ctx, payload);
        return { index, id: value.length > 0 ? ids[k]! : '', value, mode: '=' };
      }
      return blockAfterWrite(ctx, ino, index, slice, at, ids[k]!);
    }),
  );
}

/**
 * Block `index` of a file as stored now, with the file's size (for a read-modify-write): one
 * round trip on a single server (a read-only script: for one block, copying it through Lua costs
 * less than a second round trip), the map and then the block otherwise.
 */
async function readBlock(ctx: StoreContext, ino: Ino, index: number): Promise<ReadBlock & { size: number }> {
  const { size, blocks } = ctx.inlineBlocks ? await readOneBlock(ctx, ino, index) : await readWindow(ctx, ino, index, index);
  const b = blocks[0];
  if (!b) return { payload: undefined, id: '', raw: true, size };
  return { payload: await decodeStored(ctx, ino, b), id: b.id, raw: b.stored?.[0] === RAW_BYTE, size };
}

/**
 * Block `index` read, with `slice` written at byte `at`: a whole block under the new id `id`,
 * stored only if the map entry still holds the block read (compare-and-set).
 */
async function blockAfterWrite(ctx: StoreContext, ino: Ino, index: number, slice: Buffer, at: number, id: string): Promise<BlockOp> {
  const blockStart = index * ctx.blockSize;
  const old = await readBlock(ctx, ino, index);
  // Bytes at or past the size are not file data (a shrink may have left some): they are kept
  // out, so they read as zeros.
  const stored = old.payload;
  const valid = stored ? stored.subarray(0, Math.max(0, Math.min(stored.length, old.size - blockStart))) : undefined;
  if (ctx.inlineBlocks && old.raw && valid?.length === stored?.length) forgetRmw(ctx, ino); // next time: in place
  const payload = Buffer.alloc(Math.max(valid?.length ?? 0, at + slice.length));
  valid?.copy(payload);
  slice.copy(payload, at);
  const value = await encodeForStore(ctx, payload);
  return { index, id: value.length > 0 ? id : '', value, mode: `=${old.id}` };
}

/**
 * Inodes whose last partial write found a block that cannot be written in place (compressed):
 * their partial blocks are read first rather than tried in place (a wasted round trip each).
 */
const rmwHints = new WeakMap<StoreContext, Set<Ino>>();
const MAX_HINTS = 4096;

function rmwHint(ctx: StoreContext): Set<Ino> {
  let set = rmwHints.get(ctx);
  if (!set) rmwHints.set(ctx, (set = new Set()));
  return set;
}

function rememberRmw(ctx: StoreContext, ino: Ino): void {
  const set = rmwHint(ctx);
  if (set.size >= MAX_HINTS) set.clear();
  set.add(ino);
}

function forgetRmw(ctx: StoreContext, ino: Ino): void {
  rmwHints.get(ctx)?.delete(ino);
}

/**
 * Rewrites the last block of a file with nothing past its size, which clears the inode's `z`
 * ("the last block may hold bytes past the size", set by a shrink). A shrink calls it right
 * away; a growth that finds `z` still set (the shrink was cut short) calls it first. Bytes past
 * the size are not visible, so this changes nothing a reader sees, and a crash loses nothing.
 */
export async function cleanTail(ctx: StoreContext, ino: Ino): Promise<void> {
  const bs = ctx.blockSize;
  await storeBlocks(ctx, ino, async () => {
    const rec = await fetchInode(ctx, ino);
    if (!rec || rec.size % bs === 0) return [];
    const index = Math.floor(rec.size / bs);
    const b = await readBlock(ctx, ino, index);
    if (!b.id) return []; // a hole holds nothing
    const keep = Math.max(0, b.size - index * bs);
    const value = b.payload ? await encodeForStore(ctx, b.payload.subarray(0, Math.min(b.payload.length, keep))) : EMPTY;
    const [id] = await ctx.blockIds.take(1);
    return [{ index, id: value.length > 0 ? id! : '', value, mode: `=${b.id}` }];
  });
}

