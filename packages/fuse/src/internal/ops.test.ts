/**
 * The FUSE handlers against a small in-memory fake of the store (adapter logic only: the real
 * store and real mounts are tested elsewhere). Every handler must answer its callback once.
 */
import { constants as fsConstants } from 'node:fs';
import { constants } from 'node:os';
import { FsError, type Attr, type AttrChanges, type DirEntry, type FileType, type Owner, type Store, type XattrFlags } from '@redisfs/store';
import type Fuse from 'fuse-native';
import { afterEach, describe, expect, it } from 'vitest';
import { FsState } from './fs-state.js';
import { makeOps } from './ops.js';

const E = constants.errno;
const TYPE_OF: Record<number, FileType> = { 0o100000: 'file', 0o040000: 'dir', 0o120000: 'symlink', 0o010000: 'fifo' };
/** What open(2) with O_CREAT|O_TRUNC for writing sends (as writeFile does). */
const CREATE_FLAGS = fsConstants.O_CREAT | fsConstants.O_WRONLY | fsConstants.O_TRUNC;

interface Node {
  attr: Attr;
  data: Buffer;
  /** By name: its bytes as a byte string (see key). */
  entries: Map<string, number>;
  xattrs: Map<string, Buffer>;
  target: Buffer;
}

/**
 * A name or path as the store takes it (a Buffer: its exact bytes; a string: UTF-8), as a byte
 * string (latin1, one char per byte): the fake's key and how its call log shows names.
 */
function key(name: string | Buffer): string {
  return (Buffer.isBuffer(name) ? name : Buffer.from(name)).toString('latin1');
}

/** A Store member the handlers under test never call: fails the test loudly if one does. */
function notFaked(name: string): () => never {
  return () => {
    throw new Error(`FakeStore.${name} is not faked: a handler under test called it`);
  };
}

/**
 * Just enough of the Store, in memory, recording each call. It implements the Store type, so a
 * change of the store's interface fails the typecheck here instead of drifting unseen.
 */
class FakeStore implements Store {
  readonly close = notFaked('close');
  readonly collected = notFaked('collected');
  readonly stats = notFaked('stats');
  readonly pendingWork = notFaked('pendingWork');
  readonly lookup = notFaked('lookup');
  readonly readdirPage = notFaked('readdirPage');
  readonly readlink = notFaked('readlink');
  readonly rmdir = notFaked('rmdir');
  readonly stat = notFaked('stat');
  readonly readFile = notFaked('readFile');
  readonly writeFile = notFaked('writeFile');
  readonly mkdirp = notFaked('mkdirp');
  readonly list = notFaked('list');
  readonly move = notFaked('move');
  readonly hardLink = notFaked('hardLink');
  readonly symlinkAt = notFaked('symlinkAt');
  readonly remove = notFaked('remove');
  readonly removeDir = notFaked('removeDir');
  readonly prefix = 'test';
  readonly readOnly = false;
  readonly blockSize = 4096;
  readonly rootIno = 1;
  readonly opTimeoutMs = 10_000;
  /** No session: nothing is held open, and locks stay with the kernel (as on a read-only store). */
  readonly sessionId = undefined;
  readonly locks = undefined;
  readonly sessions = notFaked('sessions');
  readonly calls: string[] = [];
  failWrite: unknown;
  private readonly nodes = new Map<number, Node>();
  private next = 2;

  constructor() {
    this.add('dir', 0o755, { uid: 0, gid: 0 });
  }

  private add(type: FileType, mode: number, owner: Owner): Node {
    const bits = Number(Object.entries(TYPE_OF).find(([, t]) => t === type)![0]);
    const ino = this.nodes.size === 0 ? 1 : this.next++;
    const node: Node = {
      attr: { ino, type, mode: bits | (mode & 0o7777), uid: owner.uid, gid: owner.gid, size: 0, nlink: type === 'dir' ? 2 : 1,
        rdev: 0, atimeNs: 1n, mtimeNs: 1n, ctimeNs: 1n, blocks: 0, generation: 0 },
      data: Buffer.alloc(0), entries: new Map(), xattrs: new Map(), target: Buffer.alloc(0),
    };
    this.nodes.set(ino, node);
    return node;
  }
  private node(ino: number): Node {
    const n = this.nodes.get(ino);
    if (!n) throw new FsError('ENOENT', `inode ${ino}`);
    return n;
  }
  private dir(ino: number): Node {
    const n = this.node(ino);
    if (n.attr.type !== 'dir') throw new FsError('ENOTDIR');
    return n;
  }
  private snap(n: Node): Attr {
    return { ...n.attr, size: n.data.length };
  }
  private create(parent: number, name: string, type: FileType, mode: number, owner: Owner): Attr {
    const d = this.dir(parent);
    if (d.entries.has(name)) throw new FsError('EEXIST', name);
    const n = this.add(type, mode, owner);
    d.entries.set(name, n.attr.ino);
    return this.snap(n);
  }

