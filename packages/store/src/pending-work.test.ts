/**
 * Store.pendingWork: what the background collector has still to do, read in one round trip
 * (three SCARDs and a ZCOUNT sent together), against a real redis-server.
 */
import { randomBytes } from 'node:crypto';
import { keysFor } from '@redisfs/schema';
import { waitFor } from '@redisfs/testing';
import { describe, expect, it } from 'vitest';
import { TEST_OWNER as owner, countsOf, storeFixture } from './internal/test-fixture.js';

const t = storeFixture('pending');

describe('Store.pendingWork', () => {
  it('counts what a removed file left until a read-write store collects it', async () => {
    const made = await t.fresh();
    expect(await made.pendingWork()).toEqual({ gcInodes: 0, freeBlocks: 0, deadMembers: 0, deadSessions: 0 });
    // Closed: its collector must not take the work below before the read-only store counts it.
    await made.close();
    // A read-only store has no collector: what another client leaves stays pending.
    const ro = await t.fresh({ prefix: made.prefix, readOnly: true });
    const k = keysFor(made.prefix);
    await t.raw.sAdd(k.freeBlocks, ['900001', '900002']);
    await t.raw.sAdd(k.gc, '123456');
    await t.raw.sAdd(k.deadMembers, `${k.family}@gone`);
    // A session that expired a minute ago, one declared dead, and one alive.
    await t.raw.zAdd(k.sessions, [
      { score: Date.now() - 60_000, value: 'dead00000000beef' },
      { score: 0, value: 'dead00000000feed' },
      { score: Date.now() + 60_000, value: '00000000a11ce000' },
    ]);
    await t.raw.hSet(k.session('00000000a11ce000'), 'host', 'alive');
    expect(await ro.pendingWork()).toEqual({ gcInodes: 1, freeBlocks: 2, deadMembers: 1, deadSessions: 2 });
    expect(await countsOf(ro, () => ro.pendingWork())).toEqual({ SCARD: 3, ZCOUNT: 1 });

    // A read-write store's collector works through all of it, and its session ends the dead ones.
    await t.raw.zRem(k.sessions, '00000000a11ce000');
    await t.raw.del(k.session('00000000a11ce000'));
    const rw = await t.fresh({ prefix: made.prefix, session: {} });
    const f = await rw.mknod(rw.rootIno, 'f', 0o644, owner);
    await rw.write(f.ino, 0, randomBytes(3 * rw.blockSize));
    await rw.unlink(rw.rootIno, 'f');
    await rw.collected();
    await waitFor(async () => (await ro.pendingWork()).deadSessions === 0, { timeoutMs: 5000, what: 'the dead sessions to be ended' });
    expect(await ro.pendingWork()).toEqual({ gcInodes: 0, freeBlocks: 0, deadMembers: 0, deadSessions: 0 });
  });
});
