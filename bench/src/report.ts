/** The run's results as JSON-ready data, the targets of issue 4 checked on them, and the table. */
import type { ClusterSummary } from './cluster-report.js';
import type { BlockShare } from './cluster-stats.js';
import type { Ceiling, HeadOfLine, MemoryUse } from './extras.js';
import type { LockLatency } from './lock-latency.js';
import type { OpenCloseResult } from './open-close.js';
import type { SessionsSummary } from './sessions-report.js';
import { total, type CommandCounts } from './redis-stats.js';
import { isRedisfsTarget, type TargetName } from './targets.js';
import { isSubPhase, type Phase, type Scale } from './workloads.js';

export interface WorkloadResult {
  id: number;
  name: string;
  phases: Phase[];
  error?: string;
  /**
   * Redis commands served during the workload, including those Lua scripts run inside Redis
   * (INFO commandstats, whole server: redisfs targets).
   */
  commands?: CommandCounts;
  /**
   * Redis round trips redisfs made during the workload, by command, as its store counts them:
   * a script call is one ("EVALSHA create") however many commands it runs inside.
   */
  roundTrips?: CommandCounts;
  /** FUSE calls served during the workload, by operation, as the FUSE server counts them (memfs, redisfs). */
  fuseCalls?: CommandCounts;
}

export interface TargetResult {
  target: TargetName;
  workloads: WorkloadResult[];
  headOfLine?: HeadOfLine;
  memory?: MemoryUse;
  /** Data blocks per master (a cluster of several masters), counted before workload 8 deletes them. */
  blockShare?: BlockShare;
  /** open + close of an existing file, per open mode (open-close.ts). */
  openClose?: OpenCloseResult[];
  /** Lock latency, across two mounts on redisfs (lock-latency.ts); none on memfs. */
  locks?: LockLatency;
}

export interface Check {
  target: TargetName;
  what: string;
  value: number;
  limit: string;
  ok: boolean;
}

export interface RunResult {
  date: string;
  mode: 'quick' | 'full';
  machine: { cpus: number; cpu: string; memoryGiB: number; kernel: string; node: string };
  scale: Scale;
  targets: TargetResult[];
  ceilings: Ceiling[];
  summary?: {
    geomean: Partial<Record<TargetName, number>>;
    /** The targets of issue 4, on redisfs-tcp and redisfs-unix. */
    checks: Check[];
    /** The Redis Cluster issue's figures and verdicts (cluster-report.ts), when the run had cluster targets. */
    cluster?: ClusterSummary;
    /** Issue 13: open + close and lock latency, as ratios to tmpfs and the baseline (sessions-report.ts). */
    sessions?: SessionsSummary;
  };
}

const MiB = 2 ** 20;

/** FUSE operations that change metadata (each may cost at most one Redis round trip). */
const METADATA_CHANGES = new Set([
  'create', 'mknod', 'mkdir', 'unlink', 'rmdir', 'rename', 'link', 'symlink', 'chmod', 'chown', 'truncate', 'ftruncate', 'utimens',
  'setxattr', 'removexattr',
]);

/** FUSE calls among `calls` that change metadata. */
function metadataChanges(calls: CommandCounts): number {
  return Object.entries(calls).filter(([op]) => METADATA_CHANGES.has(op)).reduce((a, [, n]) => a + n, 0);
}

export function workloadSeconds(w: WorkloadResult): number {
  return w.phases.filter((p) => !isSubPhase(p)).reduce((a, p) => a + p.seconds, 0);
}

function find(run: RunResult, target: TargetName): TargetResult | undefined {
  return run.targets.find((t) => t.target === target);
}

function phaseOf(t: TargetResult | undefined, id: number, index: number): Phase | undefined {
  return t?.workloads.find((w) => w.id === id)?.phases[index];
}

function geomean(xs: number[]): number {
  return Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
}