  async resolve(path: string | Buffer): Promise<Attr> {
    this.calls.push(`resolve ${key(path)}`);
    return this.walk(key(path));
  }
  private walk(path: string): Attr {
    let n = this.node(1);
    for (const part of path.split('/').filter(Boolean)) {
      const ino = this.dir(n.attr.ino).entries.get(part);
      if (ino === undefined) throw new FsError('ENOENT', path);
      n = this.node(ino);
    }
    return this.snap(n);
  }
  async lookupMany(parent: number, names: readonly (string | Buffer)[]): Promise<(Attr | undefined)[]> {
    this.calls.push(`lookupMany ${names.length}`);
    const entries = this.nodes.get(parent)?.entries;
    return names.map((n) => {
      const ino = entries?.get(key(n));
      return ino === undefined ? undefined : this.snap(this.node(ino));
    });
  }
  async open(path: string | Buffer): Promise<Attr> {
    this.calls.push(`open ${key(path)}`);
    return this.walk(key(path));
  }
  async createOpen(parent: number, nameIn: string | Buffer, mode: number, owner: Owner, options: { exclusive: boolean }): Promise<{ attr: Attr; created: boolean }> {
    const name = key(nameIn);
    this.calls.push(`createOpen ${name} ${mode.toString(8)} ${owner.uid}:${owner.gid}${options.exclusive ? ' excl' : ''}`);
    const existing = this.dir(parent).entries.get(name);
    if (existing !== undefined && !options.exclusive) {
      const n = this.node(existing);
      if (n.attr.type === 'dir') throw new FsError('EISDIR', name);
      if (n.attr.type !== 'file') throw new FsError('EEXIST', name);
      return { attr: this.snap(n), created: false };
    }
    return { attr: this.create(parent, name, 'file', mode, owner), created: true };
  }
  async release(ino: number): Promise<void> {
    this.calls.push(`release ${ino}`);
  }
  async getattr(ino: number): Promise<Attr> {
    this.calls.push(`getattr ${ino}`);
    return this.snap(this.node(ino));
  }
  watchParents(): void {}
  async getattrs(inos: readonly number[]): Promise<(Attr | undefined)[]> {
    this.calls.push(`getattrs ${inos.join(',')}`);
    return inos.map((ino) => (this.nodes.has(ino) ? this.snap(this.node(ino)) : undefined));
  }
  async setattr(ino: number, ch: AttrChanges): Promise<Attr> {
    this.calls.push(`setattr ${ino} ${JSON.stringify(ch, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`);
    const n = this.node(ino);
    if (ch.mode !== undefined) n.attr.mode = (n.attr.mode & ~0o7777) | ch.mode;
    if (ch.uid !== undefined) n.attr.uid = ch.uid;
    if (ch.gid !== undefined) n.attr.gid = ch.gid;
    if (ch.size !== undefined) n.data = Buffer.concat([n.data, Buffer.alloc(ch.size)]).subarray(0, ch.size);
    if (ch.mtimeNs !== undefined) n.attr.mtimeNs = ch.mtimeNs;
    if (ch.atimeNs !== undefined) n.attr.atimeNs = ch.atimeNs;
    return this.snap(n);
  }
  async mknod(parent: number, nameIn: string | Buffer, mode: number, owner: Owner): Promise<Attr> {
    const name = key(nameIn);
    this.calls.push(`mknod ${name} ${mode.toString(8)} ${owner.uid}:${owner.gid}`);
    return this.create(parent, name, TYPE_OF[mode & 0o170000] ?? 'file', mode, owner);
  }
  async mkdir(parent: number, nameIn: string | Buffer, mode: number, owner: Owner): Promise<Attr> {
    const name = key(nameIn);
    this.calls.push(`mkdir ${name} ${mode.toString(8)} ${owner.uid}:${owner.gid}`);
    return this.create(parent, name, 'dir', mode, owner);
  }
  async symlink(parent: number, nameIn: string | Buffer, target: string | Buffer, owner: Owner): Promise<Attr> {
    const name = key(nameIn);
    this.calls.push(`symlink ${name} -> ${key(target)}`);
    const attr = this.create(parent, name, 'symlink', 0o777, owner);
    this.node(attr.ino).target = Buffer.from(key(target), 'latin1');
    return attr;
  }
  async readlinkBytes(ino: number): Promise<Buffer> {
    return this.node(ino).target;
  }
  async rename(sp: number, snIn: string | Buffer, dp: number, dnIn: string | Buffer): Promise<void> {
    const [sn, dn] = [key(snIn), key(dnIn)];
    this.calls.push(`rename ${sn} ${dn}`);
    const ino = this.dir(sp).entries.get(sn);
    if (ino === undefined) throw new FsError('ENOENT', sn);
    this.dir(sp).entries.delete(sn);
    this.dir(dp).entries.set(dn, ino);
  }
  async link(ino: number, parent: number, nameIn: string | Buffer): Promise<Attr> {
    const name = key(nameIn);
    this.calls.push(`link ${ino} ${name}`);
    const d = this.dir(parent);
    if (d.entries.has(name)) throw new FsError('EEXIST', name);
    const n = this.node(ino);
    d.entries.set(name, ino);
    n.attr.nlink++;
    return this.snap(n);
  }
  async unlink(parent: number, nameIn: string | Buffer): Promise<void> {
    const name = key(nameIn);
    this.calls.push(`unlink ${name}`);
    if (!this.dir(parent).entries.delete(name)) throw new FsError('ENOENT', name);
  }
  async readdir(ino: number): Promise<DirEntry[]> {
    this.calls.push(`readdir ${ino}`);
    return [...this.dir(ino).entries].map(([name, i]) => {
      const nameBytes = Buffer.from(name, 'latin1');
      return { name: nameBytes.toString('utf8'), nameBytes, ino: i, type: this.node(i).attr.type };
    });
  }
  async read(ino: number, offset: number, length: number): Promise<Buffer> {
    this.calls.push(`read ${ino} ${length}@${offset}`);
    return Buffer.from(this.node(ino).data.subarray(offset, offset + length));
  }
  async write(ino: number, offset: number, data: Buffer): Promise<number> {
    this.calls.push(`write ${ino} ${data.toString()}@${offset}`);
    if (this.failWrite) throw this.failWrite;
    const n = this.node(ino);
    const end = Math.max(n.data.length, offset + data.length);
    const out = Buffer.alloc(end);
    n.data.copy(out);
    data.copy(out, offset);
    n.data = out;
    return end;
  }
  async statfs() {
    this.calls.push('statfs');
    return { blockSize: 4096, bytesUsed: 10_000, inodes: 3, maxBytes: 0, nameMax: 255 };
  }
  async getxattr(ino: number, name: string): Promise<Buffer> {
    this.calls.push(`getxattr ${name}`);
    const v = this.node(ino).xattrs.get(name);
    if (!v) throw new FsError('ENODATA', name);
    return v;
  }
  async setxattr(ino: number, name: string, value: Buffer, flags: XattrFlags = {}): Promise<void> {
    this.calls.push(`setxattr ${name} ${JSON.stringify(flags)}`);
    this.node(ino).xattrs.set(name, value);
  }
  async listxattr(ino: number): Promise<string[]> {
    return [...this.node(ino).xattrs.keys()];
  }
  async removexattr(ino: number, name: string): Promise<void> {
    this.calls.push(`removexattr ${name}`);
    if (!this.node(ino).xattrs.delete(name)) throw new FsError('ENODATA', name);
  }
}

