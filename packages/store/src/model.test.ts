/**
 * A model-based test of the store (issue 12): random sequences of operations (create, write at
 * random offsets, read, truncate, chmod, utimens, rename, link, unlink, mkdir, rmdir, xattrs,
 * and open / createOpen / release with sessions) from two store clients of one filesystem. Half
 * of the steps send two operations, one from each client, at once (each client has its own
 * connection: Redis runs them in either order). After every step the whole filesystem, as the
 * store shows it, is compared with a plain in-memory model (internal/model-fs.ts): names,
 * types, sizes, modes, mtimes, link counts, bytes, xattrs, which names are one inode, the open
 * files each client holds (also once removed), the inode count, and each operation's outcome
 * (ok, its errno, or the bytes a read returned). After two operations at once, the store must
 * match one of the two serial orders (outcomes and state), and the model goes on from that one.
 * A failing sequence is shrunk (runs of steps, or one operation of a pair, dropped while it
 * still fails) before it is reported.
 *
 * As under FUSE, the paths of both operations of a pair are walked before either call is sent
 * (the kernel resolves names, then sends a call on inode numbers): the calls race, not the walks.
 *
 * Bounded in time: REDISFS_MODEL_SECONDS (default 15) of sequences; longer runs on demand:
 *   REDISFS_MODEL_SECONDS=600 pnpm exec vitest run packages/store/src/model.test.ts
 * REDISFS_MODEL_SEED replays one seed's operations (which of two concurrent calls Redis runs
 * first may differ from run to run: a seed is run up to REPLAYS times, until it fails).
 */
import { describe, expect, it } from 'vitest';
import { isFsError, openStore, type Ino, type Store } from './index.js';
import { storeFixture, TEST_OWNER as owner } from './internal/test-fixture.js';
import {
  BLOCK, Model, RECENT_NS, ROOT_ID, bytesOf, mtimeOf, pathOf, planOf, preludeSteps, prng, randomStep, readOutcome, xattrValue,
  type Node, type Op, type Resolved, type Step,
} from './internal/model-fs.js';

const t = storeFixture('model');

const SECONDS = Number(process.env.REDISFS_MODEL_SECONDS ?? 15);
const STEPS = 60;
const REPLAYS = 10;
/** Shrinking stops trying after this long (the smallest failing sequence so far is reported). */
const SHRINK_MS = 90_000;

// ---------------------------------------------------------------------------------- the store

/** The kernel's part on the store: walks the paths (see planOf); `held`: the client's open files. */
async function prepare(s: Store, op: Op, held: readonly Ino[]): Promise<Resolved<Ino>> {
  const plan = planOf(op, held.length);
  if (plan.walk === 'none' || op.kind === 'release') return {};
  if (plan.walk === 'held') return { target: held[plan.index] };
  try {
    const dir = await s.resolve(op.dir);
    // The kernel answers ENOTDIR itself before a call reaches a filesystem.
    if (dir.type !== 'dir') return { error: 'ENOTDIR' };
    let dir2: Ino | undefined;
    if (plan.dir2 && 'dir2' in op) {
      const d = await s.resolve(op.dir2);
      if (d.type !== 'dir') return { error: 'ENOTDIR' };
      dir2 = d.ino;
    }
    let target: Ino | undefined;
    if (plan.target) {
      const found = await s.lookup(dir.ino, op.name);
      if (plan.noDirTarget && found.type === 'dir') return { error: 'EISDIR' };
      target = found.ino;
    }
    return { dir: dir.ino, dir2, target };
  } catch (err) {
    if (isFsError(err)) return { error: err.code };
    throw err;
  }
}

