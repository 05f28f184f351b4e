/**
 * Progress of the long jobs as a user sees it, the built CLIs against a real Redis holding a
 * filesystem of a few thousand files: stdout keeps the one result line, progress goes to stderr.
 * With stderr not a terminal: plain lines, each `<program>: <what>: <phase>: <done>[/<total>]
 * <unit> …, <t> elapsed`, then `finished in <t>`. REDISFS_PROGRESS=always shows them however short
 * the job (a fast machine snapshots a few thousand files well within the 2 s quiet time). On a
 * terminal (`script`): one line redrawn in place and cleared before the result line.
 */
import { openStore } from '@redisfs/store';
import { beforeAll, expect, it } from 'vitest';
import {
  MOUNT_CLI,
  SNAPSHOT_CLI,
  describeWithRedis,
  findExecutable,
  requireBuilt,
  run,
  startLayout1Redis,
  uniquePrefix,
  type RunResult,
} from './helpers/index.js';

const FILES = 3000;
/** The root, /d, and the files. */
const INODES = FILES + 2;

/** A time as the progress shows it: `0.4 s`, `12 s`, `3 min 05 s`, `2 h 07 min`. */
const TIME = '(\\d+ h \\d{2} min|(\\d+ min )?\\d+(\\.\\d)? s)';

