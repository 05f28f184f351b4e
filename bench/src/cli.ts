/**
 * `pnpm bench [--quick] [--json FILE] [--targets a,b] [--workloads 1,4] [--baseline DIR]`
 *
 * `--baseline DIR`: also run another checkout's build of redisfs (DIR/apps/mount/dist/cli.js,
 * e.g. a worktree of main) as targets `baseline-tcp` and `baseline-unix`, on the same Redis in
 * the same run, to compare a change with what it changes.
 *
 * `--targets`: names from targets.ts (`tcp` and `unix` stand for redisfs-tcp and redisfs-unix).
 * Without it: tmpfs, memfs, redisfs-tcp, redisfs-unix, and in a full run (not --quick) also the
 * cluster targets cluster1-tcp, cluster-tcp, nosync1-tcp, sync1-tcp. sync1-tcp is measured
 * against nosync1-tcp, which is added before it when not asked for.
 *
 * Runs the eight workloads (workloads.ts) on every target (targets.ts) in one run, in rounds (each
 * workload on every target before the next, the targets' order reversed every other round), then the raw
 * Redis ceiling, Redis memory per file and per byte, stat latency during a big write, what an
 * open + close of an existing file costs (open-close.ts) and lock latency, across two mounts of
 * one filesystem on redisfs (lock-latency.ts; issue 13); on a cluster of several masters it also
 * counts the data blocks on each master before workload 8 deletes them. Prints a table of times
 * and ratios to tmpfs, the targets of issue 4 and of the cluster issue with their verdicts, the
 * open + close and lock figures, and writes everything as JSON (bench/results/latest.json
 * unless --json says otherwise). Everything it starts is stopped at the end, also when a step
 * fails or on Ctrl-C (teardown.ts).
 */
import { cpus, totalmem, release } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from '../../e2e/helpers/paths.js';
import { collectorIdle, headOfLine, memoryUse, rawCeiling, type Ceiling, type HeadOfLine, type MemoryUse } from './extras.js';
import { printCluster, summariseCluster } from './cluster-report.js';
import { blockShare } from './cluster-stats.js';
import { lockLatency } from './lock-latency.js';
import { openClose } from './open-close.js';
import { commandCountsOf, diffCounts, type CommandCounts } from './redis-stats.js';
import { printSessions, summariseSessions } from './sessions-report.js';
import { printReport, summarise, type TargetResult, type RunResult } from './report.js';
import {
  ALL_TARGETS, BASELINE_TARGETS, CLUSTER_TARGETS, isRedisfsTarget, scratchDir, startBenchRedis, startTarget, type Target, type TargetName,
} from './targets.js';
import { atTeardown, isStopping, releaseGuardian, stopAll, stopAllOnSignals } from './teardown.js';
import { FULL, QUICK, WORKLOADS, makeFixtures, type Fixtures } from './workloads.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  if (i >= 0) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

const quick = process.argv.includes('--quick');
const scale = quick ? QUICK : FULL;
const jsonPath = arg('--json') ?? join(REPO_ROOT, 'bench/results', quick ? 'latest-quick.json' : 'latest.json');
const baselineRoot = arg('--baseline');
const known = [...ALL_TARGETS, ...CLUSTER_TARGETS, ...BASELINE_TARGETS];
const ALIASES: Record<string, TargetName> = { tcp: 'redisfs-tcp', unix: 'redisfs-unix' };
const defaults = [...ALL_TARGETS, ...(quick ? [] : CLUSTER_TARGETS), ...(baselineRoot ? BASELINE_TARGETS : [])];
const asked = (arg('--targets')?.split(',').map((t) => ALIASES[t] ?? t) ?? defaults) as TargetName[];
for (const t of asked) if (!known.includes(t)) throw new Error(`unknown target ${t}; known: ${known.join(', ')} (tcp, unix for short)`);
// The cost of --sync-replicas is sync1-tcp against the same setup without it.
const targetNames = asked.flatMap((t): TargetName[] => (t === 'sync1-tcp' && !asked.includes('nosync1-tcp') ? ['nosync1-tcp', t] : [t]));
const workloadIds = arg('--workloads')?.split(',').map(Number) ?? WORKLOADS.map((w) => w.id);
const workloads = WORKLOADS.filter((w) => workloadIds.includes(w.id));

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

/** Workload 8 deletes everything: the blocks on each master are counted just before it. */
const DELETES_ALL = 8;

/** A started target and what the run has measured on it so far. */
interface Running {
  name: TargetName;
  target: Target;
  result: TargetResult;
  stop: () => Promise<void>;
  masters: Parameters<typeof commandCountsOf>[0] | undefined;
  /** Workloads run on it so far. */
  done: number[];
}

/** On a cluster of several masters: how the data blocks spread, counted once, before workload 8 deletes them. */
async function countBlocks(r: Running): Promise<void> {
  if (r.masters && r.masters.length > 1 && !r.result.blockShare && r.done.length > 0) {
    r.result.blockShare = await blockShare(r.target, [...r.done]);
    log(`${r.name}: ${r.result.blockShare.blocks} blocks, share per master ${r.result.blockShare.masters.map((m) => `${(m.share * 100).toFixed(1)}%`).join(' / ')}`);
  }
}