/** The call: one store operation on what prepare found; 'ok' or the errno. */
async function act(s: Store, op: Op, r: Resolved<Ino>, held: Ino[]): Promise<string> {
  if (r.error !== undefined) return r.error;
  try {
    switch (op.kind) {
      case 'create':
        await s.mknod(r.dir!, op.name, 0o100644, owner);
        break;
      case 'mkdir':
        await s.mkdir(r.dir!, op.name, 0o755, owner);
        break;
      case 'createOpen':
        held.push((await s.createOpen(r.dir!, op.name, 0o644, owner, { exclusive: op.exclusive })).attr.ino);
        break;
      case 'open': {
        const attr = await s.open(pathOf(op.dir, op.name));
        if (attr.type === 'file') held.push(attr.ino);
        break;
      }
      case 'release':
        if (held.length > 0) await s.release(held.splice(op.slot % held.length, 1)[0]!);
        break;
      case 'write':
        await s.write(r.target!, op.offset, bytesOf(op.seed, op.length));
        break;
      case 'read':
        return readOutcome(await s.read(r.target!, op.offset, op.length));
      case 'truncate':
        await s.setattr(r.target!, { size: op.size });
        break;
      case 'chmod':
        await s.setattr(r.target!, { mode: op.mode });
        break;
      case 'utimens':
        await s.setattr(r.target!, { mtimeNs: mtimeOf(op) });
        break;
      case 'setxattr':
        await s.setxattr(r.target!, op.xname, xattrValue(op.seed));
        break;
      case 'removexattr':
        await s.removexattr(r.target!, op.xname);
        break;
      case 'unlink':
        await s.unlink(r.dir!, op.name);
        break;
      case 'rmdir':
        await s.rmdir(r.dir!, op.name);
        break;
      case 'link':
        await s.link(r.target!, r.dir2!, op.name2);
        break;
      case 'rename':
        await s.rename(r.dir!, op.name, r.dir2!, op.name2);
        break;
    }
    return 'ok';
  } catch (err) {
    if (isFsError(err)) return err.code;
    throw err;
  }
}

/** The value, or the errno a store operation failed with. */
function orCode<T>(p: Promise<T>): Promise<T | string> {
  return p.catch((err: unknown) => (isFsError(err) ? err.code : Promise.reject(err)));
}