function setup(options: { readOnly?: boolean; store?: Store; cacheTimeoutMs?: number; uid?: number } = {}) {
  const fake = new FakeStore();
  const lines: string[] = [];
  const state = new FsState({
    store: options.store ?? fake,
    readOnly: options.readOnly ?? false,
    cacheTimeoutMs: options.cacheTimeoutMs ?? 1000,
    env: { debug: false, deadlineMs: 0, log: (l) => lines.push(l) },
    caller: () => ({ uid: options.uid ?? 1000, gid: 100, pid: 42 }),
  });
  return { fake, lines, ops: makeOps(state) as Required<Fuse.Ops>, state };
}

/** How long a handler may take to answer against the in-memory store before the test fails. */
const ANSWER_DEADLINE_MS = 2_000;

/** The answers of every handler call of the running test, by call: checked when the test ends. */
const answersOfTest: { label: string; answers: unknown[][] }[] = [];

afterEach(() => {
  // Checked when the test ends: every call has answered (call awaits that), and the later calls
  // ran after it. Against the in-memory store a handler's work is promise callbacks only (no
  // timer, no I/O; the call deadline is off), so a second answer it gives has arrived by now. A timer's
  // late answer is runOp's to drop (run-op.test.ts, 'drops the late result').
  const calls = answersOfTest.splice(0);
  expect(calls.filter((c) => c.answers.length !== 1).map((c) => `${c.label}: ${c.answers.length} answers`)).toEqual([]);
});

/**
 * Calls a handler and resolves with its callback's arguments once it answers; fails when it has
 * not answered within ANSWER_DEADLINE_MS. Answering more than once fails the test (afterEach).
 */
async function call(handler: (...args: never[]) => void, ...args: unknown[]): Promise<unknown[]> {
  const answers: unknown[][] = [];
  const label = `${handler.name || 'handler'}(${typeof args[0] === 'string' ? args[0] : ''})`;
  answersOfTest.push({ label, answers });
  let deadline: NodeJS.Timeout | undefined;
  try {
    return await new Promise<unknown[]>((resolve, reject) => {
      deadline = setTimeout(() => reject(new Error(`${label} did not answer within ${ANSWER_DEADLINE_MS} ms`)), ANSWER_DEADLINE_MS);
      (handler as (...a: unknown[]) => void)(...args, (...cbArgs: unknown[]) => {
        answers.push(cbArgs);
        resolve(answers[0]!);
      });
    });
  } finally {
    clearTimeout(deadline);
  }
}

