/**
 * The commands the set-up installs: scripts/install-commands.sh links `redisfs` and
 * `redisfs-snapshot` into a bin directory (REDISFS_BIN_DIR here, a temp dir), and they then run
 * from anywhere with node alone (no pnpm banner, nothing of the command line in the daemon's
 * environment); a second run changes nothing; a file or link that is not ours is left alone.
 * And scripts/bootstrap.sh skips `pnpm install` and `pnpm build` when their inputs did not change:
 * checked on a copy of the repository with a stand-in `pnpm` that records its calls, so this test
 * never reinstalls or rebuilds the shared tree.
 */
import { appendFile, chmod, cp, lstat, mkdir, readFile, readlink, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  isAlive,
  MOUNT_CLI,
  REPO_ROOT,
  SNAPSHOT_CLI,
  forceUnmount,
  isMounted,
  prerequisitesMet,
  redisCommand,
  requireBuilt,
  run,
  startRedis,
  tempDir,
  uniquePrefix,
  waitFor,
  type RunResult,
} from './helpers/index.js';

const ready = await prerequisitesMet({ fuse: true });

const INSTALL_COMMANDS = join(REPO_ROOT, 'scripts/install-commands.sh');

/** A PATH with the bin dir, node's dir and the system dirs only (no pnpm, no repo). */
const pathWith = (binDir: string) => [binDir, dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':');

/** A minimal environment, as a login shell would give: no npm_* variables. */
const userEnv = (binDir: string): NodeJS.ProcessEnv => ({ PATH: pathWith(binDir), HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8' });

/** Runs scripts/install-commands.sh of this tree into `binDir`. */
function installCommands(binDir: string): Promise<RunResult> {
  return run('bash', [INSTALL_COMMANDS], { env: { ...process.env, REDISFS_BIN_DIR: binDir }, cwd: '/' });
}

/** What betrays a pnpm wrapper around a command. */
function expectNoPnpm(result: RunResult): void {
  const all = result.stdout + result.stderr;
  expect(all).not.toContain('ELIFECYCLE');
  expect(all).not.toMatch(/^> /m);
  expect(all).not.toContain('ERR_PNPM');
}

/** Whether process `pid` exists. */
/** The script an installed wrapper runs (its exec line's last quoted path). */
async function runs(wrapper: string): Promise<string | undefined> {
  const exec = (await readFile(wrapper, 'utf8')).split('\n').find((line) => line.startsWith('exec '));
  return exec === undefined ? undefined : /'([^']*)' "\$@"$/.exec(exec)?.[1];
}