/** Differences between what the store shows and the model, as readable lines. */
async function differences(s: Store, model: Model, held: readonly Ino[][]): Promise<string[]> {
  const out: string[] = [];
  // Which store inode each model node is: two names of one node must be one inode.
  const inoOf = new Map<number, Ino>();
  const idOf = new Map<Ino, number>();
  const same = (path: string, id: number, ino: Ino): boolean => {
    const known = inoOf.get(id) ?? ino;
    const knownId = idOf.get(ino) ?? id;
    inoOf.set(id, ino);
    idOf.set(ino, id);
    if (known === ino && knownId === id) return true;
    out.push(`${path}: inode ${ino}; the model has ${known !== ino ? `it as inode ${known} too` : 'another file there'}`);
    return false;
  };
  /** Compares one node; false when its type differs (nothing below it can be compared). */
  const compare = async (path: string, node: Node, ino: Ino): Promise<boolean> => {
    const [attr, names, data] = await Promise.all([
      orCode(s.getattr(ino)),
      orCode(s.listxattr(ino)),
      node.type === 'file' ? orCode(s.read(ino, 0, node.data.length + BLOCK)) : undefined,
    ]);
    if (typeof attr === 'string' || typeof names === 'string') {
      out.push(`${path}: inode ${ino}: ${String(attr)}`);
      return false;
    }
    const want = { type: node.type, mode: node.mode, nlink: node.nlink, size: node.type === 'file' ? node.data.length : attr.size };
    const got = { type: attr.type, mode: attr.mode & 0o7777, nlink: attr.nlink, size: attr.size };
    if (JSON.stringify(got) !== JSON.stringify(want)) out.push(`${path}: ${JSON.stringify(got)}, model ${JSON.stringify(want)}`);
    if (node.mtime !== null ? attr.mtimeNs !== node.mtime : attr.mtimeNs < RECENT_NS) {
      out.push(`${path}: mtime ${attr.mtimeNs}, model ${node.mtime ?? 'now'}`);
    }
    const wantNames = [...node.xattrs.keys()].sort();
    if (JSON.stringify(names.sort()) !== JSON.stringify(wantNames)) out.push(`${path}: xattrs ${names}, model ${wantNames}`);
    const values = await Promise.all(names.map((name) => (node.xattrs.has(name) ? s.getxattr(ino, name) : undefined)));
    for (const [k, name] of names.entries()) {
      if (values[k] && !values[k].equals(node.xattrs.get(name)!)) out.push(`${path}: xattr ${name} differs`);
    }
    if (data !== undefined && (typeof data === 'string' || !data.equals(node.data))) {
      out.push(`${path}: ${typeof data === 'string' ? data : `${data.length} bytes`} differ from the model's ${node.data.length} bytes`);
    }
    return attr.type === node.type;
  };
  const walk = async (path: string, id: number, ino: Ino): Promise<void> => {
    const node = model.nodes.get(id)!;
    if (!same(path, id, ino) || !(await compare(path, node, ino)) || node.type !== 'dir') return;
    const entries = await s.readdir(ino);
    const got = entries.map((e) => e.name).sort();
    const want = [...node.entries.keys()].sort();
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      out.push(`${path}: entries ${JSON.stringify(got)}, model ${JSON.stringify(want)}`);
      return;
    }
    await Promise.all(entries.map((e) => walk(`${path === '/' ? '' : path}/${e.name}`, node.entries.get(e.name)!, e.ino)));
  };
  await walk('/', ROOT_ID, s.rootIno);
  // The open files, named or not: still there, with their bytes, until released.
  for (const c of [0, 1]) {
    const ids = model.held[c]!;
    const inos = held[c]!;
    if (inos.length !== ids.length) {
      out.push(`client ${c} holds ${inos.length} open files, model ${ids.length}`);
      continue;
    }
    await Promise.all(ids.map(async (id, i) => {
      const where = `open file ${i} of client ${c}`;
      if (same(where, id, inos[i]!)) await compare(where, model.nodes.get(id)!, inos[i]!);
    }));
  }
  const { inodes } = await s.statfs();
  if (inodes !== model.nodes.size) out.push(`${inodes} inodes, model ${model.nodes.size}`);
  return out;
}

// ---------------------------------------------------------------------------------- runs

const show = (op: Op): string => JSON.stringify(op);
const showStep = (step: Step): string => (step.length === 1 ? show(step[0]!) : `at once: ${step.map(show).join(' | ')}`);

/**
 * Pairs run, pairs whose two orders answer differently, and of those, how many Redis ran
 * second-sent first; reads that saw part of a concurrent write (tolerated unless strict).
 */
const tally = { pairs: 0, racy: 0, secondFirst: 0 };

interface Run {
  clients: Store[];
  /** Per client, the inodes it holds open (as model.held). */
  held: Ino[][];
  model: Model;
}

