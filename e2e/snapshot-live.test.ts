/**
 * A snapshot taken while a writer is busy on the mounted source is a point-in-time copy: no
 * operation is half in it. The writer, a real process working through a real mount:
 *  - rewrites 256 KiB files in place, each time with one byte value throughout, and fsyncs
 *    (a point-in-time copy holds each file whole: one value throughout);
 *  - moves files between two directories with rename (each file is in exactly one of them);
 *  - creates log files, fsyncs each, and says so on stdout (every one reported before the
 *    snapshot began is whole in the copy).
 * The source also holds enough that the copy takes many batches (a snapshot copies metadata,
 * block maps included, and shares the data blocks). From Redis's SLOWLOG (every command logged
 * during the snapshot) the test checks that the copier worked in many commands, each naming a
 * bounded number of keys, and reports the longest single command as information: how long a
 * command takes is for `pnpm bench`, not for a test.
 */
import { spawn } from 'node:child_process';
import { readFile, readdir, stat } from 'node:fs/promises';
import { createClient } from '@redis/client';
import { expect, it } from 'vitest';
import {
  OutputTail,
  SNAPSHOT_CLI,
  describeWithRedis,
  disposeWhenTestEnds,
  mountRedisfs,
  requireBuilt,
  run,
  runOk,
  stopChild,
  uniquePrefix,
  waitFor,
} from './helpers/index.js';

const BIG_FILES = 24;
const BIG_SIZE = 256 * 1024;
const MOVERS = 200;
const LOG_SIZE = 10_000;
/** Files the source holds at least, each with its own metadata keys the copy must name. */
const SOURCE_FILES = 1000 + BIG_FILES + MOVERS;
/**
 * Arguments of one copier command at most: a copy batch of 200 keys (`redisfs-snapshot` copies
 * in SCAN batches of ~200 keys) plus the script's own few (EVALSHA, sha, key count, ids, lease).
 */
const MAX_ARGS_PER_COMMAND = 200 + 10;

/** A SLOWLOG entry: id, unix time, µs, the command (at most 32 arguments shown), client addr, name. */
type SlowlogEntry = [number, number, number, string[], string, string];

/** How many arguments a logged command had: SLOWLOG shows 31 and then "... (N more arguments)". */
function argumentCount(args: readonly string[]): number {
  const more = /^\.\.\. \((\d+) more arguments\)$/.exec(args.at(-1) ?? '');
  return more ? args.length - 1 + Number(more[1]) : args.length;
}

/** The addr= of every client connected now. */
function clientAddrs(clientList: string): Set<string> {
  return new Set([...clientList.matchAll(/\baddr=(\S+)/g)].map((m) => m[1]!));
}

/** The writer, run with `node -e WRITER <mountpoint>`; loops until killed. */
const WRITER = `
const fs = require('node:fs');
const path = require('node:path');
const dir = process.argv[1];
const big = Buffer.alloc(${BIG_SIZE});
const side = new Array(${MOVERS}).fill('left');
for (let round = 1; ; round++) {
  const k = round % ${BIG_FILES};
  big.fill(round % 251);
  const fd = fs.openSync(path.join(dir, 'big', 'f' + k), 'r+');
  fs.writeSync(fd, big, 0, big.length, 0);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  for (let j = 0; j < 5; j++) {
    const m = (round * 7 + j * 31) % ${MOVERS};
    const other = side[m] === 'left' ? 'right' : 'left';
    fs.renameSync(path.join(dir, side[m], 'm' + m), path.join(dir, other, 'm' + m));
    side[m] = other;
  }
  const log = path.join(dir, 'log', 'L' + round);
  const lfd = fs.openSync(log, 'w');
  fs.writeSync(lfd, Buffer.alloc(${LOG_SIZE}, round % 251));
  fs.fsyncSync(lfd);
  fs.closeSync(lfd);
  process.stdout.write('synced L' + round + '\\n');
}
`;

