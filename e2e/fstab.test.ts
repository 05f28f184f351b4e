/**
 * redisfs as mount(8), fstab and systemd run it: `mount -t fuse.redisfs SOURCE MP -o …` and
 * `mount -T FSTAB MP` go through the machine's /sbin/mount.fuse, which runs `redisfs SOURCE MP
 * -o OPTS` with /bin/sh, and mount(8) clears PATH first: `redisfs` is looked up on the shell's
 * default PATH (/usr/local/bin, /usr/bin, …) only. So each mount(8) here runs in a mount
 * namespace of its own where a temp dir holding `redisfs` (the built CLI) is bind-mounted on
 * /usr/local/bin; the mountpoints live in a shared bind mount, so the FUSE mount made inside shows
 * in this process's namespace too, and `umount` here reaches it there. The machine's
 * /usr/local/bin and /etc/fstab are never touched. Root only (mount(8) helpers, namespaces).
 */
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import {
  isAlive,
  MOUNT_CLI,
  REPO_ROOT,
  PrerequisiteError,
  describeWithRedis,
  disposeWhenTestEnds,
  findExecutable,
  findMount,
  forceUnmount,
  isCi,
  isMounted,
  redisCommand,
  requireBuilt,
  run,
  runOk,
  tempDir,
  uniquePrefix,
  waitFor,
  type RunResult,
  type TempDir,
} from './helpers/index.js';

/** mount(8) with FUSE's helper, namespaces, and root to use them. */
function requireMountHelpers(): boolean {
  const missing = process.getuid?.() !== 0
    ? 'root (mount(8) helpers and mount namespaces): run the e2e suite as root'
    : !existsSync('/sbin/mount.fuse') && !existsSync('/sbin/mount.fuse3')
      ? '/sbin/mount.fuse: install it with `sudo apt-get install fuse`'
      : ['mount', 'umount', 'unshare', 'findmnt'].find((tool) => !findExecutable(tool));
  if (missing === undefined) return true;
  const message = `${missing.includes(' ') ? missing : `${missing} (util-linux)`} is missing`;
  if (isCi()) throw new PrerequisiteError(`${message} (CI=true: the e2e suite does not skip in CI)`);
  console.warn(`[e2e] skipping fstab tests: ${message}`);
  return false;
}

const mountHelpers = requireMountHelpers();

const lines = (text: string) => text.split('\n').filter((line) => line.trim() !== '');


/**
 * Where mount(8) runs with the built `redisfs` installed as /usr/local/bin/redisfs (in its own
 * mount namespace), and mountpoints under a shared bind mount. Dispose unmounts everything and
 * stops every redisfs process it saw start.
 */
class MountStage implements AsyncDisposable {
  private readonly mountpoints: string[] = [];
  private readonly pids: number[] = [];
  private disposed = false;

  private constructor(
    private readonly dir: TempDir,
    private readonly shared: string,
  ) {}

  static async create(): Promise<MountStage> {
    const dir = await tempDir('fstab');
    const shared = dir.join('shared');
    await mkdir(dir.join('bin'));
    await mkdir(shared);
    // What an installed `redisfs` is: found without PATH, it runs the built CLI with this node.
    await writeFile(dir.join('bin', 'redisfs'), `#!/bin/sh\nexec '${process.execPath}' '${requireBuilt(MOUNT_CLI)}' "$@"\n`, { mode: 0o755 });
    const stage = new MountStage(dir, shared);
    disposeWhenTestEnds(stage);
    // Its own peer group: mounts made under it in the namespace propagate here.
    await runOk('mount', ['--bind', shared, shared]);
    await runOk('mount', ['--make-shared', shared]);
    return stage;
  }

  path(...parts: string[]): string {
    return this.dir.join(...parts);
  }

  /** A new empty mountpoint under the shared bind mount. */
  async mountpoint(name: string): Promise<string> {
    const mp = `${this.shared}/${name}`;
    await mkdir(mp);
    this.mountpoints.push(mp);
    return mp;
  }

