/**
 * `pnpm bench [--quick] [--json FILE] [--targets a,b] [--workloads 1,4] [--baseline DIR]`
 *
 * `--baseline DIR`: also run another checkout's build of redisfs (DIR/apps/mount/dist/cli.js,
 * e.g. a worktree of main) as targets `baseline-tcp` and `baseline-unix`, on the same Redis in
 * the same run, to compare a change with what it changes.
 *
 * Runs the eight workloads (workloads.ts) on every target (targets.ts) in one run, then the raw
 * Redis ceiling, Redis memory per file and per byte, and stat latency during a big write. Prints
 * a table of times and ratios to tmpfs, the targets of issue 4 with their verdicts, and writes
 * everything as JSON (bench/results/latest.json unless --json says otherwise).
 */
import { cpus, totalmem, release } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from '../../e2e/helpers/paths.js';
import { headOfLine, memoryUse, rawCeiling, type Ceiling, type HeadOfLine, type MemoryUse } from './extras.js';
import { commandCounts, diffCounts, type CommandCounts } from './redis-stats.js';
import { printReport, summarise, type TargetResult, type RunResult } from './report.js';
import { ALL_TARGETS, BASELINE_TARGETS, scratchDir, startBenchRedis, startTarget, type TargetName } from './targets.js';
import { FULL, QUICK, WORKLOADS, makeFixtures } from './workloads.js';

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
const known = [...ALL_TARGETS, ...BASELINE_TARGETS];
const targetNames = (arg('--targets')?.split(',') ?? (baselineRoot ? known : ALL_TARGETS)) as TargetName[];
for (const t of targetNames) if (!known.includes(t)) throw new Error(`unknown target ${t}; known: ${known.join(', ')}`);
const workloadIds = arg('--workloads')?.split(',').map(Number) ?? WORKLOADS.map((w) => w.id);
const workloads = WORKLOADS.filter((w) => workloadIds.includes(w.id));

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

const startedAt = new Date();
const scratch = await scratchDir();
const redis = await startBenchRedis();
const results: TargetResult[] = [];
const ceilings: Ceiling[] = [];
let failed = false;
try {
  log(`${quick ? 'quick' : 'full'} run; making fixtures in ${scratch.dir}`);
  const fx = makeFixtures(scale, scratch.dir);
  for (const name of targetNames) {
    const target = await startTarget(name, redis, baselineRoot);
    log(`${name}: ${target.dir}`);
    const result: TargetResult = { target: name, workloads: [] };
    results.push(result);
    try {
      for (const w of workloads) {
        const cmdBefore: CommandCounts | undefined = target.redis ? await commandCounts(target.redis) : undefined;
        // One SIGUSR2 answers both for redisfs (the probe shares a pending request).
        const [fuseBefore, tripsBefore] = await Promise.all([target.fuseCalls?.(), target.redisCalls?.()]);
        let phases;
        try {
          phases = w.run(target.dir, fx);
        } catch (err) {
          failed = true;
          log(`${name}: workload ${w.id} FAILED: ${(err as Error).message}`);
          result.workloads.push({ id: w.id, name: w.name, phases: [], error: (err as Error).message });
          continue;
        }
        const commands = cmdBefore ? diffCounts(cmdBefore, await commandCounts(target.redis!)) : undefined;
        const [fuseAfter, tripsAfter] = await Promise.all([target.fuseCalls?.(), target.redisCalls?.()]);
        const fuseCalls = fuseBefore && fuseAfter ? diffCounts(fuseBefore, fuseAfter) : undefined;
        const roundTrips = tripsBefore && tripsAfter ? diffCounts(tripsBefore, tripsAfter) : undefined;
        result.workloads.push({ id: w.id, name: w.name, phases, commands, roundTrips, fuseCalls });
        log(`${name}: ${w.id} ${w.name}: ${phases.map((p) => `${p.name} ${p.seconds.toFixed(3)} s`).join(', ')}`);
      }
      result.headOfLine = await headOfLine(target, fx);
      if (target.redis) result.memory = await memoryUse(target, fx);
    } finally {
      await target.stop();
    }
  }
  for (const via of ['tcp', 'unix'] as const) {
    if (targetNames.includes(`redisfs-${via}`)) ceilings.push(await rawCeiling(redis, via, scale.seqBytes));
  }
} finally {
  await redis.stop();
  await scratch.stop();
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
mkdirSync(dirname(jsonPath), { recursive: true });
writeFileSync(jsonPath, `${JSON.stringify(run, null, 2)}\n`);
printReport(run);
log(`JSON written to ${jsonPath}`);
if (failed) {
  log('a workload failed verification');
  process.exitCode = 1;
}

export type { HeadOfLine, MemoryUse };
