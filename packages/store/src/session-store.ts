/**
 * SessionStore: the inode operations plus open files that outlive their removal (SessionApi).
 * A store with a session (internal/session.ts) holds each regular file it opens in the open's
 * own script (no extra round trip), and releases it at close; the scripts are in
 * internal/lua-sessions.ts.
 */
import { FILE_TYPE_MODES, S_IFMT } from '@redisfs/schema';
import type { SessionApi } from './api.js';
import { FsError } from './errors.js';
import { InodeStore, missToError } from './inode-store.js';
import type { Attr, Ino, Name, Owner, SessionInfo } from './types.js';
import { nowNs, pairsToRecord, replyToAttr } from './internal/attr.js';
import { checkName, showName, splitPath } from './internal/names.js';
import { toFsError } from './internal/redis-errors.js';
import type { Collector } from './internal/collector.js';
import { withDeadline } from './internal/connect.js';
import type { StoreContext } from './internal/context.js';
import { Locks } from './internal/locks.js';

export class SessionStore extends InodeStore implements SessionApi {
  readonly locks: Locks | undefined;

  constructor(ctx: StoreContext, opTimeoutMs: number, collector?: Collector) {
    super(ctx, opTimeoutMs, collector);
    // Each lock operation runs like any change (deadline, syncReplicas); all may run twice.
    this.locks = ctx.session ? new Locks(ctx, () => ctx.session?.id, (what, fn) => this.op(what, fn, true, true)) : undefined;
  }

  get sessionId(): string | undefined {
    return this.ctx.session?.id;
  }

  open(path: Name): Promise<Attr> {
    const session = this.ctx.session;
    // Without a session: exactly resolve (EVALSHA_RO).
    if (!session) return this.resolve(path);
    const shown = showName(path);
    return this.op(
      `open ${shown}`,
      () =>
        session.opening(async () => {
          const sid = session.id;
          const reply = missToError(await this.script('open', [sid, ...splitPath(path)]), shown) as [string, unknown, string];
          const attr = replyToAttr(reply);
          session.opened(attr.ino, sid, reply[2]);
          return attr;
        }),
      // A script that writes (the hold), though it changes no file: a read-only store has no session anyway.
      false,
    );
  }

  createOpen(parent: Ino, name: Name, mode: number, owner: Owner, options: { exclusive: boolean }): Promise<{ attr: Attr; created: boolean }> {
    return this.op(
      `create ${showName(name)}`,
      () => {
        const create = () => this.createAndHold(parent, name, mode, owner, options);
        return this.ctx.session ? this.ctx.session.opening(create) : create();
      },
      true,
    );
  }

  private async createAndHold(parent: Ino, name: Name, mode: number, owner: Owner, options: { exclusive: boolean }): Promise<{ attr: Attr; created: boolean }> {
    const bytes = checkName(name);
    if ((mode & S_IFMT) !== 0 && (mode & S_IFMT) !== FILE_TYPE_MODES.file) throw new FsError('EINVAL', `createOpen: bad mode ${mode.toString(8)}`);
    const session = this.ctx.session;
    const sid = session?.id ?? '';
    const ino = await this.allocIno();
    let reply: [string, unknown, string, string, ...unknown[]];
    try {
      reply = (await this.script('createOpen', [
        String(parent), bytes, String(ino), String(FILE_TYPE_MODES.file | (mode & 0o7777)),
        String(owner.uid), String(owner.gid), nowNs(), options.exclusive ? '1' : '', sid,
      ])) as typeof reply;
    } catch (err) {
      // Through a failover, a create whose reply was lost is sent again and finds its own
      // entry: the inode number, reserved by this store alone, tells it apart from another's.
      if (toFsError(err, 'create').code !== 'EEXIST') throw err;
      const existing = await this.lookup(parent, bytes).catch(() => undefined);
      if (existing?.ino !== ino) throw err;
      // Created (and held) by the first attempt: count its hold.
      if (session) session.opened(ino, sid, '1');
      return { attr: existing, created: true };
    }
    this.reportParents(reply, 4);
    const attr = replyToAttr(reply);
    const held = session ? session.opened(attr.ino, sid, reply[3]) : false;
    if (reply[2] !== '1' && attr.ino === ino) {
      // Our own file, created by an attempt whose reply was lost, now held twice: drop one.
      if (held) await this.release(attr.ino);
      return { attr, created: true };
    }
    return { attr, created: reply[2] === '1' };
  }

  release(ino: Ino): Promise<void> {
    const session = this.ctx.session;
    const sid = session?.releasing(ino);
    if (sid === undefined) return Promise.resolve();
    // Not through op(): a failure here is no error of the caller's (the close(2) it follows
    // returned long ago), and it may or may not have run (a lost connection): the session sets
    // the inode's holds to what it knows at a later beat.
    const release = async (): Promise<void> => {
      const reply = (await this.script('release', [sid, String(ino), '1'])) as [string, string];
      if (reply[0] === '1') this.ctx.collect();
    };
    return withDeadline(release(), this.opTimeoutMs, `release ${ino}`).catch(() => session?.owe(ino));
  }

  sessions(): Promise<SessionInfo[]> {
    return this.op('list sessions', async () => {
      const reply = (await this.script('listSessions', [])) as unknown[];
      const now = Number(reply[0]);
      const own = this.ctx.session?.id;
      const out: SessionInfo[] = [];
      for (let i = 1; i + 4 < reply.length; i += 5) {
        const id = String(reply[i]);
        const expiresMs = Number(reply[i + 1]);
        const info = pairsToRecord(reply[i + 2]);
        const num = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : 0);
        out.push({
          id,
          host: info.host ?? '',
          pid: num(info.pid),
          mountpoint: info.mnt ?? '',
          version: info.ver ?? '',
          startedMs: num(info.start),
          expiresMs,
          alive: expiresMs > now && info.host !== undefined,
          openFiles: Number(reply[i + 3]),
          locks: Number(reply[i + 4]),
          this: id === own,
        });
      }
      return out;
    });
  }
}