  /**
   * Runs `mount ...args` in a new mount namespace whose /usr/local/bin is the stage's bin dir.
   * The mount that contains /usr/local/bin is made a slave first, so the bind stays there.
   */
  async mount(args: string[]): Promise<RunResult> {
    const script = 'mount --make-slave "$(findmnt -n -o TARGET -T /usr/local/bin)" && mount --bind "$1" /usr/local/bin && shift && exec mount "$@"';
    const result = await run('unshare', ['--mount', '--propagation', 'unchanged', 'sh', '-c', script, 'sh', this.dir.join('bin'), ...args]);
    // `mounted P at DIR (pid N), …`: the background redisfs process.
    const pid = /\(pid (\d+)\)/.exec(result.stdout)?.[1];
    if (pid !== undefined) this.pids.push(Number(pid));
    return result;
  }

  /** The pid of the redisfs process a successful mount() started. */
  pidOf(result: RunResult): number {
    const pid = /\(pid (\d+)\)/.exec(result.stdout)?.[1];
    if (pid === undefined) throw new Error(`mount printed no pid:\n${result.stdout}\n${result.stderr}`);
    return Number(pid);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    try {
      for (const mp of this.mountpoints) await forceUnmount(mp).catch(() => undefined);
      for (const pid of this.pids) {
        const gone = await waitFor(() => !isAlive(pid), { timeoutMs: 10_000, what: `redisfs (pid ${pid}) to exit` }).catch(() => false);
        if (!gone) process.kill(pid, 'SIGKILL');
      }
    } finally {
      spawnSync('umount', ['-l', this.shared], { stdio: 'ignore' });
      await this.dir.remove();
    }
  }
}