/** `<done>/<total> <unit> (<n>%)` or `<done> <unit>`, then the rate and time left when known, then the time elapsed. */
function lineShape(head: string, unit: string): RegExp {
  return new RegExp(`^${escape(head)}: \\d+(/\\d+ ${unit} \\(\\d{1,3}%\\)| ${unit})(, [\\d.]+ ${unit}/s(, ${TIME} left)?)?, ${TIME} elapsed$`);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** stderr's lines. */
const linesOf = (text: string) => text.split('\n').filter((l) => l !== '');

/**
 * Checks plain progress lines: each of the shape for its phase, the phases in order (a slow
 * machine may print more than one line of a phase), then `finished in`.
 */
function expectProgressLines(stderr: string, label: string, phases: ReadonlyArray<readonly [phase: string, unit: string]>): void {
  const lines = linesOf(stderr);
  expect(lines.at(-1)).toMatch(new RegExp(`^${escape(label)}: finished in ${TIME}$`));
  const seen: string[] = [];
  for (const line of lines.slice(0, -1)) {
    const match = phases.find(([phase]) => line.startsWith(`${label}: ${phase}: `));
    expect(match, line).toBeDefined();
    expect(line).toMatch(lineShape(`${label}: ${match![0]}`, match![1]));
    if (seen.at(-1) !== match![0]) seen.push(match![0]);
  }
  expect(seen).toEqual(phases.map(([phase]) => phase));
}

await describeWithRedis('progress of the long jobs', {}, (redis) => {
  let prefix = '';
  beforeAll(async () => {
    prefix = uniquePrefix('progress');
    const store = await openStore({ url: redis.url, prefix });
    try {
      await store.mkdirp('/d');
      for (let i = 0; i < FILES; i += 100) {
        await Promise.all(Array.from({ length: 100 }, (_, j) => store.writeFile(`/d/f${i + j}`, `file ${i + j}\n`)));
      }
    } finally {
      await store.close();
    }
  });

  const snapshotCli = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> =>
    run(process.execPath, [requireBuilt(SNAPSHOT_CLI), ...args, '--url', redis.url], { env: { ...process.env, ...env } });

  it('redisfs-snapshot: plain lines on stderr per phase, the result line alone on stdout', async () => {
    const to = `${prefix}@p`;
    const snap = await snapshotCli(['--from', prefix, '--to', to], { REDISFS_PROGRESS: 'always' });
    expect(snap.code, snap.stderr).toBe(0);
    expect(linesOf(snap.stdout)).toEqual([expect.stringMatching(new RegExp(`^snapshot of '${escape(prefix)}' as '${escape(to)}' at \\S+ \\(\\d+ keys in [\\d.]+ s\\)$`))]);
    const label = `redisfs-snapshot: snapshot of '${prefix}' as '${to}'`;
    expectProgressLines(snap.stderr, label, [['copying', 'inodes']]);
    expect(snap.stderr).toMatch(new RegExp(`^${escape(label)}: copying: 0/${INODES} inodes \\(0%\\), ${TIME} elapsed\n`));

    const del = await snapshotCli(['delete', '--prefix', to], { REDISFS_PROGRESS: 'always' });
    expect(del.code, del.stderr).toBe(0);
    expect(linesOf(del.stdout)).toEqual([expect.stringMatching(new RegExp(`^deleted '${escape(to)}' \\(\\d+ keys\\)$`))]);
    expectProgressLines(del.stderr, `redisfs-snapshot: deleting '${to}'`, [['metadata', 'inodes'], ['data blocks', 'blocks']]);
  });

  it('redisfs fsck: a line per phase on stderr, the report alone on stdout', async () => {
    const fsck = await run(process.execPath, [requireBuilt(MOUNT_CLI), 'fsck', '--url', redis.url, '--prefix', prefix], {
      env: { ...process.env, REDISFS_PROGRESS: 'always' },
    });
    expect(fsck.code, fsck.stderr).toBe(0);
    expect(linesOf(fsck.stdout)).toEqual([expect.stringMatching(new RegExp(`^${prefix} on .*: ${INODES} inodes \\(2 directories\\), .*: clean$`))]);
    const label = `redisfs fsck: '${prefix}'`;
    expectProgressLines(fsck.stderr, label, [['metadata', 'inodes'], ['data blocks', 'blocks'], ['block maps', 'maps'], ['reference counts', 'entries']]);
    expect(fsck.stderr).toMatch(new RegExp(`^${escape(label)}: metadata: 0/${INODES} inodes \\(0%\\), `));
  });

  it('prints nothing but well-formed progress lines by default, and nothing at all with REDISFS_PROGRESS=off', async () => {
    const to = `${prefix}@q`;
    const snap = await snapshotCli(['--from', prefix, '--to', to]);
    expect(snap.code, snap.stderr).toBe(0);
    expect(linesOf(snap.stdout)).toHaveLength(1);
    // A job this short prints nothing on most machines; a slow one may print lines, never others.
    const label = `redisfs-snapshot: snapshot of '${prefix}' as '${to}'`;
    for (const line of linesOf(snap.stderr)) expect(line).toMatch(new RegExp(`^${escape(label)}: (copying: .* elapsed|finished in .*)$`));
    const del = await snapshotCli(['delete', '--prefix', to], { REDISFS_PROGRESS: 'off' });
    expect({ code: del.code, stderr: del.stderr, stdout: linesOf(del.stdout).length }).toEqual({ code: 0, stderr: '', stdout: 1 });
  });

  it('redisfs upgrade: its lines on stderr, the summary alone on stdout', async () => {
    await using layout1 = await startLayout1Redis();
    const upgrade = await run(process.execPath, [requireBuilt(MOUNT_CLI), 'upgrade', '--url', layout1.url, '--prefix', 'skx'], {
      env: { ...process.env, REDISFS_PROGRESS: 'always' },
    });
    expect(upgrade.code, upgrade.stderr).toBe(0);
    expect(linesOf(upgrade.stdout)).toEqual([expect.stringMatching(/^upgraded 'skx' to layout 3: \d+ inodes converted, \d+ blocks mapped, \d+ dropped$/)]);
    // Layout 1 takes both passes: the block maps, then the inode records.
    expectProgressLines(upgrade.stderr, "redisfs upgrade: 'skx'", [['mapping blocks', 'keys'], ['converting inodes', 'inodes']]);
  });

  it.skipIf(!findExecutable('script'))('redisfs upgrade on a terminal: one line redrawn through both passes, cleared before the summary', async () => {
    await using layout1 = await startLayout1Redis();
    const command = [process.execPath, requireBuilt(MOUNT_CLI), 'upgrade', '--url', layout1.url, '--prefix', 'skx'].join(' ');
    const tty = await run('script', ['-qec', command, '/dev/null'], { env: { ...process.env, REDISFS_PROGRESS: 'always' } });
    expect(tty.code, tty.stdout).toBe(0);
    const label = "redisfs upgrade: 'skx'";
    const CLEAR = '\r\x1b[K';
    // The first pass is drawn at once; later draws (at most one per 100 ms) show either pass.
    expect(tty.stdout.startsWith(`${CLEAR}${label}: mapping blocks: `), JSON.stringify(tty.stdout)).toBe(true);
    const draws = tty.stdout.split(CLEAR).slice(1);
    for (const draw of draws.slice(0, -1)) {
      expect(draw).toMatch(new RegExp(`^${escape(label)}: (mapping blocks: \\d+(/\\d+)? keys|converting inodes: \\d+(/\\d+)? inodes)`));
    }
    expect(draws.at(-1)).toMatch(/^upgraded 'skx' to layout 3: \d+ inodes converted, \d+ blocks mapped, \d+ dropped\r?\n$/);
  });

  it.skipIf(!findExecutable('script'))('on a terminal: one line redrawn in place, cleared before the result line', async () => {
    const to = `${prefix}@t`;
    const command = [process.execPath, requireBuilt(SNAPSHOT_CLI), '--from', prefix, '--to', to, '--url', redis.url].join(' ');
    // script(1) runs it on a pseudo-terminal (stdout and stderr both), and copies what it wrote.
    const tty = await run('script', ['-qec', command, '/dev/null'], { env: { ...process.env, REDISFS_PROGRESS: 'always' } });
    expect(tty.code, tty.stdout).toBe(0);
    const label = `redisfs-snapshot: snapshot of '${prefix}' as '${to}'`;
    const CLEAR = '\r\x1b[K';
    expect(tty.stdout.startsWith(`${CLEAR}${label}: copying: 0/${INODES} inodes (0%)`), JSON.stringify(tty.stdout)).toBe(true);
    // Every draw starts at the line's start and clears it; the last one clears it for the result.
    const draws = tty.stdout.split(CLEAR).slice(1);
    for (const draw of draws.slice(0, -1)) expect(draw).toMatch(new RegExp(`^${escape(label)}: copying: \\d+/${INODES} inodes \\(\\d+%\\)`));
    expect(draws.at(-1)).toMatch(new RegExp(`^snapshot of '${escape(prefix)}' as '${escape(to)}' at \\S+ \\(\\d+ keys in [\\d.]+ s\\)\\r?\\n$`));
  });
});