export function summarise(run: RunResult): NonNullable<RunResult['summary']> {
  const tmpfs = find(run, 'tmpfs');
  const memfs = find(run, 'memfs');
  const geo: Partial<Record<TargetName, number>> = {};
  const checks: Check[] = [];
  const add = (target: TargetName, what: string, value: number, limit: string, ok: boolean) =>
    checks.push({ target, what, value, limit, ok });
  for (const t of run.targets) {
    if (t.target === 'tmpfs' || !tmpfs) continue;
    const ratios: number[] = [];
    for (const w of t.workloads) {
      const base = tmpfs.workloads.find((b) => b.id === w.id);
      if (!base || w.error || base.error) continue;
      ratios.push(workloadSeconds(w) / workloadSeconds(base));
    }
    if (ratios.length > 0) geo[t.target] = geomean(ratios);
    if (!t.target.startsWith('redisfs')) continue;
    if (geo[t.target] !== undefined) add(t.target, 'geomean time / tmpfs', geo[t.target]!, '≤ 20', geo[t.target]! <= 20);
    const mbps = (x: TargetResult | undefined, i: number) => {
      const p = phaseOf(x, 4, i);
      return p ? p.ops / MiB / p.seconds : undefined;
    };
    for (const [i, what, min] of [[0, 'seq write / memfs', 0.6], [1, 'seq read / memfs', 0.7]] as const) {
      const a = mbps(t, i);
      const b = mbps(memfs, i);
      if (a && b) add(t.target, what, a / b, `≥ ${min}`, a / b >= min);
    }
    const small = phaseOf(t, 5, 0);
    const large = phaseOf(t, 5, 1);
    if (small && large) {
      const r = large.seconds / small.seconds;
      add(t.target, 'random write: large file / small file', r, '≤ 1.5', r <= 1.5);
    }
    const first = phaseOf(t, 7, 1);
    const last = phaseOf(t, 7, 2);
    if (first && last) add(t.target, 'huge dir: last creates / first', last.seconds / first.seconds, '≤ 1.5', last.seconds / first.seconds <= 1.5);
    // redisfs's own counts on both sides: its store's round trips, the FUSE calls it served.
    const churn = t.workloads.find((w) => w.id === 6);
    const changes = churn?.fuseCalls ? metadataChanges(churn.fuseCalls) : 0;
    if (churn?.roundTrips && changes > 0) {
      // The changes' own round trips (their scripts), then the lookups of names no cache can
      // hold yet (a new name, a rename's target): the kernel asks before each create/rename.
      const lookups = Object.entries(churn.roundTrips)
        .filter(([cmd]) => /\b(resolve|lookup)$/.test(cmd))
        .reduce((a, [, n]) => a + n, 0);
      const own = (total(churn.roundTrips) - lookups) / changes;
      add(t.target, 'churn: round trips of each change / changing FUSE call', own, '≤ 1 (+1/64: inode numbers)', own <= 1 + 1 / 64);
      add(t.target, 'churn: lookups of new names / change (no cache has them)', lookups / changes, '(info)', true);
    }
    // readdir brings the names; a file may then cost one lookup for its attributes, and nothing
    // else (repeated stats, xattr misses) should leave the caches.
    const ls = t.workloads.find((w) => w.id === 2);
    if (ls?.roundTrips && !ls.error && ls.phases[0]) {
      const r = total(ls.roundTrips) / ls.phases[0].ops;
      add(t.target, 'ls -lR: round trips / file', r, '≤ 1', r <= 1);
    }
    if (t.memory) {
      add(t.target, 'Redis bytes per empty file', t.memory.bytesPerEmptyFile, '≤ 200', t.memory.bytesPerEmptyFile <= 200);
      add(t.target, 'Redis bytes per byte of text', t.memory.perByteCompressible, '< 0.8 (compressed)', t.memory.perByteCompressible < 0.8);
      // Stored raw, a 64 KiB block is a 64 KiB + header value, which jemalloc puts in its 80 KiB size class.
      add(t.target, 'Redis bytes per random byte (raw; 80 KiB class)', t.memory.perByteIncompressible, '≤ 1.25 + 2%', t.memory.perByteIncompressible <= 1.275);
    }
    if (t.headOfLine) {
      const h = t.headOfLine.duringWrite;
      add(t.target, 'stat p99 during a big write, ms', h.p99Ms, '≤ 20', h.p99Ms <= 20);
    }
  }
  return { geomean: geo, checks };
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function lpad(s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

function fmtSeconds(s: number): string {
  return s >= 100 ? s.toFixed(0) : s >= 10 ? s.toFixed(1) : s >= 1 ? s.toFixed(2) : s.toFixed(3);
}

export function printReport(run: RunResult): void {
  const out: string[] = [];
  const names = run.targets.map((t) => t.target);
  const tmpfs = find(run, 'tmpfs');
  const memfs = find(run, 'memfs');
  const redisTargets = run.targets.filter((t) => isRedisfsTarget(t.target));
  out.push(`redisfs bench (${run.mode}), ${run.date}`);
  out.push(`machine: ${run.machine.cpus} × ${run.machine.cpu}, ${run.machine.memoryGiB} GiB, Linux ${run.machine.kernel}, Node ${run.machine.node}`);
  out.push('');
  out.push('seconds (× tmpfs)');
  out.push(pad('workload / phase', 40) + names.map((n) => lpad(n, 20)).join(''));
  const ids = [...new Set(run.targets.flatMap((t) => t.workloads.map((w) => w.id)))].sort((a, b) => a - b);
  for (const id of ids) {
    const ref = run.targets.flatMap((t) => t.workloads).find((w) => w.id === id && w.phases.length > 0);
    const label = ref?.name ?? `workload ${id}`;
    const phases = ref?.phases ?? [];
    const cell = (t: TargetResult, secs: (w: WorkloadResult) => number | undefined) => {
      const w = t.workloads.find((x) => x.id === id);
      if (!w) return lpad('-', 20);
      if (w.error) return lpad('FAILED', 20);
      const s = secs(w);
      const b = tmpfs?.workloads.find((x) => x.id === id);
      const bs = b && !b.error ? secs(b) : undefined;
      const ratio = t.target !== 'tmpfs' && s !== undefined && bs ? ` (${(s / bs).toFixed(1)}×)` : '';
      return lpad(s === undefined ? '-' : fmtSeconds(s) + ratio, 20);
    };
    out.push(pad(`${id}. ${label}`, 40) + run.targets.map((t) => cell(t, workloadSeconds)).join(''));
    if (phases.length > 1) {
      phases.forEach((p, i) => {
        out.push(pad(`     ${p.name}`, 40) + run.targets.map((t) => cell(t, (w) => w.phases[i]?.seconds)).join(''));
      });
    }
  }
  out.push(pad('geometric mean of × tmpfs', 40) + run.targets.map((t) => lpad(t.target === 'tmpfs' ? '1' : (run.summary?.geomean[t.target]?.toFixed(1) ?? '-') + '×', 20)).join(''));
  out.push('');
  // With --baseline: this build against the other, workload by workload (time ratio; < 1 is faster).
  for (const via of ['tcp', 'unix'] as const) {
    const mine = find(run, `redisfs-${via}`);
    const base = find(run, `baseline-${via}`);
    if (!mine || !base) continue;
    out.push(`redisfs-${via} / baseline-${via} (time; below 1 is faster)`);
    const ratios: number[] = [];
    for (const id of ids) {
      const a = mine.workloads.find((w) => w.id === id);
      const b = base.workloads.find((w) => w.id === id);
      if (!a || !b || a.error || b.error) continue;
      const r = workloadSeconds(a) / workloadSeconds(b);
      ratios.push(r);
      out.push(pad(`  ${id}. ${a.name}`, 60) + lpad(r.toFixed(2), 8) + (r > 1.1 ? '  slower by more than 10%' : ''));
    }
    if (ratios.length > 0) {
      const geo = Math.exp(ratios.reduce((sum, r) => sum + Math.log(r), 0) / ratios.length);
      out.push(pad('  geometric mean', 60) + lpad(geo.toFixed(2), 8));
    }
    out.push('');
  }
  out.push('sequential throughput, MiB/s (write / read)');
  for (const t of run.targets) {
    const w = phaseOf(t, 4, 0);
    const r = phaseOf(t, 4, 1);
    if (w && r) out.push(`  ${pad(t.target, 14)} ${lpad((w.ops / MiB / w.seconds).toFixed(0), 6)} / ${lpad((r.ops / MiB / r.seconds).toFixed(0), 6)}`);
  }
  for (const c of run.ceilings) {
    out.push(`  ${pad(`raw Redis ${c.via}`, 14)} ${lpad(c.writeMBps.toFixed(0), 6)} / ${lpad(c.readMBps.toFixed(0), 6)}   (node-redis SET/GET of 64 KiB values, 16 in flight)`);
  }
  out.push('');
  out.push("Redis round trips and FUSE calls per workload, redisfs's own counts (a script call is one round trip)");
  out.push(`  ${pad('workload', 40)} ${pad('target', 13)} ${lpad('round trips', 11)} ${lpad('FUSE calls', 11)} ${lpad('trips/call', 11)} ${lpad('trips/unit', 14)}`);
  for (const id of ids) {
    for (const t of redisTargets) {
      const w = t.workloads.find((x) => x.id === id);
      if (!w?.roundTrips || !w.fuseCalls) continue;
      const trips = total(w.roundTrips);
      const calls = total(w.fuseCalls);
      const perCall = calls > 0 ? (trips / calls).toFixed(2) : '-';
      const perUnit = w.phases[0] ? perOp(trips, w.phases[0]) : '-';
      out.push(`  ${pad(`${id}. ${w.name}`.slice(0, 40), 40)} ${pad(t.target, 13)} ${lpad(String(trips), 11)} ${lpad(String(calls), 11)} ${lpad(perCall, 11)} ${lpad(perUnit, 14)}`);
      out.push(`       trips [${top(w.roundTrips)}]; FUSE [${top(w.fuseCalls)}]`);
    }
  }
  out.push('');
  out.push('Redis commands incl. those inside scripts (INFO commandstats) per workload, per file or operation of its first phase; FUSE calls as counted by memfs');
  for (const id of ids) {
    const parts: string[] = [];
    const calls = memfs?.workloads.find((w) => w.id === id)?.fuseCalls;
    if (calls) parts.push(`FUSE ${total(calls)} [${top(calls)}]`);
    for (const t of redisTargets) {
      const w = t.workloads.find((x) => x.id === id);
      if (!w?.commands) continue;
      const n = total(w.commands);
      const per = w.phases[0] ? ` = ${perOp(n, w.phases[0])}` : '';
      parts.push(`${t.target} ${n}${per} [${top(w.commands)}]`);
    }
    if (parts.length > 0) out.push(`  ${id}. ${parts.join('; ')}`);
  }
  out.push('');
  out.push('stat latency, ms: idle p50 / p99, during a big write p50 / p99 / max');
  for (const t of run.targets) {
    const h = t.headOfLine;
    if (!h) continue;
    out.push(
      `  ${pad(t.target, 14)} ${h.idle.p50Ms.toFixed(2)} / ${h.idle.p99Ms.toFixed(2)}   ${h.duringWrite.p50Ms.toFixed(2)} / ${h.duringWrite.p99Ms.toFixed(2)} / ${h.duringWrite.maxMs.toFixed(1)}  (${h.duringWrite.samples} samples)`,
    );
  }
  out.push('');
  out.push('Redis memory: bytes per empty file; per byte stored of hex text / of random bytes');
  for (const t of redisTargets) {
    const m = t.memory;
    if (m) out.push(`  ${pad(t.target, 14)} ${m.bytesPerEmptyFile.toFixed(0)} B   ${m.perByteCompressible.toFixed(2)} / ${m.perByteIncompressible.toFixed(2)}`);
  }
  out.push('');
  out.push('targets (issue 4)');
  for (const c of run.summary?.checks ?? []) {
    out.push(`  ${c.ok ? 'met   ' : 'MISSED'} ${pad(c.target, 14)} ${pad(c.what, 56)} ${lpad(c.value.toFixed(2), 8)}  ${c.limit}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

/** `n` per file, write… of `phase` ("1.02/file"); per MiB when the phase counts bytes. */
function perOp(n: number, phase: Phase): string {
  const [ops, unit] = phase.unit === 'bytes' ? [phase.ops / MiB, 'MiB'] : [phase.ops, phase.unit.replace(/s$/, '')];
  const x = n / ops;
  return `${x.toFixed(x < 10 ? 2 : 0)}/${unit}`;
}

function top(counts: CommandCounts): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}