/** Runs workload `w` on one target, with the FUSE calls and round trips it made. */
async function runWorkload(r: Running, w: (typeof workloads)[number], fx: Fixtures): Promise<void> {
  const { name, target, result, masters } = r;
  if (w.id === DELETES_ALL) await countBlocks(r);
  const cmdBefore: CommandCounts | undefined = masters ? await commandCountsOf(masters) : undefined;
  // One SIGUSR2 answers both for redisfs (the probe shares a pending request).
  const [fuseBefore, tripsBefore] = await Promise.all([target.fuseCalls?.(), target.redisCalls?.()]);
  let phases;
  try {
    phases = w.run(target.dir, fx);
  } catch (err) {
    failed = true;
    log(`${name}: workload ${w.id} FAILED: ${(err as Error).message}`);
    result.workloads.push({ id: w.id, name: w.name, phases: [], error: (err as Error).message });
    return;
  }
  const commands = cmdBefore ? diffCounts(cmdBefore, await commandCountsOf(masters!)) : undefined;
  const [fuseAfter, tripsAfter] = await Promise.all([target.fuseCalls?.(), target.redisCalls?.()]);
  const fuseCalls = fuseBefore && fuseAfter ? diffCounts(fuseBefore, fuseAfter) : undefined;
  const roundTrips = tripsBefore && tripsAfter ? diffCounts(tripsBefore, tripsAfter) : undefined;
  result.workloads.push({ id: w.id, name: w.name, phases, commands, roundTrips, fuseCalls });
  log(`${name}: ${w.id} ${w.name}: ${phases.map((p) => `${p.name} ${p.seconds.toFixed(3)} s`).join(', ')}`);
  r.done.push(w.id);
  // Blocks it freed are deleted in the background: not while the next target runs.
  if (target.redis && target.prefix) await collectorIdle(target.redis, target.prefix);
}

/** What is measured once per target after the workloads: head-of-line latency, open + close, locks, memory. */
async function extras(r: Running, fx: Fixtures): Promise<void> {
  const { name, target, result } = r;
  await countBlocks(r);
  result.headOfLine = await headOfLine(target, fx);
  // Blocks of the workloads and of the big write are freed in the background: not meanwhile.
  if (target.redis && target.prefix) await collectorIdle(target.redis, target.prefix);
  result.openClose = await openClose(target, scale.openClosePairs);
  log(`${name}: open + close ${result.openClose.map((x) => `'${x.flags}' ${x.usPerPair.toFixed(1)} µs`).join(', ')}`);
  result.locks = await lockLatency(target, { pairs: scale.lockPairs, rounds: scale.lockRounds });
  if (result.locks?.error) {
    log(`${name}: lock latency FAILED: ${result.locks.error}`);
    // A --baseline build may predate locks across mounts: only this build's failure fails the run.
    if (isRedisfsTarget(name)) failed = true;
  } else if (result.locks) {
    log(`${name}: lock hand-off p50 ${result.locks.kinds.map((k) => `${k.kind} ${k.handoff.latency.p50Us.toFixed(0)} µs`).join(', ')}`);
  }
  if (target.redis) result.memory = await memoryUse(target, fx);
}

stopAllOnSignals();
const startedAt = new Date();
const results: TargetResult[] = [];
const ceilings: Ceiling[] = [];
let failed = false;
try {
  const scratch = await scratchDir();
  atTeardown(`scratch dir ${scratch.dir}`, () => scratch.stop(), { dirs: [scratch.dir] });
  const redis = await startBenchRedis();
  atTeardown('redis-server', () => redis.stop(), redis.leftovers);
  log(`${quick ? 'quick' : 'full'} run of ${targetNames.join(', ')}; making fixtures in ${scratch.dir}`);
  const fx = makeFixtures(scale, scratch.dir);
  // Every target is started first, then the workloads run in rounds: workload k on every
  // target before workload k + 1, the targets' order reversed every other round. A slow spell of
  // this machine then falls on every target alike, and no target is always the first to run.
  const running: Running[] = [];
  for (const name of targetNames) {
    if (isStopping()) break;
    const target = await startTarget(name, redis, baselineRoot);
    const stop = atTeardown(`${name} (${target.dir})`, () => target.stop(), target.leftovers);
    log(`${name}: ${target.dir}${target.masters && target.masters.length > 1 ? ` on ${target.masters.length} masters` : ''}`);
    const result: TargetResult = { target: name, workloads: [] };
    results.push(result);
    running.push({ name, target, result, stop, masters: target.masters?.map((m) => m.client), done: [] });
  }
  try {
    for (const [round, w] of workloads.entries()) {
      for (const r of round % 2 === 0 ? running : [...running].reverse()) {
        if (isStopping()) throw new Error('interrupted');
        await runWorkload(r, w, fx);
      }
    }
    for (const r of running) {
      if (isStopping()) throw new Error('interrupted');
      await extras(r, fx);
      await r.stop();
    }
  } finally {
    for (const r of running) await r.stop();
  }
  for (const via of ['tcp', 'unix'] as const) {
    if (targetNames.includes(`redisfs-${via}`)) ceilings.push(await rawCeiling(redis, via, scale.seqBytes));
  }
} finally {
  await stopAll();
  releaseGuardian();
}

const run: RunResult = {
  date: startedAt.toISOString(),
  mode: quick ? 'quick' : 'full',
  machine: {
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
  },
  scale,
  targets: results,
  ceilings,
};
run.summary = summarise(run);
const cluster = summariseCluster(run);
if (cluster) run.summary.cluster = cluster;
const sessions = summariseSessions(run);
if (sessions) run.summary.sessions = sessions;
mkdirSync(dirname(jsonPath), { recursive: true });
writeFileSync(jsonPath, `${JSON.stringify(run, null, 2)}\n`);
printReport(run);
printCluster(run.summary.cluster);
printSessions(run);
log(`JSON written to ${jsonPath}`);
if (failed) {
  log('a workload (or the lock measurement) failed verification');
  process.exitCode = 1;
}

export type { HeadOfLine, MemoryUse };
