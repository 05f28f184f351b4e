/**
 * RedisStore: the inode operations of InodeStore plus path-level conveniences for Node
 * programs. Paths are absolute and symlinks are not followed (like lstat).
 */
import { SessionStore } from './session-store.js';
import type { Store } from './api.js';
import { FsError, isFsError } from './errors.js';
import type { Attr, DirEntry, Ino, Owner, PendingWork, StoreStats } from './types.js';
import { commandCounterOf } from './internal/stats.js';
import { showName, splitParent, splitPath } from './internal/names.js';
import { destroyClient } from './internal/topology.js';

function defaultOwner(): Owner {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

const SLASH = Buffer.from('/');

/** The absolute path of components, as bytes (resolve splits it again on '/'). */
function joinPath(parts: Buffer[]): Buffer {
  return parts.length === 0 ? SLASH : Buffer.concat(parts.flatMap((p) => [SLASH, p]));
}

export class RedisStore extends SessionStore implements Store {
  private closed = false;

  /** The directory holding `path`'s last component, and that component's name. */
  private async parentOf(path: string): Promise<{ dir: Ino; name: Buffer }> {
    const { parent, name } = splitParent(path);
    const attr = await this.resolve(joinPath(parent));
    if (attr.type !== 'dir') throw new FsError('ENOTDIR', showName(joinPath(parent)));
    return { dir: attr.ino, name };
  }

  stat(path: string): Promise<Attr> {
    return this.resolve(path);
  }

  async readFile(path: string): Promise<Buffer> {
    const attr = await this.resolve(path);
    if (attr.type === 'dir') throw new FsError('EISDIR', path);
    if (attr.type !== 'file') throw new FsError('EINVAL', `${path} is not a regular file`);
    return this.read(attr.ino, 0, attr.size);
  }

  async writeFile(path: string, data: Buffer | string, options: { mode?: number; owner?: Owner } = {}): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const { dir, name } = await this.parentOf(path);
    let attr: Attr;
    try {
      attr = await this.mknod(dir, name, options.mode ?? 0o644, options.owner ?? defaultOwner());
    } catch (err) {
      if (!isFsError(err, 'EEXIST')) throw err;
      attr = await this.lookup(dir, name);
      if (attr.type === 'dir') throw new FsError('EISDIR', path);
      await this.setattr(attr.ino, { size: 0 });
    }
    if (bytes.length > 0) await this.write(attr.ino, 0, bytes);
  }

  async mkdirp(path: string, options: { mode?: number; owner?: Owner } = {}): Promise<void> {
    let dir = this.rootIno;
    for (const name of splitPath(path)) {
      let attr: Attr;
      try {
        attr = await this.lookup(dir, name);
      } catch (err) {
        if (!isFsError(err, 'ENOENT')) throw err;
        try {
          attr = await this.mkdir(dir, name, options.mode ?? 0o755, options.owner ?? defaultOwner());
        } catch (err2) {
          if (!isFsError(err2, 'EEXIST')) throw err2;
          attr = await this.lookup(dir, name); // created meanwhile by another client
        }
      }
      if (attr.type !== 'dir') throw new FsError('ENOTDIR', showName(name));
      dir = attr.ino;
    }
  }

  async list(path: string): Promise<DirEntry[]> {
    const attr = await this.resolve(path);
    if (attr.type !== 'dir') throw new FsError('ENOTDIR', path);
    return this.readdir(attr.ino);
  }

  async move(from: string, to: string): Promise<void> {
    const [src, dst] = await Promise.all([this.parentOf(from), this.parentOf(to)]);
    await this.rename(src.dir, src.name, dst.dir, dst.name);
  }

  async hardLink(existing: string, newPath: string): Promise<void> {
    const [attr, dst] = await Promise.all([this.resolve(existing), this.parentOf(newPath)]);
    await this.link(attr.ino, dst.dir, dst.name);
  }

  async symlinkAt(target: string, path: string, owner: Owner = defaultOwner()): Promise<void> {
    const { dir, name } = await this.parentOf(path);
    await this.symlink(dir, name, target, owner);
  }

  async remove(path: string): Promise<void> {
    const { dir, name } = await this.parentOf(path);
    await this.unlink(dir, name);
  }

  async removeDir(path: string): Promise<void> {
    const { dir, name } = await this.parentOf(path);
    await this.rmdir(dir, name);
  }

  /** Round trips so far (a copy; cheap enough to call often). */
  stats(): StoreStats {
    return { commands: commandCounterOf(this.ctx.client)?.snapshot() ?? {} };
  }

  /**
   * Three SCARDs and a ZCOUNT sent together (auto-pipelined: one round trip; one slot, the
   * family's tag). Dead sessions are counted by this host's clock (close enough to Redis's for a
   * count; the cleanup itself goes by Redis time).
   */
  pendingWork(): Promise<PendingWork> {
    const { client, keys } = this.ctx;
    return this.op('pending background work', async () => {
      const [gcInodes, freeBlocks, deadMembers, deadSessions] = await Promise.all([
        client.sCard(keys.gc),
        client.sCard(keys.freeBlocks),
        client.sCard(keys.deadMembers),
        client.zCount(keys.sessions, '-inf', Date.now()),
      ]);
      return { gcInodes, freeBlocks, deadMembers, deadSessions };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Lock waiters stop waiting; then the session ends: the files only it held are freed, its
    // locks released, for every host.
    await this.locks?.close();
    await this.ctx.session?.end();
    await this.stopCollector();
    try {
      await this.ctx.client.close();
    } catch {
      try {
        destroyClient(this.ctx.client);
      } catch {
        // Already gone (destroyed under it): nothing left to close.
      }
    }
  }
}
