/**
 * RedisStore's inode-level operations (InodeApi). POSIX rules that need the current state live
 * in the Lua scripts (internal/lua.ts), so each operation is one atomic step; this class checks
 * arguments, allocates inode numbers, runs the scripts and finishes block clean-up.
 */
import {
  FILE_TYPE_CODES, FILE_TYPE_MODES, MAX_FILE_SIZE, NAME_MAX, ROOT_INO, S_IFMT, XATTR_NAME_MAX, XATTR_SIZE_MAX,
  fileTypeOfMode, statsSchema,
} from '@redisfs/schema';
import type { InodeApi } from './api.js';
import { FsError } from './errors.js';
import type { Attr, AttrChanges, DirEntry, DirPage, FsStats, Ino, Name, Owner, XattrFlags } from './types.js';
import { nowNs, pairsToRecord, replyToAttr, toAttr } from './internal/attr.js';
import { cleanTail, readData, writeData } from './internal/data.js';
import { readDirPage, readLinkTarget } from './internal/dir-entries.js';
import type { Collector } from './internal/collector.js';
import { byteKey, checkName, checkSymlinkTarget, isDotName, nameBytes, showName, splitPath } from './internal/names.js';
import { toFsError } from './internal/redis-errors.js';
import { withDeadline } from './internal/connect.js';
import { retrying } from './internal/busy-wait.js';
import type { StoreContext } from './internal/context.js';
import type { ScriptName } from './internal/scripts.js';
import { infoOfMasters, isConnectionDrop, isTransient, settle, topologyOf, waitForReplicas } from './internal/topology.js';

/** How many inode numbers one INCRBY reserves. Unused numbers are simply skipped. */
const INO_BATCH = 64;

/** resolve/lookup/open answer a miss ('ENOENT', 'ENOTDIR') as a plain reply: cheaper than an error. */
export function missToError(reply: unknown, what: string): unknown {
  if (reply === 'ENOENT' || reply === 'ENOTDIR') throw new FsError(reply, what);
  return reply;
}

export class InodeStore implements InodeApi {
  readonly rootIno = ROOT_INO;
  private nextIno = 0;
  private lastIno = -1;
  private refill: Promise<void> | undefined;
  /** Writes to one inode are serialised, so two partial writes of a block cannot interleave. */
  private readonly writeChains = new Map<Ino, Promise<unknown>>();

  constructor(
    protected readonly ctx: StoreContext,
    readonly opTimeoutMs: number,
    private readonly collector?: Collector,
  ) {}

  /**
   * Waits until the background collector has nothing left that it knows of (blocks of removed
   * and shrunk files, deleted snapshots): for tests and tools that measure memory.
   */
  async collected(): Promise<void> {
    this.collector?.kick();
    await this.collector?.idle();
  }

  /** Stops background collection (the batch in progress finishes). */
  protected async stopCollector(): Promise<void> {
    await this.collector?.stop();
  }

  get prefix(): string {
    return this.ctx.keys.prefix;
  }
  get readOnly(): boolean {
    return this.ctx.readOnly;
  }
  get blockSize(): number {
    return this.ctx.blockSize;
  }

  /**
   * Runs one operation with a deadline, turning every failure into an FsError. On one server,
   * an operation whose connection dropped under it (Redis crashed or restarted) is run again
   * once the client has reconnected, within the same deadline, when that is safe: a read, or a
   * `redoable` change (a write: the same bytes at the same offset). Any other change may or may
   * not have happened: it fails (EIO). A cluster or Sentinel client retries in topology.ts.
   */
  protected async op<T>(what: string, fn: () => Promise<T>, mutates = false, redoable = false): Promise<T> {
    if (mutates && this.ctx.readOnly) throw new FsError('EROFS', `${what}: read-only filesystem`);
    try {
      const once = mutates && this.ctx.syncReplicas > 0 ? () => this.replicated(what, fn, redoable) : fn;
      const deadline = Date.now() + this.opTimeoutMs;
      const safe = (!mutates || redoable) && topologyOf(this.ctx.client).kind === 'single';
      // Commands sent again meanwhile wait in the client's queue for the reconnection.
      const run = retrying(once, (err) => safe && isConnectionDrop(err), deadline, 20, 500);
      return await withDeadline(run, this.opTimeoutMs, what);
    } catch (err) {
      const e = toFsError(err, what);
      if (e.code === 'EIO') this.ctx.warn(e.message, err);
      throw e;
    }
  }