/** Runs one step on the store and the model: a failure message, or undefined. */
async function runStep(run: Run, step: Step, i: number): Promise<string | undefined> {
  const { clients, held } = run;
  const checker = clients[i % 2]!;
  if (step.length === 1) {
    const op = step[0]!;
    const want = run.model.apply(op, run.model.prepare(op));
    const s = clients[op.client]!;
    const got = await act(s, op, await prepare(s, op, held[op.client]!), held[op.client]!);
    if (got !== want) return `step ${i} ${show(op)}: store answered ${got}, model ${want}`;
    const diff = await differences(checker, run.model, held);
    return diff.length > 0 ? `after step ${i} ${show(op)}: ${diff.join('; ')}` : undefined;
  }
  const [a, b] = step as [Op, Op];
  tally.pairs++;
  // Both walked in the state before the step, on either side; then the calls race.
  const ra = run.model.prepare(a);
  const rb = run.model.prepare(b);
  const ab = run.model.clone();
  const abWant = [ab.apply(a, ra), ab.apply(b, rb)];
  const ba = run.model.clone();
  const baWant = [ba.apply(b, rb), ba.apply(a, ra)].reverse(); // B's call first
  const [sa, sb] = await Promise.all([a, b].map((op) => prepare(clients[op.client]!, op, held[op.client]!)));
  const got = await Promise.all([act(clients[a.client]!, a, sa!, held[a.client]!), act(clients[b.client]!, b, sb!, held[b.client]!)]);
  const candidates = [
    { order: 'A then B', model: ab, want: abWant },
    { order: 'B then A', model: ba, want: baWant },
  ];
  const diffs = new Map<Model, Promise<string[]>>();
  const diffOf = (m: Model) => diffs.get(m) ?? (diffs.set(m, differences(checker, m, held)), diffs.get(m)!);
  const accept = (c: (typeof candidates)[number]) => {
    if (abWant.join() !== baWant.join()) {
      tally.racy++;
      if (c.order === 'B then A') tally.secondFirst++;
    }
    run.model = c.model;
    return undefined;
  };
  for (const c of candidates) {
    if (c.want.join(', ') === got.join(', ') && (await diffOf(c.model)).length === 0) return accept(c);
  }
  const reports: string[] = [];
  for (const c of candidates) {
    const diff = await diffOf(c.model);
    reports.push(`  ${c.order}: the model answers ${c.want.join(', ')}${diff.length > 0 ? `; then ${diff.join('; ')}` : ''}`);
  }
  return `step ${i} ${showStep(step)}: the store answered ${got.join(', ')}, which matches neither order:\n${reports.join('\n')}`;
}

/** Runs `steps` on a fresh filesystem through two clients with sessions; the first failure. */
async function failureOf(steps: readonly Step[]): Promise<{ index: number; message: string } | undefined> {
  const prefix = t.newPrefix();
  const first = await openStore({ url: t.redis.url, prefix, blockSize: BLOCK, session: {} });
  const second = await openStore({ url: t.redis.url, prefix, session: {} });
  try {
    const run: Run = { clients: [first, second], held: [[], []], model: new Model() };
    for (const [i, step] of steps.entries()) {
      const message = await runStep(run, step, i);
      if (message !== undefined) return { index: i, message };
    }
    return undefined;
  } finally {
    await first.close();
    await second.close();
  }
}

/** A failure of `steps` in up to `tries` runs (two calls at once may not race the same way twice). */
async function failsIn(steps: readonly Step[], tries: number): Promise<{ index: number; message: string } | undefined> {
  for (let n = 0; n < tries; n++) {
    const f = await failureOf(steps);
    if (f) return f;
  }
  return undefined;
}

/**
 * Cuts the sequence after its failing step, then drops runs of steps (halves, quarters, … single
 * steps), or one operation of a pair, while it still fails (bounded in rounds and in time).
 */
async function shrink(steps: Step[], failure: { index: number; message: string }): Promise<{ steps: Step[]; message: string }> {
  let best = steps.slice(0, failure.index + 1);
  let message = failure.message;
  const until = Date.now() + SHRINK_MS;
  const attempt = async (fewer: Step[]): Promise<boolean> => {
    const f = await failsIn(fewer, fewer.some((s) => s.length > 1) ? 4 : 1);
    if (!f) return false;
    best = fewer.slice(0, f.index + 1);
    message = f.message;
    return true;
  };
  for (let run = Math.floor(best.length / 2); run > 1 && Date.now() < until; run = Math.floor(run / 2)) {
    for (let from = best.length - 1 - run; from >= 0 && Date.now() < until; from -= run) {
      await attempt([...best.slice(0, from), ...best.slice(from + run)]);
    }
  }
  for (let rounds = 0, changed = true; changed && rounds < 6 && Date.now() < until; rounds++) {
    changed = false;
    for (let i = best.length - 1; i >= 0 && Date.now() < until; i--) {
      if (i >= best.length) continue;
      if (await attempt([...best.slice(0, i), ...best.slice(i + 1)])) {
        changed = true;
        continue;
      }
      const step = best[i]!;
      if (step.length < 2) continue;
      for (const keep of step) {
        if (await attempt([...best.slice(0, i), [keep], ...best.slice(i + 1)])) {
          changed = true;
          break;
        }
      }
    }
  }
  return { steps: best, message };
}