await describeWithRedis('mount(8), fstab and systemd', { fuse: true, skipIf: !mountHelpers }, (redis) => {
  /** redis://127.0.0.1:PORT/PREFIX */
  const sourceOf = (prefix: string) => `${redis.url}/${prefix}`;

  async function expectMounted(mp: string, source: string, result: RunResult): Promise<void> {
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await findMount(mp)).toMatchObject({ fsType: 'fuse.redisfs', source });
  }

  async function expectUnmountedAndGone(mp: string, pid: number): Promise<void> {
    await runOk('umount', [mp]);
    expect(await isMounted(mp)).toBe(false);
    await waitFor(() => !isAlive(pid), { timeoutMs: 15_000, what: `redisfs (pid ${pid}) to exit after umount` });
  }

  it('mount -t fuse.redisfs SOURCE MP mounts in the background; umount unmounts and the process exits', async () => {
    await using stage = await MountStage.create();
    const prefix = uniquePrefix('mount-t');
    const mp = await stage.mountpoint('mp');
    const options = `cache_timeout=0,_netdev,log_file=${stage.path('redisfs.log')}`;
    const mounted = await stage.mount(['-t', 'fuse.redisfs', sourceOf(prefix), mp, '-o', options]);
    await expectMounted(mp, sourceOf(prefix), mounted);
    await writeFile(`${mp}/hello.txt`, 'written through mount(8)\n');
    await expectUnmountedAndGone(mp, stage.pidOf(mounted));

    // Mounted again, the file is there: it went to Redis under the prefix SOURCE names.
    const again = await stage.mount(['-t', 'fuse.redisfs', sourceOf(prefix), mp, '-o', options]);
    await expectMounted(mp, sourceOf(prefix), again);
    expect(await readFile(`${mp}/hello.txt`, 'utf8')).toBe('written through mount(8)\n');
    await expectUnmountedAndGone(mp, stage.pidOf(again));
  });

  it('mount -T FSTAB MP mounts the fstab line for MP', async () => {
    await using stage = await MountStage.create();
    const prefix = uniquePrefix('fstab');
    const mp = await stage.mountpoint('mp');
    const fstab = stage.path('fstab');
    await writeFile(
      fstab,
      `# a test fstab\n${sourceOf(prefix)}  ${mp}  fuse.redisfs  _netdev,cache_timeout=0,noauto,log_file=${stage.path('redisfs.log')}  0 0\n`,
    );
    const mounted = await stage.mount(['-T', fstab, mp]);
    await expectMounted(mp, sourceOf(prefix), mounted);
    await writeFile(`${mp}/f`, 'x');
    expect(await readFile(`${mp}/f`, 'utf8')).toBe('x');
    await expectUnmountedAndGone(mp, stage.pidOf(mounted));
  });

  it('applies nosuid, nodev and noexec (fstab `user` implies them), and refuses what it cannot honour', async () => {
    await using stage = await MountStage.create();
    const mp = await stage.mountpoint('mp');
    const fstab = stage.path('fstab');
    await writeFile(fstab, `${sourceOf(uniquePrefix('flags'))} ${mp} fuse.redisfs noauto,user,cache_timeout=0,log_file=${stage.path('redisfs.log')} 0 0\n`);
    const mounted = await stage.mount(['-T', fstab, mp]);
    expect(mounted.code).toBe(0);
    expect((await findMount(mp))?.options).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec']));
    await writeFile(`${mp}/script.sh`, '#!/bin/sh\necho ran\n', { mode: 0o755 });
    const exec = await run('sh', ['-c', `'${mp}/script.sh'`], { env: { ...process.env, LC_ALL: 'C' } });
    expect(exec.code).not.toBe(0);
    expect(exec.stderr).toMatch(/Permission denied/);
    await expectUnmountedAndGone(mp, stage.pidOf(mounted));

    const refused = await stage.mount(['-t', 'fuse.redisfs', sourceOf(uniquePrefix('flags')), mp, '-o', 'relatime']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('redisfs: -o relatime cannot be honoured: redisfs never updates access times');
    expect(await isMounted(mp)).toBe(false);
  });

  it('-o password_file keeps the password out of fstab, /proc/mounts and ps', async () => {
    await using stage = await MountStage.create();
    const password = `pw-${uniquePrefix('secret')}`;
    await redisCommand(redis, ['ACL', 'SETUSER', 'fstabuser', 'on', 'resetpass', `>${password}`, '~*', '&*', '+@all']);
    const passwordFile = stage.path('password');
    await writeFile(passwordFile, `${password}\n`);
    await chmod(passwordFile, 0o600);
    const mp = await stage.mountpoint('mp');
    const source = `redis://fstabuser@127.0.0.1:${redis.port}/${uniquePrefix('pwfile')}`;
    const fstab = stage.path('fstab');
    await writeFile(fstab, `${source} ${mp} fuse.redisfs _netdev,password_file=${passwordFile},log_file=${stage.path('redisfs.log')} 0 0\n`);
    const mounted = await stage.mount(['-T', fstab, mp]);
    await expectMounted(mp, source, mounted);
    await writeFile(`${mp}/f`, 'as fstabuser');
    const pid = stage.pidOf(mounted);
    for (const file of [`/proc/${pid}/cmdline`, `/proc/${pid}/environ`, '/proc/self/mountinfo', '/run/mount/utab']) {
      const text = existsSync(file) ? await readFile(file, 'utf8') : '';
      expect(text, file).not.toContain(password);
    }
    await expectUnmountedAndGone(mp, pid);
  });

  it('the SOURCE form with a bad option: exit code 2 and one line on stderr', async () => {
    await using dir = await tempDir('mnt');
    const result = await run(process.execPath, [requireBuilt(MOUNT_CLI), `redis://u:hunter22@127.0.0.1:${redis.port}/p`, dir.path, '-o', 'cache_timeout=0,bogus']);
    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual(['redisfs: -o bogus is not a redisfs option (see redisfs --help; escape a comma inside a value as \\,)']);
    expect(result.stdout).toBe('');
    expect(await isMounted(dir.path)).toBe(false);
  });

  const systemdAnalyze = findExecutable('systemd-analyze');
  // Only verifies unit files; systemd need not run. Not installed: nothing to verify them with.
  it.skipIf(!systemdAnalyze)('the systemd units in docs/systemd are valid (systemd-analyze verify; skipped: systemd-analyze is not installed)', async () => {
    const units = ['srv-redisfs.mount', 'srv-redisfs.automount'].map((u) => join(REPO_ROOT, 'docs/systemd', u));
    const result = await run(systemdAnalyze!, ['verify', ...units]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    const mount = await readFile(units[0]!, 'utf8');
    expect(mount).toMatch(/^Type=fuse\.redisfs$/m);
    expect(mount).toMatch(/^After=network-online\.target$/m);
    expect(mount).toMatch(/^Options=_netdev,/m);
  });
});