describe('file I/O', () => {
  it('buffers writes, reports their size, and stores them before a read', async () => {
    const { ops, fake } = setup();
    const [err, fd] = await call(ops.create, '/f', 0o100644, CREATE_FLAGS);
    expect(err).toBe(0);
    expect(fd).toBeGreaterThan(0);
    expect(fake.calls).toContain('createOpen f 100644 1000:100');

    const buf = Buffer.from('hello');
    expect(await call(ops.write, '/f', fd, buf, 5, 0)).toEqual([5]);
    buf.fill(0); // fuse-native detaches the buffer after the answer: the data must be a copy
    expect(fake.calls.filter((c) => c.startsWith('write'))).toEqual([]);

    const [, stat] = (await call(ops.getattr, '/f')) as [number, Fuse.Stat];
    expect(stat.size).toBe(5);

    const [, rfd] = await call(ops.open, '/f', fsConstants.O_RDONLY);
    const out = Buffer.alloc(16);
    expect(await call(ops.read, '/f', rfd, out, 16, 0)).toEqual([5]);
    expect(out.subarray(0, 5).toString()).toBe('hello');
    expect(fake.calls.filter((c) => c.startsWith('write'))).toEqual([`write 2 hello@0`]);

    expect(await call(ops.release, '/f', fd, null)).toEqual([0]);
    expect(await call(ops.release, '/f', rfd, null)).toEqual([0]);
  });

  it('stores buffered writes before a truncate', async () => {
    const { ops, fake } = setup();
    const [, fd] = await call(ops.create, '/f', 0o100644, CREATE_FLAGS);
    await call(ops.write, '/f', fd, Buffer.from('abcdef'), 6, 0);
    expect(await call(ops.truncate, '/f', 2)).toEqual([0]);
    const order = fake.calls.filter((c) => /^(write|setattr)/.test(c));
    expect(order).toEqual(['write 2 abcdef@0', 'setattr 2 {"size":2}']);
    const [, stat] = (await call(ops.fgetattr, '/f', fd)) as [number, Fuse.Stat];
    expect(stat.size).toBe(2);
  });

  it('reports a failed store write on flush, mapped or as EIO', async () => {
    const { ops, fake, lines } = setup();
    const [, fd] = await call(ops.create, '/f', 0o100644, CREATE_FLAGS);
    await call(ops.write, '/f', fd, Buffer.from('x'), 1, 0);
    fake.failWrite = new FsError('EFBIG');
    expect(await call(ops.flush, '/f', fd)).toEqual([-E.EFBIG]);
    // Every close is told (a forked child's close must not take it from the owner's), until an
    // fsync has been told.
    fake.failWrite = undefined;
    expect(await call(ops.flush, '/f', fd)).toEqual([-E.EFBIG]);
    expect(await call(ops.fsync, '/f', 0, fd)).toEqual([-E.EFBIG]);
    expect(await call(ops.fsync, '/f', 0, fd)).toEqual([0]);
    expect(await call(ops.flush, '/f', fd)).toEqual([0]);

    await call(ops.write, '/f', fd, Buffer.from('y'), 1, 1);
    fake.failWrite = new Error('connection reset');
    expect(await call(ops.release, '/f', fd, null)).toEqual([-E.EIO]);
    expect(lines.join('\n')).toMatch(/release \/f: unexpected error, answering EIO: .*connection reset/);
    expect(await call(ops.write, '/f', fd, Buffer.from('z'), 1, 2)).toEqual([-E.EBADF]);
  });

  it('answers EBADF for an unknown handle', async () => {
    const { ops } = setup();
    expect(await call(ops.read, '/f', 99, Buffer.alloc(4), 4, 0)).toEqual([-E.EBADF]);
  });
});