  /**
   * Runs `fn`, then waits until ctx.syncReplicas replicas have every change made so far through
   * this store (WAIT, on every master): EIO when fewer acknowledge within ctx.syncTimeoutMs.
   * A master lost between the change and the WAIT (a failover) leaves it unknown whether the
   * change survived: a `redoable` change (a write: the same bytes at the same offset) is made
   * again once the cluster settles, and waited for again; any other fails with EIO.
   */
  private async replicated<T>(what: string, fn: () => Promise<T>, redoable: boolean): Promise<T> {
    const { client, syncReplicas, syncTimeoutMs } = this.ctx;
    const deadline = Date.now() + this.opTimeoutMs;
    let result = await fn();
    let acks: number;
    for (;;) {
      try {
        acks = await waitForReplicas(client, syncReplicas, syncTimeoutMs);
        break;
      } catch (err) {
        if (!isTransient(err)) throw err;
        if (!redoable || Date.now() >= deadline) {
          throw new FsError('EIO', `${what}: the master was lost before its replicas confirmed this change: it may be lost (${(err as Error).message})`, { cause: err });
        }
        await settle(client);
        result = await fn();
      }
    }
    if (acks < syncReplicas) {
      throw new FsError(
        'EIO',
        `${what}: done on the master, but only ${acks} of ${syncReplicas} replica(s) acknowledged it within ${syncTimeoutMs} ms (syncReplicas): it may be lost if the master fails`,
      );
    }
    return result;
  }

  /** Listeners of {@link watchParents}. */
  private readonly parentWatchers: ((attr: Attr) => void)[] = [];

  /**
   * Calls `listener` with the new attributes of each directory a namespace change (create,
   * link, unlink, rmdir, rename) just changed, as the change's own script read them, before the
   * change resolves: a cache can keep the directory instead of dropping it.
   */
  watchParents(listener: (attr: Attr) => void): void {
    this.parentWatchers.push(listener);
  }

  /**
   * Reports the (ino, HGETALL) pairs a script appended from index `from` on to the watchers. A
   * reply that is a plain string (a change that changed nothing) has no parents. A first
   * element '1' says the change left work for the collector, which is asked for a round.
   */
  protected reportParents(reply: unknown, from: number): void {
    if (!Array.isArray(reply)) return;
    for (let i = from; i + 1 < reply.length; i += 2) {
      const attr = toAttr(Number(reply[i]), pairsToRecord(reply[i + 1]));
      for (const listener of this.parentWatchers) listener(attr);
    }
    if (reply[0] === '1') this.ctx.collect();
  }

  protected script(name: ScriptName, args: (string | Buffer)[]): Promise<unknown> {
    return this.ctx.scripts.run(name, this.ctx.keys.metaPrefix, args);
  }

  protected async allocIno(): Promise<Ino> {
    while (this.nextIno > this.lastIno) {
      this.refill ??= (async () => {
        const last = await this.ctx.client.incrBy(this.ctx.keys.inoCounter, INO_BATCH);
        this.nextIno = last - INO_BATCH + 1;
        this.lastIno = last;
      })().finally(() => {
        this.refill = undefined;
      });
      await this.refill;
    }
    return this.nextIno++;
  }