describe('installed commands (scripts/install-commands.sh)', () => {
  it('installs redisfs and redisfs-snapshot as wrappers of the built CLIs; they run from /, even with no PATH (as mount(8) runs them); a second run changes nothing', async () => {
    requireBuilt(MOUNT_CLI);
    requireBuilt(SNAPSHOT_CLI);
    await using bin = await tempDir('bin');

    const first = await installCommands(bin.path);
    expect(first, first.stderr).toMatchObject({ code: 0 });
    expect(first.stdout).toContain(`redisfs: ${bin.join('redisfs')} runs ${await realpath(MOUNT_CLI)} (installed)`);
    expect(await runs(bin.join('redisfs'))).toBe(await realpath(MOUNT_CLI));
    expect(await runs(bin.join('redisfs-snapshot'))).toBe(await realpath(SNAPSHOT_CLI));
    // The temp dir is not on the test's PATH: the script says which line to add.
    expect(first.stdout).toContain(`export PATH="${bin.path}:$PATH"`);

    // Run by path and by name, from /, where no package.json is (pnpm would fail there).
    const mount = await run(bin.join('redisfs'), ['--help'], { cwd: '/', env: userEnv(bin.path) });
    expect(mount, mount.stderr).toMatchObject({ code: 0 });
    expect(mount.stdout).toContain('redisfs --mount DIR');
    expectNoPnpm(mount);
    const snapshot = await run('redisfs-snapshot', ['--help'], { cwd: '/', env: userEnv(bin.path) });
    expect(snapshot, snapshot.stderr).toMatchObject({ code: 0 });
    expect(snapshot.stdout).toContain('redisfs-snapshot');
    expect(snapshot.stdout).toContain('--from');
    expectNoPnpm(snapshot);
    // mount(8) runs a helper with no environment at all: node is found by its absolute path.
    const bare = await run(bin.join('redisfs'), ['--version'], { cwd: '/', env: {} });
    expect(bare, bare.stderr).toMatchObject({ code: 0 });

    const before = await lstat(bin.join('redisfs'), { bigint: true });
    const second = await installCommands(bin.path);
    expect(second, second.stderr).toMatchObject({ code: 0 });
    expect(second.stdout).toContain('(already installed)');
    expect(second.stdout).not.toContain('(installed)');
    const after = await lstat(bin.join('redisfs'), { bigint: true });
    // The very same file: not replaced by an equal one.
    expect({ ino: after.ino, mtime: after.mtimeNs }).toEqual({ ino: before.ino, mtime: before.mtimeNs });
  });

  it('leaves a file or a foreign link at a command path alone, with an error, and still installs the other', async () => {
    await using bin = await tempDir('bin');
    await writeFile(bin.join('redisfs'), '#!/bin/sh\necho mine\n', { mode: 0o755 });
    const foreignFile = await installCommands(bin.path);
    expect(foreignFile.code).toBe(1);
    expect(foreignFile.stderr).toContain(`${bin.join('redisfs')} exists and is not a redisfs command: left alone`);
    expect(await readFile(bin.join('redisfs'), 'utf8')).toBe('#!/bin/sh\necho mine\n');
    expect(await runs(bin.join('redisfs-snapshot'))).toBe(await realpath(SNAPSHOT_CLI));

    await rm(bin.join('redisfs'));
    await rm(bin.join('redisfs-snapshot'));
    await symlink('/bin/true', bin.join('redisfs-snapshot'));
    const foreignLink = await installCommands(bin.path);
    expect(foreignLink.code).toBe(1);
    expect(foreignLink.stderr).toContain(`${bin.join('redisfs-snapshot')} is a link to /bin/true, not to a redisfs checkout: left alone`);
    expect(await readlink(bin.join('redisfs-snapshot'))).toBe('/bin/true');
    expect(await runs(bin.join('redisfs'))).toBe(await realpath(MOUNT_CLI));

    // A symlink into a redisfs checkout (how earlier versions installed) is ours: replaced.
    await rm(bin.join('redisfs-snapshot'));
    await symlink('/old/checkout/apps/snapshot/dist/cli.js', bin.join('redisfs-snapshot'));
    const moved = await installCommands(bin.path);
    expect(moved, moved.stderr).toMatchObject({ code: 0 });
    expect(moved.stdout).toContain('was a link to /old/checkout/apps/snapshot/dist/cli.js: now runs ');
    expect(await runs(bin.join('redisfs-snapshot'))).toBe(await realpath(SNAPSHOT_CLI));

    // One of ours that runs another checkout (this one moved) is updated.
    await writeFile(bin.join('redisfs'), (await readFile(bin.join('redisfs'), 'utf8')).replace(/'[^']*cli\.js'/, "'/old/checkout/apps/mount/dist/cli.js'"));
    const updated = await installCommands(bin.path);
    expect(updated, updated.stderr).toMatchObject({ code: 0 });
    expect(updated.stdout).toContain('(updated)');
    expect(await runs(bin.join('redisfs'))).toBe(await realpath(MOUNT_CLI));
  });

  it.skipIf(!ready)('the installed redisfs mounts as a --daemon from /, with no npm_* variables and no password on its command line or in its environment', async () => {
    await using redis = await startRedis();
    await redisCommand(redis, ['ACL', 'SETUSER', 'installed', 'on', '>hunter22', '~*', '&*', '+@all']);
    await using bin = await tempDir('bin');
    expect((await installCommands(bin.path)).code).toBe(0);
    await using dir = await tempDir('mnt');
    const mountpoint = dir.join('mnt');
    await mkdir(mountpoint);
    const url = `redis://installed:hunter22@${redis.host}:${redis.port}`;
    let pid: number | undefined;
    try {
      const result = await run('redisfs', ['--url', url, '--prefix', uniquePrefix('installed'), '--mount', mountpoint, '--daemon'], {
        cwd: '/',
        env: userEnv(bin.path),
      });
      expect(result, result.stderr).toMatchObject({ code: 0 });
      expectNoPnpm(result);
      expect(result.stdout + result.stderr).not.toContain('hunter22');
      pid = Number(/\bpid\D{0,3}(\d+)/.exec(result.stdout + result.stderr)?.[1]);
      expect(pid, result.stdout + result.stderr).toBeGreaterThan(0);
      await writeFile(join(mountpoint, 'hello'), 'through the installed command');
      expect(await readFile(join(mountpoint, 'hello'), 'utf8')).toBe('through the installed command');
      // No pnpm in between: no npm_lifecycle_script repeating the command line; and the daemon
      // gets its address over its IPC channel, not in its environment.
      const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
      expect(environ.filter((v) => v.startsWith('npm_'))).toEqual([]);
      expect(environ.join('\n')).not.toContain('hunter22');
      expect(await readFile(`/proc/${pid}/cmdline`, 'utf8')).not.toContain('hunter22');
      process.kill(pid, 'SIGTERM');
      await waitFor(async () => !(await isMounted(mountpoint)), { timeoutMs: 15_000, what: `the daemon to unmount ${mountpoint}` });
      await waitFor(() => !isAlive(pid!), { timeoutMs: 15_000, what: `daemon pid ${pid} to exit` });
    } finally {
      if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
      await forceUnmount(mountpoint);
    }
  });
});

/** A stand-in pnpm: answers --version with the pinned one, records every other call, fakes a build. */
const FAKE_PNPM = `#!/usr/bin/env bash
if [[ $1 == --version ]]; then node -p 'require("./package.json").packageManager.slice(5).split("+")[0]'; exit 0; fi
echo "$*" >>"$FAKE_PNPM_LOG"
case $1 in
  install) mkdir -p node_modules ;;
  build)
    [[ -n \${FAKE_PNPM_FAIL:-} ]] && { echo "src/index.ts(1,1): error TS1005: ';' expected." >&2; exit 1; }
    for d in packages/*/ apps/*/; do
      mkdir -p "$d/dist"
      if [[ $d == apps/* ]]; then printf '#!/usr/bin/env node\\nconsole.log("usage")\\n' >"$d/dist/cli.js"; else echo 'export {};' >"$d/dist/index.js"; fi
    done ;;
esac
`;

describe('scripts/bootstrap.sh re-runs (on a copy, with a stand-in pnpm)', () => {
  it('installs and builds once, then skips both until a source, a package.json or --force says otherwise', async () => {
    await using work = await tempDir('bootstrap');
    const copy = work.join('repo');
    const skipped = new Set(['node_modules', 'dist', '.git']);
    await cp(REPO_ROOT, copy, { recursive: true, filter: (src) => !skipped.has(src.split('/').pop() ?? '') });
    await mkdir(work.join('fake'));
    await writeFile(work.join('fake/pnpm'), FAKE_PNPM);
    await chmod(work.join('fake/pnpm'), 0o755);
    const log = work.join('pnpm.log');
    const bin = work.join('bin');

    /** Runs the copy's bootstrap; resolves with its output and the pnpm calls it made. */
    const bootstrap = async (args: string[] = [], extra: NodeJS.ProcessEnv = {}) => {
      await writeFile(log, '');
      const result = await run('bash', [join(copy, 'scripts/bootstrap.sh'), ...args], {
        cwd: '/',
        env: { ...process.env, PATH: `${work.join('fake')}:${process.env.PATH}`, FAKE_PNPM_LOG: log, REDISFS_BIN_DIR: bin, ...extra },
      });
      const calls = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
      return { ...result, calls };
    };

    const first = await bootstrap();
    expect(first, first.stderr).toMatchObject({ code: 0, calls: ['install --frozen-lockfile', 'build'] });
    expect(await runs(join(bin, 'redisfs'))).toBe(join(await realpath(copy), 'apps/mount/dist/cli.js'));

    const again = await bootstrap();
    expect(again, again.stderr).toMatchObject({ code: 0, calls: [] });
    expect(again.stdout).toContain('[bootstrap] dependencies unchanged since the last install: pnpm install skipped');
    expect(again.stdout).toContain('[bootstrap] sources unchanged since the last build: pnpm build skipped');
    expect(again.stdout).toContain('(already installed)');

    // A changed source file is built; a failed build is tried again on the next run.
    await appendFile(join(copy, 'packages/store/src/index.ts'), '// changed\n');
    const failed = await bootstrap([], { FAKE_PNPM_FAIL: '1' });
    expect(failed.code).toBe(1);
    expect(failed.calls).toEqual(['build']);
    expect(failed.stderr).toContain('error TS1005');
    expect(failed.stderr).toContain('[bootstrap] error: failed (exit 1): pnpm build');
    expect((await bootstrap()).calls).toEqual(['build']);
    expect((await bootstrap()).calls).toEqual([]);

    // A test file is not part of the build.
    await appendFile(join(copy, 'packages/store/src/admin.test.ts'), '// changed\n');
    expect((await bootstrap()).calls).toEqual([]);

    // A deleted build output is rebuilt.
    await rm(join(copy, 'apps/snapshot/dist'), { recursive: true });
    expect((await bootstrap()).calls).toEqual(['build']);

    // A changed package.json reinstalls, and then builds.
    const pkg = join(copy, 'packages/schema/package.json');
    await writeFile(pkg, (await readFile(pkg, 'utf8')).replace('"version": "0.1.0"', '"version": "0.1.1"'));
    expect((await bootstrap()).calls).toEqual(['install --frozen-lockfile', 'build']);
    expect((await bootstrap()).calls).toEqual([]);

    const forced = await bootstrap(['--force']);
    expect(forced, forced.stderr).toMatchObject({ code: 0, calls: ['install --frozen-lockfile', 'build'] });
  });
});