describe('sharing one store with other clients', () => {
  /** Changes the file behind the adapter's back, as another host would (same inode, new size). */
  async function rewriteElsewhere(fake: FakeStore, ino: number, text: string): Promise<void> {
    await fake.setattr(ino, { size: 0 });
    await fake.write(ino, 0, Buffer.from(text));
  }

  async function sizeOf(ops: Required<Fuse.Ops>, path: string): Promise<number> {
    const [err, stat] = (await call(ops.getattr, path)) as [number, Fuse.Stat];
    expect(err).toBe(0);
    return stat.size;
  }

  it('open reads the attributes afresh (close-to-open), for every name of the file', async () => {
    const { ops, fake } = setup();
    const [, wfd] = await call(ops.create, '/f', 0o100644, CREATE_FLAGS);
    await call(ops.write, '/f', wfd, Buffer.from('short'), 5, 0);
    await call(ops.release, '/f', wfd, null);
    expect(await call(ops.link, '/f', '/g')).toEqual([0]);
    expect([await sizeOf(ops, '/f'), await sizeOf(ops, '/g')]).toEqual([5, 5]);

    await rewriteElsewhere(fake, 2, 'a longer text');
    expect(await sizeOf(ops, '/f')).toBe(5); // cached: other clients' changes show within the TTL

    fake.calls.length = 0;
    const [err, fd] = await call(ops.open, '/f', fsConstants.O_RDONLY);
    expect(err).toBe(0);
    expect(fake.calls).toEqual(['open /f']);
    // What the kernel asks next (fstat, or getattr after a read past its old size): the new size.
    const [, fstat] = (await call(ops.fgetattr, '/f', fd)) as [number, Fuse.Stat];
    expect(fstat.size).toBe(13);
    expect([await sizeOf(ops, '/f'), await sizeOf(ops, '/g')]).toEqual([13, 13]);
    const out = Buffer.alloc(64);
    expect(await call(ops.read, '/f', fd, out, 64, 0)).toEqual([13]);
    expect(out.subarray(0, 13).toString()).toBe('a longer text');
    expect(await call(ops.release, '/f', fd, null)).toEqual([0]);
  });

  it('open for writing sees the size another client stored; a file removed there is gone',  async () => {
    const { ops, fake } = setup();
    const [, wfd] = await call(ops.create, '/f', 0o100644, CREATE_FLAGS);
    await call(ops.release, '/f', wfd, null);
    expect(await sizeOf(ops, '/f')).toBe(0);
    await rewriteElsewhere(fake, 2, 'abc');
    const [, fd] = await call(ops.open, '/f', fsConstants.O_WRONLY);
    const [, fstat] = (await call(ops.fgetattr, '/f', fd)) as [number, Fuse.Stat];
    expect(fstat.size).toBe(3); // where the kernel appends (O_APPEND)
    await call(ops.write, '/f', fd, Buffer.from('Z'), 1, 3);
    await call(ops.release, '/f', fd, null);
    expect((await fake.read(2, 0, 100)).toString()).toBe('abcZ');

    await fake.unlink(1, 'f');
    // ESTALE: the kernel looks the name up again and answers the caller ENOENT (do_filp_open).
    expect((await call(ops.open, '/f', fsConstants.O_RDONLY))[0]).toBe(-E.ESTALE);
    // The kernel's retry looks the name up again (getattr): ENOENT, so the caller gets ENOENT
    // (and open(O_CREAT) creates the file).
    expect((await call(ops.getattr, '/f'))[0]).toBe(-E.ENOENT);
  });

  it('after a lock is granted, a file of its directory the kernel was shown, removed elsewhere since, answers ESTALE once', async () => {
    const { ops, fake, state } = setup();
    await call(ops.mkdir, '/d', 0o755);
    await call(ops.mkdir, '/d/e', 0o755);
    for (const path of ['/d/lock', '/d/f', '/g']) {
      const [, fd] = await call(ops.create, path, 0o100644, CREATE_FLAGS);
      await call(ops.release, path, fd, null);
    }
    for (const path of ['/d/f', '/d/e', '/g']) expect((await call(ops.getattr, path))[0]).toBe(0);
    // A lock granted on /d/lock (lockOps calls this), then another host removes the others.
    await state.revalidatePages((await fake.resolve('/d/lock')).ino, '/d/lock');
    const d = (await fake.resolve('/d')).ino;
    await fake.unlink(d, 'f');
    await fake.rename(d, 'e', 1, 'moved');
    await fake.unlink(1, 'g');
    state.cache.clear(); // as when the cache timeout has passed: the kernel may still hold the names
    // A file next to the lock: ESTALE, once, so that the kernel looks it up again.
    expect((await call(ops.getattr, '/d/f'))[0]).toBe(-E.ESTALE);
    expect((await call(ops.getattr, '/d/f'))[0]).toBe(-E.ENOENT);
    // A directory, or a file elsewhere: ENOENT (an ESTALE for a second name of one call, in the
    // kernel's retry, would reach the caller).
    expect((await call(ops.getattr, '/d/e'))[0]).toBe(-E.ENOENT);
    expect((await call(ops.getattr, '/g'))[0]).toBe(-E.ENOENT);
  });

  it('with a cache timeout of 0, every getattr asks the store', async () => {
    const { ops, fake } = setup({ cacheTimeoutMs: 0 });
    await call(ops.mkdir, '/d', 0o755);
    fake.calls.length = 0;
    await call(ops.getattr, '/d');
    await call(ops.getattr, '/d');
    expect(fake.calls).toEqual(['resolve /d', 'resolve /d']);
  });
});

describe('create without O_EXCL (issue 13)', () => {
  it('opens a name another host created meanwhile, as open(2) would, and checks its permissions', async () => {
    const { ops, fake } = setup();
    const other = { uid: 2000, gid: 200 };
    // Another host creates the name after this kernel looked it up (so the kernel sends create).
    const theirs = await fake.mknod(1, 'f', 0o100644, other);
    await fake.write(theirs.ino, 0, Buffer.from('theirs'));
    const [err, fd] = await call(ops.create, '/f', 0o100600, fsConstants.O_CREAT | fsConstants.O_RDONLY);
    expect(err).toBe(0);
    const out = Buffer.alloc(16);
    expect(await call(ops.read, '/f', fd, out, 16, 0)).toEqual([6]);
    expect(out.subarray(0, 6).toString()).toBe('theirs');
    await call(ops.release, '/f', fd, null);
    // Their file is rw-r--r--: writing is not the caller's (uid 1000) to do; O_EXCL still refuses.
    expect((await call(ops.create, '/f', 0o100600, fsConstants.O_CREAT | fsConstants.O_WRONLY))[0]).toBe(-E.EACCES);
    expect((await call(ops.create, '/f', 0o100600, CREATE_FLAGS | fsConstants.O_EXCL))[0]).toBe(-E.EEXIST);
    // A directory of that name: EISDIR, as open(O_CREAT) of a directory answers.
    await fake.mkdir(1, 'd', 0o777, other);
    expect((await call(ops.create, '/d', 0o100600, fsConstants.O_CREAT | fsConstants.O_RDONLY))[0]).toBe(-E.EISDIR);
  });

  it('truncates an existing file opened with O_TRUNC', async () => {
    const { ops, fake } = setup();
    const mine = await fake.mknod(1, 'f', 0o100644, { uid: 1000, gid: 100 });
    await fake.write(mine.ino, 0, Buffer.from('old data'));
    const [err, fd] = await call(ops.create, '/f', 0o100644, CREATE_FLAGS);
    expect(err).toBe(0);
    await call(ops.write, '/f', fd, Buffer.from('new'), 3, 0);
    await call(ops.release, '/f', fd, null);
    expect((await fake.read(mine.ino, 0, 100)).toString()).toBe('new');
  });
});

