/**
 * Store.pendingWork: what the background collector has still to do, read in one round trip
 * (three SCARDs sent together), against a real redis-server.
 */
import { randomBytes } from 'node:crypto';
import { keysFor } from '@redisfs/schema';
import { describe, expect, it } from 'vitest';
import { TEST_OWNER as owner, countsOf, storeFixture } from './internal/test-fixture.js';

const t = storeFixture('pending');

describe('Store.pendingWork', () => {
  it('counts what a removed file left until a read-write store collects it', async () => {
    const made = await t.fresh();
    expect(await made.pendingWork()).toEqual({ gcInodes: 0, freeBlocks: 0, deadMembers: 0 });
    // Closed: its collector must not take the work below before the read-only store counts it.
    await made.close();
    // A read-only store has no collector: what another client leaves stays pending.
    const ro = await t.fresh({ prefix: made.prefix, readOnly: true });
    const k = keysFor(made.prefix);
    await t.raw.sAdd(k.freeBlocks, ['900001', '900002']);
    await t.raw.sAdd(k.gc, '123456');
    await t.raw.sAdd(k.deadMembers, `${k.family}@gone`);
    expect(await ro.pendingWork()).toEqual({ gcInodes: 1, freeBlocks: 2, deadMembers: 1 });
    expect(await countsOf(ro, () => ro.pendingWork())).toEqual({ SCARD: 3 });

    // A read-write store's collector works through all of it.
    const rw = await t.fresh({ prefix: made.prefix });
    const f = await rw.mknod(rw.rootIno, 'f', 0o644, owner);
    await rw.write(f.ino, 0, randomBytes(3 * rw.blockSize));
    await rw.unlink(rw.rootIno, 'f');
    await rw.collected();
    expect(await ro.pendingWork()).toEqual({ gcInodes: 0, freeBlocks: 0, deadMembers: 0 });
  });
});