  lookup(parent: Ino, name: Name): Promise<Attr> {
    const shown = showName(name);
    return this.op(`lookup ${shown}`, async () => {
      const bytes = checkName(name);
      return replyToAttr(missToError(await this.script('lookup', [String(parent), bytes]), shown));
    });
  }

  lookupMany(parent: Ino, names: readonly Name[]): Promise<(Attr | undefined)[]> {
    return this.op(`lookup of ${names.length} names in ${parent}`, async () => {
      if (names.length === 0) return [];
      const reply = (await this.script('lookups', [String(parent), ...names.map((n) => checkName(n))])) as unknown[];
      return names.map((_, i) => {
        if (!Array.isArray(reply[i])) return undefined;
        try {
          return replyToAttr(reply[i]);
        } catch {
          return undefined; // a corrupt record: lookup of that one name reports it
        }
      });
    });
  }

  resolve(path: Name): Promise<Attr> {
    const shown = showName(path);
    return this.op(`resolve ${shown}`, async () => replyToAttr(missToError(await this.script('resolve', splitPath(path)), shown)));
  }

  getattr(ino: Ino): Promise<Attr> {
    return this.op(`getattr ${ino}`, async () => {
      // A read-only script: the inode and, for a file, what its block map holds (st_blocks).
      const reply = (await this.script('getattrs', [String(ino)])) as unknown[];
      const hash = pairsToRecord(reply[0]);
      if (Object.keys(hash).length === 0) throw new FsError('ENOENT', `inode ${ino}`);
      return toAttr(ino, hash);
    });
  }

  getattrs(inos: readonly Ino[]): Promise<(Attr | undefined)[]> {
    return this.op(`getattrs of ${inos.length} inodes`, async () => {
      if (inos.length === 0) return [];
      // One read-only script: one round trip, and one consistent moment for all of them.
      const reply = (await this.script('getattrs', inos.map(String))) as unknown[];
      return inos.map((ino, i) => {
        const hash = pairsToRecord(reply[i]);
        return Object.keys(hash).length === 0 ? undefined : toAttr(ino, hash);
      });
    });
  }

