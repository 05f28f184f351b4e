/**
 * checkFilesystem and sessions, against a real redis-server: what a crashed mount leaves (an
 * expired session with holds and locks), what a crash in the middle of its end leaves (a removed
 * file nobody holds), holds of inodes that are gone, locks of sessions that do not exist, and
 * libfuse's hidden files from earlier mounts are found and repaired; a file a live session holds
 * after its removal is reported as kept open, not as a problem.
 */
import { keysFor } from '@redisfs/schema';
import { describe, expect, it } from 'vitest';
import { checkFilesystem, type FsckReport } from './index.js';
import { TEST_OWNER as owner, patchRawInode, rawInode, storeFixture } from './internal/test-fixture.js';

const t = storeFixture('fscks');
const DEAD = 'dead00000000beef';
const NOBODY = 'abcdefabcdefabcd';
const HIDDEN = '.fuse_hidden0000001600000001';

const kinds = (report: FsckReport) => [...new Set(report.problems.map((p) => p.kind))].sort();
const fsck = (prefix: string, repair = false) => checkFilesystem({ url: t.redis.url, prefix, repair });

describe('fsck of sessions', () => {
  it('finds and repairs what dead sessions and earlier mounts leave, and keeps what a live session holds', async () => {
    // A live mount (long lease: its beats do not end the dead session during the test) and a tool.
    const live = await t.fresh({ blockSize: 4096, session: { mountpoint: '/mnt/live' }, onWarning: () => undefined });
    const tool = await t.fresh({ prefix: live.prefix, onWarning: () => undefined });
    const k = keysFor(live.prefix);
    const sid = live.sessionId!;

    // Kept open after removal by the live session: not a problem.
    await tool.writeFile('/kept', 'kept');
    const kept = (await live.open('/kept')).ino;
    await tool.remove('/kept');

    // A session that crashed an hour ago: a file it held, removed since, and locks.
    await t.raw.zAdd(k.sessions, { score: 1, value: DEAD });
    await t.raw.hSet(k.session(DEAD), { host: 'gone', pid: '7', mnt: '/mnt/gone', ver: 'dev', start: '1' });
    await tool.writeFile('/held', Buffer.alloc(5000, 'h'));
    const held = (await tool.stat('/held')).ino;
    await t.raw.hSet(k.sessionOpen(DEAD), String(held), '1');
    await t.raw.sAdd(k.openBy(held), DEAD);
    await tool.remove('/held'); // kept: the dead session holds it
    await tool.writeFile('/locked', 'l');
    const locked = (await tool.stat('/locked')).ino;
    await t.raw.hSet(k.flocks(locked), `${DEAD}:1`, 'W');
    await t.raw.hSet(k.posixLocks(locked), `${DEAD}:2`, 'W,0,10,7');
    await t.raw.sAdd(k.sessionLocks(DEAD), String(locked));
    // A lock of a session that never existed, and a hold of an inode that does not exist.
    await t.raw.hSet(k.flocks(locked), `${NOBODY}:1`, 'R');
    await t.raw.hSet(k.sessionOpen(sid), '777777', '1');
    await t.raw.sAdd(k.openBy(777777), sid);
    await tool.writeFile('/lost', Buffer.alloc(5000, 'x'));
    const lost = (await tool.stat('/lost')).ino;
    // libfuse's hidden file, from a mount of an earlier redisfs.
    await tool.writeFile(`/${HIDDEN}`, 'hidden');
    // Quiet from here on: no collector but the live mount's, which has nothing to do.
    await tool.close();
    await live.collected();
    // A removed file nobody holds (a session's end cut short).
    await patchRawInode(t.raw, live.prefix, lost, { nlink: 0 });
    await t.raw.hDel(k.dir(1), 'lost');
    await t.raw.sAdd(k.orphans, String(lost));

    const found = await fsck(live.prefix);
    expect(kinds(found)).toEqual(['fuse-hidden-entry', 'lock-stale', 'open-entry-stale', 'removed-file-unheld', 'session-expired']);
    expect(found.problems.every((p) => p.repairable)).toBe(true);
    expect(found.problems.find((p) => p.kind === 'session-expired')?.message).toMatch(/session dead00000000beef \(gone pid 7, \/mnt\/gone\) expired \d+ s ago: it holds 1 open file\(s\) and locks on 1 inode\(s\)/);
    expect(found.problems.filter((p) => p.kind === 'removed-file-unheld').map((p) => p.ino).sort()).toEqual([held, lost].sort());
    expect(found.problems.find((p) => p.kind === 'lock-stale')).toMatchObject({ ino: locked });
    expect(found.problems.find((p) => p.kind === 'fuse-hidden-entry')).toMatchObject({ dir: 1, name: HIDDEN });
    expect(found.keptOpen).toEqual([{ ino: kept, size: 4, sessions: [sid] }]);
    expect(found.sessions.map((s) => [s.id, s.alive, s.openFiles, s.locks])).toEqual(
      [[DEAD, false, 1, 1], [sid, true, 2, 0]].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    expect(found.sessions.find((s) => s.id === sid)).toMatchObject({ mountpoint: '/mnt/live', host: expect.any(String) });

    const repaired = await fsck(live.prefix, true);
    expect(repaired.remaining).toEqual([]);
    expect(new Set(repaired.repaired.map((r) => r.kind))).toEqual(
      new Set(['session-expired', 'removed-file-unheld', 'open-entry-stale', 'lock-stale', 'fuse-hidden-entry']),
    );
    const after = await fsck(live.prefix);
    expect(after.problems).toEqual([]);
    expect(after.keptOpen).toEqual([{ ino: kept, size: 4, sessions: [sid] }]);
    expect(after.sessions.map((s) => s.id)).toEqual([sid]);

    // What was dead is gone, with its space; what lives is untouched.
    for (const ino of [held, lost]) expect(await rawInode(t.raw, live.prefix, ino)).toBeUndefined();
    expect(await t.raw.exists([k.map(held), k.map(lost), k.session(DEAD), k.sessionOpen(DEAD), k.sessionLocks(DEAD)])).toBe(0);
    expect(await t.raw.zRange(k.sessions, 0, -1)).toEqual([sid]);
    expect(await t.raw.hGetAll(k.flocks(locked))).toEqual({});
    expect(await t.raw.exists(k.posixLocks(locked))).toBe(0);
    expect(await t.raw.exists(k.openBy(777777))).toBe(0);
    expect(await t.raw.hGetAll(k.sessionOpen(sid))).toEqual({ [String(kept)]: '1' });
    expect(await live.list('/')).toEqual([expect.objectContaining({ name: 'locked' })]);
    expect((await live.read(kept, 0, 4)).toString()).toBe('kept');
    await live.release(kept);
    await expect(live.getattr(kept)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await fsck(live.prefix)).problems).toEqual([]);
  });

  it('takes stale members off the list of files kept open', async () => {
    const s = await t.fresh({ onWarning: () => undefined });
    const k = keysFor(s.prefix);
    await s.mknod(s.rootIno, 'linked', 0o644, owner);
    const linked = (await s.stat('/linked')).ino;
    await s.close(); // quiet: its collector would take them off first
    await t.raw.sAdd(k.orphans, [String(linked), '888888']);
    const found = await fsck(s.prefix);
    expect(found.problems.map((p) => [p.kind, p.ino])).toEqual([
      ['open-entry-stale', 888888],
      ['open-entry-stale', linked],
    ].sort((a, b) => Number(a[1]) - Number(b[1])));
    const repaired = await fsck(s.prefix, true);
    expect(repaired.remaining).toEqual([]);
    expect(await t.raw.exists(k.orphans)).toBe(0);
    expect((await rawInode(t.raw, s.prefix, linked))?.nlink).toBe(1);
  });
});