describe('the store against a model, two clients at once', () => {
  it('answers ENOTDIR for a lookup in a file, ENOENT in a directory (found by this test)', async () => {
    const s = await t.fresh();
    const f = await s.mknod(s.rootIno, 'f', 0o100644, owner);
    await expect(s.lookup(f.ino, 'x')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(s.lookup(s.rootIno, 'x')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses to move a directory into its own subtree with EINVAL, before looking at the target (found by this test)', async () => {
    const s = await t.fresh();
    const b = await s.mkdir(s.rootIno, 'b', 0o755, owner);
    await s.mknod(b.ino, 'b', 0o100644, owner);
    await expect(s.rename(s.rootIno, 'b', b.ino, 'b')).rejects.toMatchObject({ code: 'EINVAL' });
  });

  // Found by the pairs above: a read racing a write of the same file returned some of the
  // write's bytes and not the rest (readWindow read the block map, then the blocks; a write
  // landing in between patched some blocks in place and replaced others).
  it('a read racing another client\'s write of the same file sees all of the write or none of it', async () => {
    const a = await t.fresh({ blockSize: BLOCK });
    const b = await t.fresh({ prefix: a.prefix });
    const ino = (await b.mknod(b.rootIno, 'f', 0o100644, owner)).ino;
    for (let k = 0; k < 100; k++) {
      // Random bytes are stored raw; the write patches blocks 0 and 2 in place and replaces block 1.
      const before = bytesOf(2 * k, 3 * BLOCK - 500);
      await b.setattr(ino, { size: 0 });
      await b.write(ino, 0, before);
      const data = bytesOf(2 * k + 1, BLOCK + 1500);
      const [got] = await Promise.all([a.read(ino, 0, 4 * BLOCK), b.write(ino, BLOCK - 500, data)]);
      const after = Buffer.from(before);
      data.copy(after, BLOCK - 500);
      expect(got.equals(before) || got.equals(after), `read ${k}: neither before the write nor after it`).toBe(true);
    }
  });

  it(`random sequences of ${STEPS} steps, half of them two operations at once, agree with the model (${SECONDS} s of them)`, async ({ annotate }) => {
    const seed0 = process.env.REDISFS_MODEL_SEED;
    const until = Date.now() + SECONDS * 1000;
    let runs = 0;
    for (let n = 0; seed0 !== undefined ? n < REPLAYS : Date.now() < until; n++) {
      const seed = seed0 !== undefined ? Number(seed0) : Math.floor(Math.random() * 2 ** 31);
      const rand = prng(seed);
      const steps = [...preludeSteps(), ...Array.from({ length: STEPS }, () => randomStep(rand))];
      const failure = await failureOf(steps);
      runs++;
      if (failure !== undefined) {
        const small = await shrink(steps, failure);
        expect.fail(
          `seed ${seed} (REDISFS_MODEL_SEED=${seed} replays it) fails; shrunk to ${small.steps.length} steps:\n` +
            `${small.steps.map(showStep).join('\n')}\n${small.message}`,
        );
      }
    }
    await annotate(
      `${runs} sequences; ${tally.pairs} pairs at once, ${tally.racy} of them answering differently in the two orders ` +
        `(Redis ran the second sent first in ${tally.secondFirst})`,
    );
    expect(runs).toBeGreaterThan(0);
    // The pairs do race: some are not indifferent to their order (a seed replayed may have none).
    if (seed0 === undefined) expect(tally.racy).toBeGreaterThan(0);
  }, (SECONDS + SHRINK_MS / 1000 + 60) * 1000);
});
