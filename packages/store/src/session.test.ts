/**
 * Sessions against a real redis-server: two stores on one filesystem play two hosts. A file
 * removed while open stays usable by whoever holds it, on any host, and is freed at its last
 * release; a session that stops renewing its lease (a crash) loses its holds to whoever notices.
 */
import { LUA_KEY_FUNCTIONS, isSessionKey, keysFor } from '@redisfs/schema';
import { waitFor } from '@redisfs/testing';
import { describe, expect, it } from 'vitest';
import { checkFilesystem, copyFilesystem, snapshotFilesystem, type Attr, type Store } from './index.js';
import type { StoreContext } from './internal/context.js';
import { TEST_OWNER as owner, countsOf, rawInode, storeFixture } from './internal/test-fixture.js';
import { scanMatching, type RedisClient } from './internal/topology.js';

const t = storeFixture('sess');
const BS = 4096;

/** Every key of a family (metadata of all members, family keys, blocks) but its block id counter, sorted. */
async function familyKeys(family: string): Promise<string[]> {
  const k = keysFor(family);
  const out = new Set<string>();
  for (const pattern of [`${k.hashTag}*`.replace(/[{}]/g, (c) => `\\${c}`), k.blockPattern]) {
    for await (const keys of scanMatching(t.raw as unknown as RedisClient, pattern, 1000)) for (const key of keys) out.add(key);
  }
  out.delete(k.blockCounter);
  return [...out].sort();
}

/** Two stores with sessions on one new filesystem: A and B, two hosts. */
async function twoHosts(leaseMs = 60_000, warnings: string[] = []): Promise<{ a: Store; b: Store }> {
  const onWarning = (m: string) => void warnings.push(m);
  const a = await t.fresh({ blockSize: BS, session: { mountpoint: '/mnt/a', leaseMs }, onWarning });
  const b = await t.fresh({ prefix: a.prefix, session: { mountpoint: '/mnt/b', leaseMs }, onWarning });
  return { a, b };
}

/** Simulates a crash of a store's host: its connection goes, its session is not ended. */
function crash(store: Store): void {
  (store as unknown as { ctx: StoreContext }).ctx.client.destroy();
}