  setattr(ino: Ino, changes: AttrChanges): Promise<Attr> {
    return this.op(
      `setattr ${ino}`,
      async () => {
        const { size } = changes;
        // Past the limit is EFBIG whatever the size (2^63 - 1 arrives as a double past 2^53).
        if (size !== undefined && size > MAX_FILE_SIZE) throw new FsError('EFBIG', `files are limited to ${MAX_FILE_SIZE} bytes`);
        if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) throw new FsError('EINVAL', `bad size ${size}`);
        const opt = (v: number | bigint | undefined) => (v === undefined ? '' : v.toString());
        const run = async () => {
          for (;;) {
            const reply = (await this.script('setattr', [
              String(ino), nowNs(), String(this.blockSize),
              opt(changes.mode), opt(changes.uid), opt(changes.gid), opt(size), opt(changes.atimeNs), opt(changes.mtimeNs),
            ])) as [unknown, string, number] | 'TRIM' | 'CLEAR';
            // TRIM: growing over entries a shrink left (more than one batch): each call releases one.
            if (reply === 'TRIM') continue;
            // CLEAR: growing would expose bytes a cut-short shrink left in the last block.
            if (reply === 'CLEAR') {
              await cleanTail(this.ctx, ino);
              continue;
            }
            const attr = toAttr(ino, pairsToRecord(reply[0]));
            if (reply[1] === '1') this.ctx.collect();
            // A shrink to the middle of a stored block: that block loses its bytes past the size.
            if (Number(reply[2]) >= 0) await cleanTail(this.ctx, ino);
            return attr;
          }
        };
        return size === undefined ? run() : this.serialWrite(ino, run);
      },
      true,
    );
  }

  private createNode(
    what: string, parent: Ino, name: Name, type: keyof typeof FILE_TYPE_CODES, mode: number, owner: Owner, rdev = 0, target: Buffer | '' = '',
  ): Promise<Attr> {
    return this.op(
      `${what} ${showName(name)}`,
      async () => {
        const bytes = checkName(name);
        const ino = await this.allocIno();
        const fullMode = FILE_TYPE_MODES[type] | (mode & 0o7777);
        let reply: unknown;
        try {
          reply = await this.script('create', [
            String(parent), bytes, String(ino), FILE_TYPE_CODES[type], String(fullMode),
            String(owner.uid), String(owner.gid), String(rdev), nowNs(), target,
          ]);
        } catch (err) {
          // Through a failover, a create whose reply was lost is sent again and finds its own
          // entry: the inode number, reserved by this store alone, tells it apart from another's.
          if (toFsError(err, what).code !== 'EEXIST') throw err;
          const existing = await this.lookup(parent, bytes).catch(() => undefined);
          if (existing?.ino === ino) return existing;
          throw err;
        }
        this.reportParents(reply, 2);
        return replyToAttr(reply);
      },
      true,
    );
  }

  mknod(parent: Ino, name: Name, mode: number, owner: Owner, rdev = 0): Promise<Attr> {
    const type = (mode & S_IFMT) === 0 ? 'file' : fileTypeOfMode(mode);
    if (!type || type === 'dir' || type === 'symlink') return Promise.reject(new FsError('EINVAL', `mknod: bad mode ${mode.toString(8)}`));
    return this.createNode('mknod', parent, name, type, mode, owner, type === 'chr' || type === 'blk' ? rdev : 0);
  }

  mkdir(parent: Ino, name: Name, mode: number, owner: Owner): Promise<Attr> {
    return this.createNode('mkdir', parent, name, 'dir', mode, owner);
  }

  symlink(parent: Ino, name: Name, target: Name, owner: Owner): Promise<Attr> {
    let bytes: Buffer;
    try {
      bytes = checkSymlinkTarget(target);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.createNode('symlink', parent, name, 'symlink', 0o777, owner, 0, bytes);
  }

  async readlink(ino: Ino): Promise<string> {
    return (await this.readlinkBytes(ino)).toString('utf8');
  }

  readlinkBytes(ino: Ino): Promise<Buffer> {
    return this.op(`readlink ${ino}`, () => readLinkTarget(this.ctx, ino));
  }

  link(ino: Ino, newParent: Ino, newName: Name): Promise<Attr> {
    return this.op(
      `link ${showName(newName)}`,
      async () => {
        const bytes = checkName(newName);
        const reply = await this.script('link', [String(ino), String(newParent), bytes, nowNs()]);
        this.reportParents(reply, 2);
        return replyToAttr(reply);
      },
      true,
    );
  }

  unlink(parent: Ino, name: Name): Promise<void> {
    return this.op(
      `unlink ${showName(name)}`,
      async () => {
        const bytes = checkName(name);
        this.reportParents(await this.script('unlink', [String(parent), bytes, nowNs()]), 1);
      },
      true,
    );
  }

  rmdir(parent: Ino, name: Name): Promise<void> {
    return this.op(
      `rmdir ${showName(name)}`,
      async () => {
        const dots = isDotName(nameBytes(name));
        if (dots === '.') throw new FsError('EINVAL', 'rmdir .');
        if (dots === '..') throw new FsError('ENOTEMPTY', 'rmdir ..');
        const bytes = checkName(name);
        this.reportParents(await this.script('rmdir', [String(parent), bytes, nowNs()]), 1);
      },
      true,
    );
  }

  rename(srcParent: Ino, srcName: Name, dstParent: Ino, dstName: Name): Promise<void> {
    return this.op(
      `rename ${showName(srcName)} ${showName(dstName)}`,
      async () => {
        const src = checkName(srcName);
        const dst = checkName(dstName);
        this.reportParents(await this.script('rename', [String(srcParent), src, String(dstParent), dst, nowNs()]), 1);
      },
      true,
    );
  }

  readdirPage(ino: Ino, cursor: string, count = 1000): Promise<DirPage> {
    return this.op(`readdir ${ino}`, () => readDirPage(this.ctx, ino, cursor, count));
  }

  async readdir(ino: Ino): Promise<DirEntry[]> {
    // Keyed by the bytes: distinct names stay distinct.
    const seen = new Map<string, DirEntry>();
    let cursor = '0';
    do {
      const page = await this.readdirPage(ino, cursor);
      for (const e of page.entries) seen.set(byteKey(e.nameBytes), e);
      cursor = page.cursor;
    } while (cursor !== '0');
    return [...seen.values()];
  }

  read(ino: Ino, offset: number, length: number): Promise<Buffer> {
    return this.op(`read ${ino}`, () => readData(this.ctx, ino, offset, length));
  }

  write(ino: Ino, offset: number, data: Buffer): Promise<number> {
    return this.op(`write ${ino}`, () => this.serialWrite(ino, () => writeData(this.ctx, ino, offset, data)), true, true);
  }

  private serialWrite<T>(ino: Ino, fn: () => Promise<T>): Promise<T> {
    const prev = this.writeChains.get(ino) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.writeChains.set(ino, tail);
    void tail.then(() => {
      if (this.writeChains.get(ino) === tail) this.writeChains.delete(ino);
    });
    return next;
  }

  statfs(): Promise<FsStats> {
    return this.op('statfs', async () => {
      const [stats, info] = await Promise.all([
        this.ctx.client.hGetAll(this.ctx.keys.stats),
        infoOfMasters(this.ctx.client, 'memory'),
      ]);
      const s = statsSchema.parse(stats);
      // What Redis holds, against what it may hold: maxmemory, else the machine's memory. A full
      // Redis shows full, however few bytes the files' sizes add up to (sparse files, say).
      // In a cluster: the sums over its masters (replicas hold copies, not more room).
      const field = (text: string, name: string) => Number(new RegExp(`^${name}:(\\d+)\\s*$`, 'm').exec(text)?.[1] ?? 0);
      const sum = (name: string) => info.reduce((n, text) => n + field(text, name), 0);
      const maxBytes = info.reduce((n, text) => n + (field(text, 'maxmemory') || field(text, 'total_system_memory')), 0);
      return {
        blockSize: this.blockSize,
        bytesUsed: sum('used_memory'),
        inodes: Math.max(0, s.inodes),
        maxBytes,
        nameMax: NAME_MAX,
      };
    });
  }

  getxattr(ino: Ino, name: string): Promise<Buffer> {
    return this.op(`getxattr ${name}`, async () => {
      const value = (await this.ctx.bin.hGet(this.ctx.keys.xattr(ino), name)) as Buffer | null;
      if (value == null) throw new FsError('ENODATA', name);
      return value;
    });
  }

  setxattr(ino: Ino, name: string, value: Buffer, flags: XattrFlags = {}): Promise<void> {
    return this.op(
      `setxattr ${name}`,
      async () => {
        if (name.length === 0 || Buffer.byteLength(name) > XATTR_NAME_MAX) throw new FsError('ERANGE', `xattr name length`);
        if (value.length > XATTR_SIZE_MAX) throw new FsError('E2BIG', `xattr value over ${XATTR_SIZE_MAX} bytes`);
        const flag = flags.create ? 'create' : flags.replace ? 'replace' : '';
        await this.script('setxattr', [String(ino), name, value, flag, nowNs()]);
      },
      true,
    );
  }

  listxattr(ino: Ino): Promise<string[]> {
    return this.op(`listxattr ${ino}`, () => this.ctx.client.hKeys(this.ctx.keys.xattr(ino)));
  }

  removexattr(ino: Ino, name: string): Promise<void> {
    return this.op(`removexattr ${name}`, async () => void (await this.script('removexattr', [String(ino), name, nowNs()])), true);
  }
}
