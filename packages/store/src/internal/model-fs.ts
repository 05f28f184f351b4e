/**
 * Test-only: the in-memory filesystem model of model.test.ts (issue 12), its operations and
 * their seeded generator. Not exported from the package.
 *
 * An operation runs in two phases, as it does under FUSE: the kernel first walks the paths
 * (`prepare`: the parent directories, and for an operation on an inode, the inode), then sends
 * one call on inode numbers, which the store runs as one atomic script (`apply`). Two clients'
 * operations sent at once are both prepared in the state before them; their calls then run in
 * either order, so the model offers two outcomes: A then B, and B then A (`clone` the model).
 *
 * Nodes are kept by id, directories map names to ids (a hard link is two names of one id). A
 * file with no name left stays while a client holds it open (open / createOpen, until release),
 * readable and writable by id, as a store with a session keeps it. A read answers its length
 * and a digest of its bytes, compared like any outcome.
 */
import { createHash } from 'node:crypto';

export const BLOCK = 4096;
export const NAMES = ['a', 'b', 'c'];
export const DIRS = ['/', '/a', '/b', '/a/b', '/b/c'];
export const XATTRS = ['user.x', 'user.y'];
export const ROOT_ID = 1;
/** A time the filesystem set itself (now) is after this; utimens sets times before it. */
export const RECENT_NS = 1_577_836_800n * 1_000_000_000n; // 2020-01-01

/** mulberry32: a small seeded PRNG, so that a failing seed replays exactly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

/** `length` bytes that `seed` determines. */
export function bytesOf(seed: number, length: number): Buffer {
  const rand = prng(seed);
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(rand() * 256);
  return out;
}

/** What a read answers: its length and a digest of its bytes. */
export function readOutcome(data: Buffer): string {
  return `ok ${data.length} bytes ${createHash('sha1').update(data).digest('hex').slice(0, 8)}`;
}

/** The value setxattr stores for `seed`. */
export const xattrValue = (seed: number): Buffer => bytesOf(seed, 1 + (seed % 40));

interface At {
  /** Which of the two clients sends it (0 or 1). */
  client: number;
  dir: string;
  name: string;
}

/** One operation. `via`: through one of the client's open files, when it holds any (else the path). */
export type Op =
  | (At & { kind: 'create' | 'mkdir' | 'unlink' | 'rmdir' | 'open' })
  | (At & { kind: 'createOpen'; exclusive: boolean })
  | (At & { kind: 'write'; offset: number; length: number; seed: number; via?: number })
  | (At & { kind: 'read'; offset: number; length: number; via?: number })
  | (At & { kind: 'truncate'; size: number; via?: number })
  | (At & { kind: 'chmod'; mode: number })
  | (At & { kind: 'utimens'; sec: number; nsec: number })
  | (At & { kind: 'rename' | 'link'; dir2: string; name2: string })
  | (At & { kind: 'setxattr'; xname: string; seed: number })
  | (At & { kind: 'removexattr'; xname: string })
  | { kind: 'release'; client: number; slot: number };

/** One step: one operation, or two from the two clients sent at once. */
export type Step = Op[];

/** The mtime an utimens op sets. */
export const mtimeOf = (op: { sec: number; nsec: number }): bigint => BigInt(op.sec) * 1_000_000_000n + BigInt(op.nsec);

/** Kinds that act on the inode a name leads to (resolved before the call). */
const ON_INODE = new Set<Op['kind']>(['write', 'read', 'truncate', 'chmod', 'utimens', 'setxattr', 'removexattr', 'link']);

/** How an operation's paths are walked before its call: what prepare does on either side. */
export type Plan =
  | { walk: 'none' } // release, open (open walks its path in its own script)
  | { walk: 'held'; index: number } // through an open file
  | { walk: 'paths'; dir2: boolean; target: boolean; noDirTarget: boolean };

export function planOf(op: Op, held: number): Plan {
  if (op.kind === 'release' || op.kind === 'open') return { walk: 'none' };
  if ('via' in op && op.via !== undefined && held > 0) return { walk: 'held', index: op.via % held };
  const data = op.kind === 'write' || op.kind === 'read';
  return { walk: 'paths', dir2: op.kind === 'rename' || op.kind === 'link', target: ON_INODE.has(op.kind), noDirTarget: data };
}

/** The outcome of prepare: an errno, or what the call acts on (ids or inode numbers). */
export interface Resolved<T> {
  error?: string;
  dir?: T;
  dir2?: T;
  target?: T;
}

/** The absolute path of `name` in `dir`. */
export const pathOf = (dir: string, name: string): string => `${dir === '/' ? '' : dir}/${name}`;