describe('a file removed while open', () => {
  it('stays readable and writable by its holder on another host, and is freed whole at the last release', async () => {
    const { a, b } = await twoHosts();
    const k = keysFor(a.prefix);
    await a.collected();
    const before = await familyKeys(a.prefix);
    const stBefore = await t.raw.hGetAll(k.stats);
    await a.writeFile('/f', Buffer.alloc(3 * BS + 10, 'x'));
    const opened = await a.open('/f');
    await a.setxattr(opened.ino, 'user.k', Buffer.from('v'));
    await b.remove('/f');

    // B: gone. A: still there, by inode number.
    await expect(b.stat('/f')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(b.lookup(b.rootIno, 'f')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await a.list('/')).toEqual([]);
    expect(await a.getattr(opened.ino)).toMatchObject({ nlink: 0, size: 3 * BS + 10 });
    expect(await b.getattr(opened.ino)).toMatchObject({ nlink: 0 });
    expect((await a.read(opened.ino, 0, 5)).toString()).toBe('xxxxx');
    await a.write(opened.ino, 3 * BS + 10, Buffer.from('tail'));
    expect((await a.read(opened.ino, 3 * BS + 10, 10)).toString()).toBe('tail');
    expect(await a.setattr(opened.ino, { mode: 0o600 })).toMatchObject({ mode: 0o100600, nlink: 0 });
    expect((await a.getxattr(opened.ino, 'user.k')).toString()).toBe('v');
    // Still counted, as a local disk's df counts an open removed file.
    expect(await t.raw.hGet(k.stats, 'inodes')).toBe(String(Number(stBefore.inodes) + 1));
    expect(await t.raw.sMembers(k.orphans)).toEqual([String(opened.ino)]);
    // Nor can it get a name again.
    await expect(a.link(opened.ino, a.rootIno, 'back')).rejects.toMatchObject({ code: 'ENOENT' });

    await a.release(opened.ino);
    await expect(a.getattr(opened.ino)).rejects.toMatchObject({ code: 'ENOENT' });
    await a.collected();
    // Its inode, xattrs, block map, blocks and hold are gone; the counters are back.
    expect(await familyKeys(a.prefix)).toEqual(before);
    expect(await t.raw.hGetAll(k.stats)).toEqual(stBefore);
    expect(await checkFilesystem({ url: t.redis.url, prefix: a.prefix })).toMatchObject({ problems: [] });
  });

  it('needs as many releases as opens, on every host that holds it', async () => {
    const { a, b } = await twoHosts();
    await a.writeFile('/g', 'data');
    const ino = (await a.open('/g')).ino;
    await a.open('/g');
    await b.open('/g');
    expect(await t.raw.hGet(keysFor(a.prefix).sessionOpen(a.sessionId!), String(ino))).toBe('2');
    await a.remove('/g');
    await a.release(ino);
    await b.release(ino);
    expect((await a.read(ino, 0, 4)).toString()).toBe('data');
    await a.release(ino);
    await expect(a.getattr(ino)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a release without a hold is harmless, and a store without a session holds nothing', async () => {
    const { a } = await twoHosts();
    await a.writeFile('/h', 'keep');
    const ino = (await a.stat('/h')).ino;
    expect(await countsOf(a, () => a.release(ino))).toEqual({});
    const plain = await t.fresh({ prefix: a.prefix });
    expect(plain.sessionId).toBeUndefined();
    await plain.open('/h');
    await plain.release(ino);
    await plain.remove('/h');
    await expect(a.getattr(ino)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('costs an open the round trips of a resolve: one script', async () => {
    const { a } = await twoHosts();
    await a.writeFile('/r', 'x');
    await a.open('/r'); // warm up: the script is loaded
    await a.resolve('/r');
    expect(await countsOf(a, () => a.open('/r'))).toEqual({ 'EVALSHA open': 1 });
    expect(await countsOf(a, () => a.resolve('/r'))).toEqual({ 'EVALSHA_RO resolve': 1 });
    const plain = await t.fresh({ prefix: a.prefix });
    await plain.resolve('/r');
    expect(await countsOf(plain, () => plain.open('/r'))).toEqual({ 'EVALSHA_RO resolve': 1 });
  });
});

describe('createOpen', () => {
  it('creates and holds, opens an existing regular file unless exclusive, and refuses others', async () => {
    const { a, b } = await twoHosts();
    const parents: Attr[] = [];
    a.watchParents((attr) => parents.push(attr));
    const made = await a.createOpen(a.rootIno, 'c', 0o640, owner, { exclusive: true });
    expect(made).toMatchObject({ created: true, attr: { type: 'file', mode: 0o100640, uid: owner.uid, nlink: 1 } });
    expect(parents.map((p) => p.ino)).toEqual([a.rootIno]);
    await expect(a.createOpen(a.rootIno, 'c', 0o600, owner, { exclusive: true })).rejects.toMatchObject({ code: 'EEXIST' });
    const again = await b.createOpen(b.rootIno, 'c', 0o600, owner, { exclusive: false });
    expect(again).toMatchObject({ created: false, attr: { ino: made.attr.ino, mode: 0o100640 } });
    expect(parents).toHaveLength(1);
    await a.mkdir(a.rootIno, 'd', 0o755, owner);
    await a.symlink(a.rootIno, 'l', 'c', owner);
    await expect(a.createOpen(a.rootIno, 'd', 0o600, owner, { exclusive: false })).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(a.createOpen(a.rootIno, 'l', 0o600, owner, { exclusive: false })).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(a.createOpen(a.rootIno, 'p', 0o010600, owner, { exclusive: false })).rejects.toMatchObject({ code: 'EINVAL' });
    // Both hosts hold it: removed, it lives until both release.
    await a.remove('/c');
    await a.release(made.attr.ino);
    expect(await b.getattr(made.attr.ino)).toMatchObject({ nlink: 0 });
    await b.release(made.attr.ino);
    await expect(b.getattr(made.attr.ino)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('sessions', () => {
  it('are listed with their host, mountpoint, lease and holds', async () => {
    const { a, b } = await twoHosts();
    await a.writeFile('/s', 's');
    await a.open('/s');
    const list = await b.sessions();
    expect(list.map((s) => s.id).sort()).toEqual([a.sessionId, b.sessionId].sort());
    const mine = list.find((s) => s.this)!;
    expect(mine).toMatchObject({ id: b.sessionId, mountpoint: '/mnt/b', pid: process.pid, alive: true, openFiles: 0, locks: 0 });
    expect(list.find((s) => !s.this)).toMatchObject({ mountpoint: '/mnt/a', openFiles: 1 });
    expect(mine.expiresMs).toBeGreaterThan(mine.startedMs);
    expect(mine.version).toMatch(/^(\d+\.\d+\.\d+.*|dev)$/);
  });

  it('of a crashed host end after its lease: another host frees what only it held', async () => {
    const warnings: string[] = [];
    const { a, b } = await twoHosts(1000, warnings);
    const k = keysFor(a.prefix);
    await a.writeFile('/victim', Buffer.alloc(2 * BS, 'v'));
    const ino = (await a.open('/victim')).ino;
    await a.remove('/victim');
    const sid = a.sessionId!;
    crash(a);
    // B's heartbeat (every quarter lease) notices the expired lease and ends the session.
    await waitFor(async () => (await t.raw.zScore(k.sessions, sid)) === null, { timeoutMs: 10_000, what: 'the crashed session to be ended' });
    await expect(b.getattr(ino)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await t.raw.exists([k.session(sid), k.sessionOpen(sid), k.openBy(ino)])).toBe(0);
    await b.collected();
    expect(await checkFilesystem({ url: t.redis.url, prefix: a.prefix })).toMatchObject({ problems: [] });
  });

  it('declared dead while its host was cut off registers anew and holds again what is still there', async () => {
    const warnings: string[] = [];
    const { a, b } = await twoHosts(1000, warnings);
    const k = keysFor(a.prefix);
    await a.writeFile('/keep', 'still here');
    await a.writeFile('/later', 'opened after');
    const keep = (await a.open('/keep')).ino;
    const old = a.sessionId!;
    // What another mount does to an expired session: declares it dead (then ends it).
    await t.raw.zAdd(k.sessions, { score: 0, value: old });
    await t.raw.del(k.session(old));
    // An open meanwhile is held again too.
    const later = (await a.open('/later')).ino;
    await waitFor(() => a.sessionId !== old && warnings.some((w) => w.includes(`session ${old} expired`)), {
      timeoutMs: 10_000,
      what: 'a new session, and a warning',
    });
    const sid = a.sessionId!;
    await waitFor(async () => (await t.raw.sMembers(k.openBy(keep))).join() === sid && (await t.raw.sMembers(k.openBy(later))).join() === sid, {
      timeoutMs: 10_000,
      what: 'both files held by the new session only',
    });
    await waitFor(async () => (await t.raw.zScore(k.sessions, old)) === null, { timeoutMs: 10_000, what: 'the old session to be ended' });
    await b.remove('/keep');
    await b.remove('/later');
    expect((await a.read(keep, 0, 10)).toString()).toBe('still here');
    expect((await a.read(later, 0, 12)).toString()).toBe('opened after');
    await a.release(keep);
    await a.release(later);
    await expect(a.getattr(keep)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(a.getattr(later)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('end at close: the files only it held are freed, its keys are gone', async () => {
    const { a, b } = await twoHosts();
    const k = keysFor(a.prefix);
    await a.writeFile('/bye', 'bye');
    const ino = (await a.open('/bye')).ino;
    await b.remove('/bye');
    const sid = a.sessionId!;
    await a.close();
    await expect(b.getattr(ino)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await t.raw.exists([k.session(sid), k.sessionOpen(sid), k.openBy(ino)])).toBe(0);
    expect(await t.raw.zRange(k.sessions, 0, -1)).toEqual([b.sessionId]);
  });
});

describe('copies', () => {
  it('tell session keys apart in Lua as the schema does', async () => {
    const k = keysFor('skx@mon');
    const sid = '0123456789abcdef';
    const keys = [
      k.sessions, k.session(sid), k.sessionOpen(sid), k.sessionLocks(sid), k.openBy(5), k.flocks(6), k.posixLocks(17),
      k.orphans, k.inodes(5), k.target(5), k.superblock, `${k.metaPrefix}s:0123456789ABCDEF`, `${k.metaPrefix}s:${sid}0`, `${k.metaPrefix}o:05`,
      `${k.metaPrefix}lk`, keysFor('skx').sessions, keysFor('skx').openBy(5),
    ];
    const script = `${LUA_KEY_FUNCTIONS}\nlocal out = {}\nfor i = 2, #ARGV do out[#out + 1] = is_session_key(ARGV[i]) and 1 or 0 end\nreturn out`;
    const lua = await t.raw.eval(script, { keys: [k.superblock], arguments: [k.metaPrefix, ...keys] });
    expect(lua).toEqual(keys.map((key) => (isSessionKey(k, key) ? 1 : 0)));
    expect((lua as number[]).filter((x) => x === 1)).toHaveLength(7);
  });

  it('never copy session keys; a file kept open in the source is freed in the copy', async () => {
    const { a } = await twoHosts();
    await a.writeFile('/open', Buffer.alloc(BS, 'o'));
    await a.writeFile('/plain', 'plain');
    const ino = (await a.open('/open')).ino;
    await a.open('/plain');
    await a.remove('/open');
    const fam = keysFor(a.prefix).family;
    for (const [to, copy] of [[`${fam}@snap`, snapshotFilesystem], [`${fam}@clone`, copyFilesystem]] as const) {
      await copy({ url: t.redis.url, from: a.prefix, to });
      const dst = keysFor(to);
      const keys: string[] = [];
      for await (const batch of scanMatching(t.raw as unknown as RedisClient, dst.metaPattern, 1000)) keys.push(...batch);
      expect(keys.filter((key) => isSessionKey(dst, key))).toEqual([]);
      expect(await rawInode(t.raw, to, ino)).toBeUndefined();
      expect(await t.raw.exists([dst.map(ino), dst.orphans])).toBe(0);
      expect(await checkFilesystem({ url: t.redis.url, prefix: to })).toMatchObject({ problems: [] });
    }
    // The source still holds it.
    expect((await a.read(ino, 0, 3)).toString()).toBe('ooo');
  });

  it('an orphan nobody holds (a session end cut short) is freed by the collector', async () => {
    const { a } = await twoHosts();
    const k = keysFor(a.prefix);
    await a.writeFile('/lost', Buffer.alloc(BS, 'l'));
    const ino = (await a.open('/lost')).ino;
    await a.remove('/lost');
    // As if a crash had dropped the hold but not the orphan.
    await t.raw.del(k.openBy(ino));
    await t.raw.hDel(k.sessionOpen(a.sessionId!), String(ino));
    await a.collected();
    expect(await rawInode(t.raw, a.prefix, ino)).toBeUndefined();
    expect(await t.raw.exists([k.map(ino), k.orphans])).toBe(0);
  });
});
