/**
 * New files belong to the process that creates them (the patched fuse-native passes the caller's
 * uid/gid), and the kernel checks permissions (default_permissions).
 */
import { chmod, mkdir, stat, writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { describeWithRedis, mountRedisfs, run, uniquePrefix } from './helpers/index.js';

const asRoot = process.getuid?.() === 0;

await describeWithRedis('ownership and permissions', { fuse: true, skipIf: !asRoot }, (redis) => {
  /** Runs a shell command as uid/gid 1000 (an ordinary user). */
  const asUser = (script: string) => run('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'sh', '-c', script]);

  it("gives new files their creator's uid and gid, and refuses what the mode forbids", async () => {
    await using mnt = await mountRedisfs({ redis, prefix: uniquePrefix('owner'), extraArgs: ['--allow-other'] });
    await chmod(mnt.dir, 0o777);
    const made = await asUser(`echo mine > '${mnt.path('user-file')}' && mkdir '${mnt.path('user-dir')}'`);
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    for (const name of ['user-file', 'user-dir']) {
      expect(await stat(mnt.path(name))).toMatchObject({ uid: 1000, gid: 1000 });
    }

    await mkdir(mnt.path('root-only'), { mode: 0o700 });
    await writeFile(mnt.path('root-file'), 'secret', { mode: 0o600 });
    const denied = await asUser(`cat '${mnt.path('root-file')}'; touch '${mnt.path('root-only/x')}'`);
    expect(denied.stderr).toMatch(/root-file: Permission denied/);
    expect(denied.stderr).toMatch(/root-only\/x.*Permission denied/);
  });
});