/** A random operation from `client`; `near`: the other operation of its pair. */
export function randomOp(rand: () => number, client: number, near?: Op): Op {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  let dir = pick(DIRS);
  let name = pick(NAMES);
  // The second operation of a pair often names what the first one does.
  if (near && near.kind !== 'release' && rand() < 0.6) {
    const second = 'dir2' in near && rand() < 0.5;
    dir = second ? near.dir2 : near.dir;
    name = second ? near.name2 : near.name;
  }
  const via = () => (rand() < 0.3 ? Math.floor(rand() * 4) : undefined);
  const seed = () => Math.floor(rand() * 1e9);
  const offset = (p0: number) => (rand() < p0 ? 0 : Math.floor(rand() * 3 * BLOCK));
  // Weights, and how each kind is made (only the one picked draws from rand).
  const make: Record<Op['kind'], [number, () => Op]> = {
    create: [10, () => ({ kind: 'create', client, dir, name })],
    createOpen: [4, () => ({ kind: 'createOpen', client, dir, name, exclusive: rand() < 0.5 })],
    mkdir: [8, () => ({ kind: 'mkdir', client, dir, name })],
    write: [15, () => ({ kind: 'write', client, dir, name, offset: offset(0.3), length: 1 + Math.floor(rand() * 2 * BLOCK), seed: seed(), via: via() })],
    read: [8, () => ({ kind: 'read', client, dir, name, offset: offset(0.5), length: 1 + Math.floor(rand() * 4 * BLOCK), via: via() })],
    truncate: [7, () => ({ kind: 'truncate', client, dir, name, size: Math.floor(rand() * 4 * BLOCK), via: via() })],
    chmod: [3, () => ({ kind: 'chmod', client, dir, name, mode: pick([0o600, 0o644, 0o755]) })],
    utimens: [3, () => ({ kind: 'utimens', client, dir, name, sec: 1e9 + Math.floor(rand() * 3e8), nsec: Math.floor(rand() * 1e9) })],
    rename: [10, () => ({ kind: 'rename', client, dir, name, dir2: pick(DIRS), name2: pick(NAMES) })],
    link: [5, () => ({ kind: 'link', client, dir, name, dir2: pick(DIRS), name2: pick(NAMES) })],
    unlink: [8, () => ({ kind: 'unlink', client, dir, name })],
    rmdir: [4, () => ({ kind: 'rmdir', client, dir, name })],
    open: [5, () => ({ kind: 'open', client, dir, name })],
    release: [4, () => ({ kind: 'release', client, slot: Math.floor(rand() * 4) })],
    setxattr: [4, () => ({ kind: 'setxattr', client, dir, name, xname: pick(XATTRS), seed: seed() })],
    removexattr: [2, () => ({ kind: 'removexattr', client, dir, name, xname: pick(XATTRS) })],
  };
  const total = Object.values(make).reduce((n, [w]) => n + w, 0);
  let r = rand() * total;
  for (const [w, f] of Object.values(make)) {
    if (r < w) return f();
    r -= w;
  }
  return make.removexattr[1]();
}

/**
 * The first steps of every sequence (shrinking drops those a failure does not need): every
 * directory of DIRS, then a file at every other name, two at once. Without them most random
 * operations would only meet missing names.
 */
export function preludeSteps(): Step[] {
  const dirs = new Set(DIRS);
  const ops: Op[] = DIRS.filter((d) => d !== '/').map((d) => {
    const cut = d.lastIndexOf('/');
    return { kind: 'mkdir', client: 0, dir: d.slice(0, cut) || '/', name: d.slice(cut + 1) };
  });
  for (const dir of DIRS) {
    for (const name of NAMES) if (!dirs.has(pathOf(dir, name))) ops.push({ kind: 'create', client: 0, dir, name });
  }
  // Two at once, unless the second is made in the directory the first makes (DIRS lists
  // parents first).
  const steps: Step[] = [];
  for (let i = 0; i < ops.length; i++) {
    const [a, b] = [ops[i]!, ops[i + 1]];
    const together = b && 'dir' in a && 'dir' in b && b.dir !== pathOf(a.dir, a.name);
    steps.push(together ? [a, { ...b, client: 1 }] : [a]);
    if (together) i++;
  }
  return steps;
}

/** Half of the steps are one operation, half two from the two clients at once. */
export function randomStep(rand: () => number): Step {
  const first = randomOp(rand, rand() < 0.5 ? 0 : 1);
  if (rand() < 0.5) return [first];
  const second = randomOp(rand, 1 - first.client, first);
  // The one sent first usually runs first: either may be.
  return rand() < 0.5 ? [first, second] : [second, first];
}