await describeWithRedis('a snapshot of a busy filesystem', { fuse: true }, (redis) => {
  it('is a point-in-time copy, made in short commands', async () => {
    const from = uniquePrefix('live-from');
    const to = `${from}@during`; // a snapshot is a member of its source's family
    await using src = await mountRedisfs({ redis, prefix: from });
    // Bulk for the copy to chew on: 48 MiB of incompressible data and 1,000 small files.
    // set -e: a loop's status is its last command's; any failed step must fail the setup.
    await runOk('sh', ['-c', `set -e; mkdir -p big left right log bulk; head -c 50331648 /dev/urandom > bulk/random`], { cwd: src.dir });
    await runOk('sh', ['-c', 'set -e; for i in $(seq 1 1000); do echo "small $i" > bulk/s$i; done'], { cwd: src.dir });
    await runOk('sh', ['-c', `set -e; for k in $(seq 0 ${BIG_FILES - 1}); do head -c ${BIG_SIZE} /dev/zero > big/f$k; done`], { cwd: src.dir });
    await runOk('sh', ['-c', `set -e; for m in $(seq 0 ${MOVERS - 1}); do echo "mover $m" > left/m$m; done`], { cwd: src.dir });
    expect((await readdir(src.path('bulk'))).length).toBe(1001);

    const writer = spawn(process.execPath, ['-e', WRITER, src.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    disposeWhenTestEnds({ [Symbol.asyncDispose]: async () => void (await stopChild(writer, 'SIGKILL')) });
    const out = new OutputTail(1 << 20).follow(writer.stdout);
    const err = new OutputTail().follow(writer.stderr);
    const synced = () => [...out.toString().matchAll(/^synced (L\d+)$/gm)].map((m) => m[1]!);
    await waitFor(() => synced().length >= 20, {
      timeoutMs: 30_000,
      what: 'the writer to finish 20 rounds',
      bail: () => (writer.exitCode !== null ? new Error(`the writer died: ${err}`) : undefined),
    });

    const admin = createClient({ url: redis.url });
    admin.on('error', () => undefined); // the server stops after the test; failures show in commands
    await admin.connect();
    disposeWhenTestEnds({ [Symbol.asyncDispose]: async () => void admin.destroy() });
    await admin.configSet({ 'slowlog-log-slower-than': '0', 'slowlog-max-len': '1000000' });
    await admin.sendCommand(['SLOWLOG', 'RESET']);
    // Connected before the snapshot: the test and the mount. Any other client is the copier.
    const before = clientAddrs((await admin.sendCommand(['CLIENT', 'LIST'])) as string);

    const syncedBefore = synced();
    const snap = await run(process.execPath, [requireBuilt(SNAPSHOT_CLI), '--url', redis.url, '--from', from, '--to', to], {
      timeoutMs: 120_000,
    });
    const roundsDuring = synced().length - syncedBefore.length;
    expect(snap, snap.stderr).toMatchObject({ code: 0 });

    const entries = (await admin.sendCommand(['SLOWLOG', 'GET', '-1'])) as SlowlogEntry[];
    await admin.configSet({ 'slowlog-log-slower-than': '10000' });
    const longest = entries.reduce((a, e) => (e[2] > a[2] ? e : a));
    // Commands a script runs are logged too, from client '?:0': the script call is the copier's.
    const copier = entries.filter((e) => !before.has(e[4]) && !e[4].startsWith('?'));
    const copierArgs = copier.map((e) => argumentCount(e[3]));
    const widest = Math.max(0, ...copierArgs);
    const named = copierArgs.reduce((a, n) => a + n, 0);
    // Information only (durations are for `pnpm bench`).
    console.log(
      `snapshot: ${entries.length} commands logged; longest ${longest[2]} µs (${longest[3].slice(0, 2).join(' ')}); ` +
        `copier: ${copier.length} commands, ${named} arguments, at most ${widest} in one; ` +
        `writer rounds during the snapshot: ${roundsDuring}`,
    );
    expect(entries.some((e) => e[3][0]?.toUpperCase() === 'KEYS')).toBe(false);
    // Made in short commands, counted rather than timed: no copier command names more than a
    // batch of keys, and together they name at least every file's key, so the copy took at
    // least SOURCE_FILES / MAX_ARGS_PER_COMMAND commands (over 5), never one for everything.
    expect(widest).toBeLessThanOrEqual(MAX_ARGS_PER_COMMAND);
    expect(named).toBeGreaterThanOrEqual(SOURCE_FILES);
    expect(writer.exitCode, err.toString()).toBeNull(); // still busy until now
    await stopChild(writer, 'SIGKILL');
    // The writer really was busy during the copy, or the test proves nothing.
    expect(roundsDuring).toBeGreaterThan(0);

    await using copy = await mountRedisfs({ redis, prefix: to, readOnly: true });
    // Every rewrite of a big file is whole: one byte value throughout.
    for (let k = 0; k < BIG_FILES; k++) {
      const data = await readFile(copy.path('big', `f${k}`));
      expect(data.length).toBe(BIG_SIZE);
      const first = data[0]!;
      expect(data.every((b) => b === first), `big/f${k} mixes two rewrites`).toBe(true);
    }
    // Every mover is in exactly one directory.
    const left = new Set(await readdir(copy.path('left')));
    const right = await readdir(copy.path('right'));
    expect(right.filter((n) => left.has(n))).toEqual([]);
    expect(left.size + right.length).toBe(MOVERS);
    // Every log file fsynced before the snapshot began is whole; later ones are whole or absent.
    const logs = new Set(await readdir(copy.path('log')));
    for (const name of syncedBefore) expect(logs.has(name), `${name} missing`).toBe(true);
    for (const name of logs) {
      const data = await readFile(copy.path('log', name));
      const want = Number(name.slice(1)) % 251;
      if (syncedBefore.includes(name)) expect(data.length).toBe(LOG_SIZE);
      expect(data.every((b) => b === want), `${name} has foreign bytes`).toBe(true);
    }
    expect((await stat(copy.path('bulk', 'random'))).size).toBe(50331648);
  });
});