describe('read-only mounts', () => {
  it('refuse every change with EROFS before touching the store', async () => {
    const touched: string[] = [];
    const store = new Proxy(new FakeStore(), {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (prop !== 'watchParents') touched.push(String(prop)); // a subscription, not an operation
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const { ops } = setup({ readOnly: true, store });
    const cases: [string, unknown[]][] = [
      ['create', ['/f', 0o100644, CREATE_FLAGS]], ['mknod', ['/p', 0o010644, 0]], ['mkdir', ['/d', 0o755]],
      ['unlink', ['/f']], ['rmdir', ['/d']], ['rename', ['/a', '/b']], ['link', ['/a', '/b']],
      ['symlink', ['t', '/l']], ['truncate', ['/f', 0]], ['ftruncate', ['/f', 1, 0]],
      ['chmod', ['/f', 0o600]], ['chown', ['/f', 1, 1]], ['utimens', ['/f', 1n, 1n]],
      ['setxattr', ['/f', 'user.a', Buffer.from('v'), 0, 0]], ['removexattr', ['/f', 'user.a']],
      ['open', ['/f', fsConstants.O_WRONLY]], ['write', ['/f', 1, Buffer.from('v'), 1, 0]],
    ];
    for (const [name, args] of cases) {
      const handler = (ops as unknown as Record<string, (...a: never[]) => void>)[name]!;
      const [err] = await call(handler, ...args);
      expect([name, err]).toEqual([name, -E.EROFS]);
    }
    expect(touched).toEqual([]);
  });
});

describe('attributes', () => {
  it('chown leaves -1 ids unchanged; utimens sets only the given times', async () => {
    const { ops, fake } = setup();
    await call(ops.create, '/f', 0o100644, CREATE_FLAGS);
    expect(await call(ops.chown, '/f', 0xffffffff, 7)).toEqual([0]);
    expect(await call(ops.utimens, '/f', undefined, 5_000_000_000n)).toEqual([0]);
    expect(await call(ops.utimens, '/f', undefined, undefined)).toEqual([0]);
    expect(await call(ops.chmod, '/f', 0o100600)).toEqual([0]);
    expect(fake.calls.filter((c) => c.startsWith('setattr'))).toEqual([
      'setattr 2 {"gid":7}',
      'setattr 2 {"mtimeNs":"5000000000n"}',
      'setattr 2 {"mode":384}',
    ]);
    const [, stat] = (await call(ops.getattr, '/f')) as [number, Fuse.Stat];
    expect(stat).toMatchObject({ uid: 1000, gid: 7, mode: 0o100600, mtime: 5_000_000_000n });
  });

  it('statfs fits fuse-native 32-bit fields', async () => {
    const { ops } = setup();
    const [err, st] = (await call(ops.statfs, '/')) as [number, Fuse.Statfs];
    expect(err).toBe(0);
    for (const v of Object.values(st)) expect(v).toBeLessThanOrEqual(0xffffffff);
    expect(st.frsize * st.blocks).toBe(2 ** 50);
    expect(st.namemax).toBe(255);
    expect(st.files - st.ffree).toBe(3);
  });
});

describe('namespace', () => {
  it('readdir lists . and .. with types and inode numbers', async () => {
    const { ops } = setup();
    await call(ops.mkdir, '/d', 0o755);
    await call(ops.create, '/d/f', 0o100644, CREATE_FLAGS);
    const [err, names, stats] = (await call(ops.readdir, '/d')) as [number, string[], Fuse.Stat[]];
    expect(err).toBe(0);
    expect(names).toEqual(['.', '..', 'f']);
    expect(stats.map((s) => [s.ino, s.mode])).toEqual([[2, 0o040000], [1, 0o040000], [3, 0o100000]]);
  });

  it('after a big listing, looks names up ahead of the program, fresh from the store', async () => {
    const { ops, fake } = setup();
    await call(ops.mkdir, '/d', 0o755);
    const d = await fake.resolve('/d');
    // Past what readdir fetches ahead itself; made in the store directly (nothing cached here).
    for (let i = 0; i < 3000; i++) await fake.mknod(d.ino, `f${i}`, 0o100644, { uid: 1000, gid: 100 });
    const [, names] = (await call(ops.readdir, '/d')) as [number, string[]];
    // Changed after the listing by another client: what the lookups see is what is there now.
    await fake.unlink(d.ino, 'f5');
    await fake.unlink(d.ino, 'f6');
    await fake.mkdir(d.ino, 'f6', 0o755, { uid: 0, gid: 0 });
    fake.calls.length = 0;
    const answers = new Map<string, unknown[]>();
    // The program's lookups in listing order; those the mount fetched ahead are answered from its
    // cache (in the binding, without a call: here, without a store call).
    for (const name of names.slice(2)) answers.set(name, await call(ops.getattr, `/d/${name}`));
    expect(answers.get('f5')![0]).toBe(-E.ENOENT);
    expect((answers.get('f6')![1] as Fuse.Stat).mode & 0o170000).toBe(0o040000);
    expect((answers.get('f7')![1] as Fuse.Stat).mode).toBe(0o100644);
    // The first miss (no order known yet), and f5, whose errno a lookup of it alone tells.
    expect(fake.calls.filter((c) => c.startsWith('resolve'))).toEqual(['resolve /d/f0', 'resolve /d/f5']);
    expect(fake.calls.filter((c) => c.startsWith('lookupMany')).length).toBeLessThan(60);
    expect(fake.calls.filter((c) => !c.startsWith('lookupMany') && !c.startsWith('resolve'))).toEqual([]);
  });

  it('looks nothing up ahead without a cache (--cache-timeout 0)', async () => {
    const { ops, fake } = setup({ cacheTimeoutMs: 0 });
    await call(ops.mkdir, '/d', 0o755);
    const d = await fake.resolve('/d');
    for (let i = 0; i < 10; i++) await fake.mknod(d.ino, `f${i}`, 0o100644, { uid: 1000, gid: 100 });
    await call(ops.readdir, '/d');
    fake.calls.length = 0;
    for (let i = 0; i < 10; i++) expect((await call(ops.getattr, `/d/f${i}`))[0]).toBe(0);
    expect(fake.calls.filter((c) => c.startsWith('lookupMany'))).toEqual([]);
  });

  it('a renamed directory drops its cached subtree', async () => {
    const { ops } = setup();
    await call(ops.mkdir, '/d', 0o755);
    await call(ops.create, '/d/f', 0o100644, CREATE_FLAGS);
    expect((await call(ops.getattr, '/d/f'))[0]).toBe(0);
    expect(await call(ops.rename, '/d', '/e')).toEqual([0]);
    expect((await call(ops.getattr, '/d/f'))[0]).toBe(-E.ENOENT);
    expect((await call(ops.getattr, '/e/f'))[0]).toBe(0);
  });

  it('serves repeated lookups of a path from the cache', async () => {
    const { ops, fake } = setup();
    await call(ops.mkdir, '/d', 0o755);
    fake.calls.length = 0;
    await call(ops.getattr, '/d');
    await call(ops.getattr, '/d');
    expect(fake.calls).toEqual([]);
    await call(ops.unlink, '/d');
    expect((await call(ops.getattr, '/d'))[0]).toBe(-E.ENOENT);
  });

  it('a set-group-ID directory gives new entries its group, and subdirectories the bit', async () => {
    const { ops, fake } = setup();
    await call(ops.mkdir, '/g', 0o755);
    await call(ops.chown, '/g', 0xffffffff, 50);
    await call(ops.chmod, '/g', 0o2775);
    await call(ops.create, '/g/f', 0o100644, CREATE_FLAGS);
    await call(ops.mkdir, '/g/sub', 0o755);
    expect(fake.calls.filter((c) => /^(createOpen|mkdir) (f|sub)/.test(c))).toEqual(['createOpen f 100644 1000:50', 'mkdir sub 2755 1000:50']);
  });
});

describe('extended attributes', () => {
  it('maps setxattr flags, and remembers missing names until this mount changes them', async () => {
    const { ops, fake } = setup();
    await call(ops.create, '/f', 0o100644, CREATE_FLAGS);
    expect(await call(ops.getxattr, '/f', 'security.capability', 0)).toEqual([-E.ENODATA]);
    expect(await call(ops.getxattr, '/f', 'security.capability', 0)).toEqual([-E.ENODATA]);
    // A file this mount just created has no xattrs: the misses cost no store call at all.
    expect(fake.calls.filter((c) => c.startsWith('getxattr'))).toHaveLength(0);

    expect(await call(ops.setxattr, '/f', 'security.capability', Buffer.from('v'), 0, 1)).toEqual([0]);
    expect(fake.calls).toContain('setxattr security.capability {"create":true}');
    const [err, value] = await call(ops.getxattr, '/f', 'security.capability', 0);
    expect([err, String(value)]).toEqual([0, 'v']);
    expect(await call(ops.listxattr, '/f')).toEqual([0, ['security.capability']]);
    await call(ops.setxattr, '/f', 'user.x', Buffer.from('v'), 0, 2);
    expect(fake.calls).toContain('setxattr user.x {"replace":true}');
  });

  it('has no POSIX ACLs: EOPNOTSUPP, so tools fall back to chmod', async () => {
    const { ops, fake } = setup();
    await call(ops.create, '/f', 0o100644, CREATE_FLAGS);
    for (const name of ['system.posix_acl_access', 'system.posix_acl_default']) {
      expect(await call(ops.setxattr, '/f', name, Buffer.from('acl'), 0, 0)).toEqual([-E.EOPNOTSUPP]);
      expect(await call(ops.getxattr, '/f', name, 0)).toEqual([-E.EOPNOTSUPP]);
    }
    expect(fake.calls.some((c) => c.includes('posix_acl'))).toBe(false);
  });

  it('takes names in the user, trusted and security namespaces only, as tmpfs does (issue 12)', async () => {
    const { ops, fake } = setup();
    await call(ops.create, '/f', 0o100644, CREATE_FLAGS);
    // Outside every namespace: EOPNOTSUPP; a namespace with no name after it: EINVAL.
    for (const name of ['foo', 'bogus.x', 'userx', 'system.foo', 'os2.x']) {
      expect({ name, answer: await call(ops.setxattr, '/f', name, Buffer.from('v'), 0, 0) }).toEqual({ name, answer: [-E.EOPNOTSUPP] });
      expect({ name, answer: await call(ops.getxattr, '/f', name, 0) }).toEqual({ name, answer: [-E.EOPNOTSUPP] });
      expect({ name, answer: await call(ops.removexattr, '/f', name) }).toEqual({ name, answer: [-E.EOPNOTSUPP] });
    }
    for (const name of ['user.', 'trusted.', 'security.']) {
      expect({ name, answer: await call(ops.setxattr, '/f', name, Buffer.from('v'), 0, 0) }).toEqual({ name, answer: [-E.EINVAL] });
    }
    expect(fake.calls.filter((c) => c.startsWith('setxattr'))).toEqual([]);
    for (const name of ['user.a', 'trusted.b', 'security.c']) {
      expect(await call(ops.setxattr, '/f', name, Buffer.from('v'), 0, 0)).toEqual([0]);
    }
  });

  it('lists trusted.* names to root only (CAP_SYS_ADMIN), as tmpfs does', async () => {
    const store = new FakeStore();
    const root = setup({ store, uid: 0 });
    await call(root.ops.create, '/f', 0o100644, CREATE_FLAGS);
    for (const name of ['user.a', 'trusted.b', 'security.c']) await call(root.ops.setxattr, '/f', name, Buffer.from('v'), 0, 0);
    expect(await call(root.ops.listxattr, '/f')).toEqual([0, ['user.a', 'trusted.b', 'security.c']]);
    const user = setup({ store, uid: 1000 });
    expect(await call(user.ops.listxattr, '/f')).toEqual([0, ['user.a', 'security.c']]);
  });
});

describe('names are bytes (issue 12)', () => {
  /** What the binding passes for `bytes`: a byte string (latin1, one char per byte). */
  const b = (...bytes: number[]): string => Buffer.from(bytes).toString('latin1');
  const hex = (s: string): string => Buffer.from(s, 'latin1').toString('hex');
  /** Not valid UTF-8, but for U+FFFD itself and one valid name: distinct names, distinct entries. */
  const NAMES = [b(0xff), b(0xfe), b(0xc3, 0x28), b(0x80), `report${b(0x80)}`, `report${b(0x81)}`, b(0xef, 0xbf, 0xbd), `caf${b(0xc3, 0xa9)}`];

  it('paths reach the store as their exact bytes; readdir and readlink give the bytes back', async () => {
    const { ops, fake } = setup({ cacheTimeoutMs: 0 }); // every lookup goes to the store
    await call(ops.mkdir, '/d', 0o755);
    for (const n of NAMES) {
      const [err, fd] = await call(ops.create, `/d/${n}`, 0o100644, CREATE_FLAGS);
      expect([hex(n), err]).toEqual([hex(n), 0]);
      await call(ops.release, `/d/${n}`, fd, null);
    }
    // The fake logs names as the bytes it received: the string "ÿ" encoded as UTF-8 would be c3 bf.
    expect(fake.calls.filter((c) => c.startsWith('createOpen')).map((c) => hex(c.split(' ')[1]!))).toEqual(NAMES.map(hex));
    expect((await fake.readdir(2)).map((e) => e.nameBytes.toString('hex'))).toEqual(NAMES.map(hex));
    const [err, listed] = (await call(ops.readdir, '/d')) as [number, string[]];
    expect(err).toBe(0);
    expect(listed.map(hex)).toEqual(['.', '..', ...NAMES].map(hex));

    fake.calls.length = 0;
    expect((await call(ops.getattr, `/d/${b(0xfe)}`))[0]).toBe(0);
    expect(fake.calls).toEqual([`resolve /d/${b(0xfe)}`]);
    expect((await call(ops.getattr, `/d/${b(0xfd)}`))[0]).toBe(-E.ENOENT);

    expect(await call(ops.rename, `/d/report${b(0x80)}`, `/d/report${b(0x82)}`)).toEqual([0]);
    expect(await call(ops.unlink, `/d/${b(0xff)}`)).toEqual([0]);
    expect(await call(ops.symlink, `tgt${b(0xff, 0xfe)}`, `/d/${b(0xfc)}`)).toEqual([0]);
    const [, target] = (await call(ops.readlink, `/d/${b(0xfc)}`)) as [number, string];
    expect(hex(target)).toBe(Buffer.from('tgt\xff\xfe', 'latin1').toString('hex'));
    const after = (await fake.readdir(2)).map((e) => e.nameBytes.toString('hex')).sort();
    const expected = [...NAMES.filter((n) => n !== b(0xff) && n !== `report${b(0x80)}`), `report${b(0x82)}`, b(0xfc)];
    expect(after).toEqual(expected.map(hex).sort());
  });

  it('xattr names are stored as UTF-8 strings, as before; one that is not UTF-8 cannot be set', async () => {
    const { ops, fake } = setup();
    await call(ops.create, '/f', 0o100644, CREATE_FLAGS);
    const cafe = `user.caf${b(0xc3, 0xa9)}`; // "user.café" as the kernel passes it
    expect(await call(ops.setxattr, '/f', cafe, Buffer.from('v'), 0, 0)).toEqual([0]);
    expect(fake.calls).toContain('setxattr user.café {}');
    expect(await call(ops.listxattr, '/f')).toEqual([0, [cafe]]);
    expect((await call(ops.getxattr, '/f', cafe, 0))[0]).toBe(0);

    const bad = `user.${b(0xff)}`;
    expect(await call(ops.setxattr, '/f', bad, Buffer.from('v'), 0, 0)).toEqual([-E.EINVAL]);
    expect(await call(ops.getxattr, '/f', bad, 0)).toEqual([-E.ENODATA]);
    expect(await call(ops.removexattr, '/f', bad)).toEqual([-E.ENODATA]);
    expect(fake.calls.filter((c) => /^(set|get|remove)xattr/.test(c))).toEqual(['setxattr user.café {}', 'getxattr user.café']);
  });
});