// ---------------------------------------------------------------------------------- the model

export interface Node {
  type: 'file' | 'dir';
  mode: number;
  nlink: number;
  data: Buffer; // never changed in place: shared by clones
  xattrs: Map<string, Buffer>;
  entries: Map<string, number>; // dirs only: name → id
  /** Set by utimens; null: set by the filesystem (now, after RECENT_NS). */
  mtime: bigint | null;
}

export class Model {
  readonly nodes = new Map<number, Node>();
  /** Per client, the ids of the files it holds open, in the order it opened them. */
  readonly held: number[][] = [[], []];
  private nextId = ROOT_ID + 1;

  constructor() {
    this.nodes.set(ROOT_ID, newNode('dir', 0o755));
  }

  /** An independent copy (ids are kept). */
  clone(): Model {
    const copy = new Model();
    copy.nextId = this.nextId;
    copy.nodes.clear();
    for (const [id, n] of this.nodes) copy.nodes.set(id, { ...n, xattrs: new Map(n.xattrs), entries: new Map(n.entries) });
    copy.held[0]!.push(...this.held[0]!);
    copy.held[1]!.push(...this.held[1]!);
    return copy;
  }

  /** The id at `path`, or an errno name. */
  at(path: string): number | string {
    let id = ROOT_ID;
    for (const part of path.split('/').filter(Boolean)) {
      const node = this.nodes.get(id)!;
      if (node.type !== 'dir') return 'ENOTDIR';
      const next = node.entries.get(part);
      if (next === undefined) return 'ENOENT';
      id = next;
    }
    return id;
  }

  /** The kernel's part: walks the paths in the current state (see planOf). */
  prepare(op: Op): Resolved<number> {
    const plan = planOf(op, this.held[op.client]!.length);
    if (plan.walk === 'none' || op.kind === 'release') return {};
    if (plan.walk === 'held') return { target: this.held[op.client]![plan.index] };
    const dir = this.at(op.dir);
    if (typeof dir === 'string') return { error: dir };
    if (this.nodes.get(dir)!.type !== 'dir') return { error: 'ENOTDIR' };
    let dir2: number | undefined;
    if (plan.dir2 && 'dir2' in op) {
      const d = this.at(op.dir2);
      if (typeof d === 'string') return { error: d };
      if (this.nodes.get(d)!.type !== 'dir') return { error: 'ENOTDIR' };
      dir2 = d;
    }
    let target: number | undefined;
    if (plan.target) {
      target = this.nodes.get(dir)!.entries.get(op.name);
      if (target === undefined) return { error: 'ENOENT' };
      if (plan.noDirTarget && this.nodes.get(target)!.type === 'dir') return { error: 'EISDIR' };
    }
    return { dir, dir2, target };
  }

