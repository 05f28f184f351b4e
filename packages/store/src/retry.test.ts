/**
 * Changes sent twice: through a failover, a command whose reply was lost with its connection is
 * sent again (internal/topology.ts). These tests replay that on one server.
 */
import { describe, expect, it } from 'vitest';
import { TEST_OWNER as owner, storeFixture } from './internal/test-fixture.js';
import type { ScriptRunner } from './internal/scripts.js';

const t = storeFixture('retry');

/** Makes the next call of script `name` run twice, answering with the second run (the retry). */
function replayNext(store: object, name: string): void {
  const scripts = (store as { ctx: { scripts: ScriptRunner } }).ctx.scripts;
  const run = scripts.run.bind(scripts);
  let armed = true;
  scripts.run = async (script, metaPrefix, args) => {
    if (!armed || script !== name) return run(script, metaPrefix, args);
    armed = false;
    await run(script, metaPrefix, args); // ran; its reply is lost
    return run(script, metaPrefix, args);
  };
}

describe('a create sent again after its reply was lost', () => {
  it('finds its own entry and succeeds, once', async () => {
    const s = await t.fresh();
    replayNext(s, 'create');
    const f = await s.mknod(s.rootIno, 'f', 0o644, owner);
    expect((await s.lookup(s.rootIno, 'f')).ino).toBe(f.ino);
    replayNext(s, 'create');
    const d = await s.mkdir(s.rootIno, 'd', 0o755, owner);
    expect(d.type).toBe('dir');
    expect((await s.readdir(s.rootIno)).map((e) => e.name).sort()).toEqual(['d', 'f']);
  });

  it('still answers EEXIST for a name another create took', async () => {
    const s = await t.fresh();
    await s.mknod(s.rootIno, 'taken', 0o644, owner);
    replayNext(s, 'create');
    await expect(s.mknod(s.rootIno, 'taken', 0o644, owner)).rejects.toMatchObject({ code: 'EEXIST' });
  });
});