  /** The filesystem's part: the call, atomic; returns 'ok' or the errno a POSIX filesystem answers. */
  apply(op: Op, r: Resolved<number>): string {
    if (r.error !== undefined) return r.error;
    const held = this.held[op.client]!;
    if (op.kind === 'release') {
      if (held.length === 0) return 'ok';
      const [id] = held.splice(op.slot % held.length, 1);
      this.freeIfUnused(id!);
      return 'ok';
    }
    if (op.kind === 'open') {
      const id = this.at(pathOf(op.dir, op.name));
      if (typeof id === 'string') return id;
      if (this.nodes.get(id)!.type === 'file') held.push(id);
      return 'ok';
    }
    // A call on an inode (or in a directory) that is gone meanwhile: ENOENT.
    const target = r.target === undefined ? undefined : this.nodes.get(r.target);
    if (r.target !== undefined && !target) return 'ENOENT';
    const dir = r.dir === undefined ? undefined : this.nodes.get(r.dir);
    switch (op.kind) {
      case 'write': {
        const data = bytesOf(op.seed, op.length);
        const grown = Buffer.alloc(Math.max(op.offset + data.length, target!.data.length));
        target!.data.copy(grown);
        data.copy(grown, op.offset);
        target!.data = grown;
        target!.mtime = null;
        return 'ok';
      }
      case 'read':
        return readOutcome(target!.data.subarray(op.offset, op.offset + op.length));
      case 'truncate': {
        if (target!.type === 'dir') return 'EISDIR';
        const resized = Buffer.alloc(op.size);
        target!.data.copy(resized, 0, 0, Math.min(op.size, target!.data.length));
        target!.data = resized;
        target!.mtime = null;
        return 'ok';
      }
      case 'chmod':
        target!.mode = op.mode;
        return 'ok';
      case 'utimens':
        target!.mtime = mtimeOf(op);
        return 'ok';
      case 'setxattr':
        target!.xattrs.set(op.xname, xattrValue(op.seed));
        return 'ok';
      case 'removexattr':
        return target!.xattrs.delete(op.xname) ? 'ok' : 'ENODATA';
      case 'link': {
        if (target!.type === 'dir') return 'EPERM';
        if (target!.nlink === 0) return 'ENOENT'; // removed while open: no new name (Linux)
        const dir2 = this.nodes.get(r.dir2!);
        if (!dir2) return 'ENOENT';
        if (dir2.entries.has(op.name2)) return 'EEXIST';
        dir2.entries.set(op.name2, r.target!);
        dir2.mtime = null;
        target!.nlink++;
        return 'ok';
      }
      default:
        break;
    }
    if (!dir) return 'ENOENT';
    const id = dir.entries.get(op.name);
    const node = id === undefined ? undefined : this.nodes.get(id)!;
    switch (op.kind) {
      case 'create':
      case 'mkdir':
      case 'createOpen': {
        if (node) {
          if (op.kind !== 'createOpen' || op.exclusive) return 'EEXIST';
          if (node.type === 'dir') return 'EISDIR';
          held.push(id!);
          return 'ok';
        }
        const made = this.nextId++;
        this.nodes.set(made, newNode(op.kind === 'mkdir' ? 'dir' : 'file', op.kind === 'mkdir' ? 0o755 : 0o644));
        dir.entries.set(op.name, made);
        dir.mtime = null;
        if (op.kind === 'mkdir') dir.nlink++;
        if (op.kind === 'createOpen') held.push(made);
        return 'ok';
      }
      case 'unlink':
        if (!node) return 'ENOENT';
        if (node.type === 'dir') return 'EISDIR';
        dir.entries.delete(op.name);
        dir.mtime = null;
        node.nlink--;
        this.freeIfUnused(id!);
        return 'ok';
      case 'rmdir':
        if (!node) return 'ENOENT';
        if (node.type !== 'dir') return 'ENOTDIR';
        if (node.entries.size > 0) return 'ENOTEMPTY';
        dir.entries.delete(op.name);
        dir.mtime = null;
        dir.nlink--;
        this.nodes.delete(id!);
        return 'ok';
      case 'rename':
        return this.rename(r.dir!, op.name, r.dir2!, op.name2);
      default:
        throw new Error(`unexpected ${op.kind}`);
    }
  }

  private rename(dirId: number, name: string, dir2Id: number, name2: string): string {
    const dir = this.nodes.get(dirId)!;
    const id = dir.entries.get(name);
    if (id === undefined) return 'ENOENT';
    const dir2 = this.nodes.get(dir2Id);
    if (!dir2) return 'ENOENT';
    const node = this.nodes.get(id)!;
    const overId = dir2.entries.get(name2);
    if (overId === id) return 'ok'; // the same inode: nothing happens (POSIX)
    if (node.type === 'dir' && this.contains(id, dir2Id)) return 'EINVAL';
    if (overId !== undefined) {
      const over = this.nodes.get(overId)!;
      if (over.type === 'dir' && node.type !== 'dir') return 'EISDIR';
      if (over.type !== 'dir' && node.type === 'dir') return 'ENOTDIR';
      if (over.type === 'dir' && over.entries.size > 0) return 'ENOTEMPTY';
      if (over.type === 'dir') {
        dir2.nlink--;
        this.nodes.delete(overId);
      } else {
        over.nlink--;
        this.freeIfUnused(overId);
      }
    }
    dir.entries.delete(name);
    dir2.entries.set(name2, id);
    dir.mtime = null;
    dir2.mtime = null;
    if (node.type === 'dir' && dir !== dir2) {
      dir.nlink--;
      dir2.nlink++;
    }
    return 'ok';
  }

  /** Whether directory `inner` is `outer` or below it. */
  private contains(outer: number, inner: number): boolean {
    if (outer === inner) return true;
    for (const child of this.nodes.get(outer)!.entries.values()) {
      if (this.nodes.get(child)!.type === 'dir' && this.contains(child, inner)) return true;
    }
    return false;
  }

  /** A file with no name that no client holds is gone. */
  private freeIfUnused(id: number): void {
    const node = this.nodes.get(id);
    if (node && node.nlink === 0 && !this.held.some((h) => h.includes(id))) this.nodes.delete(id);
  }
}

function newNode(type: Node['type'], mode: number): Node {
  return { type, mode, nlink: type === 'dir' ? 2 : 1, data: Buffer.alloc(0), xattrs: new Map(), entries: new Map(), mtime: null };
}
